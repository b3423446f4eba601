"""Settings: one lookup, one documented order.

command-line option > environment variable MAILER_<KEY> > mailer.toml > default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mailer.errors import ConfigError

CONFIG_FILE = "mailer.toml"

# Where a value may also come from outside the MAILER_ namespace (SendGrid's own convention).
EXTRA_ENV = {"sendgrid_api_key": "SENDGRID_API_KEY"}


@dataclass(frozen=True)
class Settings:
    project: Path
    database_url: str = "sqlite:///mailer.db"
    provider: str = "outbox"
    outbox_dir: str = "outbox"
    from_email: str = ""
    from_name: str = ""
    reply_to: str = ""
    base_url: str = ""
    secret_key: str = ""
    postal_address: str = ""
    list_id: str = ""
    newsletter_name: str = ""
    language: str = "zh-CN"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: str = "starttls"
    smtp_timeout: float = 30.0
    sendgrid_api_key: str = ""
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str = ""
    sendgrid_timeout: float = 30.0
    batch_size: int = 1000
    concurrency: int = 4
    rate_limit: float = 0.0  # messages per second; 0 means unlimited

    def require(self, *keys: str) -> None:
        """Fail with one line naming the variable and the toml key of the first missing one."""
        for key in keys:
            if not getattr(self, key):
                raise ConfigError(
                    f"missing setting {key}: set {env_name(key)} or add "
                    f'{key} = "..." to {self.project / CONFIG_FILE}'
                )

    @property
    def display_name(self) -> str:
        return self.newsletter_name or self.from_name or "Newsletter"

    def path(self, value: str) -> Path:
        """A path setting, relative to the project directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.project / p

    def relative(self, path: str | Path) -> str:
        """A file's name as the ledger records it: relative to the project when inside it,
        so another machine (or a moved project) resuming the issue names it the same."""
        p = Path(path).expanduser().resolve()
        try:
            return p.relative_to(self.project).as_posix()
        except ValueError:
            return p.as_posix()

    @property
    def resolved_database_url(self) -> str:
        """SQLite paths are relative to the project, not to wherever mailer was started."""
        url = self.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and url[len(prefix) :] not in ("", ":memory:"):
            return prefix + str(self.path(url[len(prefix) :]))
        return url

    @property
    def effective_list_id(self) -> str:
        if self.list_id:
            return self.list_id
        local, _, domain = self.from_email.partition("@")
        return f"{local or 'newsletter'}.{domain or 'localhost'}"


def env_name(key: str) -> str:
    return f"MAILER_{key.upper()}"


def _coerce(key: str, raw: Any, kind: type, source: str) -> Any:
    try:
        if kind is int:
            value: Any = int(raw)
        elif kind is float:
            value = float(raw) if raw not in ("", "unlimited", None) else 0.0
        else:
            value = str(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"setting {key} from {source} must be a {kind.__name__}, got {raw!r}"
        ) from None
    return value


def read_toml(project: Path) -> dict[str, Any]:
    path = project / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: not valid TOML ({e}); fix the file or run 'mailer init'"
        ) from None


def load_settings(
    project: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    project = Path(project or ".").resolve()
    env = os.environ if environ is None else environ
    toml = read_toml(project)
    known = {f.name: f for f in fields(Settings) if f.name != "project"}
    unknown = sorted(set(toml) - set(known))
    if unknown:
        raise ConfigError(
            f"{project / CONFIG_FILE}: unknown setting {unknown[0]!r}; "
            f"known settings are listed in README.md"
        )
    values: dict[str, Any] = {}
    for key, f in known.items():
        kind = type(f.default)
        if overrides and overrides.get(key) is not None:
            values[key] = _coerce(key, overrides[key], kind, "the command line")
        elif env_name(key) in env:
            values[key] = _coerce(key, env[env_name(key)], kind, env_name(key))
        elif key in EXTRA_ENV and EXTRA_ENV[key] in env:
            values[key] = _coerce(key, env[EXTRA_ENV[key]], kind, EXTRA_ENV[key])
        elif key in toml:
            values[key] = _coerce(key, toml[key], kind, CONFIG_FILE)
    settings = Settings(project=project, **values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.provider not in ("outbox", "smtp", "sendgrid"):
        raise ConfigError(
            f"provider must be outbox, smtp or sendgrid, got {s.provider!r}: "
            f"fix {env_name('provider')} or provider in {CONFIG_FILE}"
        )
    if s.smtp_security not in ("starttls", "ssl", "none"):
        raise ConfigError(f"smtp_security must be starttls, ssl or none, got {s.smtp_security!r}")
    for key in ("batch_size", "concurrency"):
        if getattr(s, key) < 1:
            raise ConfigError(f"{key} must be at least 1: fix {env_name(key)} or {key}")
    if s.batch_size > 1000 and s.provider == "sendgrid":
        raise ConfigError(
            "batch_size can be at most 1000 with SendGrid (its personalization limit)"
        )
    if s.rate_limit < 0:
        raise ConfigError("rate_limit must be 0 (unlimited) or a positive number of messages/s")

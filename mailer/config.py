"""Settings: one lookup, one documented order.

command-line option > environment variable MAILER_<KEY> > mailer.toml > default.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailer import languages
from mailer.audience import TOPIC_KEY
from mailer.errors import ConfigError
from mailer.models import FeedSource, Topic
from mailer.setting_rules import EXAMPLES, RULES, feed_url
from mailer.text import is_one_line, text_problem

CONFIG_FILE = "mailer.toml"

# Where a value may also come from outside the MAILER_ namespace (SendGrid's own convention).
EXTRA_ENV = {"sendgrid_api_key": "SENDGRID_API_KEY"}
MULTILINE = frozenset({"dkim_private_key", "sendgrid_webhook_public_key"})  # PEM text


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
    rate_burst: int = 1  # messages that may leave at once before the rate applies
    smtp_ca_file: str = ""  # trust this CA (PEM) for the SMTP server, besides the system's
    # The envelope sender: with a +, each message gets its own (VERP), e.g. bounces@example.com
    bounce_address: str = ""
    bounce_imap_url: str = ""  # imaps://user@host/INBOX (imap:// uses STARTTLS)
    bounce_imap_password: str = ""
    bounce_imap_ca_file: str = ""
    bounce_processed_folder: str = "mailer-processed"
    bounce_unmatched_folder: str = "mailer-unmatched"  # reports that prove nothing: for a human
    bounce_max_bytes: int = 2_000_000  # a larger message in the bounce mailbox is not read
    # Act on reports by mail that name only an address (a relay that rewrites envelopes):
    # then anyone who can mail the bounce address can suppress any reader.
    bounce_match_address: bool = False
    bounce_fetch_interval: float = 0.0  # seconds; mailer serve fetches when > 0
    soft_bounce_limit: int = 3  # soft bounces on this many issues in a row mark bounced
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_private_key: str = ""  # a PEM file's path, or the PEM itself (MAILER_DKIM_PRIVATE_KEY)
    accent_color: str = "#0b63ce"  # links and the masthead rule
    logo_url: str = ""  # an https:// image for the masthead (about 2× its 200 px display width)
    web_font: str = ""  # opt-in web font family name, put first in the stack
    web_font_url: str = ""  # its CSS URL (e.g. a Google Fonts css2 link); readers' clients fetch it
    image_size_timeout: float = 5.0  # seconds to read a remote image's size; 0 = do not fetch
    issues_dir: str = "issues"  # where `send --due`, `--latest` and `schedule` look
    timezone: str = ""  # IANA name for a send_at without an offset, e.g. Asia/Shanghai
    max_lateness: float = (
        86400.0  # seconds: `send --due` leaves an issue later than this to a human
    )
    welcome_issue: str = (
        "issues/welcome.md"  # mailed once to each confirmed subscriber, if it exists
    )
    welcome_latest: bool = False  # also mail a new subscriber the latest issue, once
    # The languages readers may choose (editions, pages, footers); `language` comes first.
    languages: tuple[str, ...] = ()
    topics: tuple[Topic, ...] = ()  # [topics] in mailer.toml: key = "name" or {en = "..."}
    # Proxies whose X-Forwarded-For names the client (IPs or CIDRs); none by default, so
    # nobody can claim another address by sending the header.
    trusted_proxies: tuple[str, ...] = ()
    signup_queue_limit: int = 1000  # sign-up and link mails waiting; more are told to wait
    signup_proof_of_work: int = 100_000  # the sign-up form's challenge size; 0 turns it off
    sources: tuple[FeedSource, ...] = ()  # [[sources]] in mailer.toml: what `draft` reads
    stats_token: str = ""  # `mailer serve` shows /stats to whoever presents it; none: no /stats
    count_clicks: bool = False  # article links go through BASE/l/...: counted, per link only

    def require(self, *keys: str) -> None:
        """Fail with one line naming the variable and the toml key of the first missing one."""
        for key in keys:
            if not getattr(self, key):
                raise ConfigError(
                    f"missing setting {key}: set {env_name(key)} or add "
                    f'{key} = "..." to {self.project / CONFIG_FILE}'
                )

    @property
    def offered_languages(self) -> tuple[str, ...]:
        """The list's language first, then the others readers may choose."""
        return (self.language, *(t for t in self.languages if t != self.language))

    def in_language(self, tag: str) -> Settings:
        """These settings speaking `tag` (an edition's words, fonts, pages); "" keeps them."""
        from dataclasses import replace

        return replace(self, language=tag) if tag and tag != self.language else self

    def topic_keys(self) -> tuple[str, ...]:
        return tuple(t.key for t in self.topics)

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
    def bad() -> ConfigError:
        what = "a whole number" if kind is int else "a number" if kind is float else "text"
        return ConfigError(
            f"setting {key} from {source} must be {what}, got {str(raw)[:60]!r}; "
            f"e.g. {key} = {EXAMPLES.get(key, '...')}"
        )

    if kind is tuple:  # a TOML array, or a comma-separated line from the environment
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(
                f"setting {key} from {source} must be a list of text, got {str(raw)[:60]!r}; "
                f"e.g. {key} = {EXAMPLES.get(key, '[...]')}"
            )
        return tuple(i.strip() for i in items if i.strip())
    if kind is bool:
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in words:
            return words[raw.strip().lower()]
        raise ConfigError(
            f"setting {key} from {source} must be true or false, got {str(raw)[:60]!r}"
        )
    if isinstance(raw, bool) or (kind is str and not isinstance(raw, str | int | float)):
        raise bad()
    try:
        if kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise bad()
            value: Any = int(raw)
        elif kind is float:
            value = float(raw) if raw not in ("", "unlimited", None) else 0.0
            if not math.isfinite(value):
                raise bad()
        else:
            value = str(raw)
    except (TypeError, ValueError, OverflowError):
        raise bad() from None
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
    except OSError as e:
        raise ConfigError(
            f"{path}: cannot read it ({e.strerror}); it must be a file of settings"
        ) from None


def load_settings(
    project: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    project = Path(project or ".").resolve()
    env = os.environ if environ is None else environ
    toml = read_toml(project)
    tables = ("project", "topics", "sources")  # TOML tables, read on their own
    known = {f.name: f for f in fields(Settings) if f.name not in tables}
    topics = _topics(toml.pop("topics", None))
    feeds = _sources(toml.pop("sources", None), {t.key for t in topics})
    for where, keys in ((str(project / CONFIG_FILE), toml), ("--set", overrides or {})):
        unknown = sorted(set(keys) - set(known))
        if unknown:
            near = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f"did you mean {near[0]!r}?" if near else "known settings are in README.md"
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; {hint}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, f in known.items():
        kind = type(f.default)
        if overrides and overrides.get(key) is not None:
            raw, source = overrides[key], "the command line"
        elif env_name(key) in env:
            raw, source = env[env_name(key)], env_name(key)
        elif key in EXTRA_ENV and EXTRA_ENV[key] in env:
            raw, source = env[EXTRA_ENV[key]], EXTRA_ENV[key]
        elif key in toml:
            raw, source = toml[key], CONFIG_FILE
        else:
            continue
        value = _coerce(key, raw, kind, source)
        # One rule for every text setting, before its own: text it can show, in one line.
        for item in value if isinstance(value, tuple) else (value,):
            problem = text_problem(item, lines=key in MULTILINE) if isinstance(item, str) else None
            if problem is not None:
                raise ConfigError(f"setting {key} from {source} {problem}; remove it")
        values[key] = value
        sources[key] = source
    for key, value in list(values.items()):
        rule = RULES.get(key)
        if rule is not None:
            try:
                values[key] = rule(value)
            except ValueError as e:
                raise ConfigError(
                    f"setting {key} from {sources[key]} {e}; e.g. {key} = {EXAMPLES[key]}"
                ) from None
    settings = Settings(project=project, topics=topics, sources=feeds, **values)
    _validate(settings)
    return settings


def _sources(raw: Any, topics: set[str]) -> tuple[FeedSource, ...]:
    """[[sources]]: url = "https://…/feed.xml", optional name and topic (a declared one)."""
    if raw is None:
        return ()
    where = f"[[sources]] in {CONFIG_FILE}"
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ConfigError(f'{where}: each source is a table: [[sources]] then url = "https://..."')
    found = []
    for i, entry in enumerate(raw, 1):
        unknown = sorted(set(entry) - {"url", "name", "topic"})
        if unknown:
            raise ConfigError(
                f"{where}: source {i} has unknown key {unknown[0]!r}; use url, name, topic"
            )
        url, name, topic = entry.get("url"), entry.get("name", ""), entry.get("topic", "")
        if not all(isinstance(v, str) for v in (url, name, topic)):
            raise ConfigError(f"{where}: source {i}: url, name and topic are text")
        try:
            url = feed_url(str(url))
        except ValueError as e:
            raise ConfigError(f"{where}: source {i}: url {e}") from None
        if not is_one_line(str(name)):
            raise ConfigError(f"{where}: source {i}: name must be one line")
        if topic and topic not in topics:
            known = ", ".join(sorted(topics)) or "none: declare them under [topics]"
            raise ConfigError(f"{where}: source {i}: unknown topic {topic!r}; topics: {known}")
        found.append(FeedSource(str(url), str(name).strip()[:100], str(topic)))
    return tuple(found)


def _topics(raw: Any) -> tuple[Topic, ...]:
    """[topics]: key = "Name" (one name) or key = { en = "AI", zh-CN = "人工智能" }."""
    where = f"[topics] in {CONFIG_FILE}"
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f'topics in {CONFIG_FILE} must be a table: [topics] then ai = "AI"')
    found = []
    for key, value in raw.items():
        if not TOPIC_KEY.fullmatch(key):
            raise ConfigError(
                f"{where}: {key[:40]!r} is not a topic key; use a-z, 0-9, - and _ (e.g. ai)"
            )
        names = {"": value} if isinstance(value, str) else value
        if (
            not isinstance(names, dict)
            or not names
            or not all(isinstance(n, str) and n.strip() and is_one_line(n) for n in names.values())
        ):
            raise ConfigError(
                f"{where}: {key} must be a name, or a table of names by language "
                f'(e.g. {key} = {{ en = "AI", zh-CN = "人工智能" }})'
            )
        pairs = []
        for tag, name in names.items():
            try:
                pairs.append((languages.canonical(tag) if tag else "", name.strip()[:80]))
            except ValueError as e:
                raise ConfigError(f"{where}: {key}: {e}") from None
        found.append(Topic(key, tuple(pairs)))
    if len(found) > 100:
        raise ConfigError(f"{where}: at most 100 topics")
    return tuple(found)


def _validate(s: Settings) -> None:
    if s.provider not in ("outbox", "smtp", "sendgrid"):
        raise ConfigError(
            f"provider must be outbox, smtp or sendgrid, got {s.provider!r}: "
            f"fix {env_name('provider')} or provider in {CONFIG_FILE}"
        )
    if s.smtp_security not in ("starttls", "ssl", "none"):
        raise ConfigError(f"smtp_security must be starttls, ssl or none, got {s.smtp_security!r}")
    if s.batch_size > 1000 and s.provider == "sendgrid":
        raise ConfigError(
            "batch_size can be at most 1000 with SendGrid (its personalization limit)"
        )


def local_base_url(base_url: str) -> bool:
    """http:// on this machine: fine for the outbox and test copies, never for a real list."""
    parts = urlsplit(base_url)
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")


def check_base_url(s: Settings, test: bool = False) -> str | None:
    """Refuse a base_url the mail cannot use; return a warning for a local one, else None.

    RFC 8058 one-click needs https (and Gmail's unsubscribe button with it); a local
    http:// URL is allowed for test copies and the outbox.
    """
    if s.base_url.startswith("https://"):
        return None
    if local_base_url(s.base_url) and (test or s.provider == "outbox"):
        return (
            f"base_url {s.base_url} only works on this machine; set an https:// base_url "
            "before sending through smtp or sendgrid"
        )
    raise ConfigError(
        f"base_url {s.base_url!r} is not https://: unsubscribe links (RFC 8058) need it; "
        f'set base_url = "https://news.example.com" (the public URL of mailer serve)'
    )

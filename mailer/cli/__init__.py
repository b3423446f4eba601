"""The command line: parse, call the core, print. Nothing below this package imports click.

Heavy modules (SQLAlchemy, premailer, MJML) are imported inside commands so that
`mailer --help` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailer import __version__
from mailer.errors import MailerError

EXIT_ERROR = 1
EXIT_PARTIAL = 3


class MailerGroup(click.Group):
    """Turns every MailerError into one line on stderr and exit 1, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MailerError as e:
            from mailer.text import safe

            # An error may quote a file's bytes or a setting: shown, never interpreted.
            raise click.ClickException(safe(str(e))) from None
        except Exception as e:
            if type(e).__module__.startswith("sqlalchemy"):
                # A database that failed mid-command (server gone, disk full): one line,
                # without SQL or its parameters; each write was one transaction.
                orig = getattr(e, "orig", None) or e
                reason = str(orig).strip().splitlines()[0][:300] if str(orig).strip() else ""
                raise click.ClickException(
                    f"the database failed: {type(orig).__name__}: {reason}; nothing was "
                    "half-written, run the command again when the database is back"
                ) from None
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they were added, not sorted


class Obj:
    """What every command gets: the project directory and the command-line settings."""

    def __init__(self, project: Path, overrides: dict[str, Any]) -> None:
        self.project = project
        self.overrides = overrides

    def settings(self, **more: Any) -> Any:
        from mailer.config import load_settings
        from mailer.errors import ConfigError

        if not self.project.is_dir():  # else "cannot open the database" would be the news
            raise ConfigError(
                f"project folder {self.project} does not exist; pass --project DIR "
                f"(the folder with mailer.toml) or create one with 'mailer init {self.project}'"
            )
        return load_settings(self.project, {**self.overrides, **more})


pass_obj: Callable[..., Any] = click.make_pass_decorator(Obj)


def interactive() -> bool:
    return sys.stdin.isatty()


def confirm_or_refuse(question: str, yes: bool, what: str) -> None:
    """Every destructive command: ask on a terminal, refuse without one unless --yes."""
    if yes:
        return
    if not interactive():
        raise click.ClickException(f"refusing to {what} without confirmation: pass --yes")
    click.confirm(question, abort=True)


def _parse_set(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx, param)
        out[key.strip()] = value
    return out


@click.group(cls=MailerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailer")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The newsletter project directory (where mailer.toml lives).",
)
@click.option("--database-url", help="SQLAlchemy URL; overrides MAILER_DATABASE_URL.")
@click.option(
    "--provider",
    type=click.Choice(["outbox", "smtp", "sendgrid"]),
    help="Where mail goes; overrides MAILER_PROVIDER.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    callback=_parse_set,
    metavar="KEY=VALUE",
    help="Override any setting, e.g. --set batch_size=500.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    project: Path,
    database_url: str | None,
    provider: str | None,
    settings: dict[str, str],
) -> None:
    """Markdown newsletters, compiled to email and sent exactly once to every subscriber.

    \b
    Example:
      mailer init my-letter && cd my-letter
      mailer build issues/2026-11-20-weekly.md
      mailer subscribers import subscribers.csv.example
      mailer send issues/2026-11-20-weekly.md --yes
    """
    overrides: dict[str, Any] = dict(settings)
    if database_url:
        overrides["database_url"] = database_url
    if provider:
        overrides["provider"] = provider
    ctx.obj = Obj(project, overrides)


def main() -> None:
    from mailer.cli import content, desk, feedback, send, subscribers, web  # noqa: F401  (registers)

    cli(prog_name="mailer")


def register() -> None:
    """Import the command modules; tests call this before using `cli` directly."""
    from mailer.cli import content, desk, feedback, send, subscribers, web  # noqa: F401

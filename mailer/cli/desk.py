"""mailer draft, mailer stats: the writer's desk."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from mailer.cli import Obj, cli, pass_obj
from mailer.text import safe


@cli.command()
@click.option(
    "--since",
    metavar="DATE",
    help="Items published since DATE (YYYY-MM-DD); default: when the last issue was sent.",
)
@click.option("--dry-run", is_flag=True, help="Print the draft; write nothing.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (default: issues/YYYY-MM-DD-draft.md); never overwritten.",
)
@pass_obj
def draft(obj: Obj, since: str | None, dry_run: bool, output: Path | None) -> None:
    """Draft a new issue from the feeds under [[sources]] in mailer.toml.

    Per feed, the items published since the last issue (title, link without tracking
    parameters, the summary's first sentences), leaving out links already sent. Feeds are
    fetched with a conditional GET; a dead or malformed one is a warning.

    \b
    Example:
      mailer draft --since 2026-11-27 --dry-run
    """
    from mailer.desk.draft import draft as core_draft
    from mailer.errors import InputError

    start = None
    if since is not None:
        try:
            start = dt.datetime.combine(dt.date.fromisoformat(since), dt.time(), dt.UTC)
        except ValueError:
            raise InputError(
                f"--since {since[:20]!r} is not a date; write e.g. 2026-11-27"
            ) from None
    result = core_draft(obj.settings(), dt.datetime.now(dt.UTC), start, output, dry_run)
    for warning in result.warnings:
        click.echo(f"warning: {safe(warning)}", err=True)
    if dry_run:
        click.echo(result.markdown, nl=False)
        return
    click.echo(
        f"drafted {result.path}: {result.items} items from {result.feeds} feed(s)"
        + (f" since {result.since:%Y-%m-%d}" if result.since else "")
    )
    click.echo(f"Next: edit it, then mailer preview {result.path}")


@cli.command()
@click.option("--weeks", default=12, show_default=True, type=click.IntRange(1, 260))
@click.option("--issues", "issues", default=12, show_default=True, type=click.IntRange(1, 500))
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one self-contained page with the charts to FILE.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@pass_obj
def stats(obj: Obj, weeks: int, issues: int, html_file: Path | None, as_json: bool) -> None:
    """The list's growth week by week, and each issue's funnel.

    \b
    Example:
      mailer stats
      mailer stats --html stats.html
    """
    from mailer import files
    from mailer.desk.stats import bar, gather, html_page, percent, sparkline
    from mailer.errors import InputError

    settings = obj.settings()
    numbers = gather(settings, dt.datetime.now(dt.UTC).date(), weeks, issues)
    if as_json:
        click.echo(json.dumps(numbers.as_json(), ensure_ascii=False, indent=2))
        return
    if html_file is not None:
        try:
            with files.atomic(html_file, "w", encoding="utf-8") as page:
                page.write(html_page(settings, numbers))
        except OSError as e:
            raise InputError(f"cannot write {html_file}: {e.strerror or e}") from None
        click.echo(f"wrote {html_file}")
        return
    w = numbers.weeks
    click.echo(f"{numbers.active} active subscribers; the last {len(w)} weeks, oldest first:")
    for label, values in (
        ("new", [x.subscribed for x in w]),
        ("confirmed", [x.confirmed for x in w]),
        ("unsubscribed", [x.unsubscribed for x in w]),
        ("bounced", [x.bounced for x in w]),
        ("complained", [x.complained for x in w]),
        ("net", [x.net for x in w]),
    ):
        click.echo(
            f"  {label:<13} {sparkline(values)}  {sum(values):+d}"
            if label == "net"
            else f"  {label:<13} {sparkline(values)}  {sum(values)}"
        )
    if not numbers.issues:
        click.echo("no issue sent yet")
        return
    click.echo("issues (opened, of sent):")
    widest = max(len(f.slug) for f in numbers.issues)
    for f in numbers.issues:
        flag = " !" if f.rate(f.complained) > 0.001 or f.rate(f.bounced) > 0.02 else ""
        click.echo(
            f"  {f.slug:<{widest}}  sent {f.sent:>7}  opened {f.opened:>6}  clicked "
            f"{f.clicked:>6}  unsub {f.unsubscribed:>4}  complaints {percent(f.rate(f.complained))}"
            f"  {bar(f.opened, f.sent)}{flag}"
        )
    if not any(f.delivered or f.opened for f in numbers.issues):
        click.echo(
            "  (delivered and opened come from provider events: SendGrid's webhook; "
            "the outbox and plain SMTP leave them 0)",
            err=True,
        )

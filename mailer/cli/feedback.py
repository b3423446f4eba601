"""mailer report, mailer suppressions sync, mailer bounces fetch, mailer dkim keygen."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click

from mailer.cli import Obj, cli, pass_obj
from mailer.text import safe


@cli.command()
@click.argument("issue")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_obj
def report(obj: Obj, issue: str, as_json: bool) -> None:
    """What happened to a sent issue: delivered, bounced, opened, clicked, top links.

    \b
    Example:
      mailer report issues/2026-11-20-weekly.md
    """
    from mailer.feedback.report import BY, SHOWN
    from mailer.feedback.report import report as core_report

    r = core_report(obj.settings(), issue)
    if as_json:
        click.echo(json.dumps(r.as_json(), ensure_ascii=False, indent=2))
        return
    click.echo(f"{r.slug}: {safe(r.subject)}")
    click.echo(f"  {'recipients':<13} {r.recipients}")
    click.echo(f"  {'sent':<13} {r.sent}")
    for kind in SHOWN:
        click.echo(f"  {kind.value:<13} {r.count(kind)}")
    for link in r.top_links:
        click.echo(f"  {link.clicks:>6}  {safe(link.url)}")
    if not any(r.count(k) for k in SHOWN):
        click.echo(
            "  (these come from provider events: SendGrid's webhook, the bounce mailbox; "
            "with the outbox or plain SMTP only the counted links and unsubscribes fill)",
            err=True,
        )
    for title, split in (("edition", r.by_edition), ("topic", r.by_topic)):
        if len(split) < (2 if title == "edition" else 1):
            continue  # one edition is the totals again; no topics, nothing to split
        click.echo(f"  by {title}: " + "  ".join(f"{k:>9}" for k in BY))
        for group, counts in split.items():
            cells = "  ".join(f"{counts.get(k, 0):>9}" for k in BY)
            click.echo(f"  {safe(group)[:12]:<12} {cells}")


@cli.group()
def suppressions() -> None:
    """SendGrid's suppression lists.

    \b
    Example:
      mailer suppressions sync --dry-run
    """


@suppressions.command()
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@pass_obj
def sync(obj: Obj, dry_run: bool) -> None:
    """Apply SendGrid's unsubscribes, bounces, spam reports and invalid emails locally.

    \b
    Example:
      mailer suppressions sync
    """
    from mailer.feedback.sync import sync as core_sync

    results = core_sync(obj.settings(), dry_run)
    verb = "would change" if dry_run else "changed"
    for name, r in results.items():
        click.echo(
            f"{name}: {r.fetched} at SendGrid, {verb} {len(r.changed)}, already suppressed "
            f"{r.already}, not on the list {r.unknown}"
        )
        for email in r.changed[:50]:
            click.echo(f"  {safe(email)}")


@cli.group()
def bounces() -> None:
    """The bounce mailbox of SMTP sending: delivery reports and complaints.

    \b
    Example:
      mailer bounces fetch --dry-run
    """


@bounces.command()
@click.option("--dry-run", is_flag=True, help="Show what would change; change and move nothing.")
@pass_obj
def fetch(obj: Obj, dry_run: bool) -> None:
    """Read bounce_imap_url and apply the reports that prove whom they concern: hard
    bounces and complaints suppress the address, soft bounces count (soft_bounce_limit
    issues in a row suppress it). Handled reports move to bounce_processed_folder; reports
    that prove nothing (naming only an address, or forged) to bounce_unmatched_folder, each
    listed with why; other mail stays, listed once.

    \b
    Example:
      MAILER_BOUNCE_IMAP_PASSWORD=... mailer bounces fetch
    """
    from mailer.feedback.apply import Outcome
    from mailer.feedback.mailbox import fetch as core_fetch

    settings = obj.settings()
    r = core_fetch(settings, dry_run)
    if r.busy:
        click.echo(f"another fetch of this mailbox is running ({safe(r.busy)}); nothing done")
        return
    o = r.outcomes
    changed = Counter(status.value for _, status in r.changes)
    verb = "would be" if dry_run else "were"
    click.echo(
        f"{r.messages} new message(s): {changed['bounced']} {verb} marked bounced, "
        f"{changed['complained']} complained, {o[Outcome.SOFT]} soft bounce(s) counted, "
        f"{changed['unsubscribed']} unsubscribed by mail, "
        f"{o[Outcome.DUPLICATE] + o[Outcome.UNCHANGED]} already applied, "
        f"{o[Outcome.UNKNOWN]} for no one on the list, {o[Outcome.UNPROVEN]} unproven"
    )
    for address, status in r.changes[:50]:
        click.echo(f"  {safe(address)}: {status.value}")
    if not dry_run:
        click.echo(f"moved {r.moved} to {settings.bounce_processed_folder}")
    where = "would move" if dry_run else "moved"
    for uid, address, why in r.unmatched:
        click.echo(
            f"  unproven, {where} to {settings.bounce_unmatched_folder}: message {uid}"
            f"{': ' + safe(address) if address else ''}: {why}"
        )
    for uid, why in r.left:
        click.echo(f"  left in the mailbox: message {uid}: {safe(why)}")
    if r.known:
        click.echo(
            f"{r.known} message(s) listed by an earlier fetch stay in the mailbox, not read again"
        )


@cli.group()
def dkim() -> None:
    """DKIM signing of SMTP and outbox mail.

    \b
    Example:
      mailer dkim keygen --domain example.com --selector mailer
    """


@dkim.command()
@click.option("--domain", required=True, help="The domain of from_email (dkim_domain).")
@click.option("--selector", default="mailer", show_default=True, help="dkim_selector.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("dkim-private.pem"),
    show_default=True,
    help="Where to write the private key (never over an existing file).",
)
@click.option("--bits", type=click.IntRange(1024, 4096), default=2048, show_default=True)
def keygen(domain: str, selector: str, output: Path, bits: int) -> None:
    """Make a DKIM key pair: write the private key, print the DNS TXT record to publish.

    \b
    Example:
      mailer dkim keygen --domain example.com --selector mailer -o dkim.pem
    """
    from mailer.compose.dkim import keygen as core_keygen
    from mailer.errors import InputError

    try:
        record = core_keygen(output, selector, domain, bits)
    except FileExistsError:
        raise InputError(f"{output} exists already; pick another -o FILE") from None
    except OSError as e:
        raise InputError(f"cannot write {output}: {e.strerror}") from None
    click.echo(f"wrote the private key to {output} (keep it secret); publish this record:")
    click.echo(record)
    click.echo(
        f'then set dkim_domain = "{domain}", dkim_selector = "{selector}", '
        f'dkim_private_key = "{output}"'
    )

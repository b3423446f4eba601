"""mailer send, mailer status."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from mailer.cli import EXIT_ERROR, EXIT_PARTIAL, Obj, cli, confirm_or_refuse, pass_obj
from mailer.text import safe


@cli.command()
@click.argument("issue", required=False)
@click.option("--yes", is_flag=True, help="Send without asking for confirmation.")
@click.option("--dry-run", is_flag=True, help="Do everything but send; record nothing.")
@click.option(
    "--test",
    "tests",
    multiple=True,
    metavar="EMAIL",
    help="Send a [TEST] copy to EMAIL only (repeatable).",
)
@click.option(
    "--retry-ambiguous", is_flag=True, help="Resend recipients whose delivery is unknown."
)
@click.option("--retry-failed", is_flag=True, help="Resend recipients whose delivery failed.")
@click.option(
    "--update-content",
    is_flag=True,
    help="Send the rest of the list the file as it is now, not the version pinned at the first send.",
)
@click.option(
    "--at",
    "at",
    metavar="WHEN",
    help="Schedule ISSUE instead of sending it: writes send_at (ISO 8601) into its front matter.",
)
@click.option(
    "--due",
    is_flag=True,
    help="Send every scheduled issue whose send_at has passed (for cron); quiet when none is.",
)
@click.option("--latest", is_flag=True, help="Send the newest issue that was never sent.")
@pass_obj
def send(
    obj: Obj,
    issue: str | None,
    yes: bool,
    dry_run: bool,
    tests: tuple[str, ...],
    retry_ambiguous: bool,
    retry_failed: bool,
    update_content: bool,
    at: str | None,
    due: bool,
    latest: bool,
) -> None:
    """Send an issue to every active subscriber, resuming where a previous run stopped.

    ISSUE is the issue's file, or the slug of an issue sent before: the first send pins
    the issue in the database, and every resume sends that pinned version, even from
    another machine without the file. Nobody gets the same issue twice.

    With --at, ISSUE is scheduled instead; `mailer send --due`, run every few minutes by
    cron or a systemd timer, sends it when its time comes. An issue more than
    max_lateness overdue is reported, not sent: a human decides.

    \b
    Example:
      mailer send issues/2026-11-20-weekly.md --test me@example.com
      mailer send issues/2026-11-20-weekly.md --yes
      mailer send 2026-11-20-weekly --yes
      mailer send issues/2026-11-27-weekly.md --at 2026-11-27T09:00:00+08:00
      mailer send --due
      mailer send --latest --yes
    """
    from mailer.delivery import send as core
    from mailer.models import RecipientState

    settings = obj.settings()
    chosen = [name for name, on in (("--due", due), ("--latest", latest), ("ISSUE", issue)) if on]
    if len(chosen) != 1:
        raise click.UsageError(
            "name one ISSUE, or pass --due or --latest"
            if not chosen
            else f"use {' or '.join(chosen)}, not both"
        )
    if due:
        _send_due(settings, dry_run)
        return
    if latest:
        issue = _latest(settings)
    assert issue is not None
    if at is not None:
        _schedule_one(settings, issue, at)
        return
    if tests:
        result, warnings = core.send_test(settings, Path(issue), list(tests))
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"sent {len(result.sent)} test message(s) via {settings.provider}")
        for address, reason in result.failed.items():
            click.echo(f"not sent to {address}: {safe(reason)}", err=True)
        sys.exit(EXIT_PARTIAL if result.failed else 0)
    if retry_ambiguous and retry_failed:
        raise click.UsageError("use --retry-ambiguous or --retry-failed, one at a time")
    retry = (
        RecipientState.AMBIGUOUS
        if retry_ambiguous
        else RecipientState.FAILED
        if retry_failed
        else None
    )
    plan = core.plan(settings, issue, retry, update_content)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if plan.finished:
        _finished(plan.counts, plan.slug)
        return
    _say_version(plan)
    verb = "resume" if plan.pinned is not None else "send"
    click.echo(f"{verb} {plan.slug!r}: {safe(plan.subject)}")
    click.echo(f"  {plan.recipients} recipients via {settings.provider}")
    if dry_run:
        click.echo("dry run: nothing sent, nothing recorded")
        return
    confirm_or_refuse("Send now?", yes, "send")
    result = _run_with_progress(core, plan)
    click.echo(
        f"sent {result.sent}, failed {result.failed}, ambiguous {result.ambiguous} "
        f"in {result.elapsed:.1f}s"
    )
    counts = core.status(settings, plan.slug)
    if result.stopped:
        click.echo(f"Error: stopped: {result.stopped}", err=True)
    if counts["ambiguous"] or counts["failed"]:
        click.echo(
            f"{counts['failed']} failed, {counts['ambiguous']} ambiguous: see 'mailer status {issue}'",
            err=True,
        )
        sys.exit(EXIT_PARTIAL)
    if result.stopped:
        sys.exit(EXIT_ERROR)
    click.echo(f"done: {counts['sent']} of {counts['recipients']} recipients sent")


def _schedule_one(settings: Any, issue: str, at: str) -> None:
    from mailer.delivery import schedule

    when = schedule.schedule(settings, Path(issue), at, schedule.utcnow())
    click.echo(f"scheduled {issue} for {when.isoformat()}; 'mailer send --due' sends it then")


def _latest(settings: Any) -> str:
    from mailer.delivery import schedule

    entry = schedule.latest_unsent(schedule.scan(settings, schedule.utcnow()))
    if entry is None or entry.path is None:
        raise click.ClickException(
            f"no unsent issue in {settings.issues_dir}/; write one, or name it: mailer send FILE"
        )
    click.echo(f"latest unsent issue: {entry.name}")
    return str(entry.path)


def _send_due(settings: Any, dry_run: bool) -> None:
    """Everything due, oldest first. Quiet when nothing is; each problem is one line and
    the exit code says there was one (cron mails the owner), the other issues still go."""
    from mailer.delivery import schedule
    from mailer.delivery import send as core
    from mailer.errors import MailerError

    now = schedule.utcnow()
    entries = schedule.scan(settings, now)
    code = 0
    for e in entries:
        if e.state is schedule.State.BROKEN and e.error:
            click.echo(f"error: {safe(e.error)}", err=True)
            code = max(code, EXIT_ERROR)
        elif e.state is schedule.State.LATE:
            hours = schedule.lateness(e, now).total_seconds() / 3600
            click.echo(
                f"late: {e.name} was due at {e.send_at.isoformat() if e.send_at else '?'} "
                f"({hours:.0f} h ago, more than max_lateness {settings.max_lateness / 3600:g} h): "
                f"not sent; send it with 'mailer send {e.name} --yes' or remove its send_at",
                err=True,
            )
            code = max(code, EXIT_PARTIAL)
    for e in schedule.due(entries):
        try:
            plan = core.plan(settings, str(e.path))
            if plan.finished:
                continue  # another run finished it meanwhile
            for warning in plan.warnings:
                click.echo(f"warning: {e.name}: {warning}", err=True)
            click.echo(f"due: {e.name}: {plan.recipients} recipients via {settings.provider}")
            if dry_run:
                continue
            result = core.run(plan)
        except MailerError as err:
            click.echo(f"error: {e.name}: {safe(str(err))}", err=True)
            code = max(code, EXIT_ERROR)
            continue
        click.echo(
            f"  sent {result.sent}, failed {result.failed}, ambiguous {result.ambiguous} "
            f"in {result.elapsed:.1f}s"
        )
        if result.stopped or result.failed or result.ambiguous:
            if result.stopped:
                click.echo(f"error: {e.name}: stopped: {result.stopped}", err=True)
            code = max(code, EXIT_PARTIAL if not result.stopped else EXIT_ERROR)
    if code:
        sys.exit(code)


def _run_with_progress(core: Any, plan: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.0f}/s failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("send", total=plan.recipients, rate=0.0, failed=0)
        failed = 0

        def on_progress(outcome: Any) -> None:
            nonlocal failed
            failed += len(outcome.failed) + len(outcome.ambiguous)
            progress.advance(task, len(outcome.sent) + len(outcome.failed) + len(outcome.ambiguous))
            t = progress.tasks[0]
            progress.update(
                task, rate=(t.completed / t.elapsed) if t.elapsed else 0.0, failed=failed
            )

        return core.run(plan, on_progress)


def _say_version(plan: Any) -> None:
    """One line when the file no longer matches what the ledger pinned."""
    if not plan.changed:
        return
    pinned = plan.pinned
    if plan.update_content:
        click.echo(
            f"note: the rest of the list gets the file as it is now (version "
            f"{pinned.version + 1}); 'mailer status' shows who got which version",
            err=True,
        )
    else:
        click.echo(
            f"warning: {plan.snapshot.source} changed since version {pinned.version} was "
            f"pinned; sending the pinned version (pass --update-content to send the new text)",
            err=True,
        )


def _finished(counts: dict[str, int], slug: str) -> None:
    click.echo(f"{slug!r} was already sent: {counts['sent']} sent, nothing left to send")
    if counts["ambiguous"] or counts["failed"]:
        click.echo(
            f"{counts['failed']} failed, {counts['ambiguous']} ambiguous: "
            "see 'mailer status', then --retry-failed or --retry-ambiguous",
            err=True,
        )
        sys.exit(EXIT_PARTIAL)


@cli.command("schedule")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_obj
def schedule_command(obj: Obj, as_json: bool) -> None:
    """List the issues: draft, scheduled, due, late, sending or sent, with their times.

    \b
    Example:
      mailer schedule
    """
    from mailer.delivery import schedule

    entries = schedule.scan(obj.settings(), schedule.utcnow())
    order = {s: i for i, s in enumerate(schedule.State)}
    entries.sort(key=lambda e: (e.send_at or e.first_sent or _FAR, order[e.state], e.name))
    if as_json:
        rows = [
            {
                "file": e.name,
                "slug": e.slug,
                "subject": e.subject,
                "state": e.state.value,
                "send_at": e.send_at.isoformat() if e.send_at else None,
                "first_sent": e.first_sent.isoformat() if e.first_sent else None,
                "sent": e.sent,
                "pending": e.pending,
                "error": e.error or None,
            }
            for e in entries
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not entries:
        click.echo("no issues yet")
        return
    for e in entries:
        when = e.send_at.isoformat(timespec="minutes") if e.send_at else "-"
        detail = safe(e.subject) if not e.error else safe(e.error)
        if e.state in (schedule.State.SENT, schedule.State.SENDING):
            first = e.first_sent.isoformat(timespec="minutes") if e.first_sent else "?"
            detail += f" (sent {e.sent}, pending {e.pending}, first sent {first})"
        click.echo(f"{e.state.value:<10} {when:<26} {safe(e.name)}  {detail}")


_FAR = dt.datetime.max.replace(tzinfo=dt.UTC)  # unscheduled drafts sort last


@cli.command()
@click.argument("issue")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_obj
def status(obj: Obj, issue: str, as_json: bool) -> None:
    """Delivery ledger counts for an issue (its file or its slug).

    \b
    Example:
      mailer status issues/2026-11-20-weekly.md --json
    """
    from mailer.delivery import send as core

    report = core.status(obj.settings(), issue)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
        return
    click.echo(f"{report['slug']}: {safe(report['subject'])}")
    for key in ("recipients", "sent", "pending", "failed", "ambiguous", "skipped"):
        click.echo(f"  {key:<10} {report[key]}")
    if len(report["versions"]) > 1:
        for v in report["versions"]:
            click.echo(f"  version {v['version']} ({v['content_hash']}): sent to {v['sent']}")
    for label, key in (("ambiguous", "ambiguous_recipients"), ("failed", "failed_recipients")):
        for r in report[key]:
            click.echo(f"  {label}: batch {r['batch_seq']} {r['email']}: {safe(r['error'] or '')}")
    if report["ambiguous"]:
        click.echo("  resend ambiguous ones on purpose with: mailer send ISSUE --retry-ambiguous")


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
    from mailer.delivery.report import report as core_report

    r = core_report(obj.settings(), issue)
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=False, indent=2))
        return
    click.echo(f"{r['slug']}: {safe(r['subject'])}")
    for key in (
        "recipients",
        "sent",
        "delivered",
        "bounced",
        "complained",
        "unsubscribed",
        "opened",
        "clicked",
    ):
        click.echo(f"  {key:<13} {r[key]}")
    for link in r["top_links"]:
        click.echo(f"  {link['clicks']:>6}  {safe(link['url'])}")


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
    from mailer.delivery.dkim import keygen as core_keygen
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

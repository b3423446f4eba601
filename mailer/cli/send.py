"""mailer send, mailer schedule, mailer status: parse, call the core, print."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from mailer.cli import (
    EXIT_ERROR,
    EXIT_PARTIAL,
    Obj,
    cli,
    confirm_or_refuse,
    interactive,
    pass_obj,
)
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
@click.option(
    "--accept-risk",
    is_flag=True,
    help="Send even though the last issues' complaints are over Gmail's 0.3% line.",
)
@click.option(
    "--to",
    "to",
    metavar="EXPR",
    help="Send to the audience EXPR picks, e.g. 'topic:ai and not lang:en' (over the "
    "issue's own audience:); pinned at the first send.",
)
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
    accept_risk: bool,
    to: str | None,
) -> None:
    """Send an issue to every active subscriber (or its audience), resuming where a
    previous run stopped.

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
      mailer send issues/2026-11-20-weekly.md --to 'topic:ai and not lang:en' --dry-run
      mailer send 2026-11-20-weekly --yes
      mailer send issues/2026-11-27-weekly.md --at 2026-11-27T09:00:00+08:00
      mailer send --due
      mailer send --latest --yes
    """
    chosen = [name for name, on in (("--due", due), ("--latest", latest), ("ISSUE", issue)) if on]
    if len(chosen) != 1:
        raise click.UsageError(
            f"use {' or '.join(chosen)}, not both"
            if chosen
            else "name one ISSUE, or pass --due or --latest"
        )
    if retry_ambiguous and retry_failed:
        raise click.UsageError("use --retry-ambiguous or --retry-failed, one at a time")
    if to is not None and (due or tests or at is not None):
        raise click.UsageError("--to goes with sending one issue, not with --due, --test or --at")
    settings = obj.settings()
    if due:
        _send_due(settings, dry_run, accept_risk)
    elif at is not None:
        _schedule_one(settings, _issue(settings, issue, latest), at)
    elif tests:
        _send_tests(settings, _issue(settings, issue, latest), tests)
    else:
        retry = "ambiguous" if retry_ambiguous else "failed" if retry_failed else None
        _send_one(
            settings,
            _issue(settings, issue, latest),
            retry,
            update_content,
            dry_run,
            yes,
            to,
            accept_risk,
        )


def _issue(settings: Any, issue: str | None, latest: bool) -> str:
    if not latest:
        assert issue is not None
        return issue
    from mailer.schedule import cadence

    entry = cadence.latest_unsent(cadence.scan(settings, cadence.utcnow()))
    if entry is None or entry.path is None:
        raise click.ClickException(
            f"no unsent issue in {settings.issues_dir}/; write one, or name it: mailer send FILE"
        )
    click.echo(f"latest unsent issue: {entry.name}")
    return str(entry.path)


def _send_one(
    settings: Any,
    issue: str,
    retry: str | None,
    update_content: bool,
    dry_run: bool,
    yes: bool,
    to: str | None = None,
    accept_risk: bool = False,
) -> None:
    from mailer.desk.guard import Level, risks
    from mailer.models import RecipientState
    from mailer.sending import send as core
    from mailer.store import open_store

    plan = core.plan(settings, issue, RecipientState(retry) if retry else None, update_content, to)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if plan.finished:
        _finished(plan)
        return
    _say_version(plan)
    verb = "resume" if plan.pinned is not None else "send"
    click.echo(f"{verb} {plan.slug!r}: {safe(plan.subject)}")
    click.echo(f"  {plan.recipients} recipients via {settings.provider}")
    _say_audience(plan)
    with open_store(settings) as store:
        found = risks(settings, store, plan.reach)
    for risk in found:
        click.echo(f"warning: {safe(risk.text)}", err=True)
    if dry_run:
        click.echo("dry run: nothing sent, nothing recorded")
        return
    if any(r.level is Level.HARD for r in found) and not accept_risk:
        if yes or not interactive():
            click.echo(
                "Error: not sent: the last issues' complaints are over the 0.3% line; "
                "pass --accept-risk to send anyway",
                err=True,
            )
            sys.exit(EXIT_PARTIAL)
        click.confirm("Complaints are over the 0.3% line. Send anyway?", abort=True)
    confirm_or_refuse("Send now?", yes, "send")
    result = _run_with_progress(core, plan)
    _summary(settings, plan.slug, issue, result)


def _summary(settings: Any, slug: str, issue: str, result: Any) -> None:
    """This run's numbers, then the issue's as the ledger has them: one account."""
    from mailer.sending.status import status

    counts = status(settings, slug, listed=0).counts
    click.echo(f"this run: sent {result.sent} in {result.elapsed:.1f}s")
    if result.stopped:
        click.echo(f"Error: stopped: {result.stopped}", err=True)
    if counts.ambiguous or counts.failed:
        click.echo(
            f"{slug!r}: {counts.sent} of {counts.recipients} sent, {counts.failed} failed, "
            f"{counts.ambiguous} ambiguous: see 'mailer status {issue}'",
            err=True,
        )
        sys.exit(EXIT_PARTIAL)
    if result.stopped:
        sys.exit(EXIT_ERROR)
    click.echo(f"done: {counts.sent} of {counts.recipients} recipients sent")


def _send_tests(settings: Any, issue: str, tests: tuple[str, ...]) -> None:
    from mailer.sending import send as core

    result, warnings = core.send_test(settings, Path(issue), list(tests))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"sent {len(result.sent)} test message(s) via {settings.provider}")
    for address, reason in result.failed.items():
        click.echo(f"not sent to {address}: {safe(reason)}", err=True)
    sys.exit(EXIT_PARTIAL if result.failed else 0)


def _schedule_one(settings: Any, issue: str, at: str) -> None:
    from mailer.schedule import cadence

    when = cadence.schedule(settings, Path(issue), at, cadence.utcnow())
    click.echo(f"scheduled {issue} for {when.isoformat()}; 'mailer send --due' sends it then")


def _send_due(settings: Any, dry_run: bool, accept_risk: bool = False) -> None:
    from mailer.schedule import cadence
    from mailer.schedule.due import Severity, send_due

    worst = Severity.OK
    for notice in send_due(settings, cadence.utcnow(), dry_run, accept_risk):
        click.echo(safe(notice.text), err=notice.problem)
        worst = max(worst, notice.severity)
    if worst is not Severity.OK:
        sys.exit({Severity.NEEDS_A_HUMAN: EXIT_PARTIAL, Severity.ERROR: EXIT_ERROR}[worst])


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


def _say_audience(plan: Any) -> None:
    """Who the audience holds and why: the expression, the paused, the editions."""
    pinned = " (pinned at the first send)" if plan.pinned is not None else ""
    who = "everyone active" if plan.audience.everyone else safe(str(plan.audience))
    reach = plan.reach
    paused = f"; {reach.paused} paused reader(s) wait" if reach and reach.paused else ""
    click.echo(f"  audience: {who}{pinned}{paused}")
    if reach and len(reach.by_edition) > 1:
        main = plan.snapshot.language
        parts = [f"{tag or main} {n}" for tag, n in reach.by_edition.items()]
        click.echo(f"  editions: {', '.join(parts)}")


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


def _finished(plan: Any) -> None:
    counts = plan.counts
    click.echo(f"{plan.slug!r} was already sent: {counts.sent} sent, nothing left to send")
    if counts.ambiguous or counts.failed:
        click.echo(
            f"{counts.failed} failed, {counts.ambiguous} ambiguous: "
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
    from mailer.content.issue_files import welcome_missing
    from mailer.schedule import cadence

    settings = obj.settings()
    entries = cadence.scan(settings, cadence.utcnow())
    order = {s: i for i, s in enumerate(cadence.State)}
    entries.sort(key=lambda e: (e.send_at or e.first_sent or _FAR, order[e.state], e.name))
    if as_json:
        click.echo(json.dumps([e.as_json() for e in entries], ensure_ascii=False, indent=2))
        return
    if missing := welcome_missing(settings):
        click.echo(safe(missing), err=True)
    if not entries:
        click.echo("no issues yet")
        return
    for e in entries:
        when = e.send_at.isoformat(timespec="minutes") if e.send_at else "-"
        detail = safe(e.subject) if not e.error else safe(e.error)
        if e.state in (cadence.State.SENT, cadence.State.SENDING):
            first = e.first_sent.isoformat(timespec="minutes") if e.first_sent else "?"
            detail += f" (sent {e.sent}, pending {e.pending}, first sent {first})"
        click.echo(f"{e.state.value:<10} {when:<26} {safe(e.name)}  {detail}")


_FAR = dt.datetime.max.replace(tzinfo=dt.UTC)  # unscheduled drafts sort last


@cli.command()
@click.argument("issue")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.option("--all", "show_all", is_flag=True, help="List every ambiguous and failed recipient.")
@pass_obj
def status(obj: Obj, issue: str, as_json: bool, show_all: bool) -> None:
    """Delivery ledger counts for an issue (its file or its slug).

    \b
    Example:
      mailer status issues/2026-11-20-weekly.md --json
    """
    from mailer.sending.status import status as core_status

    shown = None if show_all or as_json else LISTED
    report = core_status(obj.settings(), issue, listed=None if shown is None else shown + 1)
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2, default=str))
        return
    click.echo(f"{report.slug}: {safe(report.subject)}")
    click.echo(f"  audience: {safe(report.audience or 'everyone active')}")
    if len(report.editions) > 1:
        parts = [f"{tag} {n}" for tag, n in report.editions.items()]
        click.echo(f"  editions: {', '.join(parts)}")
    c = report.counts
    for label, n in (
        ("recipients", c.recipients),
        ("sent", c.sent),
        ("pending", c.pending),
        ("in flight", c.requesting),
        ("failed", c.failed),
        ("ambiguous", c.ambiguous),
        ("skipped", c.skipped),
    ):
        click.echo(f"  {label:<10} {n}")
    if c.skipped:
        why = ", ".join(f"{reason} {n}" for reason, n in sorted(report.skipped.items()))
        click.echo(f"  skipped because: {why}")
    if len(report.versions) > 1:
        for v in report.versions:
            click.echo(f"  version {v.version} ({v.content_hash}): sent to {v.sent}")
    for label, listed, total in (
        ("ambiguous", report.ambiguous, c.ambiguous),
        ("failed", report.failed, c.failed),
    ):
        for r in listed[:shown]:
            click.echo(f"  {label}: batch {r.batch_seq} {r.email}: {safe(r.error)}")
        if shown is not None and total > shown:
            click.echo(f"  ... and {total - shown} more {label}: mailer status {issue} --all")
    if c.ambiguous:
        click.echo("  resend ambiguous ones on purpose with: mailer send ISSUE --retry-ambiguous")


LISTED = 20  # recipients `mailer status` names in each state before "and N more"

"""`mailer send --due`: send every issue whose time has come, oldest first.

Quiet when nothing is due. Each problem is a notice with a severity (cron mails the owner
what the command prints, and the exit code says there was one); the other issues still go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from mailer.config import Settings
from mailer.desk.guard import Level, risks
from mailer.errors import MailerError
from mailer.schedule.cadence import Entry, State, due, lateness, scan
from mailer.sending import send
from mailer.store import open_store


class Severity(IntEnum):
    """How a run went; the worst notice decides."""

    OK = 0
    NEEDS_A_HUMAN = 1  # late, or recipients failed or ambiguous
    ERROR = 2  # an issue could not be sent at all


@dataclass(frozen=True)
class Notice:
    name: str  # the issue file
    text: str  # one line, for the owner
    severity: Severity = Severity.OK
    problem: bool = False  # printed on stderr


def send_due(
    settings: Settings, now: dt.datetime, dry_run: bool = False, accept_risk: bool = False
) -> Iterator[Notice]:
    """Send what is due at `now`, saying so as it goes. An issue is not sent while the last
    issues' complaints are over the 0.3% line, unless `accept_risk` (a human decided)."""
    entries = scan(settings, now)
    for e in entries:
        if e.state is State.BROKEN and e.error:
            yield Notice(e.name, f"error: {e.error}", Severity.ERROR, problem=True)
        elif e.state is State.LATE:
            yield _late(settings, e, now)
    for e in due(entries):
        yield from _send_one(settings, e, dry_run, accept_risk)


def _late(settings: Settings, e: Entry, now: dt.datetime) -> Notice:
    hours = lateness(e, now).total_seconds() / 3600
    when = e.send_at.isoformat() if e.send_at else "?"
    return Notice(
        e.name,
        f"late: {e.name} was due at {when} ({hours:.0f} h ago, more than max_lateness "
        f"{settings.max_lateness / 3600:g} h): not sent; send it with "
        f"'mailer send {e.name} --yes' or remove its send_at",
        Severity.NEEDS_A_HUMAN,
        problem=True,
    )


def _send_one(settings: Settings, e: Entry, dry_run: bool, accept_risk: bool) -> Iterator[Notice]:
    try:
        plan = send.plan(settings, str(e.path))
        if plan.finished:
            return  # another run finished it meanwhile
        for warning in plan.warnings:
            yield Notice(e.name, f"warning: {e.name}: {warning}", problem=True)
        with open_store(settings) as store:
            found = risks(settings, store, plan.reach)
        for risk in found:
            yield Notice(e.name, f"warning: {e.name}: {risk.text}", problem=True)
        if any(r.level is Level.HARD for r in found) and not accept_risk:
            yield Notice(
                e.name,
                f"refused: {e.name}: complaints are over the 0.3% line; not sent. Send it "
                "with 'mailer send --due --accept-risk' once you have decided to",
                Severity.NEEDS_A_HUMAN,
                problem=True,
            )
            return
        yield Notice(e.name, f"due: {e.name}: {plan.recipients} recipients via {settings.provider}")
        if dry_run:
            return
        result = send.run(plan)
    except MailerError as err:
        yield Notice(e.name, f"error: {e.name}: {err}", Severity.ERROR, problem=True)
        return
    unsure = result.failed or result.ambiguous
    yield Notice(
        e.name,
        f"  sent {result.sent}, failed {result.failed}, ambiguous {result.ambiguous} "
        f"in {result.elapsed:.1f}s",
        Severity.NEEDS_A_HUMAN if unsure else Severity.OK,
    )
    if result.stopped:
        yield Notice(e.name, f"error: {e.name}: stopped: {result.stopped}", Severity.ERROR, True)

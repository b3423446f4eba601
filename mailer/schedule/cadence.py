"""The weekly cadence: which issue is scheduled, due, late, sending or sent.

An issue is scheduled by `send_at` in its front matter (`mailer send FILE --at WHEN`
writes it). `mailer send --due`, run by cron or a systemd timer, sends what is due: the
ledger makes two overlapping runs share the work and never send twice. Every function
takes `now`, so tests drive the schedule with a clock of their own.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mailer.config import Settings
from mailer.content.issue import load_issue, parse_when, set_send_at
from mailer.content.issue_files import issue_files, refuse_welcome, welcome_path
from mailer.errors import InputError, MailerError
from mailer.models import Issue
from mailer.sending.send import prepare
from mailer.store import Store, open_store


class State(StrEnum):
    DRAFT = "draft"  # no send_at
    SCHEDULED = "scheduled"  # send_at ahead
    DUE = "due"  # send_at passed, within max_lateness
    LATE = "late"  # send_at passed more than max_lateness ago: a human decides
    SENDING = "sending"  # pinned, recipients still pending
    SENT = "sent"
    BROKEN = "broken"  # the file does not parse


@dataclass(frozen=True)
class Entry:
    name: str  # the file, relative to the project, or the slug for a pin without a file
    slug: str
    subject: str
    date: str
    send_at: dt.datetime | None
    state: State
    sent: int = 0
    pending: int = 0
    first_sent: dt.datetime | None = None
    error: str = ""
    path: Path | None = None

    def as_json(self) -> dict[str, object]:
        """One issue as `mailer schedule --json` prints it."""
        return {
            "file": self.name,
            "slug": self.slug,
            "subject": self.subject,
            "state": self.state.value,
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "first_sent": self.first_sent.isoformat() if self.first_sent else None,
            "sent": self.sent,
            "pending": self.pending,
            "error": self.error or None,
        }


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def resolve(when: dt.datetime | None, settings: Settings, where: str) -> dt.datetime | None:
    """An aware time: a naive one is in the `timezone` setting, which must then be set."""
    if when is None or when.tzinfo is not None:
        return when
    if not settings.timezone:
        raise InputError(
            f"{where} {when.isoformat()} has no UTC offset; write e.g. "
            f'{when.isoformat()}+08:00, or set timezone = "Asia/Shanghai" in mailer.toml'
        )
    return when.replace(tzinfo=zoneinfo.ZoneInfo(settings.timezone))


def parse_at(text: str, settings: Settings) -> dt.datetime:
    """`--at WHEN`: ISO 8601, with an offset or in the timezone setting."""
    when = resolve(parse_when(text, "--at"), settings, "--at")
    if when is None:  # parse_when reads "" as "not scheduled"; --at must name a time
        raise InputError("--at needs a time; write e.g. --at 2026-11-27T09:00:00+08:00")
    return when


def scan(settings: Settings, now: dt.datetime, store: Store | None = None) -> list[Entry]:
    """Every issue file and every pinned issue, with its state at `now`."""
    if store is None:
        with open_store(settings) as own:
            return scan(settings, now, own)
    entries: list[Entry] = []
    seen: set[str] = set()
    for path in issue_files(settings):
        name = settings.relative(path)
        try:
            issue = load_issue(path)
            send_at = resolve(issue.send_at, settings, f"{name}: send_at")
        except MailerError as e:
            entries.append(Entry(name, "", "", "", None, State.BROKEN, error=str(e), path=path))
            continue
        seen.add(issue.slug)
        entries.append(_entry(settings, store, name, issue, send_at, now, path))
    welcome = welcome_path(settings)
    welcome_slug = _slug_of(welcome) if welcome else None
    for row in store.pins.pinned_issues():
        slug = str(row.slug)
        if slug in seen or slug == welcome_slug:
            continue
        counts = store.ledger.counts(int(row.id))
        pending = counts.unfinished
        entries.append(
            Entry(
                str(row.source or slug),
                slug,
                str(row.subject),
                "",
                None,
                State.SENDING if pending else State.SENT,
                sent=counts.sent,
                pending=pending,
                first_sent=row.created_at,
            )
        )
    return entries


def _slug_of(path: Path) -> str | None:
    try:
        return load_issue(path).slug if path.is_file() else None
    except MailerError:
        return None


def _entry(
    settings: Settings,
    store: Store,
    name: str,
    issue: Issue,
    send_at: dt.datetime | None,
    now: dt.datetime,
    path: Path,
) -> Entry:
    found = store.pins.find(issue.slug)
    sent = pending = 0
    first_sent = None
    if found is not None and found.version is not None:
        counts = store.ledger.counts(int(found.id))
        sent, pending = counts.sent, counts.unfinished
        first_sent = found.created_at
        state = State.SENDING if pending else State.SENT
        if pending and send_at is not None and now - send_at > _lateness(settings):
            state = State.LATE
    elif send_at is None:
        state = State.DRAFT
    elif send_at > now:
        state = State.SCHEDULED
    elif now - send_at > _lateness(settings):
        state = State.LATE
    else:
        state = State.DUE
    return Entry(
        name,
        issue.slug,
        issue.subject,
        issue.date,
        send_at,
        state,
        sent=sent,
        pending=pending,
        first_sent=first_sent,
        path=path,
    )


def _lateness(settings: Settings) -> dt.timedelta:
    return dt.timedelta(seconds=settings.max_lateness)


def due(entries: Iterable[Entry]) -> list[Entry]:
    """What `send --due` sends, oldest first: due issues, and scheduled sends that stopped
    part way (a crash) while still within max_lateness."""
    picked = [
        e
        for e in entries
        if e.send_at is not None and e.state in (State.DUE, State.SENDING) and e.path is not None
    ]
    return sorted(picked, key=lambda e: (e.send_at, e.name))


def latest_unsent(entries: Iterable[Entry]) -> Entry | None:
    """`send --latest`: the newest issue never sent, by its date (or its send_at's day),
    then its file name."""
    unsent = [
        e for e in entries if e.state in (State.DRAFT, State.SCHEDULED, State.DUE, State.LATE)
    ]
    if not unsent:
        return None

    def newest(e: Entry) -> tuple[str, str]:
        return e.date or (e.send_at.date().isoformat() if e.send_at else ""), e.name

    return max(unsent, key=newest)


def lateness(entry: Entry, now: dt.datetime) -> dt.timedelta:
    assert entry.send_at is not None
    return now - entry.send_at


def schedule(settings: Settings, path: Path, at: str, now: dt.datetime) -> dt.datetime:
    """`send FILE --at WHEN`: check the issue would send (renders, fits, has its footer),
    then write send_at into its front matter. A pinned issue is not rescheduled."""

    when = parse_at(at, settings)
    if not path.is_file():
        raise InputError(f"{path}: no such issue file; --at schedules a file")
    refuse_welcome(settings, path)
    rendered = prepare(settings, path, web=False)  # refuse now what would fail at 3 a.m.
    with open_store(settings) as store:
        if store.pins.load(rendered.issue.slug) is not None:
            raise InputError(
                f"{path}: {rendered.issue.slug!r} was sent already (see 'mailer status'); "
                "--at schedules an issue that has not started"
            )
    set_send_at(path, when)
    return when

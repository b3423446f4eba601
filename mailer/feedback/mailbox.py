"""`mailer bounces fetch`: read the bounce mailbox, apply what proves itself, and leave
everything else where a human sees it.

Each new message (by UID) is sized first and read only when it is small enough; it is
understood (feedback/mail.py) and its events applied by the one function, in one
transaction, and only then moved:
- a report that acted (or was recorded before): to bounce_processed_folder;
- a report that proves nothing (forged, or naming only an address): to
  bounce_unmatched_folder, listed with the reason;
- anything else (an auto-reply, a person, a message too large or too deep to read): left
  in the mailbox, listed once and remembered by UID, never downloaded again.
A crash between applying and moving leaves the message in the inbox, and the next run
finds its events recorded (duplicates): running twice, or two fetches at once, changes
nothing more. Nothing is ever deleted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from mailer.config import Settings
from mailer.feedback import mail
from mailer.feedback.apply import APPLIED, Applied, Outcome, Rules, apply
from mailer.models import DeliveryEvent, SubscriberStatus
from mailer.providers.imap import Mailbox
from mailer.store import Store, open_store
from mailer.tokens import Sealer

LEASE = dt.timedelta(minutes=30)  # a fetch that takes longer shares the mailbox
# A report whose events came to one of these is filed as handled.
HANDLED = APPLIED | {Outcome.DUPLICATE, Outcome.UNKNOWN}


@dataclass
class FetchResult:
    messages: int = 0  # examined by this run
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    changes: list[tuple[str, SubscriberStatus]] = field(default_factory=list)  # (who, status)
    moved: int = 0  # to the processed folder
    unmatched: list[tuple[int, str, str]] = field(default_factory=list)  # (uid, address, why)
    left: list[tuple[int, str]] = field(default_factory=list)  # (uid, why) left in the mailbox
    known: int = 0  # left there by an earlier run: not read again
    busy: str = ""  # another fetch of this mailbox was running: who


def fetch(settings: Settings, dry_run: bool = False) -> FetchResult:
    """One run over the mailbox. Another fetch of it running (a second `mailer serve`, a
    cron job) makes this one do nothing: `busy` names it."""
    settings.require("secret_key")
    with (
        open_store(settings) as store,
        Mailbox(settings) as box,
        store.leases.hold(f"bounce-fetch:{box.key}", LEASE) as holder,
    ):
        return FetchResult(busy=holder) if holder else _fetch(settings, store, box, dry_run)


def _fetch(settings: Settings, store: Store, box: Mailbox, dry_run: bool) -> FetchResult:
    result = FetchResult()
    uids = box.uids()
    seen = store.examined.seen(box.key, box.validity, set(uids))
    result.known = len(seen)
    sizes = box.sizes([u for u in uids if u not in seen])
    limit = settings.bounce_max_bytes
    readable = {uid: n for uid, n in sizes.items() if n <= limit}
    flagged = [uid for uid, n in sizes.items() if n > limit]
    for uid in flagged:
        result.left.append((uid, f"{sizes[uid]} bytes (bounce_max_bytes is {limit}): not read"))
    result.messages = len(sizes)
    sealer, rules = Sealer(settings.secret_key), Rules.of(settings)
    handled: list[int] = []
    unmatched: list[int] = []
    with store.engine.connect() as conn:
        # A dry run works through every message in one transaction, rolled back at the end,
        # so what it shows adds up (three soft bounces in a row) as the real run would.
        dry = conn.begin() if dry_run else None
        for uid, raw in box.bodies(readable):
            report = mail.read(raw, sealer, settings.bounce_address)
            if not report.events:
                result.left.append((uid, report.reason))
                if report.refused:
                    flagged.append(uid)
                continue
            applied = _apply(conn, report.events, rules, dry_run)
            if applied is None:
                result.left.append((uid, "the database would not store what it says"))
                continue
            _count(result, applied)
            if any(applied.counts[o] for o in HANDLED):
                handled.append(uid)
            else:
                unmatched.append(uid)
                result.unmatched += [
                    (uid, v.event.email or "", v.reason)
                    for v in applied.verdicts
                    if v.outcome is Outcome.UNPROVEN
                ]
        if dry is not None:
            dry.rollback()  # --dry-run: worked out, shown, not kept
            return result
    box.move(handled, settings.bounce_processed_folder)
    box.move(unmatched, settings.bounce_unmatched_folder)
    box.flag(flagged)
    store.examined.remember(box.key, box.validity, result.left)
    result.moved = len(handled)
    return result


def _apply(
    conn: sa.Connection, events: list[DeliveryEvent], rules: Rules, dry_run: bool
) -> Applied | None:
    """One report's events in one transaction (a savepoint in a dry run); None when the
    database refuses a value in it."""
    try:
        with conn.begin_nested() if dry_run else conn.begin():
            return apply(conn, events, rules)
    except (sa.exc.DataError, sa.exc.IntegrityError):
        return None


def _count(result: FetchResult, applied: Applied) -> None:
    result.outcomes.update(applied.counts)
    for v in applied.changes():
        assert v.status is not None
        who = v.address or v.event.email or f"subscriber {v.subscriber_id}"
        result.changes.append((who, v.status))

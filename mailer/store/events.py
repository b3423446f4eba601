"""Applying delivery events: record once, suppress addresses, settle ambiguous sends."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from mailer import addresses
from mailer.models import Actor, DeliveryEvent, EventType, RecipientState, SubscriberStatus
from mailer.store.schema import events, issues, recipients, subscribers
from mailer.store.subscribers import change_status, now

STATUS_FOR = {
    EventType.BOUNCED: SubscriberStatus.BOUNCED,
    EventType.COMPLAINED: SubscriberStatus.COMPLAINED,
    EventType.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
}


@dataclass
class Applied:
    recorded: int = 0
    duplicates: int = 0
    suppressed: int = 0
    settled: int = 0  # ambiguous recipients now known to be sent
    rejected: int = 0  # the database would not store it (each event stands alone)


class Events:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def one_click_unsubscribe(self, subscriber_id: int, issue_ref: int) -> bool:
        """The person's own unsubscribe link: status and event in one transaction, so the
        report counts them once whichever way (link, provider) they left."""
        with self.engine.begin() as conn:
            changed = change_status(
                conn,
                subscriber_id,
                SubscriberStatus.UNSUBSCRIBED,
                Actor.ONE_CLICK,
                f"issue ref {issue_ref}",
            )
            if changed:
                issue_id = conn.execute(
                    sa.select(issues.c.id).where(issues.c.ref == issue_ref)
                ).scalar()
                conn.execute(
                    events.insert().values(
                        issue_id=issue_id,
                        subscriber_id=subscriber_id,
                        type=EventType.UNSUBSCRIBED.value,
                        at=now(),
                        data={"source": "one-click"},
                    )
                )
        return changed

    def apply(self, batch: Iterable[DeliveryEvent], source: str = "sendgrid") -> Applied:
        result = Applied()
        with self.engine.begin() as conn:
            for event in batch:
                try:
                    with conn.begin_nested():  # one event's failure undoes only that event
                        self._one(conn, event, source, result)
                except (sa.exc.DataError, sa.exc.IntegrityError, ValueError, TypeError):
                    result.rejected += 1  # the database would not take it: NUL, range...
        return result

    def _one(self, conn: sa.Connection, e: DeliveryEvent, source: str, result: Applied) -> None:
        if (
            e.provider_event_id is not None
            and conn.execute(
                sa.select(events.c.id).where(events.c.provider_event_id == e.provider_event_id)
            ).first()
        ):
            result.duplicates += 1
            return
        sid = self._subscriber(conn, e)
        try:
            with conn.begin_nested():
                conn.execute(
                    events.insert().values(
                        provider_event_id=e.provider_event_id,
                        issue_id=e.issue_id,
                        subscriber_id=sid,
                        type=e.type.value,
                        at=e.at,
                        url=e.url,
                        data={k: v for k, v in e.raw.items() if k not in ("email",)},
                    )
                )
        except sa.exc.IntegrityError:  # another server recorded it a moment ago
            result.duplicates += 1
            return
        result.recorded += 1
        if sid is None:
            return
        new = STATUS_FOR.get(e.suppress) if e.suppress else None
        if new is not None and change_status(
            conn, sid, new, Actor.PROVIDER, f"{source}: {e.type.value}"
        ):
            result.suppressed += 1
        if e.type in (EventType.PROCESSED, EventType.DELIVERED) and e.issue_id is not None:
            settled = conn.execute(
                recipients.update()
                .where(
                    recipients.c.issue_id == e.issue_id,
                    recipients.c.subscriber_id == sid,
                    recipients.c.state == RecipientState.AMBIGUOUS,
                )
                .values(state=RecipientState.SENT, error=f"confirmed by {source} {e.type.value}")
            ).rowcount
            result.settled += settled

    def _subscriber(self, conn: sa.Connection, e: DeliveryEvent) -> int | None:
        """By the id we put in custom_args, checked against the address; else by address."""
        key = None
        try:
            key = addresses.key(addresses.normalize(e.email)) if e.email else None
        except addresses.InvalidAddress:
            key = None
        if e.subscriber_id is not None:
            row = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email_key).where(
                    subscribers.c.id == e.subscriber_id
                )
            ).first()
            if row is not None and (key is None or row.email_key == key):
                return int(row.id)
        if key is None:
            return None
        found = conn.execute(
            sa.select(subscribers.c.id).where(subscribers.c.email_key == key)
        ).scalar()
        return int(found) if found is not None else None


@dataclass(frozen=True)
class Bounce:
    """One finding of a bounce or complaint report, as the store applies it."""

    event_id: str  # stable for the report and the address: a second run is a duplicate
    kind: str  # "hard", "soft" or "complaint"
    subscriber_id: int | None
    email: str | None
    issue_id: int | None
    message_nonce: str | None  # from our Message-ID: finds the issue
    signed: bool = False  # subscriber_id came from a signed VERP address, not a quote


BOUNCE_EVENT = {
    "hard": EventType.BOUNCED,
    "soft": EventType.SOFT_BOUNCED,
    "complaint": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
}


def apply_bounce(conn: sa.Connection, b: Bounce, soft_limit: int) -> str:
    """Record one finding and apply it through the status policy, in the caller's
    transaction. Returns what happened: "duplicate", "unknown" (no such subscriber),
    "bounced", "complained", "soft", or "unchanged"."""
    if conn.execute(sa.select(events.c.id).where(events.c.provider_event_id == b.event_id)).first():
        return "duplicate"
    sid = _bounce_subscriber(conn, b)
    issue_id = b.issue_id
    if issue_id is None and b.message_nonce:
        issue_id = conn.execute(
            sa.select(issues.c.id).where(issues.c.message_nonce == b.message_nonce)
        ).scalar()
    elif (
        issue_id is not None
        and not conn.execute(sa.select(issues.c.id).where(issues.c.id == issue_id)).first()
    ):
        issue_id = None
    kind = BOUNCE_EVENT[b.kind]
    conn.execute(
        events.insert().values(
            provider_event_id=b.event_id,
            issue_id=issue_id,
            subscriber_id=sid,
            type=kind.value,
            at=now(),
            data={"source": "imap", "kind": b.kind},
        )
    )
    if sid is None:
        return "unknown"
    if b.kind == "unsubscribe":  # their mail to the List-Unsubscribe mailto: their own act
        done = change_status(
            conn, sid, SubscriberStatus.UNSUBSCRIBED, Actor.ONE_CLICK, "mailto unsubscribe"
        )
        return "unsubscribed" if done else "unchanged"
    if b.kind == "complaint":
        done = change_status(
            conn, sid, SubscriberStatus.COMPLAINED, Actor.PROVIDER, "arf complaint"
        )
        return "complained" if done else "unchanged"
    if b.kind == "hard":
        done = change_status(
            conn, sid, SubscriberStatus.BOUNCED, Actor.PROVIDER, "dsn: hard bounce"
        )
        return "bounced" if done else "unchanged"
    if _soft_streak(conn, sid, soft_limit) and change_status(
        conn,
        sid,
        SubscriberStatus.BOUNCED,
        Actor.PROVIDER,
        f"dsn: soft bounces on {soft_limit} issues in a row",
    ):
        return "bounced"
    return "soft"


def _bounce_subscriber(conn: sa.Connection, b: Bounce) -> int | None:
    key = None
    if b.email:
        try:
            key = addresses.key(addresses.normalize(b.email))
        except addresses.InvalidAddress:
            key = None
    if b.subscriber_id is not None:
        row = conn.execute(
            sa.select(subscribers.c.id, subscribers.c.email_key).where(
                subscribers.c.id == b.subscriber_id
            )
        ).first()
        # A signed VERP address names the person outright. An id read from a quoted
        # Message-ID anyone could write must agree with the failed address, if there is one.
        if row is not None and (b.signed or key is None or row.email_key == key):
            return int(row.id)
    if key is None:
        return None
    found = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.email_key == key)).scalar()
    return int(found) if found is not None else None


def _soft_streak(conn: sa.Connection, sid: int, limit: int) -> bool:
    """Did each of the last `limit` issues sent to this person bounce (softly or not)?"""
    last = (
        conn.execute(
            sa.select(recipients.c.issue_id)
            .where(recipients.c.subscriber_id == sid, recipients.c.state == RecipientState.SENT)
            .order_by(recipients.c.issue_id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if len(last) < limit:
        return False
    bounced = conn.execute(
        sa.select(sa.func.count(sa.distinct(events.c.issue_id))).where(
            events.c.subscriber_id == sid,
            events.c.issue_id.in_(last),
            events.c.type.in_([EventType.SOFT_BOUNCED.value, EventType.BOUNCED.value]),
        )
    ).scalar()
    return int(bounced or 0) == limit

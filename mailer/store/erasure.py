"""Erasure (GDPR): a person's row, consent, history, deliveries and events go; a one-way
hash of the address stays so imports skip them, and each issue keeps what they counted."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from mailer import addresses
from mailer.store.schema import (
    erased_counts,
    erasures,
    events,
    mail_queue,
    recipients,
    status_changes,
    subscribers,
)


def forget(conn: sa.Connection, subscriber_id: int, email: str) -> None:
    """Everything about one person, in the caller's transaction."""
    _keep_counts(conn, subscriber_id)
    conn.execute(events.delete().where(events.c.subscriber_id == subscriber_id))
    conn.execute(
        mail_queue.delete().where(
            sa.or_(
                mail_queue.c.subscriber_id == subscriber_id,
                sa.func.lower(mail_queue.c.email) == addresses.key(email),
            )
        )
    )
    conn.execute(recipients.delete().where(recipients.c.subscriber_id == subscriber_id))
    conn.execute(status_changes.delete().where(status_changes.c.subscriber_id == subscriber_id))
    conn.execute(subscribers.delete().where(subscribers.c.id == subscriber_id))
    h = addresses.erasure_hash(email)
    if not conn.execute(sa.select(erasures.c.email_hash).where(erasures.c.email_hash == h)).first():
        conn.execute(erasures.insert().values(email_hash=h, erased_at=dt.datetime.now(dt.UTC)))


def _keep_counts(conn: sa.Connection, subscriber_id: int) -> None:
    """Add what one person contributed to each issue's numbers to erased_counts."""
    kinds: list[tuple[int, str]] = [
        (int(issue_id), f"state:{state}")
        for issue_id, state in conn.execute(
            sa.select(recipients.c.issue_id, recipients.c.state).where(
                recipients.c.subscriber_id == subscriber_id
            )
        )
    ]
    kinds += [
        (int(issue_id), f"event:{kind}")
        for issue_id, kind in conn.execute(
            sa.select(events.c.issue_id, events.c.type)
            .where(events.c.subscriber_id == subscriber_id, events.c.issue_id.is_not(None))
            .distinct()
        )
    ]
    for issue_id, kind in kinds:
        where = (erased_counts.c.issue_id == issue_id, erased_counts.c.kind == kind)
        if conn.execute(
            erased_counts.update().where(*where).values(n=erased_counts.c.n + 1)
        ).rowcount:
            continue
        conn.execute(erased_counts.insert().values(issue_id=issue_id, kind=kind, n=1))


def erased_tally(conn: sa.Connection, issue_id: int, prefix: str) -> dict[str, int]:
    """{kind: n} that erased people contributed to an issue, for one prefix (state/event)."""
    rows = conn.execute(
        sa.select(erased_counts.c.kind, erased_counts.c.n).where(
            erased_counts.c.issue_id == issue_id, erased_counts.c.kind.startswith(prefix + ":")
        )
    )
    return {kind.split(":", 1)[1]: int(n) for kind, n in rows}


def is_erased(conn: sa.Connection, normalized: str) -> bool:
    h = addresses.erasure_hash(normalized)
    return (
        conn.execute(sa.select(erasures.c.email_hash).where(erasures.c.email_hash == h)).first()
        is not None
    )

"""The list an issue goes to, fixed at its first send: who is in its audience, in which
edition, in batches. Written once into the ledger (pins call it); the ledger then only
moves recipients through their states."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from mailer.models import BatchState, RecipientState, SubscriberStatus
from mailer.store.audience import effective_language, within
from mailer.store.schema import batches, recipients, subscribers
from mailer.store.subscribers import Selection


def snapshot_list(
    conn: sa.Connection,
    issue_id: int,
    batch_size: int,
    at: dt.datetime,
    audience: Selection | None = None,
    editions: Sequence[str] = (),
) -> None:
    """The issue's audience (the active list, or whom `audience` picks; never anyone paused
    at `at`), as its recipients cut into batches, inside the database: a million rows never
    pass through Python. With language editions, each reader goes to the edition of the
    narrowest tag their language is within (en-GB: en-GB, then en), the rest to the main
    one; a batch holds one edition, so a provider request carries one body."""
    default = audience.default_language if audience is not None else ""
    chosen = [
        subscribers.c.status == SubscriberStatus.ACTIVE.value,
        sa.or_(subscribers.c.paused_until.is_(None), subscribers.c.paused_until <= at),
    ]
    if audience is not None and not audience.audience.everyone:
        chosen.append(audience.condition())
    language = effective_language(default)
    offset = 0
    for edition in [*sorted(editions, key=len, reverse=True), ""]:
        where = list(chosen)
        if edition:
            where.append(within(language, edition))
        if editions:  # each reader once: the narrower editions took theirs first
            where.append(
                ~sa.exists().where(
                    recipients.c.issue_id == issue_id,
                    recipients.c.subscriber_id == subscribers.c.id,
                )
            )
        numbered = sa.select(
            sa.literal(issue_id).label("issue_id"),
            subscribers.c.id.label("subscriber_id"),
            (
                (sa.func.row_number().over(order_by=subscribers.c.id) - 1) // batch_size + offset
            ).label("batch_seq"),
            sa.literal(RecipientState.PENDING.value).label("state"),
        ).where(*where)
        conn.execute(
            recipients.insert().from_select(
                ["issue_id", "subscriber_id", "batch_seq", "state"], numbered
            )
        )
        conn.execute(
            batches.insert().from_select(
                ["issue_id", "seq", "state", "attempts", "updated_at", "edition"],
                sa.select(
                    recipients.c.issue_id,
                    recipients.c.batch_seq,
                    sa.literal(BatchState.PENDING.value),
                    sa.literal(0),
                    sa.literal(at, type_=batches.c.updated_at.type),
                    sa.literal(edition),
                )
                .where(recipients.c.issue_id == issue_id, recipients.c.batch_seq >= offset)
                .distinct(),
            )
        )
        if editions:
            last = conn.execute(
                sa.select(sa.func.max(batches.c.seq)).where(batches.c.issue_id == issue_id)
            ).scalar()
            offset = 0 if last is None else int(last) + 1

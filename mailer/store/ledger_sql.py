"""The statements a send runs for every group, built once.

Building a Core statement and its cache key again for each group cost more than SQLite
took to run it (a fifth of an SMTP send's CPU, whose groups are ten messages).
"""

from __future__ import annotations

import sqlalchemy as sa

from mailer.models import BatchState, RecipientState
from mailer.store.schema import batches, recipients, subscribers

param = sa.bindparam

IN_BATCH = (recipients.c.issue_id == param("b_issue"), recipients.c.batch_seq == param("b_seq"))
PENDING_IN_BATCH = (*IN_BATCH, recipients.c.state == RecipientState.PENDING)
REQUESTING_IN_BATCH = (*IN_BATCH, recipients.c.state == RecipientState.REQUESTING)
NEXT_BATCH = (
    sa.select(batches.c.id, batches.c.seq, batches.c.edition)
    .where(batches.c.issue_id == param("b_issue"), batches.c.state == BatchState.PENDING)
    .order_by(batches.c.seq)
    .limit(1)
    .with_for_update(skip_locked=True)
)
THIS_BATCH = NEXT_BATCH.where(batches.c.seq == param("b_seq"))
CLAIM = (
    batches.update()
    .where(batches.c.id == param("b_id"))
    .values(
        state=BatchState.CLAIMED,
        lease_owner=param("owner"),
        lease_expires=param("expires"),
        attempts=batches.c.attempts + 1,
        updated_at=param("at"),
    )
)
PENDING_PEOPLE = (
    sa.select(
        subscribers.c.id,
        subscribers.c.email,
        subscribers.c.name,
        subscribers.c.status,
        subscribers.c.nonce,
        subscribers.c.paused_until,
    )
    .join(recipients, recipients.c.subscriber_id == subscribers.c.id)
    .where(*PENDING_IN_BATCH)
    .order_by(subscribers.c.id)
    .limit(param("n"))
)
SKIP = (
    recipients.update()
    .where(*PENDING_IN_BATCH, recipients.c.subscriber_id.in_(param("gone", expanding=True)))
    .values(state=RecipientState.SKIPPED, error=param("why"), updated_at=param("at"))
)
REQUEST_ALL = (
    recipients.update()
    .where(*PENDING_IN_BATCH)
    .values(state=RecipientState.REQUESTING, updated_at=param("at"), version=param("b_version"))
)
REQUEST_RANGE = REQUEST_ALL.where(recipients.c.subscriber_id.between(param("lo"), param("hi")))
BATCH_REQUESTING = (
    batches.update()
    .where(batches.c.id == param("b_id"))
    .values(state=BatchState.REQUESTING, lease_expires=param("expires"), updated_at=param("at"))
)
SENT_ALL = (
    recipients.update()
    .where(*REQUESTING_IN_BATCH)
    .values(state=RecipientState.SENT, message_id=param("mid"), updated_at=param("at"))
)
SENT_EACH = (  # executemany: a message id each (SMTP, outbox)
    recipients.update()
    .where(*REQUESTING_IN_BATCH, recipients.c.subscriber_id == param("sid"))
    .values(state=RecipientState.SENT, message_id=param("mid"), updated_at=param("at"))
)
ENDED_EACH = (  # executemany: failed or ambiguous, with the reason
    recipients.update()
    .where(*REQUESTING_IN_BATCH, recipients.c.subscriber_id == param("sid"))
    .values(state=param("b_state"), error=param("err"), updated_at=param("at"))
)
BATCH_MESSAGE_ID = (
    batches.update().where(batches.c.id == param("b_id")).values(provider_message_id=param("pmid"))
)
STATES = (
    sa.select(recipients.c.state, sa.func.count()).where(*IN_BATCH).group_by(recipients.c.state)
)
SETTLE = (
    batches.update()
    .where(batches.c.id == param("b_id"))
    .values(state=param("b_state"), lease_owner=None, lease_expires=None, updated_at=param("at"))
)
SETTLE_WITH_ERROR = SETTLE.values(error=param("b_error"))

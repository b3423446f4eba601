"""The delivery ledger: who an issue goes to, and how far each recipient has got.

A batch moves pending → claimed (leased) → requesting → sent | failed | ambiguous, and so
does each recipient in it. The rule that makes sends exactly-once: a recipient is marked
`requesting` (committed) before any byte goes to the provider and `sent` after the
provider accepted it. A sender that dies in between leaves `requesting` rows, which
recovery turns into `ambiguous`: listed, never resent unless asked (--retry-ambiguous).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mailer.models import (
    SUPPRESSED,
    BatchState,
    Outcome,
    Recipient,
    RecipientState,
    SubscriberStatus,
)
from mailer.store.schema import batches, issues, recipients, subscribers
from mailer.store.subscribers import change_status, now

LEASE = dt.timedelta(minutes=5)
R = RecipientState
B = BatchState


def new_owner() -> str:
    """host:pid:nonce — lets a resumed sender on the same host take over a dead one's lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's sender: only its lease expiry tells
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass(frozen=True)
class Claim:
    batch_id: int
    issue_id: int
    seq: int
    owner: str


class Ledger:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # -- issues ---------------------------------------------------------------------------

    def find(self, slug: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(issues).where(issues.c.slug == slug)).first()
        return dict(row._mapping) if row else None

    def start(self, slug: str, subject: str, batch_size: int) -> tuple[int, bool]:
        """The issue's id, snapshotting the active list into recipients on first call.

        The snapshot is one INSERT ... SELECT inside the database: a million rows never
        pass through Python. Returns (issue id, created now).
        """
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(issues.c.id).where(issues.c.slug == slug)).scalar()
            if found is not None:
                return int(found), False
            at = now()
            issue_id = conn.execute(
                issues.insert().values(slug=slug, subject=subject[:500], created_at=at)
            ).inserted_primary_key[0]  # type: ignore[index]
            numbered = sa.select(
                sa.literal(issue_id).label("issue_id"),
                subscribers.c.id.label("subscriber_id"),
                ((sa.func.row_number().over(order_by=subscribers.c.id) - 1) // batch_size).label(
                    "batch_seq"
                ),
                sa.literal(R.PENDING.value).label("state"),
            ).where(subscribers.c.status == SubscriberStatus.ACTIVE.value)
            conn.execute(
                recipients.insert().from_select(
                    ["issue_id", "subscriber_id", "batch_seq", "state"], numbered
                )
            )
            conn.execute(
                batches.insert().from_select(
                    ["issue_id", "seq", "state", "attempts", "updated_at"],
                    sa.select(
                        recipients.c.issue_id,
                        recipients.c.batch_seq,
                        sa.literal(B.PENDING.value),
                        sa.literal(0),
                        sa.literal(at, type_=batches.c.updated_at.type),
                    )
                    .where(recipients.c.issue_id == issue_id)
                    .distinct(),
                )
            )
        return int(issue_id), True

    # -- claiming work --------------------------------------------------------------------

    def recover(self, issue_id: int) -> int:
        """Batches whose sender died or whose lease ran out: make them safe to continue."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(
                    batches.c.id, batches.c.seq, batches.c.lease_owner, batches.c.lease_expires
                )
                .where(
                    batches.c.issue_id == issue_id, batches.c.state.in_([B.CLAIMED, B.REQUESTING])
                )
                .with_for_update(skip_locked=True)
            ).all()
            recovered = 0
            at = now()
            for row in rows:
                expires = _aware(row.lease_expires)
                if not (expires is None or expires < at or owner_is_dead(row.lease_owner)):
                    continue
                conn.execute(
                    recipients.update()
                    .where(
                        recipients.c.issue_id == issue_id,
                        recipients.c.batch_seq == row.seq,
                        recipients.c.state == R.REQUESTING,
                    )
                    .values(
                        state=R.AMBIGUOUS,
                        error="the sender stopped while this request was in flight",
                        updated_at=at,
                    )
                )
                self._settle(conn, issue_id, row.id, row.seq)
                recovered += 1
        return recovered

    def claim(self, issue_id: int, owner: str) -> Claim | None:
        with self.engine.begin() as conn:
            return self._claim(conn, issue_id, owner)

    def _claim(self, conn: sa.Connection, issue_id: int, owner: str) -> Claim | None:
        row = conn.execute(
            sa.select(batches.c.id, batches.c.seq)
            .where(batches.c.issue_id == issue_id, batches.c.state == B.PENDING)
            .order_by(batches.c.seq)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        conn.execute(
            batches.update()
            .where(batches.c.id == row.id)
            .values(
                state=B.CLAIMED,
                lease_owner=owner,
                lease_expires=now() + LEASE,
                attempts=batches.c.attempts + 1,
                updated_at=now(),
            )
        )
        return Claim(row.id, issue_id, row.seq, owner)

    def claim_group(
        self, issue_id: int, owner: str, limit: int
    ) -> tuple[Claim, list[Recipient], bool] | None:
        """Claim the next batch and take its first group in one transaction.

        Returns (claim, group, more): `more` says whether pending recipients remain in the
        batch after this group. None when no batch is left.
        """
        with self.engine.begin() as conn:
            claim = self._claim(conn, issue_id, owner)
            if claim is None:
                return None
            group, more = self._take(conn, claim, limit)
        return claim, group, more

    def take(self, claim: Claim, limit: int) -> list[Recipient]:
        return self.take_group(claim, limit)[0]

    def take_group(self, claim: Claim, limit: int) -> tuple[list[Recipient], bool]:
        """The next `limit` recipients of a claimed batch, marked requesting, committed,
        and whether more remain after them."""
        with self.engine.begin() as conn:
            return self._take(conn, claim, limit)

    def _take(self, conn: sa.Connection, claim: Claim, limit: int) -> tuple[list[Recipient], bool]:
        # Whoever stopped being active since the snapshot is marked skipped in the same
        # transaction, so an unsubscribe that lands mid-send is honoured by every later group.
        in_batch = (
            recipients.c.issue_id == claim.issue_id,
            recipients.c.batch_seq == claim.seq,
            recipients.c.state == R.PENDING,
        )
        at = now()
        while True:
            rows = conn.execute(
                sa.select(
                    subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status
                )
                .join(recipients, recipients.c.subscriber_id == subscribers.c.id)
                .where(*in_batch)
                .order_by(subscribers.c.id)
                .limit(limit + 1)  # one more than needed: is there anything after this group?
            ).all()
            more = len(rows) > limit
            rows = rows[:limit]
            if not rows:
                return [], False
            gone = [r[0] for r in rows if r[3] != SubscriberStatus.ACTIVE]
            if gone:
                conn.execute(
                    recipients.update()
                    .where(*in_batch, recipients.c.subscriber_id.in_(gone))
                    .values(state=R.SKIPPED, error="no longer active", updated_at=at)
                )
            if len(gone) < len(rows):
                break
            if not more:
                return [], False
        # The rows read are the batch's first pending ones by id, so the ones left pending
        # between the first and the last (or in the whole batch, if none come after) are
        # exactly the active ones read.
        taken = recipients.update().where(*in_batch).values(state=R.REQUESTING, updated_at=at)
        if more:
            taken = taken.where(recipients.c.subscriber_id.between(rows[0][0], rows[-1][0]))
        conn.execute(taken)
        conn.execute(
            batches.update()
            .where(batches.c.id == claim.batch_id)
            .values(state=B.REQUESTING, lease_expires=at + LEASE, updated_at=at)
        )
        group = [
            Recipient(i, e, n) for i, e, n, status in rows if status == SubscriberStatus.ACTIVE
        ]
        return group, more

    def record(
        self,
        claim: Claim,
        outcome: Outcome,
        batch_message_id: str | None = None,
        group_size: int = 0,
        settle: bool = False,
    ) -> None:
        """What the provider said, for the recipients of one group, in one transaction.

        With `settle`, the group was the batch's last: its final state is set and its lease
        let go in the same transaction.
        """
        at = now()
        base = (
            recipients.c.issue_id == claim.issue_id,
            recipients.c.batch_seq == claim.seq,
            recipients.c.state == R.REQUESTING,
        )
        with self.engine.begin() as conn:
            by_id: dict[str, list[int]] = defaultdict(list)
            for sid, mid in outcome.sent.items():
                by_id[mid].append(sid)
            if len(by_id) == 1 and len(outcome.sent) == group_size:
                # One request took the whole group (SendGrid). The claim is ours alone, so
                # every requesting row of the batch is this group: no id list needed.
                (mid,) = by_id
                conn.execute(
                    recipients.update()
                    .where(*base)
                    .values(state=R.SENT, message_id=mid[:200] or None, updated_at=at)
                )
            elif len(by_id) <= 2:
                for mid, sids in by_id.items():
                    for part in _chunks(sids, 500):
                        conn.execute(
                            recipients.update()
                            .where(*base, recipients.c.subscriber_id.in_(part))
                            .values(state=R.SENT, message_id=mid[:200] or None, updated_at=at)
                        )
            elif outcome.sent:  # an id per message (SMTP, outbox): one executemany
                conn.execute(
                    recipients.update()
                    .where(*base, recipients.c.subscriber_id == sa.bindparam("sid"))
                    .values(state=R.SENT, message_id=sa.bindparam("mid"), updated_at=at),
                    [{"sid": sid, "mid": mid[:200]} for sid, mid in outcome.sent.items()],
                )
            for state, reasons in ((R.FAILED, outcome.failed), (R.AMBIGUOUS, outcome.ambiguous)):
                if reasons:
                    conn.execute(
                        recipients.update()
                        .where(*base, recipients.c.subscriber_id == sa.bindparam("sid"))
                        .values(state=state, error=sa.bindparam("err"), updated_at=at),
                        [{"sid": sid, "err": err[:500]} for sid, err in reasons.items()],
                    )
            for sid in outcome.bounced:
                old = conn.execute(
                    sa.select(subscribers.c.status).where(subscribers.c.id == sid)
                ).scalar()
                if old is not None and old not in SUPPRESSED:
                    change_status(
                        conn, sid, old, SubscriberStatus.BOUNCED, "smtp: permanent failure"
                    )
            if batch_message_id:
                conn.execute(
                    batches.update()
                    .where(batches.c.id == claim.batch_id)
                    .values(provider_message_id=batch_message_id[:200])
                )
            if settle:
                self._settle(conn, claim.issue_id, claim.batch_id, claim.seq)

    def revert(self, claim: Claim, group: Iterable[Recipient]) -> None:
        """The provider certainly did not take these (it said so, or never connected)."""
        ids = [r.subscriber_id for r in group]
        with self.engine.begin() as conn:
            for part in _chunks(ids, 500):
                conn.execute(
                    recipients.update()
                    .where(
                        recipients.c.issue_id == claim.issue_id,
                        recipients.c.batch_seq == claim.seq,
                        recipients.c.state == R.REQUESTING,
                        recipients.c.subscriber_id.in_(part),
                    )
                    .values(state=R.PENDING)
                )

    def release(self, claim: Claim, error: str | None = None) -> None:
        """Done with a batch: settle its final state, or hand its rest back as pending."""
        with self.engine.begin() as conn:
            self._settle(conn, claim.issue_id, claim.batch_id, claim.seq, error)

    def _settle(
        self, conn: sa.Connection, issue_id: int, batch_id: int, seq: int, error: str | None = None
    ) -> None:
        states: dict[str, int] = dict(
            conn.execute(
                sa.select(recipients.c.state, sa.func.count())
                .where(recipients.c.issue_id == issue_id, recipients.c.batch_seq == seq)
                .group_by(recipients.c.state)
            ).all()
        )
        if states.get(R.PENDING):
            state = B.PENDING
        elif states.get(R.AMBIGUOUS):
            state = B.AMBIGUOUS
        elif states.get(R.FAILED):
            state = B.FAILED
        else:
            state = B.SENT
        values: dict[str, Any] = {
            "state": state,
            "lease_owner": None,
            "lease_expires": None,
            "updated_at": now(),
        }
        if error is not None:
            values["error"] = error[:2000]
        conn.execute(batches.update().where(batches.c.id == batch_id).values(**values))

    # -- reporting and retries ------------------------------------------------------------

    def counts(self, issue_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(recipients.c.state, sa.func.count())
                .where(recipients.c.issue_id == issue_id)
                .group_by(recipients.c.state)
            ).all()
        by_state = {str(s): int(n) for s, n in rows}
        out = {s.value: by_state.get(s.value, 0) for s in RecipientState}
        out["recipients"] = sum(by_state.values())
        return out

    def batch_counts(self, issue_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(batches.c.state, sa.func.count())
                .where(batches.c.issue_id == issue_id)
                .group_by(batches.c.state)
            ).all()
        return {str(s): int(n) for s, n in rows}

    def listed(
        self, issue_id: int, state: RecipientState, limit: int = 1000
    ) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    recipients.c.batch_seq,
                    subscribers.c.email,
                    recipients.c.error,
                )
                .join(subscribers, subscribers.c.id == recipients.c.subscriber_id)
                .where(recipients.c.issue_id == issue_id, recipients.c.state == state)
                .order_by(recipients.c.batch_seq, subscribers.c.id)
                .limit(limit)
            ).all()
        return [dict(r._mapping) for r in rows]

    def retry(self, issue_id: int, state: RecipientState) -> int:
        """Put ambiguous or failed recipients back in the queue: a deliberate resend."""
        with self.engine.begin() as conn:
            seqs = (
                conn.execute(
                    sa.select(recipients.c.batch_seq)
                    .where(recipients.c.issue_id == issue_id, recipients.c.state == state)
                    .distinct()
                )
                .scalars()
                .all()
            )
            n = conn.execute(
                recipients.update()
                .where(recipients.c.issue_id == issue_id, recipients.c.state == state)
                .values(state=R.PENDING, error=None)
            ).rowcount
            for part in _chunks(list(seqs), 500):
                conn.execute(
                    batches.update()
                    .where(
                        batches.c.issue_id == issue_id,
                        batches.c.seq.in_(part),
                        batches.c.state.in_([B.SENT, B.FAILED, B.AMBIGUOUS]),
                    )
                    .values(state=B.PENDING)
                )
        return int(n)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value

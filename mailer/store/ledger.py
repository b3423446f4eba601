"""The delivery ledger: who an issue goes to, and how far each recipient has got.

A batch moves pending → claimed (leased) → requesting → sent | failed | ambiguous, and so
does each recipient in it. The rule that makes sends exactly-once: a recipient is marked
`requesting` (committed) before any byte goes to the provider and `sent` after the
provider accepted it. A sender that dies in between leaves `requesting` rows, which
recovery turns into `ambiguous`: listed, never resent unless asked (--retry-ambiguous).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mailer.errors import InputError
from mailer.models import (
    Actor,
    BatchState,
    Outcome,
    Recipient,
    RecipientState,
    SubscriberStatus,
)
from mailer.store import ledger_sql as q
from mailer.store.erasure import erased_tally
from mailer.store.owners import new_owner, owner_is_dead
from mailer.store.schema import batches, recipients, subscribers
from mailer.store.subscribers import Selection, change_status, now

LEASE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class LedgerCounts:
    """An issue's recipients by state (erased people included, as numbers)."""

    pending: int = 0
    requesting: int = 0  # in flight: a provider may have it already
    sent: int = 0
    failed: int = 0
    ambiguous: int = 0
    skipped: int = 0

    @property
    def recipients(self) -> int:
        return (
            self.pending + self.requesting + self.sent + self.failed + self.ambiguous + self.skipped
        )

    @property
    def unfinished(self) -> int:
        """Not yet through: waiting, or a request in flight."""
        return self.pending + self.requesting

    def of(self, state: RecipientState) -> int:
        return int(getattr(self, state.value))


@dataclass(frozen=True)
class ListedRecipient:
    batch_seq: int
    email: str
    error: str


@dataclass(frozen=True)
class Claim:
    batch_id: int
    issue_id: int
    seq: int
    owner: str
    version: int = 1
    edition: str = ""  # the language edition its recipients get ("": the main one)


class Ledger:
    def __init__(self, engine: sa.Engine, audience: Selection | None = None) -> None:
        self.engine = engine
        self.pending_people = q.PENDING_PEOPLE
        if audience is not None and not audience.audience.everyone:
            # Who left the audience since the snapshot (dropped the topic) is skipped like
            # someone who unsubscribed: nobody joins it after the first send, and nobody
            # who opted out of it gets it.
            self.pending_people = q.PENDING_PEOPLE.add_columns(
                sa.case((audience.condition(), 1), else_=0).label("in_audience")
            )

    def for_audience(self, audience: Selection | None) -> Ledger:
        """This ledger, checking each recipient against the issue's pinned audience."""
        return Ledger(self.engine, audience)

    @staticmethod
    def new_owner() -> str:
        return new_owner()

    def enroll(self, issue_id: int, subscriber_id: int, edition: str = "") -> int | None:
        """Add one person to a pinned issue, in a batch of their own, and return its seq.

        Someone already a recipient is not added again (each gets an issue once, whoever
        asks): their batch's seq is returned while it is still pending (a welcome whose
        send was stopped is resumed), None once it went out or was given up."""
        for _ in range(5):  # two enrolls at once may pick the same seq: the loser retries
            try:
                with self.engine.begin() as conn:
                    there = conn.execute(
                        sa.select(recipients.c.state, recipients.c.batch_seq).where(
                            recipients.c.issue_id == issue_id,
                            recipients.c.subscriber_id == subscriber_id,
                        )
                    ).first()
                    if there is not None:
                        if there.state != RecipientState.PENDING:
                            return None
                        # Pending in a batch of the list's own (a send still going on):
                        # that send delivers it; only a batch of their own is ours to send.
                        size = conn.execute(
                            sa.select(sa.func.count()).where(
                                recipients.c.issue_id == issue_id,
                                recipients.c.batch_seq == there.batch_seq,
                            )
                        ).scalar()
                        return int(there.batch_seq) if size == 1 else None
                    seq = (
                        conn.execute(
                            sa.select(sa.func.max(batches.c.seq)).where(
                                batches.c.issue_id == issue_id
                            )
                        ).scalar()
                        or 0
                    ) + 1
                    at = now()
                    conn.execute(
                        batches.insert().values(
                            issue_id=issue_id,
                            seq=seq,
                            state=BatchState.PENDING,
                            attempts=0,
                            updated_at=at,
                            edition=edition,
                        )
                    )
                    conn.execute(
                        recipients.insert().values(
                            issue_id=issue_id,
                            subscriber_id=subscriber_id,
                            batch_seq=seq,
                            state=RecipientState.PENDING,
                        )
                    )
                    return int(seq)
            except sa.exc.IntegrityError:
                continue
        raise InputError("could not enroll a recipient: the ledger is too busy; try again")

    # -- claiming work --------------------------------------------------------------------

    def recover(self, issue_id: int) -> int:
        """Batches whose sender died or whose lease ran out: make them safe to continue."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(
                    batches.c.id, batches.c.seq, batches.c.lease_owner, batches.c.lease_expires
                )
                .where(
                    batches.c.issue_id == issue_id,
                    batches.c.state.in_([BatchState.CLAIMED, BatchState.REQUESTING]),
                )
                .with_for_update(skip_locked=True)
            ).all()
            recovered = 0
            at = now()
            for row in rows:
                expires = row.lease_expires
                if not (expires is None or expires < at or owner_is_dead(row.lease_owner)):
                    continue
                conn.execute(
                    recipients.update()
                    .where(
                        recipients.c.issue_id == issue_id,
                        recipients.c.batch_seq == row.seq,
                        recipients.c.state == RecipientState.REQUESTING,
                    )
                    .values(
                        state=RecipientState.AMBIGUOUS,
                        error="the sender stopped while this request was in flight",
                        updated_at=at,
                    )
                )
                self._settle(conn, issue_id, row.id, row.seq)
                recovered += 1
        return recovered

    def claim(
        self, issue_id: int, owner: str, version: int = 1, seq: int | None = None
    ) -> Claim | None:
        with self.engine.begin() as conn:
            return self._claim(conn, issue_id, owner, version, seq)

    def _claim(
        self, conn: sa.Connection, issue_id: int, owner: str, version: int, seq: int | None = None
    ) -> Claim | None:
        which = q.NEXT_BATCH if seq is None else q.THIS_BATCH
        row = conn.execute(which, {"b_issue": issue_id, "b_seq": seq}).first()
        if row is None:
            return None
        at = now()
        conn.execute(q.CLAIM, {"b_id": row.id, "owner": owner, "expires": at + LEASE, "at": at})
        return Claim(row.id, issue_id, row.seq, owner, version, row.edition or "")

    def claim_group(
        self, issue_id: int, owner: str, limit: int, version: int = 1, seq: int | None = None
    ) -> tuple[Claim, list[Recipient], bool] | None:
        """Claim the next batch and take its first group in one transaction.

        Returns (claim, group, more): `more` says whether pending recipients remain in the
        batch after this group. None when no batch is left.
        """
        with self.engine.begin() as conn:
            claim = self._claim(conn, issue_id, owner, version, seq)
            if claim is None:
                return None
            group, more = self._take(conn, claim, limit)
        return claim, group, more

    def take_group(self, claim: Claim, limit: int) -> tuple[list[Recipient], bool]:
        """The next `limit` recipients of a claimed batch, marked requesting, committed,
        and whether more remain after them."""
        with self.engine.begin() as conn:
            return self._take(conn, claim, limit)

    def _take(self, conn: sa.Connection, claim: Claim, limit: int) -> tuple[list[Recipient], bool]:
        # Whoever stopped being active since the snapshot is marked skipped in the same
        # transaction, so an unsubscribe that lands mid-send is honoured by every later group.
        batch = {"b_issue": claim.issue_id, "b_seq": claim.seq}
        at = now()
        active = SubscriberStatus.ACTIVE.value
        while True:
            # One more than needed: is there anything after this group?
            rows = conn.execute(self.pending_people, {**batch, "n": limit + 1}).all()
            more = len(rows) > limit
            rows = rows[:limit]
            if not rows:
                return [], False
            gone: dict[str, list[int]] = {}
            # Nearly everyone is active and unpaused: only the others are asked why.
            for row in [r for r in rows if r.status != active or r.paused_until is not None]:
                if why := _not_now(row, at):
                    gone.setdefault(why, []).append(row.id)
            if self.pending_people is not q.PENDING_PEOPLE:
                left = [r.id for r in rows if r.in_audience == 0 and not _not_now(r, at)]
                if left:
                    gone["left the audience"] = left
            for why, ids in gone.items():
                conn.execute(q.SKIP, {**batch, "gone": ids, "at": at, "why": why})
            if sum(map(len, gone.values())) < len(rows):
                break
            if not more:
                return [], False
        # The rows read are the batch's first pending ones by id, so the ones left pending
        # between the first and the last (or in the whole batch, if none come after) are
        # exactly the active ones read.
        taken = {**batch, "at": at, "b_version": claim.version}
        if more:
            conn.execute(q.REQUEST_RANGE, {**taken, "lo": rows[0].id, "hi": rows[-1].id})
        else:
            conn.execute(q.REQUEST_ALL, taken)
        conn.execute(q.BATCH_REQUESTING, {"b_id": claim.batch_id, "expires": at + LEASE, "at": at})
        group = [Recipient(row.id, row.email, row.name, row.nonce) for row in rows]
        if gone:
            skipped = {sid for ids in gone.values() for sid in ids}
            group = [r for r in group if r.key not in skipped]
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
        batch = {"b_issue": claim.issue_id, "b_seq": claim.seq, "at": at}
        with self.engine.begin() as conn:
            message_ids = set(outcome.sent.values())
            if len(message_ids) == 1 and len(outcome.sent) == group_size:
                # One request took the whole group (SendGrid). The claim is ours alone, so
                # every requesting row of the batch is this group: no id list needed.
                conn.execute(q.SENT_ALL, {**batch, "mid": message_ids.pop()[:200] or None})
            elif outcome.sent:  # a message id each (SMTP, the outbox): one executemany
                conn.execute(
                    q.SENT_EACH,
                    [{**batch, "sid": sid, "mid": mid[:200]} for sid, mid in outcome.sent.items()],
                )
            for state, reasons in (
                (RecipientState.FAILED, outcome.failed),
                (RecipientState.AMBIGUOUS, outcome.ambiguous),
            ):
                if reasons:
                    conn.execute(
                        q.ENDED_EACH,
                        [
                            {**batch, "sid": sid, "b_state": state.value, "err": err[:500]}
                            for sid, err in reasons.items()
                        ],
                    )
            for sid in outcome.bounced:
                change_status(
                    conn, sid, SubscriberStatus.BOUNCED, Actor.PROVIDER, "smtp: permanent failure"
                )
            if batch_message_id:
                conn.execute(
                    q.BATCH_MESSAGE_ID, {"b_id": claim.batch_id, "pmid": batch_message_id[:200]}
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
                        recipients.c.state == RecipientState.REQUESTING,
                        recipients.c.subscriber_id.in_(part),
                    )
                    .values(state=RecipientState.PENDING)
                )

    def release(self, claim: Claim, error: str | None = None) -> None:
        """Done with a batch: settle its final state, or hand its rest back as pending."""
        with self.engine.begin() as conn:
            self._settle(conn, claim.issue_id, claim.batch_id, claim.seq, error)

    def _settle(
        self, conn: sa.Connection, issue_id: int, batch_id: int, seq: int, error: str | None = None
    ) -> None:
        states: dict[str, int] = dict(
            conn.execute(q.STATES, {"b_issue": issue_id, "b_seq": seq}).all()
        )
        if states.get(RecipientState.PENDING):
            state = BatchState.PENDING
        elif states.get(RecipientState.AMBIGUOUS):
            state = BatchState.AMBIGUOUS
        elif states.get(RecipientState.FAILED):
            state = BatchState.FAILED
        else:
            state = BatchState.SENT
        values: dict[str, Any] = {"b_id": batch_id, "b_state": state.value, "at": now()}
        if error is None:
            conn.execute(q.SETTLE, values)
        else:
            conn.execute(q.SETTLE_WITH_ERROR, {**values, "b_error": error[:2000]})

    # -- reporting and retries ------------------------------------------------------------

    def counts(self, issue_id: int) -> LedgerCounts:
        """Recipients by state, erased people included as numbers."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(recipients.c.state, sa.func.count())
                .where(recipients.c.issue_id == issue_id)
                .group_by(recipients.c.state)
            ).all()
            by_state = erased_tally(conn, issue_id, "state")
        for s, n in rows:
            by_state[str(s)] = by_state.get(str(s), 0) + int(n)
        return LedgerCounts(**{s.value: by_state.get(s.value, 0) for s in RecipientState})

    def batch_counts(self, issue_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(batches.c.state, sa.func.count())
                .where(batches.c.issue_id == issue_id)
                .group_by(batches.c.state)
            ).all()
        return {str(s): int(n) for s, n in rows}

    def by_edition(self, issue_id: int) -> dict[str, int]:
        """Recipients by the language edition their batch gets ("": the main one)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(batches.c.edition, sa.func.count())
                .join(
                    recipients,
                    sa.and_(
                        recipients.c.issue_id == batches.c.issue_id,
                        recipients.c.batch_seq == batches.c.seq,
                    ),
                )
                .where(batches.c.issue_id == issue_id)
                .group_by(batches.c.edition)
                .order_by(batches.c.edition)
            ).all()
        return {str(e or ""): int(n) for e, n in rows}

    def skipped_because(self, issue_id: int) -> dict[str, int]:
        """Skipped recipients by why: no longer active, paused, left the audience."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(recipients.c.error, sa.func.count())
                .where(
                    recipients.c.issue_id == issue_id,
                    recipients.c.state == RecipientState.SKIPPED,
                )
                .group_by(recipients.c.error)
            ).all()
        return {str(e or "skipped"): int(n) for e, n in rows}

    def listed(
        self, issue_id: int, state: RecipientState, limit: int | None = None
    ) -> list[ListedRecipient]:
        """Recipients in one state (ambiguous, failed), by batch then id; all, or the first
        `limit`."""
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
        return [ListedRecipient(r.batch_seq, r.email, r.error or "") for r in rows]

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
                .values(state=RecipientState.PENDING, error=None)
            ).rowcount
            for part in _chunks(list(seqs), 500):
                conn.execute(
                    batches.update()
                    .where(
                        batches.c.issue_id == issue_id,
                        batches.c.seq.in_(part),
                        batches.c.state.in_(
                            [BatchState.SENT, BatchState.FAILED, BatchState.AMBIGUOUS]
                        ),
                    )
                    .values(state=BatchState.PENDING)
                )
        return int(n)


def _not_now(row: Any, at: dt.datetime) -> str:
    """Why a pending recipient is skipped now, or "" to send: no longer active, or paused
    until a later date."""
    if row.status != SubscriberStatus.ACTIVE:
        return "no longer active"
    if row.paused_until is not None and row.paused_until > at:
        return "paused"
    return ""


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

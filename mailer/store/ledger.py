"""The delivery ledger: who an issue goes to, and how far each recipient has got.

A batch moves pending → claimed (leased) → requesting → sent | failed | ambiguous, and so
does each recipient in it. The rule that makes sends exactly-once: a recipient is marked
`requesting` (committed) before any byte goes to the provider and `sent` after the
provider accepted it. A sender that dies in between leaves `requesting` rows, which
recovery turns into `ambiguous`: listed, never resent unless asked (--retry-ambiguous).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
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
    Snapshot,
    SubscriberStatus,
)
from mailer.store.owners import new_owner, owner_is_dead
from mailer.store.schema import batches, issue_versions, issues, recipients, subscribers
from mailer.store.subscribers import change_status, erased_tally, now
from mailer.tokens import issue_ref

LEASE = dt.timedelta(minutes=5)
R = RecipientState
B = BatchState
P = sa.bindparam

# The statements a send runs for every group, built once: building a Core statement and
# its cache key again for each group cost more than SQLite took to run it (a fifth of an
# SMTP send's CPU, whose groups are ten messages).
_IN_BATCH = (recipients.c.issue_id == P("b_issue"), recipients.c.batch_seq == P("b_seq"))
_PENDING_IN_BATCH = (*_IN_BATCH, recipients.c.state == R.PENDING)
_REQUESTING_IN_BATCH = (*_IN_BATCH, recipients.c.state == R.REQUESTING)
_NEXT_BATCH = (
    sa.select(batches.c.id, batches.c.seq)
    .where(batches.c.issue_id == P("b_issue"), batches.c.state == B.PENDING)
    .order_by(batches.c.seq)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_THIS_BATCH = _NEXT_BATCH.where(batches.c.seq == P("b_seq"))
_CLAIM = (
    batches.update()
    .where(batches.c.id == P("b_id"))
    .values(
        state=B.CLAIMED,
        lease_owner=P("owner"),
        lease_expires=P("expires"),
        attempts=batches.c.attempts + 1,
        updated_at=P("at"),
    )
)
_PENDING_PEOPLE = (
    sa.select(
        subscribers.c.id,
        subscribers.c.email,
        subscribers.c.name,
        subscribers.c.status,
        subscribers.c.nonce,
    )
    .join(recipients, recipients.c.subscriber_id == subscribers.c.id)
    .where(*_PENDING_IN_BATCH)
    .order_by(subscribers.c.id)
    .limit(P("n"))
)
_SKIP = (
    recipients.update()
    .where(*_PENDING_IN_BATCH, recipients.c.subscriber_id.in_(P("gone", expanding=True)))
    .values(state=R.SKIPPED, error="no longer active", updated_at=P("at"))
)
_REQUEST_ALL = (
    recipients.update()
    .where(*_PENDING_IN_BATCH)
    .values(state=R.REQUESTING, updated_at=P("at"), version=P("b_version"))
)
_REQUEST_RANGE = _REQUEST_ALL.where(recipients.c.subscriber_id.between(P("lo"), P("hi")))
_BATCH_REQUESTING = (
    batches.update()
    .where(batches.c.id == P("b_id"))
    .values(state=B.REQUESTING, lease_expires=P("expires"), updated_at=P("at"))
)
_SENT_ALL = (
    recipients.update()
    .where(*_REQUESTING_IN_BATCH)
    .values(state=R.SENT, message_id=P("mid"), updated_at=P("at"))
)
_SENT_THESE = _SENT_ALL.where(recipients.c.subscriber_id.in_(P("sids", expanding=True)))
_SENT_EACH = (  # executemany: a message id each (SMTP, outbox)
    recipients.update()
    .where(*_REQUESTING_IN_BATCH, recipients.c.subscriber_id == P("sid"))
    .values(state=R.SENT, message_id=P("mid"), updated_at=P("at"))
)
_ENDED_EACH = (  # executemany: failed or ambiguous, with the reason
    recipients.update()
    .where(*_REQUESTING_IN_BATCH, recipients.c.subscriber_id == P("sid"))
    .values(state=P("b_state"), error=P("err"), updated_at=P("at"))
)
_BATCH_MESSAGE_ID = (
    batches.update().where(batches.c.id == P("b_id")).values(provider_message_id=P("pmid"))
)
_STATES = (
    sa.select(recipients.c.state, sa.func.count()).where(*_IN_BATCH).group_by(recipients.c.state)
)
_SETTLE = (
    batches.update()
    .where(batches.c.id == P("b_id"))
    .values(state=P("b_state"), lease_owner=None, lease_expires=None, updated_at=P("at"))
)
_SETTLE_WITH_ERROR = _SETTLE.values(error=P("b_error"))


@dataclass(frozen=True)
class Claim:
    batch_id: int
    issue_id: int
    seq: int
    owner: str
    version: int = 1


@dataclass(frozen=True)
class Pinned:
    """An issue in the ledger and the version the rest of its list gets."""

    issue_id: int
    slug: str
    ref: int
    version: int
    message_nonce: str
    snapshot: Snapshot
    created: bool = False  # pinned by this call: the first send


class Ledger:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @staticmethod
    def new_owner() -> str:
        return new_owner()

    # -- issues ---------------------------------------------------------------------------

    def find(self, slug: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(issues).where(issues.c.slug == slug)).first()
        return dict(row._mapping) if row else None

    def pinned_issues(self) -> list[dict[str, Any]]:
        """Every issue with a pinned version, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(issues).where(issues.c.version.is_not(None)).order_by(issues.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def load(self, slug: str, version: int | None = None) -> Pinned | None:
        """The pinned issue by slug (its current version, or the one asked for)."""
        with self.engine.connect() as conn:
            return self._load(conn, slug, version)

    def _load(self, conn: sa.Connection, slug: str, version: int | None = None) -> Pinned | None:
        issue = conn.execute(sa.select(issues).where(issues.c.slug == slug)).first()
        if issue is None or issue.version is None:
            return None
        v = conn.execute(
            sa.select(issue_versions).where(
                issue_versions.c.issue_id == issue.id,
                issue_versions.c.version == (version or issue.version),
            )
        ).first()
        if v is None:
            return None
        snapshot = Snapshot(
            v.subject,
            v.preheader,
            v.html,
            v.text,
            dict(v.headers),
            v.source or "",
            web_html=v.web_html or "",
            archive=bool(v.archive),
            date=v.issue_date or "",
        )
        return Pinned(issue.id, slug, issue.ref, v.version, issue.message_nonce, snapshot)

    def versions(self, issue_id: int) -> list[dict[str, Any]]:
        """Each pinned version with how many recipients were sent it."""
        with self.engine.connect() as conn:
            sent: dict[int | None, int] = dict(
                conn.execute(
                    sa.select(recipients.c.version, sa.func.count())
                    .where(recipients.c.issue_id == issue_id, recipients.c.state == R.SENT)
                    .group_by(recipients.c.version)
                ).all()
            )
            rows = conn.execute(
                sa.select(
                    issue_versions.c.version,
                    issue_versions.c.content_hash,
                    issue_versions.c.source,
                    issue_versions.c.created_at,
                )
                .where(issue_versions.c.issue_id == issue_id)
                .order_by(issue_versions.c.version)
            ).all()
        return [
            {
                "version": r.version,
                "content_hash": r.content_hash[:12],
                "source": r.source,
                "pinned_at": r.created_at,
                "sent": int(sent.get(r.version, 0)),
            }
            for r in rows
        ]

    def pin(
        self, slug: str, snapshot: Snapshot, batch_size: int, enroll_all: bool = True
    ) -> Pinned:
        """The issue as the ledger holds it, pinning `snapshot` on the first call.

        The first call also snapshots the active list into recipients, in one INSERT ...
        SELECT inside the database: a million rows never pass through Python. Two first
        sends at once: one pins, the other finds its pin.
        """
        try:
            with self.engine.begin() as conn:
                found = self._load(conn, slug)
                if found is not None:
                    self.check_source(found, snapshot)
                    return found
                return self._create(conn, slug, snapshot, batch_size, enroll_all)
        except sa.exc.IntegrityError:
            with self.engine.connect() as conn:
                found = self._load(conn, slug)
            if found is None:
                raise
            self.check_source(found, snapshot)
            return found

    @staticmethod
    def check_source(found: Pinned, snapshot: Snapshot) -> None:
        """One slug, one issue file: another file that maps to it is refused, not skipped."""
        first = found.snapshot.source
        if first and snapshot.source and first != snapshot.source:
            raise InputError(
                f"{snapshot.source}: its slug {found.slug!r} belongs to {first}, already in "
                f"the ledger; give this issue its own 'slug:' in front matter"
            )

    def _create(
        self,
        conn: sa.Connection,
        slug: str,
        snapshot: Snapshot,
        batch_size: int,
        enroll_all: bool = True,
    ) -> Pinned:
        at = now()
        ref = issue_ref(slug)
        clash = conn.execute(sa.select(issues.c.slug).where(issues.c.ref == ref)).scalar()
        # The same slug here means another sender pinned it since this transaction's first
        # read (PostgreSQL reads each statement afresh): the INSERT below then fails on the
        # unique slug, and pin() reads that pin back.
        if clash is not None and clash != slug:
            raise InputError(
                f"issue slugs {clash!r} and {slug!r} share a link number; set another 'slug:'"
            )
        nonce = secrets.token_hex(8)
        issue_id = conn.execute(
            issues.insert().values(
                slug=slug,
                subject=snapshot.subject[:500],
                created_at=at,
                ref=ref,
                source=snapshot.source[:1000],
                version=1,
                message_nonce=nonce,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        self._add_version(conn, issue_id, 1, snapshot)
        if not enroll_all:  # a welcome mail: people are enrolled one by one (enroll)
            return Pinned(int(issue_id), slug, ref, 1, nonce, snapshot, created=True)
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
        return Pinned(int(issue_id), slug, ref, 1, nonce, snapshot, created=True)

    def repin(self, pinned: Pinned, snapshot: Snapshot) -> Pinned:
        """A deliberate --update-content: the rest of the list gets a new version."""
        with self.engine.begin() as conn:
            version = (
                conn.execute(
                    sa.select(sa.func.max(issue_versions.c.version)).where(
                        issue_versions.c.issue_id == pinned.issue_id
                    )
                ).scalar()
                or 0
            ) + 1
            self._add_version(conn, pinned.issue_id, version, snapshot)
            conn.execute(
                issues.update()
                .where(issues.c.id == pinned.issue_id)
                .values(version=version, subject=snapshot.subject[:500])
            )
        return Pinned(
            pinned.issue_id, pinned.slug, pinned.ref, version, pinned.message_nonce, snapshot
        )

    def enroll(self, issue_id: int, subscriber_id: int) -> int | None:
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
                        if there.state != R.PENDING:
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
                            issue_id=issue_id, seq=seq, state=B.PENDING, attempts=0, updated_at=at
                        )
                    )
                    conn.execute(
                        recipients.insert().values(
                            issue_id=issue_id,
                            subscriber_id=subscriber_id,
                            batch_seq=seq,
                            state=R.PENDING,
                        )
                    )
                    return int(seq)
            except sa.exc.IntegrityError:
                continue
        raise InputError("could not enroll a recipient: the ledger is too busy; try again")

    def latest(self, exclude: str = "") -> Pinned | None:
        """The most recently pinned issue but `exclude` (the welcome mail's slug)."""
        with self.engine.connect() as conn:
            slugs = conn.execute(
                sa.select(issues.c.slug)
                .where(issues.c.slug != exclude, issues.c.version.is_not(None))
                .order_by(issues.c.created_at.desc(), issues.c.id.desc())
                .limit(1)
            ).scalars()
            slug = next(iter(slugs), None)
            return self._load(conn, slug) if slug is not None else None

    @staticmethod
    def _add_version(conn: sa.Connection, issue_id: int, version: int, s: Snapshot) -> None:
        conn.execute(
            issue_versions.insert().values(
                issue_id=issue_id,
                version=version,
                content_hash=s.content_hash,
                subject=s.subject,
                preheader=s.preheader,
                html=s.html,
                text=s.text,
                headers=s.headers,
                source=s.source[:1000],
                created_at=now(),
                web_html=s.web_html or None,
                archive=s.archive,
                issue_date=s.date[:40],
            )
        )

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

    def claim(
        self, issue_id: int, owner: str, version: int = 1, seq: int | None = None
    ) -> Claim | None:
        with self.engine.begin() as conn:
            return self._claim(conn, issue_id, owner, version, seq)

    def _claim(
        self, conn: sa.Connection, issue_id: int, owner: str, version: int, seq: int | None = None
    ) -> Claim | None:
        which = _NEXT_BATCH if seq is None else _THIS_BATCH
        row = conn.execute(which, {"b_issue": issue_id, "b_seq": seq}).first()
        if row is None:
            return None
        at = now()
        conn.execute(_CLAIM, {"b_id": row.id, "owner": owner, "expires": at + LEASE, "at": at})
        return Claim(row.id, issue_id, row.seq, owner, version)

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
        batch = {"b_issue": claim.issue_id, "b_seq": claim.seq}
        at = now()
        active = SubscriberStatus.ACTIVE.value
        while True:
            # One more than needed: is there anything after this group?
            rows = conn.execute(_PENDING_PEOPLE, {**batch, "n": limit + 1}).all()
            more = len(rows) > limit
            rows = rows[:limit]
            if not rows:
                return [], False
            gone = [r[0] for r in rows if r[3] != active]
            if gone:
                conn.execute(_SKIP, {**batch, "gone": gone, "at": at})
            if len(gone) < len(rows):
                break
            if not more:
                return [], False
        # The rows read are the batch's first pending ones by id, so the ones left pending
        # between the first and the last (or in the whole batch, if none come after) are
        # exactly the active ones read.
        taken = {**batch, "at": at, "b_version": claim.version}
        if more:
            conn.execute(_REQUEST_RANGE, {**taken, "lo": rows[0][0], "hi": rows[-1][0]})
        else:
            conn.execute(_REQUEST_ALL, taken)
        conn.execute(_BATCH_REQUESTING, {"b_id": claim.batch_id, "expires": at + LEASE, "at": at})
        group = [Recipient(i, e, n, nonce) for i, e, n, status, nonce in rows if status == active]
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
            by_id: dict[str, list[int]] = defaultdict(list)
            for sid, mid in outcome.sent.items():
                by_id[mid].append(sid)
            if len(by_id) == 1 and len(outcome.sent) == group_size:
                # One request took the whole group (SendGrid). The claim is ours alone, so
                # every requesting row of the batch is this group: no id list needed.
                (mid,) = by_id
                conn.execute(_SENT_ALL, {**batch, "mid": mid[:200] or None})
            elif len(by_id) <= 2:
                for mid, sids in by_id.items():
                    for part in _chunks(sids, 500):
                        conn.execute(_SENT_THESE, {**batch, "mid": mid[:200] or None, "sids": part})
            elif outcome.sent:  # an id per message (SMTP, outbox): one executemany
                conn.execute(
                    _SENT_EACH,
                    [{**batch, "sid": sid, "mid": mid[:200]} for sid, mid in outcome.sent.items()],
                )
            for state, reasons in ((R.FAILED, outcome.failed), (R.AMBIGUOUS, outcome.ambiguous)):
                if reasons:
                    conn.execute(
                        _ENDED_EACH,
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
                    _BATCH_MESSAGE_ID, {"b_id": claim.batch_id, "pmid": batch_message_id[:200]}
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
            conn.execute(_STATES, {"b_issue": issue_id, "b_seq": seq}).all()
        )
        if states.get(R.PENDING):
            state = B.PENDING
        elif states.get(R.AMBIGUOUS):
            state = B.AMBIGUOUS
        elif states.get(R.FAILED):
            state = B.FAILED
        else:
            state = B.SENT
        values: dict[str, Any] = {"b_id": batch_id, "b_state": state.value, "at": now()}
        if error is None:
            conn.execute(_SETTLE, values)
        else:
            conn.execute(_SETTLE_WITH_ERROR, {**values, "b_error": error[:2000]})

    # -- reporting and retries ------------------------------------------------------------

    def counts(self, issue_id: int) -> dict[str, int]:
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

    def count_state(self, issue_id: int, state: RecipientState) -> int:
        with self.engine.connect() as conn:
            n = conn.execute(
                sa.select(sa.func.count()).where(
                    recipients.c.issue_id == issue_id, recipients.c.state == state
                )
            ).scalar()
        return int(n or 0)

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

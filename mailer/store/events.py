"""The events table and the lookups reports need, a batch at a time.

What a report may do is decided in feedback/; this module only reads and writes: which
event ids are recorded already, who the ids and addresses of a batch are, which issues
exist, whether the ledger sent a person an issue, the events themselves (one statement a
batch, duplicates dropped by the unique key), soft-bounce streaks, and settling
ambiguous recipients that a provider says it took.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from mailer.models import Actor, BatchState, EventType, RecipientState, SubscriberStatus
from mailer.store.batch import insert_many, one_of
from mailer.store.erasure import erased_tally
from mailer.store.schema import (
    batches,
    events,
    issues,
    recipients,
    subscriber_topics,
    subscribers,
)
from mailer.store.subscribers import change_status, now

Split = dict[str, dict[str, int]]  # group (edition or topic) -> {recipients, sent, event: n}


def keys_by_id(conn: sa.Connection, ids: Collection[int]) -> dict[int, str]:
    """{subscriber id: address key} for the ids that exist."""
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(subscribers.c.id, subscribers.c.email_key).where(
            one_of(conn, subscribers.c.id, ids)
        )
    )
    return dict(rows.all())


def ids_by_key(conn: sa.Connection, keys: Collection[str]) -> dict[str, int]:
    """{address key: subscriber id} for the addresses on the list."""
    if not keys:
        return {}
    rows = conn.execute(
        sa.select(subscribers.c.email_key, subscribers.c.id).where(
            one_of(conn, subscribers.c.email_key, keys)
        )
    )
    return dict(rows.all())


def existing_issues(conn: sa.Connection, ids: Collection[int]) -> set[int]:
    if not ids:
        return set()
    return set(conn.execute(sa.select(issues.c.id).where(one_of(conn, issues.c.id, ids))).scalars())


def issues_by_nonce(conn: sa.Connection, nonces: Collection[str]) -> dict[str, int]:
    """{Message-ID nonce: issue id}."""
    if not nonces:
        return {}
    rows = conn.execute(
        sa.select(issues.c.message_nonce, issues.c.id).where(
            one_of(conn, issues.c.message_nonce, nonces)
        )
    )
    return dict(rows.all())


# States in which a message may have reached the person: what a report can concern.
_WENT_OUT = (RecipientState.SENT, RecipientState.AMBIGUOUS, RecipientState.REQUESTING)


def was_sent(conn: sa.Connection, issue_id: int, subscriber_id: int) -> bool:
    """Did the ledger send (or may it have sent) this issue to this person?"""
    state = conn.execute(
        sa.select(recipients.c.state).where(
            recipients.c.issue_id == issue_id, recipients.c.subscriber_id == subscriber_id
        )
    ).scalar()
    return state in _WENT_OUT


def recorded(conn: sa.Connection, event_ids: Collection[str]) -> set[str]:
    """Which of these provider event ids are recorded already."""
    if not event_ids:
        return set()
    column = events.c.provider_event_id
    return set(conn.execute(sa.select(column).where(one_of(conn, column, event_ids))).scalars())


# An event as `record` takes it: values in this order.
COLUMNS = ("provider_event_id", "issue_id", "subscriber_id", "type", "at", "url", "data")


def record(conn: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """Insert events (values in COLUMNS order), a statement for the lot, and return the
    provider ids that were recorded before (replays: their rows are not inserted again).

    A batch of new events, the common case, costs the insert alone: the database's count
    of the rows it inserted says they all went in. Only when it does not, the insert is
    rolled back to a savepoint, the ids recorded before are looked up, and the rest go in.
    """
    if not rows:
        return set()
    key = events.c.provider_event_id
    with conn.begin_nested() as savepoint:
        if insert_many(conn, events, COLUMNS, rows, skip_conflicts_on=key) == len(rows):
            return set()
        savepoint.rollback()
    before = recorded(conn, {r[0] for r in rows if r[0] is not None})
    # One that another server records meanwhile is dropped by the unique key.
    insert_many(conn, events, COLUMNS, [r for r in rows if r[0] not in before], key)
    return before


def soft_streak(conn: sa.Connection, subscriber_id: int, limit: int) -> bool:
    """Did each of the last `limit` issues sent to this person bounce (softly or not)?"""
    last = (
        conn.execute(
            sa.select(recipients.c.issue_id)
            .where(
                recipients.c.subscriber_id == subscriber_id,
                recipients.c.state == RecipientState.SENT,
            )
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
            events.c.subscriber_id == subscriber_id,
            events.c.issue_id.in_(last),
            events.c.type.in_([EventType.SOFT_BOUNCED.value, EventType.BOUNCED.value]),
        )
    ).scalar()
    return int(bounced or 0) == limit


# Batches that may hold an ambiguous recipient: a batch settled sent or failed holds none.
_UNSETTLED = (BatchState.AMBIGUOUS, BatchState.PENDING, BatchState.CLAIMED, BatchState.REQUESTING)


def settle(conn: sa.Connection, issue_id: int, subscriber_ids: Iterable[int], why: str) -> int:
    """Ambiguous recipients of an issue that the provider says it took are sent after all.
    An issue whose batches all settled sent or failed (almost every one) costs one
    indexed look."""
    if not conn.execute(
        sa.select(batches.c.id)
        .where(batches.c.issue_id == issue_id, batches.c.state.in_(_UNSETTLED))
        .limit(1)
    ).first():
        return 0
    return int(
        conn.execute(
            recipients.update()
            .where(
                recipients.c.issue_id == issue_id,
                one_of(conn, recipients.c.subscriber_id, set(subscriber_ids)),
                recipients.c.state == RecipientState.AMBIGUOUS,
            )
            .values(state=RecipientState.SENT, error=why[:500])
        ).rowcount
    )


def suppress(
    conn: sa.Connection, subscriber_id: int, status: SubscriberStatus, reason: str
) -> bool:
    """A machine's report raises a suppression, under the one status policy."""
    return change_status(conn, subscriber_id, status, Actor.PROVIDER, reason)


class Events:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def one_click_unsubscribe(self, subscriber_id: int, issue_ref: int) -> bool:
        """The person's own unsubscribe link: status and event in one transaction, so the
        report counts them once whichever way (link, provider) they left."""
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.select(issues.c.id, issues.c.slug).where(issues.c.ref == issue_ref)
            ).first()
            issue_id, slug = (found[0], found[1]) if found is not None else (None, None)
            # The history names the issue as the owner knows it (a welcome or confirmation
            # link has no pinned issue).
            changed = change_status(
                conn,
                subscriber_id,
                SubscriberStatus.UNSUBSCRIBED,
                Actor.ONE_CLICK,
                f"issue {slug}" if slug else "a link outside any issue",
            )
            if changed:
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

    def engagement(self, issue_id: int) -> dict[str, int]:
        """{event type: how many people it happened to} for an issue, erased people
        included as numbers."""
        with self.engine.connect() as conn:
            people = sa.func.count(sa.distinct(events.c.subscriber_id))
            rows = conn.execute(
                sa.select(events.c.type, people)
                .where(events.c.issue_id == issue_id)
                .group_by(events.c.type)
            ).all()
            counts = {str(kind): int(n) for kind, n in rows}
            for kind, n in erased_tally(conn, issue_id, "event").items():
                counts[kind] = counts.get(kind, 0) + n
        return counts

    def by_audience(self, issue_id: int) -> tuple[Split, Split]:
        """The issue's recipients, sent and events (people each) split by language edition
        ("" the main one) and by topic (the readers' topics now; erased people are gone
        from both, counted only in the totals)."""
        edition = (
            sa.select(recipients.c.subscriber_id, recipients.c.state, batches.c.edition)
            .join(
                batches,
                (batches.c.issue_id == recipients.c.issue_id)
                & (batches.c.seq == recipients.c.batch_seq),
            )
            .where(recipients.c.issue_id == issue_id)
            .subquery()
        )
        topic = (
            sa.select(recipients.c.subscriber_id, recipients.c.state, subscriber_topics.c.topic)
            .join(
                subscriber_topics, subscriber_topics.c.subscriber_id == recipients.c.subscriber_id
            )
            .where(recipients.c.issue_id == issue_id)
            .subquery()
        )
        with self.engine.connect() as conn:
            return (
                _split(conn, issue_id, edition, edition.c.edition),
                _split(conn, issue_id, topic, topic.c.topic),
            )

    def top_links(self, issue_id: int, limit: int) -> list[tuple[str, int]]:
        """(link, how many people clicked it), most first."""
        people = sa.func.count(sa.distinct(events.c.subscriber_id)).label("people")
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.url, people)
                .where(
                    events.c.issue_id == issue_id,
                    events.c.type == EventType.CLICKED,
                    events.c.url.is_not(None),
                )
                .group_by(events.c.url)
                .order_by(sa.desc("people"), events.c.url)
                .limit(limit)
            ).all()
        return [(str(url), int(n)) for url, n in rows]


def _split(conn: sa.Connection, issue_id: int, people: Any, group: Any) -> Split:
    """For each group of the issue's recipients: how many, how many sent, and how many
    people each event happened to."""
    found: Split = {}
    sent = sa.func.sum(sa.case((people.c.state == RecipientState.SENT, 1), else_=0))
    for key, n, n_sent in conn.execute(
        sa.select(group, sa.func.count(), sent).group_by(group).order_by(group)
    ):
        found[str(key or "")] = {"recipients": int(n), "sent": int(n_sent or 0)}
    distinct = sa.func.count(sa.distinct(events.c.subscriber_id))
    rows = conn.execute(
        sa.select(group, events.c.type, distinct)
        .join(
            events,
            (events.c.subscriber_id == people.c.subscriber_id) & (events.c.issue_id == issue_id),
        )
        .group_by(group, events.c.type)
    )
    for key, kind, n in rows:
        found.setdefault(str(key or ""), {"recipients": 0, "sent": 0})[str(kind)] = int(n)
    return found

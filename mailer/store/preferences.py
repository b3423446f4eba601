"""A reader's choices besides their status: topics, language, a pause, their name.

Every change is written with a history row (status_changes, the status unchanged) naming
what changed and who changed it, like a status change: `subscribers show` lists both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa

from mailer.errors import InputError
from mailer.store.schema import status_changes, subscriber_topics, subscribers
from mailer.store.subscribers import (
    COLUMNS,
    Subscriber,
    clean_name,
    now,
    one_subscriber,
    topics_of,
)


@dataclass(frozen=True)
class Choices:
    """What a reader (or the owner) asks to change; None leaves a choice as it is."""

    topics: frozenset[str] | None = None
    language: str | None = None  # "" means the list's language
    paused_until: dt.datetime | None = None
    resume: bool = False  # clear a pause
    name: str | None = None


def set_topics(conn: sa.Connection, subscriber_id: int, topics: Collection[str]) -> bool:
    """Replace someone's topics; True if they changed."""
    old = set(topics_of(conn, [subscriber_id]).get(subscriber_id, ()))
    new = set(topics)
    if old == new:
        return False
    gone, added = old - new, new - old
    if gone:
        conn.execute(
            subscriber_topics.delete().where(
                subscriber_topics.c.subscriber_id == subscriber_id,
                subscriber_topics.c.topic.in_(sorted(gone)),
            )
        )
    if added:
        conn.execute(
            subscriber_topics.insert(),
            [{"subscriber_id": subscriber_id, "topic": t} for t in sorted(added)],
        )
    return True


def apply_choices(conn: sa.Connection, subscriber_id: int, c: Choices, source: str) -> list[str]:
    """Apply `c` in the caller's transaction, with one history row; what changed, in words."""
    row = conn.execute(
        sa.select(
            subscribers.c.status,
            subscribers.c.language,
            subscribers.c.paused_until,
            subscribers.c.name,
        )
        .where(subscribers.c.id == subscriber_id)
        .with_for_update()
    ).first()
    if row is None:
        return []
    changed: list[str] = []
    values: dict[str, object] = {}
    if c.topics is not None and set_topics(conn, subscriber_id, c.topics):
        changed.append("topics " + (", ".join(sorted(c.topics)) or "none"))
    if c.language is not None and (c.language or None) != row.language:
        values["language"] = c.language or None
        changed.append(f"language {c.language or 'the list’s'}")
    if c.resume and row.paused_until is not None:
        values["paused_until"] = None
        changed.append("pause ended")
    elif c.paused_until is not None and c.paused_until != row.paused_until:
        values["paused_until"] = c.paused_until
        changed.append(f"paused until {c.paused_until:%Y-%m-%d}")
    if c.name is not None and clean_name(c.name) != row.name:
        values["name"] = clean_name(c.name)
        changed.append("name")
    if not changed:
        return []
    at = now()
    conn.execute(
        subscribers.update()
        .where(subscribers.c.id == subscriber_id)
        .values(updated_at=at, **values)
    )
    conn.execute(
        status_changes.insert().values(
            subscriber_id=subscriber_id,
            old_status=row.status,
            new_status=row.status,
            reason=f"{source}: {'; '.join(changed)}"[:200],
            at=at,
        )
    )
    return changed


class Preferences:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def change(self, subscriber_id: int, c: Choices, source: str) -> tuple[Subscriber, list[str]]:
        """Apply `c` to one subscriber; the subscriber after, and what changed."""
        with self.engine.begin() as conn:
            changed = apply_choices(conn, subscriber_id, c, source)
            row = conn.execute(sa.select(*COLUMNS).where(subscribers.c.id == subscriber_id))
            found = one_subscriber(conn, row.first())
        if found is None:
            raise InputError("that subscriber no longer exists")
        return found, changed

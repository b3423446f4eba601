"""Subscribers: add, look up, change status (with history), list, erase."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mailer import addresses
from mailer.content.placeholders import clean_text
from mailer.errors import InputError
from mailer.models import SUPPRESSED, Recipient, SubscriberStatus
from mailer.store.schema import erasures, status_changes, subscribers

NAME_MAX = 200


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def clean_name(name: str | None) -> str:
    return clean_text(name or "")[:NAME_MAX]


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: str
    attributes: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    consent_source: str | None
    consent_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Subscriber:
        m = row._mapping
        return cls(**{k: m[k] for k in cls.__dataclass_fields__})


COLUMNS = [subscribers.c[name] for name in Subscriber.__dataclass_fields__]


def change_status(
    conn: sa.Connection, subscriber_id: int, old: str | None, new: str, reason: str
) -> bool:
    """Move one subscriber to a new status and record why, in the caller's transaction."""
    if old == new:
        return False
    at = now()
    conn.execute(
        subscribers.update()
        .where(subscribers.c.id == subscriber_id)
        .values(status=new, updated_at=at)
    )
    conn.execute(
        status_changes.insert().values(
            subscriber_id=subscriber_id,
            old_status=old,
            new_status=new,
            reason=reason[:200],
            at=at,
        )
    )
    return True


class Subscribers:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get(self, email: str) -> Subscriber | None:
        key = addresses.key(_normalize(email))
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*COLUMNS).where(subscribers.c.email_key == key)).first()
        return Subscriber.from_row(row) if row else None

    def require(self, email: str) -> Subscriber:
        found = self.get(email)
        if found is None:
            raise InputError(f"no subscriber {email}; see 'mailer subscribers list'")
        return found

    def recipient(self, email: str) -> Recipient:
        s = self.require(email)
        return Recipient(s.id, s.email, s.name)

    def by_id(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*COLUMNS).where(subscribers.c.id == subscriber_id)).first()
        return Subscriber.from_row(row) if row else None

    def add(
        self,
        email: str,
        name: str = "",
        *,
        status: SubscriberStatus = SubscriberStatus.ACTIVE,
        source: str = "cli",
        ip: str | None = None,
        user_agent: str | None = None,
        allow_erased: bool = False,
    ) -> tuple[Subscriber, bool]:
        """Add one subscriber. Returns (subscriber, created). Never reactivates anyone."""
        normalized = _normalize(email)
        key = addresses.key(normalized)
        at = now()
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(*COLUMNS).where(subscribers.c.email_key == key)
            ).first()
            if existing is not None:
                return Subscriber.from_row(existing), False
            if not allow_erased and _is_erased(conn, normalized):
                raise InputError(
                    f"{normalized} asked to be forgotten (erased); pass --allow-erased "
                    "only if they have subscribed again"
                )
            conn.execute(
                subscribers.insert().values(
                    email=normalized,
                    email_key=key,
                    name=clean_name(name),
                    status=status,
                    attributes={},
                    consent_source=source[:200],
                    consent_at=at,
                    consent_ip=ip,
                    consent_user_agent=(user_agent or None) and user_agent[:400],
                    created_at=at,
                    updated_at=at,
                )
            )
            row = conn.execute(sa.select(*COLUMNS).where(subscribers.c.email_key == key)).one()
        return Subscriber.from_row(row), True

    def set_status(self, subscriber_id: int, new: SubscriberStatus, reason: str) -> bool:
        """Change a status by id; suppression is never undone here. True if it changed."""
        with self.engine.begin() as conn:
            old = conn.execute(
                sa.select(subscribers.c.status).where(subscribers.c.id == subscriber_id)
            ).scalar()
            if old is None:
                return False
            if old in SUPPRESSED and new not in SUPPRESSED:
                return False
            return change_status(conn, subscriber_id, old, new, reason)

    def unsubscribe(self, email: str, reason: str = "cli") -> bool:
        s = self.require(email)
        return self.set_status(s.id, SubscriberStatus.UNSUBSCRIBED, reason)

    def resubscribe(self, subscriber_id: int, reason: str, ip: str | None, ua: str | None) -> bool:
        """A person's own, recorded choice: the one way back from unsubscribed."""
        return self._activate(subscriber_id, SubscriberStatus.UNSUBSCRIBED, reason, reason, ip, ua)

    def confirm(self, subscriber_id: int, ip: str | None, ua: str | None) -> bool:
        """Double opt-in: pending → active, with the consent that made it so."""
        return self._activate(
            subscriber_id,
            SubscriberStatus.PENDING,
            "web:confirm",
            "double opt-in confirmed",
            ip,
            ua,
        )

    def _activate(
        self,
        subscriber_id: int,
        expected: SubscriberStatus,
        source: str,
        reason: str,
        ip: str | None,
        ua: str | None,
    ) -> bool:
        """expected → active, recording the consent (source, time, IP, user agent) with it."""
        with self.engine.begin() as conn:
            old = conn.execute(
                sa.select(subscribers.c.status).where(subscribers.c.id == subscriber_id)
            ).scalar()
            if old != expected:
                return False
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id)
                .values(
                    consent_source=source, consent_at=now(), consent_ip=ip, consent_user_agent=ua
                )
            )
            return change_status(conn, subscriber_id, old, SubscriberStatus.ACTIVE, reason)

    def count(self, status: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(subscribers)
        if status:
            q = q.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def iter(self, status: str | None = None, page: int = 2000) -> Iterator[Subscriber]:
        """Every subscriber in id order, a page at a time (keyset), never the whole list."""
        last = 0
        while True:
            q = sa.select(*COLUMNS).where(subscribers.c.id > last)
            if status:
                q = q.where(subscribers.c.status == status)
            with self.engine.connect() as conn:
                rows = conn.execute(q.order_by(subscribers.c.id).limit(page)).all()
            for row in rows:
                yield Subscriber.from_row(row)
            if len(rows) < page:
                return
            last = rows[-1].id

    def history(self, subscriber_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(status_changes)
                .where(status_changes.c.subscriber_id == subscriber_id)
                .order_by(status_changes.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def erase(self, email: str) -> None:
        """Forget a person (GDPR): delete their data, keep only a one-way hash of the address."""
        s = self.require(email)
        with self.engine.begin() as conn:
            conn.execute(subscribers.delete().where(subscribers.c.id == s.id))
            h = addresses.erasure_hash(s.email)
            if not conn.execute(
                sa.select(erasures.c.email_hash).where(erasures.c.email_hash == h)
            ).first():
                conn.execute(erasures.insert().values(email_hash=h, erased_at=now()))


def _normalize(email: str) -> str:
    try:
        return addresses.normalize(email)
    except addresses.InvalidAddress as e:
        raise InputError(f"invalid email address {email!r}: {e}") from None


def _is_erased(conn: sa.Connection, normalized: str) -> bool:
    h = addresses.erasure_hash(normalized)
    return (
        conn.execute(sa.select(erasures.c.email_hash).where(erasures.c.email_hash == h)).first()
        is not None
    )

"""Subscribers: add, look up, change status (the one place, under the one policy), erase."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from mailer import addresses, languages
from mailer.audience import Audience
from mailer.errors import InputError
from mailer.models import Actor, Recipient, SubscriberStatus, may_change
from mailer.store.audience import effective_language, where
from mailer.store.erasure import forget, is_erased
from mailer.store.schema import (
    mail_queue,
    status_changes,
    subscriber_topics,
    subscribers,
)
from mailer.text import clean_text

NAME_MAX = 200
CONFIRM_EVERY = dt.timedelta(days=1)  # at most one confirmation mail a day per address
LINK_EVERY = dt.timedelta(hours=1)  # at most one preference-page link an hour


@dataclass(frozen=True)
class Selection:
    """Subscribers an audience expression picks (the list's language for those without one)."""

    audience: Audience
    default_language: str

    def condition(self) -> sa.ColumnElement[bool]:
        return where(self.audience, self.default_language)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_nonce() -> int:
    """A subscriber's random link secret: 62 bits, positive in every database's BIGINT."""
    return secrets.randbits(62) or 1


def new_nonces(n: int) -> list[int]:
    """n of them from one read of the system's random source (an import makes thousands
    at a time; one getrandom call each was a twentieth of its time)."""
    data = secrets.token_bytes(8 * n)
    return [(int.from_bytes(data[i : i + 8], "little") >> 2) or 1 for i in range(0, 8 * n, 8)]


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
    nonce: int
    language: str | None  # None: the list's
    paused_until: dt.datetime | None
    topics: tuple[str, ...] = ()  # sorted; from subscriber_topics

    @classmethod
    def from_row(cls, row: Any, topics: tuple[str, ...] = ()) -> Subscriber:
        m = row._mapping
        return cls(**{k: m[k] for k in ROW_FIELDS}, topics=topics)

    def paused(self, at: dt.datetime) -> bool:
        return self.paused_until is not None and self.paused_until > at

    @property
    def recipient(self) -> Recipient:
        return Recipient(self.id, self.email, self.name, self.nonce)


ROW_FIELDS = [name for name in Subscriber.__dataclass_fields__ if name != "topics"]
COLUMNS = [subscribers.c[name] for name in ROW_FIELDS]


def topics_of(conn: sa.Connection, ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Each of these subscribers' topics, sorted, in one query."""
    found: dict[int, list[str]] = {}
    if ids:
        rows = conn.execute(
            sa.select(subscriber_topics.c.subscriber_id, subscriber_topics.c.topic)
            .where(subscriber_topics.c.subscriber_id.in_(ids))
            .order_by(subscriber_topics.c.subscriber_id, subscriber_topics.c.topic)
        )
        for sid, topic in rows:
            found.setdefault(sid, []).append(topic)
    return {sid: tuple(t) for sid, t in found.items()}


def one_subscriber(conn: sa.Connection, row: Any) -> Subscriber | None:
    if row is None:
        return None
    return Subscriber.from_row(row, topics_of(conn, [row.id]).get(row.id, ()))


def change_status(
    conn: sa.Connection, subscriber_id: int, new: SubscriberStatus, actor: Actor, reason: str
) -> bool:
    """The one place a status changes: under `models.may_change`, with its history row.

    Runs in the caller's transaction; the row is locked first so two changes of one
    person are decided one after the other. True if the status changed.
    """
    old = conn.execute(
        sa.select(subscribers.c.status).where(subscribers.c.id == subscriber_id).with_for_update()
    ).scalar()
    if old is None or not may_change(old, new, actor):
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
            reason=f"{actor.value}: {reason}"[:200],
            at=at,
        )
    )
    return True


@dataclass(frozen=True)
class Reach:
    """Whom an audience holds among the active now: how many get mail, how many are
    paused, and how those going split between the language editions ("" the main one)."""

    total: int
    paused: int
    by_edition: dict[str, int]
    imported_unmailed: int = 0  # of those going: imported since the last send, never mailed


class Confirmed(StrEnum):
    """What a confirmation link did."""

    CONFIRMED = "confirmed"
    ALREADY = "already"  # active already; nothing to do
    STALE = "stale"  # used, replaced by a newer request, or never issued


class Subscribers:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get(self, email: str) -> Subscriber | None:
        key = addresses.key(_normalize(email))
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*COLUMNS).where(subscribers.c.email_key == key)).first()
            return one_subscriber(conn, row)

    def require(self, email: str) -> Subscriber:
        found = self.get(email)
        if found is None:
            raise InputError(f"no subscriber {email}; see 'mailer subscribers list'")
        return found

    def recipient(self, email: str) -> Recipient:
        return self.require(email).recipient

    def by_id(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*COLUMNS).where(subscribers.c.id == subscriber_id)).first()
            return one_subscriber(conn, row)

    def by_token(self, subscriber_id: int, nonce: int) -> Subscriber | None:
        """The subscriber a link names, if that person still exists: the nonce must match."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(*COLUMNS).where(
                    subscribers.c.id == subscriber_id, subscribers.c.nonce == nonce
                )
            ).first()
            return one_subscriber(conn, row)

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
        """Add one subscriber. Returns (subscriber, created). Never changes an existing one."""
        normalized = _normalize(email)
        key = addresses.key(normalized)
        at = now()
        select = sa.select(*COLUMNS).where(subscribers.c.email_key == key)
        with self.engine.begin() as conn:
            existing = conn.execute(select).first()
            if existing is not None:
                return one_subscriber(conn, existing) or Subscriber.from_row(existing), False
            if not allow_erased and is_erased(conn, normalized):
                raise InputError(
                    f"{normalized} asked to be forgotten (erased); pass --allow-erased "
                    "only if they have subscribed again"
                )
            try:
                with conn.begin_nested():
                    conn.execute(
                        subscribers.insert().values(
                            email=normalized,
                            email_key=key,
                            name=clean_name(name),
                            status=status,
                            attributes={},
                            consent_source=source[:200],
                            consent_at=at,
                            consent_ip=(ip or None) and ip[:64],
                            consent_user_agent=(user_agent or None) and user_agent[:400],
                            created_at=at,
                            updated_at=at,
                            nonce=new_nonce(),
                        )
                    )
            except sa.exc.IntegrityError:  # the same address, added a moment ago elsewhere
                return one_subscriber(conn, conn.execute(select).one()) or _gone(), False
            row = conn.execute(select).one()
        return Subscriber.from_row(row), True

    def set_status(
        self, subscriber_id: int, new: SubscriberStatus, actor: Actor, reason: str
    ) -> bool:
        """Change a status by id, if the policy allows it. True if it changed."""
        with self.engine.begin() as conn:
            return change_status(conn, subscriber_id, new, actor, reason)

    def unsubscribe(self, email: str, reason: str = "cli") -> bool:
        s = self.require(email)
        return self.set_status(s.id, SubscriberStatus.UNSUBSCRIBED, Actor.OWNER, reason)

    def resubscribe(self, email: str, reason: str = "cli") -> bool:
        """The owner's explicit, recorded choice to mail someone again."""
        s = self.require(email)
        with self.engine.begin() as conn:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == s.id)
                .values(consent_source=f"owner:{reason}"[:200], consent_at=now())
            )
            return change_status(conn, s.id, SubscriberStatus.ACTIVE, Actor.OWNER, reason)

    def request_confirmation(
        self, subscriber_id: int, requested: dict[str, Any] | None = None, job: int = 0
    ) -> int | None:
        """A fresh one-time confirmation nonce (replacing any older one), with what the
        form asked for (topics, language) kept for the confirmation to apply; or None when
        the person is active already, or was sent a confirmation in the last day that they
        have not used: however many sign-ups name an address, its inbox gets one a day.
        `job`: the queued mail asking; its own retry after a crash may take the slot again."""
        nonce = new_nonce()
        at = now()
        with self.engine.begin() as conn:
            n = conn.execute(
                subscribers.update()
                .where(
                    subscribers.c.id == subscriber_id,
                    subscribers.c.status != SubscriberStatus.ACTIVE,
                    sa.or_(
                        subscribers.c.confirm_sent_at.is_(None),
                        subscribers.c.confirm_sent_at <= at - CONFIRM_EVERY,
                        subscribers.c.confirm_job == (job or -1),
                    ),
                )
                .values(
                    confirm_nonce=nonce, confirm_sent_at=at, confirm_job=job, requested=requested
                )
            ).rowcount
        return nonce if n else None

    def confirmation_not_sent(self, subscriber_id: int) -> None:
        """The confirmation just requested could not be sent: its retry may go today."""
        with self.engine.begin() as conn:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id)
                .values(confirm_sent_at=None)
            )

    def link_not_sent(self, subscriber_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id)
                .values(link_sent_at=None)
            )

    def request_link(self, subscriber_id: int, job: int = 0) -> bool:
        """Whether a preference-page link may be mailed now (one an hour, or the retry of
        the queued mail that took the slot), noting it."""
        at = now()
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    subscribers.update()
                    .where(
                        subscribers.c.id == subscriber_id,
                        sa.or_(
                            subscribers.c.link_sent_at.is_(None),
                            subscribers.c.link_sent_at <= at - LINK_EVERY,
                            subscribers.c.link_job == (job or -1),
                        ),
                    )
                    .values(link_sent_at=at, link_job=job)
                ).rowcount
            )

    def confirm(
        self, subscriber_id: int, nonce: int, confirm_nonce: int, ip: str | None, ua: str | None
    ) -> Confirmed:
        """Double opt-in: the person clicked the newest confirmation sent to them."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(
                    subscribers.c.status, subscribers.c.confirm_nonce, subscribers.c.requested
                )
                .where(subscribers.c.id == subscriber_id, subscribers.c.nonce == nonce)
                .with_for_update()
            ).first()
            if row is None:
                return Confirmed.STALE
            if row.status == SubscriberStatus.ACTIVE:
                return Confirmed.ALREADY
            if row.confirm_nonce is None or row.confirm_nonce != confirm_nonce:
                return Confirmed.STALE
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id)
                .values(
                    confirm_nonce=None,
                    requested=None,
                    # They proved the address is theirs: the one-a-day limit, which guards
                    # inboxes of people who never asked, starts afresh.
                    confirm_sent_at=None,
                    consent_source="web:confirm",
                    consent_at=now(),
                    consent_ip=(ip or None) and ip[:64],
                    consent_user_agent=(ua or None) and ua[:400],
                )
            )
            change_status(
                conn, subscriber_id, SubscriberStatus.ACTIVE, Actor.CONFIRMED, "double opt-in"
            )
            if row.requested:  # what the form asked for, now that the person confirmed it
                # imported here: preferences builds on this module (Subscriber, topics_of)
                from mailer.store.preferences import Choices, apply_choices

                asked = row.requested
                apply_choices(
                    conn,
                    subscriber_id,
                    Choices(
                        topics=frozenset(asked["topics"]) if "topics" in asked else None,
                        language=asked.get("language"),
                    ),
                    "web:confirm",
                )
            # The welcome, in the same transaction: confirmed means it is queued. The mail
            # queue decides whether there is one to send (a welcome file, welcome_latest).
            at = now()
            conn.execute(
                mail_queue.insert().values(
                    kind="welcome", subscriber_id=subscriber_id, created_at=at, next_at=at
                )
            )
        return Confirmed.CONFIRMED

    def count(self, status: str | None = None, where: Selection | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(subscribers)
        if status:
            q = q.where(subscribers.c.status == status)
        if where is not None:
            q = q.where(where.condition())
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def reach(
        self,
        selection: Selection,
        at: dt.datetime,
        editions: list[str],
        last_sent: dt.datetime | None = None,
    ) -> Reach:
        """What a first send with this audience would pin now (store/snapshot.snapshot_list
        decides the same way, in SQL), and how many of them were imported since the last
        send (`last_sent`; None: ever), so never mailed: counted in the same pass."""
        paused = sa.and_(subscribers.c.paused_until.is_not(None), subscribers.c.paused_until > at)
        imported: sa.ColumnElement[bool] = subscribers.c.consent_source.like("import:%")
        if last_sent is not None:
            imported = sa.and_(imported, subscribers.c.created_at > last_sent)
        people = sa.select(
            effective_language(selection.default_language).label("language"),
            sa.case((paused, 1), else_=0).label("paused"),
            sa.case((imported, 1), else_=0).label("imported"),
        ).where(subscribers.c.status == SubscriberStatus.ACTIVE)
        if not selection.audience.everyone:
            people = people.where(selection.condition())
        sub = people.subquery()
        q = sa.select(
            sub.c.language, sub.c.paused, sa.func.count(), sa.func.sum(sub.c.imported)
        ).group_by(sub.c.language, sub.c.paused)
        total, held, new, split = 0, 0, 0, dict.fromkeys(["", *editions], 0)
        with self.engine.connect() as conn:
            for tag, is_paused, n, imported_n in conn.execute(q):
                if is_paused:
                    held += n
                    continue
                total += n
                new += int(imported_n or 0)
                split[languages.falls_to(tag, editions) or ""] += n
        return Reach(total, held, split, new)

    def iter(
        self, status: str | None = None, page: int = 2000, where: Selection | None = None
    ) -> Iterator[Subscriber]:
        """Every subscriber in id order, a page at a time (keyset), never the whole list."""
        last = 0
        while True:
            q = sa.select(*COLUMNS).where(subscribers.c.id > last)
            if status:
                q = q.where(subscribers.c.status == status)
            if where is not None:
                q = q.where(where.condition())
            with self.engine.connect() as conn:
                rows = conn.execute(q.order_by(subscribers.c.id).limit(page)).all()
                topics = topics_of(conn, [r.id for r in rows])
            for row in rows:
                yield Subscriber.from_row(row, topics.get(row.id, ()))
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
        """Forget a person (GDPR): their row, consent, history, deliveries and events go;
        only a one-way hash of the address stays. Issue numbers keep what they counted."""
        s = self.require(email)
        with self.engine.begin() as conn:
            forget(conn, s.id, s.email)


def _gone() -> Subscriber:
    raise InputError("that subscriber was erased a moment ago; try again")


def _normalize(email: str) -> str:
    try:
        return addresses.normalize(email)
    except addresses.InvalidAddress as e:
        raise InputError(f"invalid email address {email!r}: {e}") from None

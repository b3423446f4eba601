"""The numbers behind `mailer stats` and the guard rails: the list's weeks, each issue's
funnel. Counted in the database (a million subscribers never pass through Python)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from mailer.models import EventType, RecipientState, SubscriberStatus
from mailer.store.erasure import erased_tally
from mailer.store.schema import events, issue_links, issues, recipients, status_changes, subscribers

WEEK = dt.timedelta(weeks=1)


@dataclass
class Week:
    start: dt.date  # a Monday
    subscribed: int = 0  # new addresses (sign-ups, imports, adds)
    signed_up: int = 0  # of them, by the form (pending until confirmed)
    confirmed: int = 0  # double opt-ins completed
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0

    @property
    def left(self) -> int:
        return self.unsubscribed + self.bounced + self.complained

    @property
    def joined(self) -> int:
        """Added active (imports, adds) plus confirmed sign-ups."""
        return self.subscribed - self.signed_up + self.confirmed

    @property
    def net(self) -> int:
        return self.joined - self.left


@dataclass
class Funnel:
    slug: str
    subject: str
    sent_at: dt.datetime
    sent: int
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    complained: int = 0
    bounced: int = 0
    link_clicks: list[tuple[str, int]] = field(default_factory=list)  # counted links

    def rate(self, n: int) -> float:
        return n / self.sent if self.sent else 0.0


class Stats:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def weeks(self, today: dt.date, count: int) -> list[Week]:
        """The last `count` weeks (Monday to Sunday), oldest first, this one last."""
        monday = today - dt.timedelta(days=today.weekday())
        first = monday - WEEK * (count - 1)
        start = dt.datetime.combine(first, dt.time(), dt.UTC)
        weeks = [Week(first + WEEK * i) for i in range(count)]
        with self.engine.connect() as conn:
            week = _week_number(conn, subscribers.c.created_at, start)
            web = sa.case((subscribers.c.consent_source.like("web:%"), 1), else_=0)
            for n, k, signed_up in conn.execute(
                sa.select(week, sa.func.count(), sa.func.sum(web))
                .where(subscribers.c.created_at >= start)
                .group_by(week)
            ):
                if 0 <= int(n) < count:
                    weeks[int(n)].subscribed += int(k)
                    weeks[int(n)].signed_up += int(signed_up or 0)
            week = _week_number(conn, status_changes.c.at, start)
            confirmed = status_changes.c.reason.like("confirmed:%")
            kind = sa.case(
                (sa.and_(status_changes.c.new_status == "active", confirmed), "confirmed"),
                else_=status_changes.c.new_status,
            )
            for n, what, k in conn.execute(
                sa.select(week, kind, sa.func.count())
                .where(
                    status_changes.c.at >= start,
                    status_changes.c.old_status != status_changes.c.new_status,
                )
                .group_by(week, kind)
            ):
                i = int(n)
                if 0 <= i < count and what in ("confirmed", *_LEFT):
                    setattr(weeks[i], str(what), getattr(weeks[i], str(what)) + int(k))
        return weeks

    def active(self) -> int:
        with self.engine.connect() as conn:
            q = sa.select(sa.func.count()).where(subscribers.c.status == SubscriberStatus.ACTIVE)
            return int(conn.execute(q).scalar() or 0)

    def funnels(self, count: int, exclude: str = "") -> list[Funnel]:
        """The last `count` issues sent (but `exclude`, the welcome), oldest first."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(issues.c.id, issues.c.slug, issues.c.subject, issues.c.created_at)
                .where(issues.c.version.is_not(None), issues.c.slug != exclude)
                .order_by(issues.c.created_at.desc(), issues.c.id.desc())
                .limit(count)
            ).all()
            return [_funnel(conn, row) for row in reversed(found)]


_LEFT = (
    SubscriberStatus.UNSUBSCRIBED.value,
    SubscriberStatus.BOUNCED.value,
    SubscriberStatus.COMPLAINED.value,
)


def _week_number(conn: sa.Connection, column: Any, start: dt.datetime) -> Any:
    """Whole weeks from `start` to `column`, in the database's own date arithmetic."""
    if conn.dialect.name == "postgresql":
        seconds = sa.func.extract("epoch", column - sa.literal(start, type_=column.type))
        return sa.cast(sa.func.floor(seconds / 604800), sa.Integer)
    days = sa.func.julianday(column) - sa.func.julianday(
        sa.literal(start.replace(tzinfo=None).isoformat(sep=" "))
    )
    return sa.cast(sa.func.floor(days / 7), sa.Integer)


def _funnel(conn: sa.Connection, row: Any) -> Funnel:
    sent = conn.execute(
        sa.select(sa.func.count()).where(
            recipients.c.issue_id == row.id, recipients.c.state == RecipientState.SENT
        )
    ).scalar()
    erased = erased_tally(conn, row.id, "state")
    f = Funnel(row.slug, row.subject, row.created_at, int(sent or 0) + erased.get("sent", 0))
    people = sa.func.count(sa.distinct(events.c.subscriber_id))
    counts: dict[str, int] = dict(
        conn.execute(
            sa.select(events.c.type, people)
            .where(events.c.issue_id == row.id)
            .group_by(events.c.type)
        ).all()
    )
    for kind, n in erased_tally(conn, row.id, "event").items():
        counts[kind] = counts.get(kind, 0) + n
    for kind in (
        EventType.DELIVERED,
        EventType.OPENED,
        EventType.CLICKED,
        EventType.UNSUBSCRIBED,
        EventType.COMPLAINED,
        EventType.BOUNCED,
    ):
        setattr(f, kind.value, int(counts.get(kind.value, 0)))
    f.link_clicks = [
        (str(u), int(c))
        for u, c in conn.execute(
            sa.select(issue_links.c.url, issue_links.c.clicks)
            .where(issue_links.c.issue_id == row.id, issue_links.c.clicks > 0)
            .order_by(issue_links.c.clicks.desc(), issue_links.c.n)
            .limit(10)
        )
    ]
    return f

"""The mail queue: what the web pages promised to send, kept until it is sent.

A row is claimed one at a time (FOR UPDATE SKIP LOCKED on PostgreSQL) by pushing its
`next_at` a lease ahead and naming its holder, so several `mailer serve` processes never
send one twice at once. A holder that dies leaves its one row to another process: at once
on the same host (its pid is gone), when the lease runs out on another. So a confirmation
goes at least once, and twice only if it was the very mail in flight when its process
died; a welcome goes through the ledger, exactly once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mailer.store.owners import owner_is_dead
from mailer.store.schema import mail_queue
from mailer.store.subscribers import now

LEASE = dt.timedelta(minutes=5)
GIVE_UP_AFTER = 20  # attempts: about a day with the backoff below
# Mail anyone may ask for by typing an address into a form: bounded, and sent after the
# mail of people who proved who they are (welcomes, "subscribe again" confirmations), so a
# flood of sign-ups never starves a real reader's welcome.
ANONYMOUS = ("signup", "link")


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    email: str | None
    name: str
    ip: str | None
    user_agent: str | None
    subscriber_id: int | None
    attempts: int
    choices: dict[str, Any] | None = None  # a sign-up's topics and language


class MailQueue:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def signup(
        self,
        email: str,
        name: str,
        ip: str | None,
        ua: str | None,
        choices: dict[str, Any] | None = None,
    ) -> None:
        """One INSERT, the same for every address: nothing here depends on who it is."""
        self._add(
            kind="signup", email=email, name=name[:200], ip=ip, user_agent=ua, choices=choices
        )

    def link(self, email: str, ip: str | None) -> None:
        """A preference-page link asked for by address: the same INSERT for anyone."""
        self._add(kind="link", email=email, ip=ip)

    def anonymous_waiting(self) -> int:
        """Sign-ups and link requests not yet handled: the bound a flood runs into."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(mail_queue)
                    .where(mail_queue.c.kind.in_(ANONYMOUS))
                ).scalar()
                or 0
            )

    def confirm(self, subscriber_id: int) -> None:
        self._add(kind="confirm", subscriber_id=subscriber_id)

    def _add(self, **values: object) -> None:
        at = now()
        if isinstance(values.get("ip"), str):
            values["ip"] = str(values["ip"])[:64]
        if isinstance(values.get("user_agent"), str):
            values["user_agent"] = str(values["user_agent"])[:400]
        with self.engine.begin() as conn:
            conn.execute(mail_queue.insert().values(created_at=at, next_at=at, **values))

    def claim(self, owner: str) -> Job | None:
        """The next due row, leased to `owner`, or None; a row whose holder died on this
        host is due again at once."""
        at = now()
        with self.engine.begin() as conn:
            held = conn.execute(
                sa.select(mail_queue.c.id, mail_queue.c.lease_owner)
                .where(mail_queue.c.lease_owner.is_not(None), mail_queue.c.next_at > at)
                .with_for_update(skip_locked=True)
            ).all()
            orphans = [r.id for r in held if owner_is_dead(r.lease_owner)]
            row = conn.execute(
                sa.select(mail_queue)
                .where(sa.or_(mail_queue.c.next_at <= at, mail_queue.c.id.in_(orphans)))
                .order_by(sa.case((mail_queue.c.kind.in_(ANONYMOUS), 1), else_=0), mail_queue.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            conn.execute(
                mail_queue.update()
                .where(mail_queue.c.id == row.id)
                .values(next_at=at + LEASE, lease_owner=owner)
            )
        return Job(
            row.id,
            row.kind,
            row.email,
            row.name or "",
            row.ip,
            row.user_agent,
            row.subscriber_id,
            row.attempts,
            row.choices,
        )

    def done(self, job: Job) -> None:
        with self.engine.begin() as conn:
            conn.execute(mail_queue.delete().where(mail_queue.c.id == job.id))

    def later(self, job: Job, error: str) -> bool:
        """Try again after a backoff; False when it was the last try (the row is gone)."""
        attempts = job.attempts + 1
        with self.engine.begin() as conn:
            if attempts >= GIVE_UP_AFTER:
                conn.execute(mail_queue.delete().where(mail_queue.c.id == job.id))
                return False
            wait = dt.timedelta(seconds=min(30 * 2**attempts, 3600))
            conn.execute(
                mail_queue.update()
                .where(mail_queue.c.id == job.id)
                .values(
                    attempts=attempts,
                    next_at=now() + wait,
                    last_error=error[:300],
                    lease_owner=None,
                )
            )
        return True

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(mail_queue)).scalar() or 0
            )

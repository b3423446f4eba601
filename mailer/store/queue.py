"""The mail queue: what the web pages promised to send, kept until it is sent.

A row is claimed by pushing its `next_at` a lease ahead in the transaction that reads
it, so several `mailer serve` processes never send one twice at once, and a process
that dies with a claim leaves the row to be picked up when the lease runs out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from mailer.store.schema import mail_queue
from mailer.store.subscribers import now

LEASE = dt.timedelta(minutes=5)
GIVE_UP_AFTER = 20  # attempts: about a day with the backoff below


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


class MailQueue:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def signup(self, email: str, name: str, ip: str | None, ua: str | None) -> None:
        """One INSERT, the same for every address: nothing here depends on who it is."""
        self._add(kind="signup", email=email, name=name[:200], ip=ip, user_agent=ua)

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

    def claim(self, limit: int = 20) -> list[Job]:
        """Due rows, leased to the caller."""
        at = now()
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(mail_queue)
                .where(mail_queue.c.next_at <= at)
                .order_by(mail_queue.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if rows:
                conn.execute(
                    mail_queue.update()
                    .where(mail_queue.c.id.in_([r.id for r in rows]))
                    .values(next_at=at + LEASE)
                )
        return [
            Job(
                r.id, r.kind, r.email, r.name or "", r.ip, r.user_agent, r.subscriber_id, r.attempts
            )
            for r in rows
        ]

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
                .values(attempts=attempts, next_at=now() + wait, last_error=error[:300])
            )
        return True

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(mail_queue)).scalar() or 0
            )

"""Proof-of-work solutions already used: each solves one sign-up, across every process."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from mailer.store.schema import spent_challenges
from mailer.store.subscribers import now


class Challenges:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def spend(self, salt: str, expires: dt.datetime) -> bool:
        """True the first time a challenge is spent; False ever after (until it expired,
        when its signature no longer passes anyway). Expired ones are forgotten here."""
        try:
            with self.engine.begin() as conn:
                conn.execute(spent_challenges.delete().where(spent_challenges.c.expires < now()))
                conn.execute(spent_challenges.insert().values(salt=salt[:200], expires=expires))
        except sa.exc.IntegrityError:
            return False
        return True

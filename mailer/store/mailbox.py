"""The bounce mailbox's messages examined and left in it, remembered by UID so they are
listed once and never downloaded again. A new UIDVALIDITY (the folder was recreated) makes
every old UID meaningless: those rows are dropped."""

from __future__ import annotations

from collections.abc import Collection, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from mailer.store.schema import mailbox_uids
from mailer.store.subscribers import now


class Examined:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def seen(self, mailbox: str, validity: int, present: Collection[int]) -> set[int]:
        """The UIDs examined before, of those still in the folder; forgets the rest."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(mailbox_uids.c.uidvalidity, mailbox_uids.c.uid).where(
                    mailbox_uids.c.mailbox == mailbox
                )
            ).all()
            here = mailbox_uids.c.mailbox == mailbox
            conn.execute(mailbox_uids.delete().where(here, mailbox_uids.c.uidvalidity != validity))
            gone = [u for v, u in rows if v == validity and u not in present]
            for i in range(0, len(gone), 500):
                conn.execute(
                    mailbox_uids.delete().where(here, mailbox_uids.c.uid.in_(gone[i : i + 500]))
                )
        return {u for v, u in rows if v == validity and u in present}

    def remember(self, mailbox: str, validity: int, left: Iterable[tuple[int, str]]) -> None:
        rows = [
            {
                "mailbox": mailbox,
                "uidvalidity": validity,
                "uid": uid,
                "reason": why[:300],
                "at": now(),
            }
            for uid, why in left
        ]
        if not rows:
            return
        with self.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            # Two fetches at once may both examine a message: the second finds it noted.
            conn.execute(dialect.insert(mailbox_uids).on_conflict_do_nothing(), rows)

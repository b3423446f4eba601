"""Who holds a lease: host:pid:nonce. A process that finds a lease held by a dead
process on its own host takes it over at once; another host's lease only expires."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from mailer.store.schema import leases


def new_owner() -> str:
    """host:pid:nonce — lets a resumed sender on the same host take over a dead one's lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's sender: only its lease expiry tells
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class Leases:
    """Named leases in the database: one holder at a time across processes and hosts. A
    lease held by a dead process on this host, or past its expiry, is taken over."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def hold(self, name: str, ttl: dt.timedelta) -> Iterator[str | None]:
        """Yields None when this process holds the lease, else who does (and holds nothing)."""
        me = new_owner()
        holder = self._take(name, me, ttl)
        try:
            yield holder
        finally:
            if holder is None:
                with self.engine.begin() as conn:
                    conn.execute(leases.delete().where(leases.c.name == name, leases.c.owner == me))

    def _take(self, name: str, me: str, ttl: dt.timedelta) -> str | None:
        at = dt.datetime.now(dt.UTC)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(leases.c.owner, leases.c.expires)
                    .where(leases.c.name == name)
                    .with_for_update()
                ).first()
                if row is None:
                    conn.execute(leases.insert().values(name=name, owner=me, expires=at + ttl))
                    return None
                if row.expires > at and not owner_is_dead(row.owner):
                    return str(row.owner)
                conn.execute(
                    leases.update().where(leases.c.name == name).values(owner=me, expires=at + ttl)
                )
                return None
        except sa.exc.IntegrityError:  # another process inserted it a moment ago
            return "another process"

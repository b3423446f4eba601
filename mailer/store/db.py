"""Engines and migrations: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mailer.errors import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "0007"  # the newest revision in migrations/versions; tests check it is the head


def create_engine(url: str) -> sa.Engine:
    try:
        if url.startswith("sqlite"):
            # hide_parameters: an error message must never carry subscribers' addresses.
            engine = sa.create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            _serialize_transactions(engine)
            return engine
        return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
    except sa.exc.ArgumentError as e:
        raise StoreError(f"database_url {url!r} is not a valid SQLAlchemy URL ({e})") from None
    except ModuleNotFoundError as e:
        raise StoreError(
            f"database_url needs the {e.name} driver: "
            + (
                "pip install 'psycopg[binary]' into mailer's environment "
                "(from its checkout: pip install '.[postgres]')"
                if (e.name or "").startswith("psycopg")
                else f"pip install {e.name}"
            )
        ) from None


def _serialize_transactions(engine: sa.Engine) -> None:
    """Real, immediate write locks, taken in turn by this process's threads.

    SQLAlchemy's pysqlite driver defers BEGIN; BEGIN IMMEDIATE makes sure two senders never
    both think they claimed a batch. Threads of one process queue on a lock first: SQLite's
    own busy handler would make them sleep and poll (1, 2, 5 ... 100 ms), which with four
    sender threads cost more than the work itself.
    """
    lock = threading.RLock()

    def begin(conn: sa.Connection) -> None:
        lock.acquire()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            lock.release()
            raise

    def end(conn: sa.Connection) -> None:
        lock.release()

    sa.event.listen(engine, "begin", begin)
    sa.event.listen(engine, "commit", end)
    sa.event.listen(engine, "rollback", end)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    _wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _wal(cur: Any) -> None:
    """Switch a new database to WAL. The switch needs the file to itself and SQLite answers
    "locked" at once, without its busy handler, while another connection (a second process
    creating the same new database) holds it; the mode is stored in the file, so once any
    connection has switched it, asking again is a no-op. Retried for up to 30 s."""
    import sqlite3
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def current_revision(engine: sa.Engine) -> str | None:
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError as e:  # unreachable, or a file that is not a database
        raise StoreError(f"cannot open the database: {_reason(e)}; check database_url") from None


_UPGRADING = threading.Lock()  # one migration at a time in this process
_PG_LOCK = 0x6D61696C  # "mail": the advisory lock two processes migrating at once share


def upgrade(engine: sa.Engine) -> str:
    """Bring the schema to HEAD. Returns the revision it started from ('' for a new one).

    Two processes (or threads) starting on a new database at once: one migrates, the
    other waits for it and finds the schema current.
    """
    start = current_revision(engine)
    if start == HEAD:
        return start
    with _UPGRADING:
        return _upgrade(engine, start)


def _upgrade(engine: sa.Engine, start: str | None) -> str:
    if start is not None and start not in _known_revisions():
        raise StoreError(
            f"the database schema ({start}) is newer than this mailer knows; upgrade mailer"
        )
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        # SQLite rebuilds a table to change it; with foreign keys on, dropping the old
        # subscribers table would cascade-delete their history. The pragma only takes
        # effect outside a transaction, so it is set on the raw connection first.
        raw = conn.connection.dbapi_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if raw is not None and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise StoreError("the schema upgrade left broken references; nothing changed")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")
    return start or ""


def _known_revisions() -> set[str]:
    return {p.stem.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*.py")}


def _reason(e: Exception) -> str:
    orig = getattr(e, "orig", None)
    return str(orig or e).strip().splitlines()[0]

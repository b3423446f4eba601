"""CSV import into SQLite: a chunk of rows per transaction, read a piece at a time.

SQLite runs in this process and holds the write lock from a chunk's first lookup to its
commit, so a chunk at a time keeps other writers (sign-ups, a send) waiting for under a
second, not for the whole file, and a crash leaves each chunk wholly in or out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mailer import addresses
from mailer.models import Actor, SubscriberStatus
from mailer.store.batch import insert_many
from mailer.store.import_rows import (
    UPDATE,
    Held,
    ImportReport,
    Row,
    Vocabulary,
    any_erased,
    chunked,
    merge_existing,
    read_rows,
    write_topics,
)
from mailer.store.schema import subscribers
from mailer.store.subscribers import change_status, new_nonces, now

# Rows per transaction. Each commit writes every index page the transaction touched, and
# a random-order index touches most of its pages in any 10,000 rows: 50,000 rows a commit
# made a million-row import a quarter faster than 10,000 (18 s -> 14 s).
CHUNK = 50000
PIECE = 10000  # rows held in memory at once: a transaction takes several pieces


@dataclass(frozen=True)
class _Run:
    source: str
    dry_run: bool
    allow_erased: bool
    # Everyone this import adds gets an id above last_id and created_at == at (one stamp
    # for the whole run): that is how a later piece knows an address came earlier in the
    # file. Only addresses that were already subscribed go into import_seen, so a fresh
    # million-row import keeps one random-order index (the subscribers' own), not two.
    last_id: int
    at: Any


def import_sqlite(
    conn: sa.Connection,
    path: Path,
    report: ImportReport,
    source: str,
    dry_run: bool,
    allow_erased: bool,
    chunk_size: int = CHUNK,
    vocabulary: Vocabulary | None = None,
) -> None:
    # Keys seen earlier in this file live in a temporary table, not in memory, so a
    # ten-million-row file costs the same memory as a ten-row one.
    conn.execute(
        sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS import_seen (k VARCHAR(320) PRIMARY KEY)")
    )
    conn.execute(sa.text("DELETE FROM import_seen"))
    conn.commit()
    run = _Run(source, dry_run, allow_erased, _last_id(conn), now())
    with _loading(conn):
        uncommitted = 0
        for piece in chunked(read_rows(path, report, vocabulary), min(chunk_size, PIECE)):
            _apply(conn, piece, report, run)
            uncommitted += len(piece)
            if uncommitted >= chunk_size:
                conn.commit()
                uncommitted = 0
        conn.commit()
    conn.execute(sa.text("DROP TABLE import_seen"))
    conn.commit()


@contextlib.contextmanager
def _loading(conn: sa.Connection) -> Iterator[None]:
    """SQLite settings for a bulk load, put back afterwards (the connection is pooled).

    A checkpoint every ~40 MB of WAL, not every 4 MB: a random-order index rewrites the
    same pages chunk after chunk, and each checkpoint copies (and syncs) them. A 12 MB page
    cache instead of 2 MB for the same reason (16 MB was ~5 % faster for a million rows,
    but put the import's peak memory 1.3 times the peak of a small one).
    """
    conn.exec_driver_sql("PRAGMA wal_autocheckpoint=10000")
    conn.exec_driver_sql("PRAGMA cache_size=-12000")
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1000")  # SQLite's defaults
        conn.exec_driver_sql("PRAGMA cache_size=-2000")


def _last_id(conn: sa.Connection) -> int:
    found = conn.execute(sa.select(sa.func.max(subscribers.c.id))).scalar()
    conn.commit()
    return int(found or 0)


def _apply(conn: sa.Connection, piece: list[Row], report: ImportReport, run: _Run) -> None:
    """One piece of rows, inside the chunk's transaction (the caller commits)."""
    unique: dict[str, Row] = {}
    for row in piece:
        if row.key in unique:
            report.duplicate(row.line, row.email)
        else:
            unique[row.key] = row
    # The erasure fingerprint (a SHA-256 per row) only where someone was ever erased.
    hashes = not run.allow_erased and any_erased(conn)
    keys = [(k, addresses.erasure_hash(r.email) if hashes else None) for k, r in unique.items()]
    lookup = _Lookup(conn, keys)
    for key in lookup.keys("import_seen", "k"):
        report.duplicate(unique[key].line, unique.pop(key).email)
    if run.dry_run:  # nothing is added, so every key is remembered here
        lookup.remember_new()
    existing: dict[str, Held] = {}
    for r in lookup.subscribers(run):
        if r.email_key not in unique:  # a duplicate already (seen_before)
            continue
        if r.ours:  # added by an earlier piece of this file
            report.duplicate(unique[r.email_key].line, unique.pop(r.email_key).email)
        else:
            held = tuple(sorted(r.topics.split(","))) if r.topics else ()
            existing[r.email_key] = Held(r.id, r.name, r.status, r.attributes, r.language, held)
    if existing and not run.dry_run:
        conn.exec_driver_sql("INSERT INTO import_seen (k) VALUES (?)", [(k,) for k in existing])
    erased = set(lookup.keys("erasures", "email_hash", by_hash=True)) if hashes else set()
    inserts: list[Row] = []
    updates: list[dict[str, Any]] = []
    suppress: list[tuple[int, SubscriberStatus]] = []
    topics: list[tuple[int, tuple[str, ...]]] = []
    for key, row in unique.items():
        old = existing.get(key)
        if old is None:
            if key in erased:
                report.erased += 1
            else:
                inserts.append(row)
                report.added += 1
            continue
        change = merge_existing(row, old, report)
        if change.update is not None:
            updates.append({**change.update, "updated_at": run.at})
        if change.topics is not None:
            topics.append((old.id, change.topics))
        if change.suppress is not None:
            suppress.append((old.id, change.suppress))
    if run.dry_run:  # only the import_seen bookkeeping was written
        return
    if inserts:
        _insert(conn, inserts, run)
        topics += _new_topics(conn, inserts)
    if updates:
        conn.execute(UPDATE, updates)
    write_topics(conn, topics)
    for sid, new_status in suppress:
        change_status(conn, sid, new_status, Actor.IMPORT, run.source)


class _Lookup:
    """A piece's keys against the tables that decide each row's fate.

    The keys travel as one parameter, a JSON array read by json_each, sorted so that
    consecutive probes walk the index instead of jumping about it (writing them into an
    indexed temporary table first cost more than the lookups: a sixth of the import).
    The piece drives every join: CROSS JOIN is how SQLite is told the order (without
    statistics it would scan the growing table for each piece instead).
    """

    def __init__(self, conn: sa.Connection, keys: list[tuple[str, str | None]]) -> None:
        self.conn = conn
        self.pairs = keys
        self.k = json.dumps(sorted([k for k, _ in keys]))
        self.h = json.dumps(sorted([h for _, h in keys if h is not None]))

    def keys(self, table: str, column: str, by_hash: bool = False) -> list[str]:
        """The piece's keys that `table.column` holds (matched by erasure hash if asked)."""
        found = self.conn.exec_driver_sql(
            f"SELECT c.value FROM json_each(?) AS c CROSS JOIN {table} t ON t.{column} = c.value",
            (self.h if by_hash else self.k,),
        ).scalars()
        if not by_hash:
            return list(found)
        erased = set(found)
        return [k for k, h in self.pairs if h in erased]

    def remember_new(self) -> None:
        self.conn.exec_driver_sql(
            "INSERT INTO import_seen (k) SELECT c.value FROM json_each(?) AS c "
            "WHERE NOT EXISTS (SELECT 1 FROM import_seen s WHERE s.k = c.value)",
            (self.k,),
        )

    def subscribers(self, run: _Run) -> sa.Result[Any]:
        return self.conn.execute(
            sa.text(
                "SELECT t.id, t.email_key, t.name, t.status, t.attributes, t.language, "
                "(SELECT group_concat(topic) FROM subscriber_topics WHERE subscriber_id = t.id) "
                "AS topics, "
                "CASE WHEN t.id > :last AND t.created_at = :at THEN 1 ELSE 0 END AS ours "
                "FROM json_each(:k) AS c CROSS JOIN subscribers t ON t.email_key = c.value"
            )
            .bindparams(
                sa.bindparam("last", run.last_id, type_=sa.Integer),
                sa.bindparam("at", run.at, type_=subscribers.c.created_at.type),
            )
            .columns(
                subscribers.c.id,
                subscribers.c.email_key,
                subscribers.c.name,
                subscribers.c.status,
                subscribers.c.attributes,
                subscribers.c.language,
                sa.column("topics", sa.String),
                sa.column("ours", sa.Integer),
            ),
            {"k": self.k},
        )


def _insert(conn: sa.Connection, rows: list[Row], run: _Run) -> None:
    """Insert a piece's new subscribers, in one statement (store/batch.insert_many). The
    write lock is held from the lookup on, so nobody else can have added one meanwhile."""
    nonces = new_nonces(len(rows))  # one read of the random source for the piece
    active = SubscriberStatus.ACTIVE.value
    values = [
        # attributes as JSON text, and the empty object (nearly everyone's) as a constant
        (
            r.email,
            r.key,
            r.name or "",
            r.status or active,
            json.dumps(r.attributes) if r.attributes else "{}",
            nonce,
            r.language or None,
        )
        for r, nonce in zip(rows, nonces, strict=True)
    ]
    insert_many(
        conn,
        subscribers,
        ("email", "email_key", "name", "status", "attributes", "nonce", "language"),
        values,
        shared={
            "consent_source": run.source,
            "consent_at": run.at,
            "created_at": run.at,
            "updated_at": run.at,
        },
        as_stored={"attributes"},
    )


def _new_topics(conn: sa.Connection, rows: list[Row]) -> list[tuple[int, tuple[str, ...]]]:
    """The topics of the subscribers just inserted, by their new ids (one lookup)."""
    wanted = {r.key: r.topics for r in rows if r.topics}
    if not wanted:
        return []
    found = conn.exec_driver_sql(
        "SELECT t.id, t.email_key FROM json_each(?) AS c "
        "CROSS JOIN subscribers t ON t.email_key = c.value",
        (json.dumps(sorted(wanted)),),
    )
    return [(sid, wanted[key] or ()) for sid, key in found]

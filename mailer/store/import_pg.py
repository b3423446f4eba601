"""CSV import into PostgreSQL: the file's rows are staged, then merged in one transaction.

Every valid row streams into a temporary table through one COPY while the file is read;
the server then finds the duplicates, the addresses already subscribed and the erased
ones with set operations, and inserts the new subscribers in one INSERT ... SELECT in
address order, so the unique index on the address grows page by page instead of taking
a random page for every row (half the server's work in a chunk-by-chunk import of a
million rows). The whole file is one transaction: it goes in completely or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mailer import addresses
from mailer.models import Actor, SubscriberStatus
from mailer.store.import_rows import (
    UPDATE,
    Change,
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
from mailer.store.subscribers import change_status, new_nonces, now

STAGE = 10000  # rows per COPY write: parsed, encoded and sent while the server takes the last
UPDATES = 1000  # existing subscribers' changes per executemany
STREAM = {"yield_per": 5000}  # a server-side cursor: a million rows never all in memory

_STAGED = ("line", "email", "k", "name", "status", "attributes", "h", "nonce", "language", "topics")


def import_pg(
    conn: sa.Connection,
    path: Path,
    report: ImportReport,
    source: str,
    dry_run: bool,
    allow_erased: bool,
    vocabulary: Vocabulary | None = None,
) -> None:
    transaction = conn.begin()
    try:
        hashes = not allow_erased and any_erased(conn)
        _stage(conn, path, report, hashes, vocabulary)
        _duplicates(conn, report)
        if not allow_erased:  # an erased person who signed up again is a subscriber
            report.erased = conn.exec_driver_sql(
                "DELETE FROM import_first f USING erasures e WHERE e.email_hash = f.h "
                "AND NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.email_key = f.k)"
            ).rowcount
        known = _existing(conn, report, source, dry_run)
        at = now()
        added = _insert(conn, source, dry_run, at)
        if not dry_run:
            _new_topics(conn, source, at)
        new = conn.exec_driver_sql("SELECT count(*) FROM import_first").scalar_one() - known
        report.added = added
        report.unchanged += new - added  # another import or a sign-up added them meanwhile
    except BaseException:
        transaction.rollback()
        raise
    if dry_run:
        transaction.rollback()
    else:
        transaction.commit()


def _stage(
    conn: sa.Connection,
    path: Path,
    report: ImportReport,
    hashes: bool,
    vocabulary: Vocabulary | None,
) -> None:
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE import_rows (line INTEGER, email TEXT, k TEXT, name TEXT, "
        "status TEXT, attributes TEXT, h TEXT, nonce BIGINT, language TEXT, topics TEXT) "
        "ON COMMIT DROP"
    )
    raw: Any = conn.connection.dbapi_connection  # psycopg's own connection: it has copy()
    columns = ", ".join(_STAGED)
    with raw.cursor() as cur, cur.copy(f"COPY import_rows ({columns}) FROM STDIN") as copy:
        for chunk in chunked(read_rows(path, report, vocabulary), STAGE):
            # one read of the random source per chunk
            nonces = new_nonces(len(chunk))
            copy.write(_staged_text(chunk, hashes, nonces).encode("utf-8"))
    # An address's first line is the one that counts; the others are duplicates.
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE import_first ON COMMIT DROP AS "
        "SELECT DISTINCT ON (k) * FROM import_rows ORDER BY k, line"
    )
    conn.exec_driver_sql("ANALYZE import_first")  # its size decides how the joins are done


def _staged_text(chunk: list[Row], hashes: bool, nonces: list[int]) -> str:
    """A chunk of rows as COPY text for import_rows. Addresses, keys, statuses, hashes and
    numbers never hold a tab, a line break or a backslash, and names no control character
    (clean_name): a chunk without attributes and without a backslash in a name is written
    one format a row, the others through copy_text's escaping. Languages and topic keys
    hold no character COPY escapes either."""
    if not any(r.attributes or (r.name and "\\" in r.name) for r in chunk):
        return "".join(
            [
                f"{r.line}\t{r.email}\t{r.key}\t{_N if r.name is None else r.name}\t"
                f"{r.status or _N}\t{_N}\t"
                # The erasure fingerprint (a SHA-256) only where someone was ever erased.
                f"{addresses.erasure_hash(r.email) if hashes else _N}\t{nonce}\t"
                f"{_N if r.language is None else r.language}\t"
                f"{_N if r.topics is None else ','.join(r.topics)}\n"
                for r, nonce in zip(chunk, nonces, strict=True)
            ]
        )
    return copy_text(_staged_rows(chunk, hashes, nonces))


def _staged_rows(chunk: list[Row], hashes: bool, nonces: list[int]) -> list[tuple[Any, ...]]:
    """A chunk's values in _STAGED order (None for NULL), for copy_text's general escaping."""
    return [
        (
            r.line,
            r.email,
            r.key,
            r.name,
            r.status,
            json.dumps(r.attributes) if r.attributes else None,
            addresses.erasure_hash(r.email) if hashes else None,
            nonce,
            r.language,
            None if r.topics is None else ",".join(r.topics),
        )
        for r, nonce in zip(chunk, nonces, strict=True)
    ]


_N = "\\N"  # COPY's NULL


def _duplicates(conn: sa.Connection, report: ImportReport) -> None:
    found = conn.exec_driver_sql(
        "SELECT r.line, r.email FROM import_rows r JOIN import_first f ON f.k = r.k "
        "WHERE r.line > f.line ORDER BY r.line",
        execution_options=STREAM,
    )
    for line, email in found:
        report.duplicate(line, email)
    conn.exec_driver_sql("DROP TABLE import_rows")


def _existing(conn: sa.Connection, report: ImportReport, source: str, dry_run: bool) -> int:
    """Addresses already subscribed: what the file changes about them. Returns how many."""
    found = conn.exec_driver_sql(
        "SELECT f.line, f.email, f.k, f.name, f.status, f.attributes, f.language, f.topics, "
        "s.id, s.name, s.status, s.attributes, s.language, "
        "CASE WHEN f.topics IS NULL THEN NULL ELSE (SELECT string_agg(topic, ',') "
        "FROM subscriber_topics WHERE subscriber_id = s.id) END "
        "FROM import_first f JOIN subscribers s ON s.email_key = f.k ORDER BY f.line",
        execution_options=STREAM,
    )
    changes: list[tuple[int, Change]] = []
    known = 0
    for line, email, k, name, status, attributes, language, topics, *held in found:
        known += 1
        sid, old_name, old_status, old_attributes, old_language, old_topics = held
        old = Held(
            sid,
            old_name,
            old_status,
            old_attributes or {},
            old_language,
            tuple(sorted(old_topics.split(","))) if old_topics else (),
        )
        row = Row(
            line,
            email,
            k,
            name,
            status,
            json.loads(attributes) if attributes else {},
            language,
            None if topics is None else tuple(t for t in topics.split(",") if t),
        )
        change = merge_existing(row, old, report)
        if not dry_run and (
            change.update is not None or change.suppress is not None or change.topics is not None
        ):
            changes.append((sid, change))
            if len(changes) >= UPDATES:  # written as it goes: memory stays flat
                _write(conn, changes, source)
                changes = []
    _write(conn, changes, source)
    return known


def _write(conn: sa.Connection, changes: list[tuple[int, Change]], source: str) -> None:
    at = now()
    updates = [{**c.update, "updated_at": at} for _, c in changes if c.update is not None]
    if updates:
        conn.execute(UPDATE, updates)
    write_topics(conn, [(sid, c.topics) for sid, c in changes if c.topics is not None])
    for sid, c in changes:
        if c.suppress is not None:
            change_status(conn, sid, c.suppress, Actor.IMPORT, source)


def _insert(conn: sa.Connection, source: str, dry_run: bool, at: Any) -> int:
    """The new subscribers, in address order; how many were added. Someone who signed up
    since the lookup is skipped (ON CONFLICT DO NOTHING): they are subscribed already."""
    new = (
        "FROM import_first f WHERE NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.email_key = f.k)"
    )
    if dry_run:
        return int(conn.exec_driver_sql(f"SELECT count(*) {new}").scalar_one())
    return int(
        conn.execute(
            sa.text(
                "INSERT INTO subscribers (email, email_key, name, status, attributes, "
                "consent_source, consent_at, created_at, updated_at, nonce, language) "
                "SELECT email, k, COALESCE(name, ''), COALESCE(status, :active), "
                "CAST(COALESCE(attributes, '{}') AS JSON), :source, :at, :at, :at, nonce, "
                "NULLIF(language, '') "
                f"{new} ORDER BY k ON CONFLICT (email_key) DO NOTHING"
            ).bindparams(sa.bindparam("at", at, type_=sa.DateTime(timezone=True))),
            {"source": source, "active": SubscriberStatus.ACTIVE.value},
        ).rowcount
    )


def _new_topics(conn: sa.Connection, source: str, at: Any) -> None:
    """The topics of the subscribers this import added (stamped with its one `at`)."""
    conn.execute(
        sa.text(
            "INSERT INTO subscriber_topics (subscriber_id, topic) "
            "SELECT s.id, t.topic FROM import_first f "
            "JOIN subscribers s ON s.email_key = f.k "
            "CROSS JOIN LATERAL unnest(string_to_array(f.topics, ',')) AS t(topic) "
            "WHERE f.topics <> '' AND s.created_at = :at AND s.consent_source = :source "
            "ON CONFLICT DO NOTHING"
        ).bindparams(sa.bindparam("at", at, type_=sa.DateTime(timezone=True))),
        {"source": source},
    )


def copy_text(rows: list[tuple[Any, ...]]) -> str:
    """Rows in COPY's text format: tab-separated, NULL as \\N, and backslash, tab, CR and
    LF escaped (the general case: _staged_text writes most chunks, which need none)."""
    return "".join(
        "\t".join([_N if v is None else _escape_copy(str(v)) for v in row]) + "\n" for row in rows
    )


def _escape_copy(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )

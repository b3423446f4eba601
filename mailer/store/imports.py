"""CSV import: streamed, validated, one transaction per chunk, never reactivating anyone."""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mailer import addresses
from mailer.errors import InputError
from mailer.models import SUPPRESSED, Actor, SubscriberStatus, may_change
from mailer.store.export import CSV_COLUMNS, unneutralize
from mailer.store.schema import subscribers
from mailer.store.subscribers import change_status, clean_name, new_nonces, now

CHUNK = 10000  # rows per transaction: fewer commits (and WAL checkpoints), memory still flat
DETAILS_MAX = 20  # problem lines kept for the summary; all go to `ImportReport.sink`
FIELD_MAX = 1 << 20  # a single CSV field larger than 1 MiB is refused, not loaded
PARSE_MAX = (1 << 31) - 1
STATUSES = {s.value for s in SubscriberStatus}


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    left_alone: int = 0  # unsubscribed/bounced/complained: an import never reactivates them
    erased: int = 0  # people who asked to be forgotten
    invalid: int = 0
    duplicates: int = 0
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)
    duplicate_lines: list[tuple[int, str]] = field(default_factory=list)
    # Every problem row, as (line, "invalid" | "duplicate", detail): --report writes them.
    sink: Callable[[int, str, str], None] | None = None

    def reject(self, line: int, reason: str) -> None:
        self.invalid += 1
        if len(self.invalid_lines) < DETAILS_MAX:
            self.invalid_lines.append((line, reason))
        if self.sink is not None:
            self.sink(line, "invalid", reason)

    def duplicate(self, line: int, email: str) -> None:
        self.duplicates += 1
        if len(self.duplicate_lines) < DETAILS_MAX:
            self.duplicate_lines.append((line, email))
        if self.sink is not None:
            self.sink(line, "duplicate", email)

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged


@dataclass
class Row:
    line: int
    email: str
    key: str
    name: str | None
    status: str | None
    attributes: dict[str, str]


BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32LE"),
    (codecs.BOM_UTF32_BE, "UTF-32BE"),
    (codecs.BOM_UTF16_LE, "UTF-16LE"),
    (codecs.BOM_UTF16_BE, "UTF-16BE"),
)


def check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 before anything is written, naming a likely encoding."""
    with path.open("rb") as f:
        head = f.read(4)
    for bom, name in BOMS:  # UTF-32LE first: its BOM begins with UTF-16LE's
        if head.startswith(bom):
            raise InputError(
                f"{path}: is {name} (it starts with a {name[:6]} byte-order mark); convert it "
                f"with iconv -f {name[:6]} -t UTF-8 {path.name} > utf8.csv"
            )
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise InputError(
                    f"{path}: not UTF-8 (byte 0x{chunk[e.start]:02x} at offset {offset + e.start}); "
                    f"it looks like {_guess_encoding(path)}: convert it with "
                    f"iconv -f {_guess_encoding(path)} -t UTF-8 {path.name} > utf8.csv"
                ) from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{path}: ends in the middle of a UTF-8 character") from None


def _guess_encoding(path: Path) -> str:
    with path.open("rb") as f:
        sample = f.read(1 << 16)
    for enc in ("gb18030", "shift_jis", "cp1252"):
        try:
            sample.decode(enc)
            return enc.upper()
        except UnicodeDecodeError:
            continue
    return "LATIN1"


def read_rows(path: Path, report: ImportReport) -> Iterator[Row]:
    """Parse and validate rows one at a time; bad rows go to the report, not the caller.

    The parser's own field limit is set far above FIELD_MAX: hitting it leaves the csv
    module in the middle of a quoted field, reading the rest of the file out of step.
    A row with a field over FIELD_MAX is refused after it was parsed whole.
    """
    csv.field_size_limit(PARSE_MAX)
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        sample = f.read(1 << 16)
        f.seek(0)
        if sample.startswith("\ufeff"):
            f.read(1)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(f, dialect)
        header = _header(reader, path)
        email_at = header.index("email")
        name_at = header.index("name") if "name" in header else None
        status_at = header.index("status") if "status" in header else None
        # Columns an export writes that are not attributes: a round trip adds nothing.
        skip = set(CSV_COLUMNS) - {"attributes"}
        extra = [(i, h) for i, h in enumerate(header) if h and h not in skip]
        line = reader.line_num
        while True:
            start = line + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                line = reader.line_num
                report.rows += 1
                report.reject(start, f"unreadable CSV ({e})")
                continue
            line = reader.line_num
            # One join answers three questions in C: a blank line? a field that may be too
            # big? a spreadsheet-neutralizing quote to undo? (Per-field passes for each
            # were a tenth of an import.)
            joined = "".join(values)
            if not joined.strip():
                continue
            report.rows += 1
            if len(values) > len(header):
                report.reject(start, f"{len(values)} fields but the header has {len(header)}")
                continue
            if len(joined) > FIELD_MAX and max(map(len, values)) > FIELD_MAX:
                report.reject(start, f"a field is over {FIELD_MAX >> 20} MiB")
                continue
            if "'" in joined:
                values = [unneutralize(v) if v.startswith("'") else v for v in values]
            row = _row(values, start, email_at, name_at, status_at, extra, report)
            if row is not None:
                yield row


def _header(reader: Any, path: Path) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(
            f"{path}: the file is empty; it needs a header line with an email column"
        ) from None
    except csv.Error as e:
        raise InputError(f"{path}: cannot read the header line ({e})") from None
    header = [h.strip().lower() for h in header]
    if "email" not in header:
        raise InputError(
            f"{path}: no 'email' column in the header ({', '.join(header)[:200]}); "
            "add a header line such as: email,name"
        )
    return header


def _row(
    values: list[str],
    line: int,
    email_at: int,
    name_at: int | None,
    status_at: int | None,
    extra: list[tuple[int, str]],
    report: ImportReport,
) -> Row | None:
    raw = values[email_at] if email_at < len(values) else ""
    if not raw.strip():
        report.reject(line, "no email address")
        return None
    try:
        email = addresses.normalize(raw)
    except addresses.InvalidAddress as e:
        report.reject(line, f"{_short(raw)}: {e}")
        return None
    status = (
        values[status_at].strip().lower()
        if status_at is not None and status_at < len(values)
        else ""
    )
    if status and status not in STATUSES:
        report.reject(line, f"unknown status {_short(status)!r}; use {', '.join(sorted(STATUSES))}")
        return None
    name = clean_name(values[name_at]) if name_at is not None and name_at < len(values) else None
    attributes = {h: values[i] for i, h in extra if i < len(values) and values[i] != ""}
    if "attributes" in attributes:
        attributes = _merge_json(attributes)
    return Row(line, email, addresses.key(email), name, status or None, attributes)


def _merge_json(attributes: dict[str, str]) -> dict[str, str]:
    """An export's `attributes` column (JSON) comes back as the attributes it holds."""
    raw = attributes.pop("attributes")
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return {**{str(k): str(v) for k, v in parsed.items()}, **attributes}
    return {**attributes, "attributes": raw}


def _short(value: str) -> str:
    value = value.replace("\n", " ").replace("\r", " ")
    return value if len(value) <= 80 else value[:77] + "..."


def import_csv(
    engine: sa.Engine,
    path: Path,
    *,
    dry_run: bool = False,
    allow_erased: bool = False,
    chunk_size: int = CHUNK,
    sink: Callable[[int, str, str], None] | None = None,
) -> ImportReport:
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a CSV file")
    check_utf8(path)
    report = ImportReport(sink=sink)
    source = f"import:{path.name}"[:200]
    with engine.connect() as conn:
        # Keys seen earlier in this file live in a temporary table, not in memory, so a
        # ten-million-row file costs the same memory as a ten-row one.
        conn.execute(
            sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS import_seen (k VARCHAR(320) PRIMARY KEY)")
        )
        conn.execute(sa.text("DELETE FROM import_seen"))
        conn.commit()
        chunk: list[Row] = []
        stats = _Statistics(conn)
        run = _Run(source, dry_run, allow_erased, _last_id(conn), now())
        with _loading(conn):
            for row in read_rows(path, report):
                chunk.append(row)
                if len(chunk) >= chunk_size:
                    _apply(conn, chunk, report, run)
                    stats.grew(len(chunk))
                    chunk = []
            if chunk:
                _apply(conn, chunk, report, run)
        conn.execute(sa.text("DROP TABLE import_seen"))
        conn.commit()
    if report.rows == 0:
        raise InputError(f"{path}: no rows under the header; nothing to import")
    return report


@contextlib.contextmanager
def _loading(conn: sa.Connection) -> Iterator[None]:
    """SQLite settings for a bulk load, put back afterwards (the connection is pooled).

    A checkpoint every ~40 MB of WAL, not every 4 MB: a random-order index rewrites the
    same pages chunk after chunk, and each checkpoint copies (and syncs) them. A 16 MB page
    cache instead of 2 MB for the same reason; memory still stays flat.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA wal_autocheckpoint=10000")
    conn.exec_driver_sql("PRAGMA cache_size=-16000")
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1000")  # SQLite's defaults
        conn.exec_driver_sql("PRAGMA cache_size=-2000")


class _Statistics:
    """PostgreSQL plans each chunk's joins from table statistics, and a bulk load outruns
    autovacuum (which never visits temporary tables at all): with statistics saying
    subscribers holds a few thousand rows when it holds a million, it hash-joins the whole
    growing table for every chunk, and the import turns quadratic. ANALYZE whenever the
    tables have doubled since the last one: a handful of times for any file."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.on = conn.dialect.name == "postgresql"
        self.rows = 0
        self.next = 20000

    def grew(self, n: int) -> None:
        self.rows += n
        if not self.on or self.rows < self.next:
            return
        self.next = self.rows * 2
        for table in ("subscribers", "import_seen"):
            self.conn.exec_driver_sql(f"ANALYZE {table}")
        self.conn.commit()


@dataclass(frozen=True)
class _Run:
    source: str
    dry_run: bool
    allow_erased: bool
    # Everyone this import adds gets an id above last_id and created_at == at (one stamp
    # for the whole run): that is how a later chunk knows an address came earlier in the
    # file. Only addresses that were already subscribed go into import_seen, so a fresh
    # million-row import keeps one random-order index (the subscribers' own), not two.
    last_id: int
    at: Any


def _last_id(conn: sa.Connection) -> int:
    found = conn.execute(sa.select(sa.func.max(subscribers.c.id))).scalar()
    conn.commit()
    return int(found or 0)


def _any_erased(conn: sa.Connection) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM erasures LIMIT 1")).first() is not None


def _apply(conn: sa.Connection, chunk: list[Row], report: ImportReport, run: _Run) -> None:
    """One chunk, one transaction: a crash leaves the chunk wholly in or wholly out."""
    source, dry_run, allow_erased = run.source, run.dry_run, run.allow_erased
    unique: dict[str, Row] = {}
    for row in chunk:
        if row.key in unique:
            report.duplicate(row.line, row.email)
        else:
            unique[row.key] = row
    # The erasure fingerprint (a SHA-256 per row) only where someone was ever erased.
    hashes = not allow_erased and _any_erased(conn)
    keys = [(k, addresses.erasure_hash(r.email) if hashes else None) for k, r in unique.items()]
    lookup = _Lookup(conn, keys)
    for key in lookup.keys("import_seen", "k"):
        report.duplicate(unique[key].line, unique.pop(key).email)
    if dry_run:  # nothing is added, so every key is remembered here
        lookup.remember_new()
    existing: dict[str, Any] = {}
    for r in lookup.subscribers(run):
        if r.email_key not in unique:  # a duplicate already (seen_before)
            continue
        if r.ours:  # added by an earlier chunk of this file
            report.duplicate(unique[r.email_key].line, unique.pop(r.email_key).email)
        else:
            existing[r.email_key] = r
    if existing and not dry_run:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            f"INSERT INTO import_seen (k) VALUES ({mark})", [(k,) for k in existing]
        )
    erased = set(lookup.keys("erasures", "email_hash", by_hash=True)) if hashes else set()
    at = run.at
    inserts: list[Row] = []
    updates: list[dict[str, Any]] = []
    suppress: list[tuple[int, SubscriberStatus]] = []
    for key, row in unique.items():
        old = existing.get(key)
        if old is None:
            if key in erased:
                report.erased += 1
                continue
            inserts.append(row)
            report.added += 1
            continue
        new = SubscriberStatus(row.status) if row.status else None
        raises = new is not None and new in SUPPRESSED and may_change(old.status, new, Actor.IMPORT)
        if raises and new is not None:
            suppress.append((old.id, new))
        if old.status in SUPPRESSED:
            if raises:
                report.updated += 1
            else:
                report.left_alone += 1
            continue
        name = old.name if row.name is None else row.name
        attributes = {**(old.attributes or {}), **row.attributes}
        if name != old.name or attributes != (old.attributes or {}):
            updates.append(
                {"b_id": old.id, "name": name, "attributes": attributes, "updated_at": at}
            )
            report.updated += 1
        elif raises:
            report.updated += 1
        else:
            report.unchanged += 1
    if dry_run:
        conn.commit()  # only the import_seen bookkeeping
        return
    if inserts:
        lost = len(inserts) - _insert(conn, inserts, run)
        report.added -= lost  # another import or a sign-up added them a moment ago
        report.unchanged += lost
    if updates:
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == sa.bindparam("b_id"))
            .values(
                name=sa.bindparam("name"),
                attributes=sa.bindparam("attributes"),
                updated_at=sa.bindparam("updated_at"),
            ),
            updates,
        )
    for sid, new_status in suppress:
        change_status(conn, sid, new_status, Actor.IMPORT, source)
    conn.commit()


_SUBSCRIBER_COLUMNS = (
    subscribers.c.id,
    subscribers.c.email_key,
    subscribers.c.name,
    subscribers.c.status,
    subscribers.c.attributes,
    sa.column("ours", sa.Integer),
)


class _Lookup:
    """The chunk's keys against the tables that decide each row's fate.

    The keys travel as one parameter, a JSON array on SQLite (read by json_each) and an
    array literal on PostgreSQL, and each key is one index probe: the chunk (a few thousand
    keys) drives every join. Writing them into an indexed temporary table first cost more
    than the lookups. Each planner is told the order: SQLite's CROSS JOIN, and on
    PostgreSQL a LATERAL subquery with LIMIT 1 (the addresses and hashes are unique
    anyway), without which it hash-joins the whole table for a large array: at a million
    subscribers that scan was 40 % of an import.
    """

    def __init__(self, conn: sa.Connection, keys: list[tuple[str, str | None]]) -> None:
        self.conn = conn
        self.pairs = keys
        self.pg = conn.dialect.name == "postgresql"
        encode = _pg_array if self.pg else json.dumps
        # In order: consecutive probes then walk the index instead of jumping about it
        # (SQLite: a sixth of the import).
        self.k = encode(sorted([k for k, _ in keys]))
        self.h = encode(sorted([h for _, h in keys if h is not None]))

    def _source(self, param: str) -> str:
        if self.pg:
            return f"unnest(CAST(:{param} AS TEXT[])) AS c(value)"
        return f"json_each(:{param}) AS c"

    def _probe(self, param: str, table: str, column: str) -> str:
        """FROM the chunk's values, each with the row of `table` whose `column` equals it."""
        if self.pg:
            return (
                f"FROM {self._source(param)} CROSS JOIN LATERAL "
                f"(SELECT * FROM {table} WHERE {column} = c.value LIMIT 1) t"
            )
        return f"FROM {self._source(param)} CROSS JOIN {table} t ON t.{column} = c.value"

    def keys(self, table: str, column: str, by_hash: bool = False) -> list[str]:
        """The chunk's keys that `table.column` holds (matched by erasure hash if asked)."""
        param = "h" if by_hash else "k"
        found = sa.text(f"SELECT c.value {self._probe(param, table, column)}")
        hits = self.conn.execute(found, {param: self.h if by_hash else self.k}).scalars()
        if not by_hash:
            return list(hits)
        erased = set(hits)
        return [k for k, h in self.pairs if h in erased]

    def remember_new(self) -> None:
        self.conn.execute(
            sa.text(
                f"INSERT INTO import_seen (k) SELECT c.value FROM {self._source('k')} "
                "WHERE NOT EXISTS (SELECT 1 FROM import_seen s WHERE s.k = c.value)"
            ),
            {"k": self.k},
        )

    def subscribers(self, run: _Run) -> sa.Result[Any]:
        return self.conn.execute(
            sa.text(
                "SELECT t.id, t.email_key, t.name, t.status, t.attributes, "
                "CASE WHEN t.id > :last AND t.created_at = :at THEN 1 ELSE 0 END AS ours "
                + self._probe("k", "subscribers", "email_key")
            )
            .bindparams(
                sa.bindparam("last", run.last_id, type_=sa.Integer),
                sa.bindparam("at", run.at, type_=subscribers.c.created_at.type),
            )
            .columns(*_SUBSCRIBER_COLUMNS),
            {"k": self.k},
        )


def _pg_array(values: list[str]) -> str:
    """A PostgreSQL array literal of text: every element quoted, quotes and backslashes
    escaped (so NULL, commas, braces and spaces stay text)."""
    quoted = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(quoted) + "}"


_COLUMNS = (
    "email",
    "email_key",
    "name",
    "status",
    "attributes",
    "consent_source",
    "consent_at",
    "created_at",
    "updated_at",
    "nonce",
)
_SQLITE_INSERT = (
    f"INSERT INTO subscribers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


def _insert(conn: sa.Connection, rows: list[Row], run: _Run) -> int:
    """Insert a chunk of new subscribers; returns how many were inserted.

    The rows go to the driver as plain tuples, values converted once per chunk the way
    SQLAlchemy's types would: its per-row parameter processing was most of an import's
    time. On SQLite the write lock is held from the lookup on, so nobody else can have
    added one. On PostgreSQL another import or a sign-up can add an address between the
    lookup and the insert: those rows are skipped (ON CONFLICT DO NOTHING), not a failure.
    """
    nonces = new_nonces(len(rows))  # one read of the random source for the chunk
    active = SubscriberStatus.ACTIVE.value
    if conn.dialect.name == "postgresql":
        at: Any = run.at.isoformat()  # COPY reads it back as the same timestamptz
        dumps: Callable[[Any], Any] = json.dumps
    else:
        stamp = subscribers.c.created_at.type.dialect_impl(conn.dialect).bind_processor(
            conn.dialect
        )
        to_json = subscribers.c.attributes.type.dialect_impl(conn.dialect).bind_processor(
            conn.dialect
        )
        assert stamp is not None and to_json is not None
        at, dumps = stamp(run.at), to_json
    values = [
        (
            r.email,
            r.key,
            r.name or "",
            r.status or active,
            dumps(r.attributes) if r.attributes else "{}",
            run.source,
            at,
            at,
            at,
            nonce,
        )
        for r, nonce in zip(rows, nonces, strict=True)
    ]
    if conn.dialect.name == "postgresql":
        return _pg_insert(conn, values)
    conn.exec_driver_sql(_SQLITE_INSERT, values)
    return len(rows)


def _copy(
    conn: sa.Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """PostgreSQL's COPY: rows stream in one command. An executemany of thousands of rows
    spent most of its time in the driver parsing and splitting one enormous statement.

    The chunk is written as COPY's text format in one piece: the driver's write_row,
    adapting value by value, was a third of a PostgreSQL import.
    """
    raw: Any = conn.connection.dbapi_connection  # psycopg's own connection: it has copy()
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(copy_text(rows, len(columns)).encode("utf-8"))


def copy_text(rows: list[tuple[Any, ...]], width: int) -> str:
    """Rows in COPY's text format: tab-separated, NULL as \\N, and backslash, tab, CR and
    LF escaped. Addresses, keys and stamps never hold those; names and attributes rarely
    do: the whole chunk is checked at once, and only a chunk that needs it is escaped."""
    data = "".join("\t".join(["\x00" if v is None else str(v) for v in row]) + "\n" for row in rows)
    plain = (
        "\\" not in data
        and "\r" not in data
        and data.count("\t") == len(rows) * (width - 1)
        and data.count("\n") == len(rows)
        and data.count("\x00") == sum(row.count(None) for row in rows)
    )
    if plain:
        return data.replace("\x00", "\\N")
    return "".join(
        "\t".join(["\\N" if v is None else _escape_copy(str(v)) for v in row]) + "\n"
        for row in rows
    )


def _escape_copy(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _pg_insert(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> int:
    """New subscribers on PostgreSQL: COPY straight into the table, which is what the
    lookup just found room for. Another import or a sign-up may have added one of the
    addresses a moment ago: then the COPY fails on the unique address, is rolled back to
    its savepoint, and the chunk goes through a temporary table and INSERT ... ON CONFLICT
    DO NOTHING, which skips those (twice the server's work, so only when needed)."""
    import psycopg.errors

    savepoint = conn.begin_nested()
    try:
        _copy(conn, "subscribers", _COLUMNS, rows)
    except psycopg.errors.UniqueViolation:
        savepoint.rollback()
        return _pg_insert_skipping(conn, rows)
    savepoint.commit()
    return len(rows)


def _pg_insert_skipping(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> int:
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE IF NOT EXISTS import_new (email VARCHAR(320), "
        "email_key VARCHAR(320), name VARCHAR(200), status VARCHAR(16), attributes JSON, "
        "consent_source VARCHAR(200), consent_at TIMESTAMPTZ, created_at TIMESTAMPTZ, "
        "updated_at TIMESTAMPTZ, nonce BIGINT) ON COMMIT DELETE ROWS"
    )
    _copy(conn, "import_new", _COLUMNS, rows)
    listed = ", ".join(_COLUMNS)
    result = conn.exec_driver_sql(
        f"INSERT INTO subscribers ({listed}) SELECT {listed} FROM import_new "
        "ON CONFLICT (email_key) DO NOTHING"
    )
    conn.exec_driver_sql("DELETE FROM import_new")
    return int(result.rowcount)

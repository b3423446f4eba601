"""CSV import: streamed, validated, never reactivating anyone.

The rows are read and checked the same way for both databases (import_rows); SQLite
takes them a chunk per transaction (import_sqlite), PostgreSQL stages the file and merges
it in one (import_pg).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from mailer import heap
from mailer.errors import InputError
from mailer.store.import_pg import import_pg
from mailer.store.import_rows import ImportReport, Vocabulary, check_utf8
from mailer.store.import_sqlite import CHUNK, import_sqlite

__all__ = ["CHUNK", "ImportReport", "Vocabulary", "import_csv"]


def import_csv(
    engine: sa.Engine,
    path: Path,
    *,
    dry_run: bool = False,
    allow_erased: bool = False,
    chunk_size: int = CHUNK,
    sink: Callable[[int, str, str], None] | None = None,
    vocabulary: Vocabulary | None = None,
) -> ImportReport:
    """Import a CSV of subscribers. `chunk_size` is SQLite's rows per transaction."""
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a CSV file")
    check_utf8(path)
    report = ImportReport(sink=sink)
    source = f"import:{path.name}"[:200]
    with heap.frozen(), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            import_pg(conn, path, report, source, dry_run, allow_erased, vocabulary)
        else:
            import_sqlite(conn, path, report, source, dry_run, allow_erased, chunk_size, vocabulary)
    if report.rows == 0:
        raise InputError(f"{path}: no rows under the header; nothing to import")
    return report

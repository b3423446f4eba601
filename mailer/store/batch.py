"""Statements over many rows at once, the same way on both databases.

- `one_of`: `column IN (...)` with the values as one parameter. SQLAlchemy would expand
  and bind a parameter per value at every execution (more Python than the database's own
  work for a thousand); here they go as a JSON array read by `json_each` on SQLite, an
  array compared with `= ANY` on PostgreSQL. Sorted, so index probes walk in order.
- `insert_many`: one INSERT for many rows. On SQLite the rows go to the driver's
  executemany as tuples, each value converted by its column's own SQLAlchemy type, the
  converters taken once per call: SQLAlchemy's per-row parameter handling cost more than
  SQLite's own writing (a webhook batch: 0.65 s against 0.53 s for 80,000 events; most of
  a million-row import). PostgreSQL, whose own work dominates, gets SQLAlchemy's
  executemany as it is (returning the keys it inserted: it gives no row count). A test
  checks both store exactly what SQLAlchemy would.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

FEW = 16  # values that are bound one by one: a statement SQLAlchemy compiles once


def one_of(conn: sa.Connection, column: sa.ColumnElement[Any], values: Collection[Any]) -> Any:
    """A WHERE clause: `column` is one of `values` (ints or strings), as one parameter."""
    ordered = sorted(values)
    if len(ordered) <= FEW:
        return column.in_(ordered)
    if conn.dialect.name == "postgresql":
        element = column.type if isinstance(column.type, sa.Integer | sa.String) else sa.String()
        return column == sa.any_(sa.bindparam(None, ordered, type_=postgresql.ARRAY(element)))
    listed = sa.func.json_each(sa.bindparam(None, json.dumps(ordered), type_=sa.Text)).table_valued(
        "value"
    )
    return column.in_(sa.select(listed.c.value))


def insert_many(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    skip_conflicts_on: sa.Column[Any] | None = None,
    shared: Mapping[str, Any] | None = None,
    as_stored: Collection[str] = (),
) -> int:
    """Insert `rows` (values in `columns` order) in one executemany; `shared` holds the
    values every row has (a time, a source), converted once; `as_stored` names columns
    whose values come as the database stores them (JSON text the caller made). With
    `skip_conflicts_on`, a row whose value there exists already is skipped (ON CONFLICT DO
    NOTHING). Returns how many rows went in."""
    if not rows:
        return 0
    shared = dict(shared or {})
    names = [*columns, *shared]
    if conn.dialect.name != "sqlite":
        statement = postgresql.insert(table)
        if skip_conflicts_on is not None:
            statement = statement.on_conflict_do_nothing(index_elements=[skip_conflicts_on])
        # Its executemany reports no row count: the inserted rows' keys are counted instead.
        key = next(iter(table.primary_key.columns))
        params = [
            {**dict(zip(columns, _parsed(r, columns, as_stored), strict=True)), **shared}
            for r in rows
        ]
        return len(conn.execute(statement.returning(key), params).all())
    quote = conn.dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) "
        f"VALUES ({', '.join('?' * len(names))})"
    )
    if skip_conflicts_on is not None:
        sql += f" ON CONFLICT ({quote(skip_conflicts_on.name)}) DO NOTHING"
    same = tuple(_convert(conn, table.c[name], value) for name, value in shared.items())
    # Most columns need no conversion (text, numbers): only the others are touched.
    converted = [
        (at, f)
        for at, name in enumerate(columns)
        if name not in as_stored and (f := _converter(conn, table.c[name]))
    ]
    values = [tuple(r) + same for r in rows]
    if converted:
        for n, row in enumerate(rows):
            listed = list(row)
            for at, f in converted:
                if listed[at] is not None:
                    listed[at] = f(listed[at])
            values[n] = (*listed, *same)
    return int(conn.exec_driver_sql(sql, values).rowcount)


def _parsed(row: Sequence[Any], columns: Sequence[str], as_stored: Collection[str]) -> list[Any]:
    """A row for SQLAlchemy's own statement: stored JSON text back to its value."""
    return [
        json.loads(v) if name in as_stored and isinstance(v, str) else v
        for name, v in zip(columns, row, strict=True)
    ]


def _convert(conn: sa.Connection, column: sa.Column[Any], value: Any) -> Any:
    f = _converter(conn, column)
    return value if f is None or value is None else f(value)


def _converter(conn: sa.Connection, column: sa.Column[Any]) -> Callable[[Any], Any] | None:
    """What SQLAlchemy does to a value of this column before the driver sees it. Values
    that repeat are converted once: times within a batch (SendGrid's are whole seconds),
    and the empty JSON object most subscribers' attributes are."""
    impl = column.type.dialect_impl(conn.dialect)
    process = impl.bind_processor(conn.dialect)
    if process is None:
        return None
    if column.type.python_type is dt.datetime:
        return functools.lru_cache(maxsize=4096)(process)
    if isinstance(column.type, sa.JSON):
        empty = process({})
        return lambda value: empty if value == {} else process(value)
    return process

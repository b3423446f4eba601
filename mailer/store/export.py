"""CSV and JSON output of the list, streamed a page at a time."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from typing import IO

from mailer.store.subscribers import Subscriber

CSV_COLUMNS = [
    "email",
    "name",
    "status",
    "language",
    "topics",
    "created_at",
    "updated_at",
    "consent_source",
    "consent_at",
    "attributes",
]


# A cell a spreadsheet would run as a formula (OWASP's CSV injection rule); imports undo
# the quote, so an export round-trips.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def unneutralize(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def _fields(s: Subscriber) -> dict[str, str]:
    return {
        "email": s.email,
        "name": s.name,
        "status": s.status,
        "language": s.language or "",
        "topics": ",".join(s.topics),
        "created_at": _iso(s.created_at),
        "updated_at": _iso(s.updated_at),
        "consent_source": s.consent_source or "",
        "consent_at": _iso(s.consent_at),
        "attributes": json.dumps(s.attributes, ensure_ascii=False, sort_keys=True)
        if s.attributes
        else "",
    }


def _iso(value: dt.datetime | None) -> str:
    """One format with the zone, whichever database."""
    if value is None:
        return ""
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def write_csv(rows: Iterable[Subscriber], out: IO[str]) -> int:
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for s in rows:
        writer.writerow({k: neutralize(v) for k, v in _fields(s).items()})
        n += 1
    return n


def write_json(rows: Iterable[Subscriber], out: IO[str]) -> int:
    """A JSON array, written element by element."""
    out.write("[")
    n = 0
    for s in rows:
        fields: dict[str, object] = dict(_fields(s))
        fields["attributes"] = s.attributes
        fields["topics"] = list(s.topics)
        fields["paused_until"] = _iso(s.paused_until)
        out.write(("," if n else "") + "\n  " + json.dumps(fields, ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n

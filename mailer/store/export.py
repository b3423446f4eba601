"""CSV and JSON output of the list, streamed a page at a time."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

from mailer.store.subscribers import Subscriber

CSV_COLUMNS = [
    "email",
    "name",
    "status",
    "created_at",
    "updated_at",
    "consent_source",
    "consent_at",
    "attributes",
]


def _fields(s: Subscriber) -> dict[str, str]:
    return {
        "email": s.email,
        "name": s.name,
        "status": s.status,
        "created_at": _iso(s.created_at),
        "updated_at": _iso(s.updated_at),
        "consent_source": s.consent_source or "",
        "consent_at": _iso(s.consent_at),
        "attributes": json.dumps(s.attributes, ensure_ascii=False, sort_keys=True)
        if s.attributes
        else "",
    }


def _iso(value: object) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else ""


def write_csv(rows: Iterable[Subscriber], out: TextIO) -> int:
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for s in rows:
        writer.writerow(_fields(s))
        n += 1
    return n


def write_json(rows: Iterable[Subscriber], out: TextIO) -> int:
    """A JSON array, written element by element."""
    out.write("[")
    n = 0
    for s in rows:
        fields: dict[str, object] = dict(_fields(s))
        fields["attributes"] = s.attributes
        out.write(("," if n else "") + "\n  " + json.dumps(fields, ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n

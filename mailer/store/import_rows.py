"""What both databases' import paths share: the CSV rows, read, validated and reported
before any database sees them, and the rule for an address already subscribed.

import_sqlite and import_pg take their rows from `read_rows` and decide what an existing
subscriber becomes with `merge_existing` (and write it with UPDATE), so the two report
and change the same things.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mailer import addresses, languages
from mailer.errors import InputError
from mailer.models import SUPPRESSED, Actor, SubscriberStatus, may_change
from mailer.store.export import CSV_COLUMNS, unneutralize
from mailer.store.schema import subscriber_topics, subscribers
from mailer.store.subscribers import clean_name

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


@dataclass(frozen=True)
class Vocabulary:
    """The topics and languages a file's rows may name: anything else is a reported row."""

    topics: frozenset[str] = frozenset()
    languages: tuple[str, ...] = ()  # offered; a narrower tag (en-GB within en) is fine

    def topic_list(self, raw: str) -> tuple[str, ...]:
        keys = sorted({t.strip().lower() for t in raw.split(",") if t.strip()})
        for k in keys:
            if k not in self.topics:
                known = (
                    ", ".join(sorted(self.topics)) or "none are declared ([topics] in mailer.toml)"
                )
                raise ValueError(f"unknown topic {_short(k)!r}; topics: {known}")
        return tuple(keys)

    def language(self, raw: str) -> str:
        if not raw.strip():
            return ""
        tag = languages.canonical(raw)
        if not any(languages.within(tag, o) for o in self.languages):
            raise ValueError(
                f"language {tag!r} is not offered; languages: {', '.join(self.languages)} "
                "(add it to languages in mailer.toml)"
            )
        return tag


@dataclass
class Row:
    line: int
    email: str
    key: str
    name: str | None
    status: str | None
    attributes: dict[str, str]
    language: str | None = None  # None: no language column; "": the list's
    topics: tuple[str, ...] | None = None  # None: no topics column


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


def read_rows(
    path: Path, report: ImportReport, vocabulary: Vocabulary | None = None
) -> Iterator[Row]:
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
        choices = _Choices(header, vocabulary or Vocabulary())
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
            if row is not None and (not choices.present or choices.read(row, values, report)):
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


class _Choices:
    """A file's language and topics columns, if it has them, read against the vocabulary."""

    def __init__(self, header: list[str], vocabulary: Vocabulary) -> None:
        self.language_at = header.index("language") if "language" in header else None
        self.topics_at = header.index("topics") if "topics" in header else None
        self.present = self.language_at is not None or self.topics_at is not None
        self.vocabulary = vocabulary

    def read(self, row: Row, values: list[str], report: ImportReport) -> bool:
        """Fill row.language and row.topics; False (and a reported row) if either is bad."""
        try:
            if self.language_at is not None:
                at = self.language_at
                row.language = self.vocabulary.language(values[at] if at < len(values) else "")
            if self.topics_at is not None:
                at = self.topics_at
                row.topics = self.vocabulary.topic_list(values[at] if at < len(values) else "")
        except ValueError as e:
            report.reject(row.line, str(e))
            return False
        return True


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


def chunked(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class Held:
    """What the store holds for an address the file also has."""

    id: int
    name: str
    status: str
    attributes: dict[str, Any]
    language: str | None = None
    topics: tuple[str, ...] | None = None  # only read when the file has a topics column


@dataclass(frozen=True)
class Change:
    """What an import does to one address already subscribed."""

    # new name, attributes and language (b_id, name, attributes, language)
    update: dict[str, Any] | None = None
    suppress: SubscriberStatus | None = None  # a status the file may set: a suppression
    topics: tuple[str, ...] | None = None  # the topics to set, when they change


def merge_existing(row: Row, old: Held, report: ImportReport) -> Change:
    """An import updates names and attributes and may suppress someone (the status column
    saying unsubscribed, bounced or complained); it never reactivates anyone, and leaves
    everything of a suppressed person but a stronger suppression alone."""
    name, status, attributes = row.name, row.status, row.attributes
    new = SubscriberStatus(status) if status else None
    raises = new is not None and new in SUPPRESSED and may_change(old.status, new, Actor.IMPORT)
    suppress = new if raises else None
    if old.status in SUPPRESSED:
        if raises:
            report.updated += 1
        else:
            report.left_alone += 1
        return Change(suppress=suppress)
    merged_name = old.name if name is None else name
    merged = {**(old.attributes or {}), **attributes}
    language = old.language if row.language is None else (row.language or None)
    topics = row.topics if row.topics is not None and row.topics != old.topics else None
    if merged_name != old.name or merged != (old.attributes or {}) or language != old.language:
        report.updated += 1
        update = {"b_id": old.id, "name": merged_name, "attributes": merged, "language": language}
        return Change(update, suppress, topics)
    if topics is not None:
        report.updated += 1
        return Change(suppress=suppress, topics=topics)
    if raises:
        report.updated += 1
    else:
        report.unchanged += 1
    return Change(suppress=suppress)


def any_erased(conn: sa.Connection) -> bool:
    """Whether anyone was ever erased: only then is a fingerprint worth computing per row."""
    return conn.execute(sa.text("SELECT 1 FROM erasures LIMIT 1")).first() is not None


# An update of a subscriber's name and attributes; the parameters merge_existing gives.
UPDATE = (
    subscribers.update()
    .where(subscribers.c.id == sa.bindparam("b_id"))
    .values(
        name=sa.bindparam("name"),
        attributes=sa.bindparam("attributes"),
        language=sa.bindparam("language"),
        updated_at=sa.bindparam("updated_at"),
    )
)


def write_topics(conn: sa.Connection, changes: list[tuple[int, tuple[str, ...]]]) -> None:
    """Replace these subscribers' topics: a delete and an insert for all of them."""
    if not changes:
        return
    ids = [sid for sid, _ in changes]
    for part in range(0, len(ids), 500):
        conn.execute(
            subscriber_topics.delete().where(
                subscriber_topics.c.subscriber_id.in_(ids[part : part + 500])
            )
        )
    pairs = [{"subscriber_id": sid, "topic": t} for sid, topics in changes for t in topics]
    if pairs:
        conn.execute(subscriber_topics.insert(), pairs)

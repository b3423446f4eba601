"""Reading an issue file: optional YAML front matter, then Markdown."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Any

from markdown_it.token import Token

from mailer import files, languages
from mailer.content import markdown
from mailer.content.placeholders import reject_reserved
from mailer.errors import InputError
from mailer.models import Issue
from mailer.text import STRAY_CONTROL, is_one_line

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*\r?$\n?", re.S | re.M)
FIELDS = {"subject", "preheader", "date", "slug", "send_at", "archive", "audience", "language"}
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
# Names the archive export and the outbox use themselves (lower case: filesystems that
# ignore case would collide too).
RESERVED_SLUGS = frozenset({"index.html", "confirmations", "preferences"})
PREHEADER_MAX = 150
DRAFT_MARK = "TODO:"  # `mailer draft` starts the subject with it; `mailer send` refuses it


def read_text(path: Path, what: str = "file") -> str:
    """UTF-8 text of a user's file, or one line saying why not and what to do."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a {what}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
            f"convert it, e.g. iconv -f GB18030 -t UTF-8 (or -f latin1) {path.name} > fixed.md"
        ) from None


def load_issue(path: Path | str) -> Issue:
    path = Path(path)
    return parse_issue(read_text(path, "issue file"), path)


# Line and paragraph separators (and NEL) arrive by copy and paste: they are line breaks.
_LINE_BREAKS = str.maketrans({"\u2028": "\n", "\u2029": "\n", "\x85": "\n"})
# Any other control character (VT, FF, ESC, NUL...) has no place in an email: STRAY_CONTROL.


def _clean_controls(text: str, path: Path) -> str:
    text = text.translate(_LINE_BREAKS)
    m = STRAY_CONTROL.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        code = ord(m.group())
        name = unicodedata.name(m.group(), "") or _CONTROL_NAMES.get(code, "control character")
        raise InputError(
            f"{path}:{line}: contains the control character U+{code:04X} ({name}); remove it"
        )
    return text


_CONTROL_NAMES = {0: "NUL", 0x0B: "VT", 0x0C: "FF", 0x1B: "ESC", 0x7F: "DEL"}


def parse_issue(text: str, path: Path) -> Issue:
    text = _clean_controls(text, path)
    meta, body = _split_front_matter(text, path)
    tokens = markdown.parse(body)
    deep = markdown.too_deep(tokens)
    offset = text.count("\n", 0, len(text) - len(body))  # lines of front matter
    if deep is not None:
        raise InputError(
            f"{path}:{deep + offset}: lists or quotes nest too deep to render (at most 18 "
            "levels of lists, 37 of quotes); flatten them"
        )
    subject = str(meta.get("subject") or _first_heading(tokens) or "").strip()
    if not subject:
        raise InputError(
            f"{path}: no subject; add a heading (# Title) or 'subject:' in front matter"
        )
    if "\n" in subject or "\r" in subject:
        raise InputError(f"{path}: the subject must be one line")

    reject_reserved(subject, f"{path}: subject")
    preheader = str(meta.get("preheader") or _first_paragraph(tokens) or "")
    preheader = " ".join(preheader.split())
    reject_reserved(preheader, f"{path}: preheader")
    if len(preheader) > PREHEADER_MAX:
        preheader = preheader[: PREHEADER_MAX - 1].rstrip() + "…"
    slug = str(meta.get("slug") or _slug_from_stem(path.stem))
    if not SLUG.match(slug):
        raise InputError(
            f"{path}: slug {slug!r} must be letters, digits, '.', '_' or '-' "
            f"(at most 100); set 'slug:' in front matter"
        )
    if slug.lower() in RESERVED_SLUGS:
        raise InputError(
            f"{path}: slug {slug!r} is a name mailer uses itself (the archive's index, the "
            "outbox's confirmations); set another 'slug:' in front matter"
        )
    return Issue(
        slug=slug,
        subject=subject,
        preheader=preheader,
        date=_date(meta.get("date"), path),
        body=body,
        source=str(path),
        send_at=parse_when(meta.get("send_at"), f"{path}: send_at"),
        archive=_flag(meta.get("archive", True), path),
        line_offset=offset,
        audience=_text_field(meta, "audience", path),
        language=_language_field(meta, path),
    )


def _text_field(meta: dict[str, object], key: str, path: Path) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not is_one_line(value):
        raise InputError(f"{path}: {key} must be one line of text, e.g. {key}: topic:ai")
    return value


def _language_field(meta: dict[str, object], path: Path) -> str:
    value = _text_field(meta, "language", path)
    if not value:
        return ""
    try:
        return languages.canonical(value)
    except ValueError as e:
        raise InputError(f"{path}: language: {e}") from None


def parse_when(value: object, where: str) -> dt.datetime | None:
    """An ISO 8601 time (YAML may have parsed it already); naive means the timezone
    setting's, which the schedule applies. A bare date is refused: it names no hour."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        raise InputError(f"{where} {value} has no time of day; write e.g. {value}T09:00:00+08:00")
    text = str(value).strip()
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise InputError(
            f"{where} {text[:40]!r} is not an ISO 8601 time; write e.g. 2026-11-27T09:00:00+08:00"
        ) from None
    if len(text) <= 10:
        raise InputError(f"{where} {text} has no time of day; write e.g. {text}T09:00:00+08:00")
    return when


def _flag(value: object, path: Path) -> bool:
    if isinstance(value, bool):
        return value
    raise InputError(f"{path}: archive must be true or false, got {str(value)[:20]!r}")


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, object], str]:
    m = FRONT_MATTER.match(text)
    if not m:
        if text.startswith("---\n") and text.count("\n---") == 0 and ":" in text.split("\n")[1]:
            raise InputError(f"{path}: front matter is not closed; end it with a line '---'")
        return {}, text
    import yaml  # only issues with front matter pay for it

    try:
        meta = yaml.load(m.group(1), Loader=_unique_keys_loader()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 2}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise InputError(f"{path}:{where} front matter: {problem}; fix the YAML") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: front matter must be 'key: value' lines")
    unknown = sorted(str(k) for k in meta if k not in FIELDS)
    if unknown:
        raise InputError(
            f"{path}: unknown front matter field {unknown[0]!r}; use subject, preheader, "
            "date, slug, send_at, archive, audience, language"
        )
    for k, v in meta.items():
        # No field may carry the text mailer fills in per reader: one rule for every field.
        reject_reserved(str(v), f"{path}: {k}")
    return {str(k): v for k, v in meta.items()}, text[m.end() :]


def _unique_keys_loader() -> type:
    """YAML's safe loader, refusing a key given twice (YAML would keep the last silently:
    a file with two send_at lines would say one time and be sent at another)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[object] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class says so
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"{key!r} is given twice", key_node.start_mark
                    )
            return super().construct_mapping(node, deep)

    return UniqueKeys


def _first_heading(tokens: list[Token]) -> str:
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            return markdown.inline_text(tokens[i + 1])
    return ""


def _first_paragraph(tokens: list[Token]) -> str:
    """The first paragraph with words of its own: a lone link ("原文链接", "Read more")
    is no preview of the issue."""
    for i, tok in enumerate(tokens):
        if tok.type == "paragraph_open" and not tok.hidden and not _only_links(tokens[i + 1]):
            return markdown.inline_text(tokens[i + 1])
    return ""


def _only_links(inline: Token) -> bool:
    depth, words_outside = 0, False
    for child in inline.children or []:
        if child.type == "link_open":
            depth += 1
        elif child.type == "link_close":
            depth -= 1
        elif child.type in ("text", "code_inline") and child.content.strip() and depth == 0:
            words_outside = True
    return not words_outside


def _slug_from_stem(stem: str) -> str:
    """The file name as a slug: ASCII as it is; anything else transliterated (周报 → ZhouBao)
    plus a short hash of the name, so two names that read alike never share a slug."""
    if stem.isascii():
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")
        if slug:
            return slug[:100]
    from anyascii import anyascii

    ascii_part = re.sub(r"[^A-Za-z0-9._-]+", "-", anyascii(stem)).strip("-._")[:80]
    digest = hashlib.sha256(stem.encode("utf-8")).hexdigest()[:6]
    return f"{ascii_part}-{digest}" if ascii_part else f"issue-{digest}"


def _date(value: object, path: Path) -> str:
    if value is None or value == "":
        m = re.match(r"(\d{4}-\d{2}-\d{2})", path.stem)
        return m.group(1) if m else ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def set_send_at(path: Path, when: dt.datetime) -> None:
    """Write `send_at:` into the issue's front matter (adding front matter if it has none),
    leaving every other line as the writer wrote it, BOM and line endings included.
    Atomic: a crash leaves the old file."""

    text = read_text(path, "issue file")
    bom = "\ufeff" if path.read_bytes()[:3] == b"\xef\xbb\xbf" else ""
    nl = "\r\n" if "\r\n" in text else "\n"
    line = f'send_at: "{when.isoformat()}"'
    m = FRONT_MATTER.match(text)
    if m is None:
        new = f"---{nl}{line}{nl}---{nl}{text}"
    else:
        block = m.group(1)
        existing = re.compile(r"^send_at[ \t]*:[^\r\n]*", re.M)
        if existing.search(block):
            # One at most: parse_issue refuses a second, so the line replaced is the one read.
            block = existing.sub(line.replace("\\", "\\\\"), block, count=1)
        else:
            block = block + ("" if block.endswith("\n") or not block else nl) + line + nl
        new = text[: m.start(1)] + block + text[m.end(1) :]
    parse_issue(new, path)  # never write a file that would no longer parse
    try:
        with files.atomic(path, "w", encoding="utf-8", newline="") as f:
            f.write(bom + new)
    except OSError as e:
        raise InputError(f"{path}: cannot write send_at into it ({e.strerror or e})") from None

"""Language tags: one spelling for each (BCP 47, as CLDR knows it), and which of several a
reader's own tag falls to. The ledger, the audience grammar and the pages all ask here."""

from __future__ import annotations

import re
from collections.abc import Iterable

from babel import Locale, UnknownLocaleError

_SHAPE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*")
MAX = 35  # what the schema keeps


def canonical(tag: str) -> str:
    """'zh_cn', 'ZH-cn' → 'zh-CN'; 'EN' → 'en'. ValueError for a tag CLDR does not know
    ('xx', 'en-XX') or that is not shaped like one."""
    raw = tag.strip()
    if not _SHAPE.fullmatch(raw) or len(raw) > MAX:
        raise ValueError(f"{raw[:40]!r} is not a language tag (e.g. en, zh-CN)")
    parts = raw.replace("_", "-").split("-")
    # RFC 5646's casing: language lower, script title, region upper (zh-Hant-TW)
    tag = "-".join(
        [parts[0].lower()]
        + [p.title() if len(p) == 4 else p.upper() if len(p) == 2 else p.lower() for p in parts[1:]]
    )
    try:
        Locale.parse(tag, sep="-")  # CLDR must know it: a typo is refused, not stored
    except (ValueError, UnknownLocaleError):
        raise ValueError(f"{raw[:40]!r} is not a language CLDR knows (e.g. en, zh-CN)") from None
    return tag


def within(reader: str, tag: str) -> bool:
    """Whether a reader's language is `tag` or a narrower form of it (en-GB is within en).
    The audience's lang:CODE and an edition's choice of readers both mean this."""
    return reader == tag or reader.startswith(tag + "-")


def falls_to(reader: str, offered: Iterable[str]) -> str | None:
    """The narrowest offered tag the reader is within, or None (the main edition)."""
    best = None
    for tag in offered:
        if within(reader, tag) and (best is None or len(tag) > len(best)):
            best = tag
    return best


def display_name(tag: str, in_language: str) -> str:
    """'en' shown in zh-CN: 英语; in its own language for a picker: English."""
    try:
        locale = Locale.parse(tag, sep="-")
        name = locale.get_display_name(Locale.parse(in_language, sep="-"))
    except (ValueError, UnknownLocaleError):
        return tag
    return name or tag

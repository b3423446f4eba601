"""Small text rules shared by every layer: one line of user text, safely."""

from __future__ import annotations

import html
import re

# The characters that are not text, named once for every rule below: C0 and C1 controls
# (NUL, CR, LF, ESC, NEL...) and DEL.
_CONTROLS = "\x00-\x1f\x7f-\x9f"
# ...and the Unicode line and paragraph separators: what a line of text must not hold.
LINE_BREAKING = re.compile(f"[{_CONTROLS}\u2028\u2029]+")
# Controls a text file may not hold: all but the whitespace ones (TAB, LF, CR).
STRAY_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# What a terminal would act on rather than show: the above (ESC starts OSC and CSI
# sequences that set the title or forge lines) and bidirectional overrides.
_TERMINAL = re.compile(f"[{_CONTROLS}\u2028\u2029\u202a-\u202e\u2066-\u2069]")

# Code points that are not characters: surrogates (from undecodable bytes in the
# environment) and Unicode's noncharacters (U+FDD0..U+FDEF and the last two of each plane),
# which XML and MJML refuse and no text needs.
NONCHARACTER = re.compile(
    "[\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(p * 0x10000 + 0xFFFE)}{chr(p * 0x10000 + 0xFFFF)}" for p in range(17))
    + "]"
)


def is_one_line(value: str) -> bool:
    return LINE_BREAKING.search(value) is None


def text_problem(value: str, lines: bool = False) -> str | None:
    """Why `value` is not text a setting may hold (one line, or `lines` of it), or None."""
    m = (STRAY_CONTROL if lines else LINE_BREAKING).search(value) or NONCHARACTER.search(value)
    if m is None:
        return None
    c = m.group()[0]
    kind = "a line break or control character" if m.re is not NONCHARACTER else "a noncharacter"
    return f"contains U+{ord(c):04X} ({kind}) at character {m.start() + 1}"


def clean_text(value: str) -> str:
    """One line of text, control characters (CR, LF, NUL, ESC, NEL...) folded to a space."""
    if value.isprintable():  # no Cc, Zl or Zp character: nothing for the pattern to fold
        return value.strip()
    return LINE_BREAKING.sub(" ", value).strip()


# What a person's name never needs, and what turns a display name into a message from a
# stranger: markup, an address or a link, an encoded-word (=?utf-8?...?=), quoting.
_NOT_A_NAME = re.compile(r"[<>@\"\\=?/:\[\]{}]|www\.", re.I)


def is_plain_name(value: str) -> bool:
    """True when `value` reads as a name and nothing else (see _NOT_A_NAME)."""
    return value.isprintable() and _NOT_A_NAME.search(value) is None


_HTML_SPECIAL = re.compile(r"[&<>\"']")


def escape_html(value: str) -> str:
    """html.escape(value, quote=True); most values need none, and finding that out is
    cheaper than escaping."""
    return html.escape(value, quote=True) if _HTML_SPECIAL.search(value) else value


def safe(value: object) -> str:
    """User-controlled text as a terminal shows it: every control character visible as an
    escape (\\x1b, \\n, \\u202e), never interpreted."""
    return _TERMINAL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))

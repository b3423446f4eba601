"""Small text rules shared by every layer: one line of user text, safely."""

from __future__ import annotations

import html
import re

# C0/C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clean_text(value: str) -> str:
    """One line of text, control characters (CR, LF, NUL, ESC, NEL...) folded to a space."""
    if value.isprintable():  # no Cc, Zl or Zp character: nothing for the pattern to fold
        return value.strip()
    return _CONTROL.sub(" ", value).strip()


_HTML_SPECIAL = re.compile(r"[&<>\"']")


def escape_html(value: str) -> str:
    """html.escape(value, quote=True); most values need none, and finding that out is
    cheaper than escaping."""
    return html.escape(value, quote=True) if _HTML_SPECIAL.search(value) else value


# What a terminal would act on rather than show: C0/C1 controls (ESC starts OSC and CSI
# sequences that set the title or forge lines), DEL, and bidirectional overrides.
_TERMINAL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(value: object) -> str:
    """User-controlled text as a terminal shows it: every control character visible as an
    escape (\\x1b, \\n, \\u202e), never interpreted."""
    return _TERMINAL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))

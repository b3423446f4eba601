"""Small text rules shared by every layer: one line of user text, safely."""

from __future__ import annotations

import re

# C0/C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clean_text(value: str) -> str:
    """One line of text, control characters (CR, LF, NUL, ESC, NEL...) folded to a space."""
    return _CONTROL.sub(" ", value).strip()

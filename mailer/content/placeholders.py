"""Per-recipient parts of a once-rendered issue, filled by plain substitution.

The issue goes through Jinja2, MJML and premailer once; each recipient then costs one
string join. Values are escaped for the part they land in (HTML or text), so a name like
`<script>` or one with a newline can neither inject markup nor break a line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mailer.errors import InputError
from mailer.models import FIELDS, Fields
from mailer.text import clean_text, escape_html

# Letters, digits and underscores only: MJML, premailer and lxml leave them untouched.
TOKENS = {f: f"__MAILER_{f.upper()}__" for f in FIELDS}
_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in TOKENS.values()) + ")")
_FIELD_OF = {t: f for f, t in TOKENS.items()}


@dataclass(frozen=True)
class Compiled:
    """A string with holes: literal segments alternating with field names."""

    literals: tuple[str, ...]
    fields: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> Compiled:
        parts = _SPLIT.split(text)
        return cls(tuple(parts[0::2]), tuple(_FIELD_OF[p] for p in parts[1::2]))

    def fill(self, values: Mapping[str, str]) -> str:
        out = [self.literals[0]]
        for field, literal in zip(self.fields, self.literals[1:], strict=True):
            out.append(values[field])
            out.append(literal)
        return "".join(out)

    @property
    def template(self) -> str:
        """The text with its placeholder tokens, as a provider-side substitution sees it."""
        return self.fill(TOKENS)


def field_values(unsubscribe_url: str, email: str, name: str) -> Fields:
    """One recipient's values as text.

    Only the name needs cleaning here: the URL is ours (URL-safe token) and the address
    was normalized by email-validator, which refuses control characters.
    """
    return Fields(unsubscribe_url, email, clean_text(name) if name else "")


def both_values(
    unsubscribe_url: str, email: str, name: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(HTML values, text values) for one recipient."""
    text = field_values(unsubscribe_url, email, name)._asdict()
    return {k: escape_html(v) for k, v in text.items()}, text


_RESERVED = re.compile(r"__MAILER_[A-Z_]+__")  # placeholders and provider substitution keys


def reject_reserved(text: str, source: str) -> None:

    m = _RESERVED.search(text)
    if m:
        raise InputError(f"{source}: contains the reserved text {m.group(0)}; remove it")

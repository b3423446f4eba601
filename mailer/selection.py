"""An audience expression as the project understands it: parsed, checked against the
topics it declares and the languages it offers, ready for the store to select by."""

from __future__ import annotations

from mailer.audience import Audience, AudienceError, parse
from mailer.config import Settings
from mailer.errors import InputError
from mailer.store.subscribers import Selection


def audience(settings: Settings, text: str, where: str) -> Audience:
    """`where` names what the text came from (--to, an issue's front matter) for the one
    line a bad expression gets."""
    try:
        found = parse(text)
        found.check(settings.topic_keys(), settings.offered_languages)
    except AudienceError as e:
        pointer = f"{e.problem} at column {e.column}"
        raise InputError(f"{where} {text[:80]!r}: {pointer}") from None
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None
    return found


def selection(settings: Settings, text: str | None, where: str = "--where") -> Selection | None:
    if text is None:
        return None
    return Selection(audience(settings, text, where), settings.language)

"""`mailer form`: the sign-up form as HTML to paste into another site."""

from __future__ import annotations

from mailer.config import Settings
from mailer.web.pages import Pages
from mailer.web.subscription import challenge_strings


def signup_snippet(settings: Settings, language: str = "") -> str:
    """The form in `language` (the list's by default): address, name, the topics, the
    honeypot, and the proof-of-work widget when signup_proof_of_work is on."""
    pages = Pages(settings).of(language)
    return (
        pages.env.get_template("form.html.j2").render(
            base=settings.base_url.rstrip("/"),
            lang=pages.language,
            topics=[(t.key, t.name(pages.language)) for t in settings.topics],
            challenge=settings.signup_proof_of_work > 0,
            strings=challenge_strings(pages),
        )
        + "\n"
    )

"""The few HTML pages the server shows, from templates/page.html.j2, in each reader's language."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from mailer.config import Settings
from mailer.content import templates
from mailer.content.i18n import install, translations

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Field:
    """One form control. kind: email, text, checkbox, select (with options), hidden."""

    name: str
    label: str
    kind: str = "text"
    value: str = ""
    checked: bool = False
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    required: bool = False


@dataclass
class Form:
    action: str
    button: str
    hidden: list[tuple[str, str]] = field(default_factory=list)
    fields: list[Field | tuple[str, str, str]] = field(default_factory=list)
    style: str = ""
    legend: str = ""  # a heading above the checkboxes (topics)
    honeypot: bool = False  # a field people never see: a bot that fills it is ignored
    challenge: dict[str, Any] | None = None  # the proof-of-work widget's challenge
    challenge_strings: dict[str, str] = field(default_factory=dict)

    def controls(self) -> list[Field]:
        return [
            f if isinstance(f, Field) else Field(f[0], f[1], f[2], required=f[2] == "email")
            for f in self.fields
        ]


HONEYPOT = "website"  # the honeypot field's name: what a form-filling bot expects to fill


class Pages:
    def __init__(self, settings: Settings, language: str = "") -> None:
        self.settings = settings
        self.language = language or settings.language or "en"
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            extensions=["jinja2.ext.i18n"],
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        gettext = translations(self.language, settings.project)
        install(self.env, gettext)
        self.gettext = gettext.gettext
        self._others: dict[str, Pages] = {}

    def of(self, language: str | None) -> Pages:
        """The same pages in another language the newsletter offers (its own otherwise)."""
        if not language or language == self.language:
            return self
        if language not in self.settings.offered_languages:
            return self
        found = self._others.get(language)
        if found is None:
            found = self._others[language] = Pages(self.settings, language)
        return found

    def render(
        self,
        title: str,
        lines: list[str],
        form: Form | None = None,
        status: int = 200,
        *,
        forms: list[Form] | None = None,
        notice: str = "",
    ) -> HTMLResponse:
        shown = ([form] if form is not None else []) + (forms or [])
        html = templates.render(
            self.env,
            "page.html.j2",
            {
                "title": title,
                "lines": lines,
                "forms": shown,
                "notice": notice,
                "honeypot_name": HONEYPOT,
                "newsletter_name": self.settings.display_name,
                "lang": self.language,
            },
        )
        return HTMLResponse(html, status_code=status, headers=NO_INDEX)

    def not_found(self) -> HTMLResponse:
        """One answer for every bad token: it tells nothing about who is on the list."""
        _ = self.gettext
        return self.render(
            _("Link not valid"),
            [_("This link is not valid. Check that you copied all of it.")],
            status=404,
        )


NO_INDEX = {
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    # Pages with buttons that act: never inside another site's frame (clickjacking).
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}

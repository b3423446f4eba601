"""The few HTML pages the server shows, from templates/page.html.j2."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.responses import HTMLResponse

from mailer.config import Settings
from mailer.content import templates
from mailer.content.i18n import translations


@dataclass
class Form:
    action: str
    button: str
    hidden: list[tuple[str, str]] = field(default_factory=list)
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # name, label, type
    style: str = ""


class Pages:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.language = settings.language or "en"
        self.env = templates.environment(settings.project, self.language)
        self.gettext = translations(self.language, settings.project).gettext

    def render(
        self, title: str, lines: list[str], form: Form | None = None, status: int = 200
    ) -> HTMLResponse:
        html = templates.render(
            self.env,
            "page.html.j2",
            {
                "title": title,
                "lines": lines,
                "form": form,
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

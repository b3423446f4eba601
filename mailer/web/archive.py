"""The issue on the web: the archive list, each issue's web version, the Atom feed and the
media, made once for `mailer serve` and `mailer archive export` alike.

Pages are built from the ledger's pins (what was sent), never from the files. Links are
relative where a static host needs them to be: the same pages work under `mailer serve`
at /archive/ and copied anywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import escape

from mailer import files
from mailer.config import Settings
from mailer.content import templates
from mailer.errors import InputError
from mailer.languages import display_name
from mailer.store import Store
from mailer.store.archive import Published

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # an empty feed's "updated"


@dataclass(frozen=True)
class Site:
    """Made once per process: it holds the templates (in the newsletter's language)."""

    settings: Settings
    env: jinja2.Environment

    @classmethod
    def of(cls, settings: Settings) -> Site:
        return cls(settings, templates.environment(settings.project, settings.language or "en"))

    @property
    def base(self) -> str:
        return self.settings.base_url.rstrip("/")

    def index(self, items: list[Published]) -> str:
        """/archive/: newest first, subject, date and preheader."""
        return templates.render(
            self.env,
            "archive.html.j2",
            {
                "lang": self.settings.language or "en",
                "newsletter_name": self.settings.display_name,
                "issues": items,
                "language_name": lambda tag: language_name(tag),
                "subscribe_url": f"{self.base}/subscribe" if self.base else "../subscribe",
                "feed_url": "../feed.xml",
            },
        )

    def issue_page(self, item: Published, relative_media: bool = False, depth: int = 2) -> str:
        """The web version as pinned; in a static export its images load from ../../media/
        (an edition's page, a level deeper, from ../../../media/)."""
        if relative_media and self.base:
            up = "../" * depth
            # Links within the export stay relative (canonical and og:url stay absolute).
            return (
                item.web_html.replace(f"{self.base}/media/", up + "media/")
                .replace(f'href="{self.base}/archive/"', f'href="{up}archive/"')
                .replace(f'href="{self.base}/feed.xml"', f'href="{up}feed.xml"')
            )
        return item.web_html

    def feed(self, items: list[Published]) -> bytes:
        """Atom (RFC 4287): one entry per archived issue, the web version as its content."""
        from feedgen.feed import FeedGenerator

        fg = FeedGenerator()
        fg.id(f"{self.base}/archive/")
        fg.title(self.settings.display_name)
        fg.link(href=f"{self.base}/archive/", rel="alternate")
        fg.link(href=f"{self.base}/feed.xml", rel="self")
        fg.language(self.settings.language or "en")
        author = self.settings.from_name or self.settings.display_name
        fg.author({"name": author})
        if items:
            fg.updated(max(i.sent_at for i in items))
        else:
            fg.updated(EPOCH)
        for item in reversed(items):  # feedgen puts the last added first
            entry = fg.add_entry()
            url = f"{self.base}/archive/{item.slug}/"
            entry.id(url)
            entry.title(item.subject)
            entry.link(href=url, rel="alternate")
            sent = item.sent_at.replace(microsecond=0)
            entry.published(_issue_date(item.date, sent))
            entry.updated(sent)
            if item.preheader:
                entry.summary(item.preheader)
            entry.content(article(item.web_html), type="html")
        data: bytes = fg.atom_str(pretty=True)
        return data


def language_name(tag: str) -> str:
    """A language in its own words (English, 日本語): what its readers look for."""
    return display_name(tag, tag)


def _issue_date(date: str, sent: dt.datetime) -> dt.datetime:
    """The issue's own date (what the archive list shows), at the hour it was sent; the
    send time when the date is not a day."""
    try:
        day = dt.date.fromisoformat(date[:10])
    except ValueError:
        return sent
    return dt.datetime.combine(day, sent.timetz())


def article(html: str) -> str:
    """The issue's own words from its web version: what a feed reader should show, without
    the hidden preheader and its padding, Outlook's conditional comments, the masthead or
    the subscribe form."""
    import lxml.html

    try:
        doc = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return _body(html)
    found = doc.xpath(
        "//*[contains(concat(' ', normalize-space(@class), ' '), ' mailer-content ')]"
    )
    if not found:  # a project's own template without the class: the whole body
        return _body(html)
    return "".join(
        lxml.html.tostring(child, encoding="unicode", method="html")
        for child in found[0].iterchildren()
        if not isinstance(child, lxml.html.HtmlComment)
    )


def _body(html: str) -> str:
    """The <body> of a web version: a feed reader shows content, not a document."""
    lower = html.lower()
    start = lower.find("<body")
    end = lower.rfind("</body>")
    if start == -1 or end == -1:
        return html
    return html[html.index(">", start) + 1 : end]


def export(settings: Settings, store: Store, out: Path) -> list[Path]:
    """`mailer archive export DIR`: archive/index.html, archive/SLUG/index.html, feed.xml,
    media/NAME. Written file by file, each atomically; what was there and is ours is
    replaced, nothing else is touched."""
    site = Site.of(settings)
    items = store.archive.issues()
    written: list[Path] = []

    def put(rel: str, data: bytes) -> None:
        path = out / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            files.write_bytes(path, data)
        except OSError as e:
            raise InputError(f"cannot write {path}: {e.strerror or e}; pick another DIR") from None
        written.append(path)

    put("archive/index.html", site.index(items).encode("utf-8"))
    root = _redirect("archive/", settings.display_name, settings.language or "en")
    put("index.html", root.encode("utf-8"))
    for item in items:
        put(f"archive/{item.slug}/index.html", site.issue_page(item, True).encode("utf-8"))
        for tag in item.editions:
            edition = store.archive.issue(item.slug, tag)
            if edition is not None:
                page = site.issue_page(edition, True, depth=3).encode("utf-8")
                put(f"archive/{item.slug}/{tag}/index.html", page)
    put("feed.xml", site.feed(items))
    for name in store.archive.media_names():
        found = store.archive.media(name)
        if found is not None:
            put(f"media/{name}", found[1])
    return written


def _redirect(to: str, title: str, lang: str) -> str:
    """The export's root page: straight on to the archive, titled and in its language."""
    return (
        f'<!doctype html><html lang="{escape(lang)}"><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        f'<meta http-equiv="refresh" content="0; url={to}"><a href="{to}">{escape(title)}</a>'
        "</html>\n"
    )

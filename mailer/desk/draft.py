"""`mailer draft`: a new issue file from the feeds in mailer.toml ([[sources]]).

Each feed is fetched with a conditional GET (its ETag and Last-Modified kept in the
database, with the last body, so a 304 still drafts from it) and parsed by feedparser (RSS
and Atom). Per source, the items published since the last sent issue: title, link (without
tracking parameters), the first sentences of the summary as plain Markdown. A link already
in an earlier issue is left out. A dead or malformed feed is one warning; the rest come.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mailer.config import Settings
from mailer.content.issue import DRAFT_MARK as PLACEHOLDER
from mailer.content.issue_files import welcome_slug
from mailer.content.links import article_links
from mailer.errors import InputError
from mailer.models import FeedSource
from mailer.store import Store, open_store
from mailer.text import clean_text

TIMEOUT = 10.0  # seconds for one feed
MAX_BYTES = 5 * 1024 * 1024  # a larger feed is refused, not read
SUMMARY_CHARS = 280
DEFAULT_SINCE = dt.timedelta(days=7)  # with nothing sent yet
TRACKING = re.compile(r"^(utm_[a-z_]+|fbclid|gclid|mc_cid|mc_eid|igshid)$", re.I)


@dataclass(frozen=True)
class Item:
    title: str
    url: str
    summary: str
    published: dt.datetime | None


@dataclass
class Draft:
    markdown: str
    path: Path
    items: int = 0
    feeds: int = 0
    warnings: list[str] = field(default_factory=list)
    since: dt.datetime | None = None


def draft(
    settings: Settings,
    now: dt.datetime,
    since: dt.datetime | None = None,
    out: Path | None = None,
    dry_run: bool = False,
) -> Draft:
    """Read the feeds and write the draft (with `dry_run`, neither the file nor the cache)."""
    if not settings.sources:
        raise InputError(
            'no feeds to draft from; add [[sources]] with url = "https://..." to mailer.toml'
        )
    path = out or settings.path(settings.issues_dir) / f"{now:%Y-%m-%d}-draft.md"
    if path.exists():
        raise InputError(f"{path} exists; mailer draft never overwrites a file: pass -o FILE")
    with open_store(settings) as store:
        start = since or store.pins.last_sent_at(welcome_slug(settings))
        start = start or now - DEFAULT_SINCE
        sent = {normalize(u) for html in store.pins.sent_html() for u in article_links(html, "")}
        sections, warnings = [], []
        for source in settings.sources:
            try:
                title, items = _read(store, source, dry_run)
            except FeedError as e:
                warnings.append(f"feed {source.name or source.url}: {e}; left out")
                continue
            fresh = [i for i in _since(items, start) if normalize(i.url) not in sent]
            sent |= {normalize(i.url) for i in fresh}  # two feeds, one story: once
            if fresh:
                sections.append((source.name or title or source.url, fresh))
    text = _markdown(now, sections)
    result = Draft(text, path, sum(len(i) for _, i in sections), len(sections), warnings, start)
    if not dry_run:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as f:  # "x": one that appeared meanwhile stays
                f.write(text)
        except FileExistsError:
            raise InputError(f"{path} exists; mailer draft never overwrites a file") from None
        except OSError as e:
            raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    return result


class FeedError(Exception):
    pass


def _read(store: Store, source: FeedSource, dry_run: bool) -> tuple[str, list[Item]]:
    """The feed's title and items: fetched (conditionally), or the cached body on a 304."""
    import feedparser

    cached = store.feeds.get(source.url)
    body, etag, modified = _fetch(
        source.url, cached.etag if cached else None, cached.last_modified if cached else None
    )
    if body is None:  # 304 Not Modified
        if cached is None or cached.body is None:
            raise FeedError("answered 304 but nothing was cached; it will come next time")
        body = cached.body
    elif not dry_run:
        store.feeds.put(source.url, etag, modified, body)
    parsed: Any = feedparser.parse(body)
    if not parsed.entries and (parsed.bozo or not parsed.feed):
        reason = type(parsed.get("bozo_exception")).__name__ if parsed.bozo else "no items"
        raise FeedError(f"is not an RSS or Atom feed ({reason})")
    return clean_text(str(parsed.feed.get("title", ""))), [
        i for e in parsed.entries if (i := _item(e)) is not None
    ]


def _fetch(
    url: str, etag: str | None, modified: str | None
) -> tuple[bytes | None, str | None, str | None]:
    request = urllib.request.Request(url, headers={"User-Agent": "mailer-draft/1"})
    if etag:
        request.add_header("If-None-Match", etag)
    if modified:
        request.add_header("If-Modified-Since", modified)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
            data = r.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                raise FeedError(f"is larger than {MAX_BYTES >> 20} MB")
            return data, r.headers.get("ETag"), r.headers.get("Last-Modified")
    except urllib.error.HTTPError as e:
        if e.code == 304:
            return None, etag, modified
        raise FeedError(f"answered HTTP {e.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise FeedError(f"could not be fetched ({str(reason)[:80]})") from None


def _item(entry: Any) -> Item | None:
    url = str(entry.get("link") or "")
    if not url.startswith(("http://", "https://")):
        return None
    title = clean_text(" ".join(str(entry.get("title") or url).split()))[:200]
    summary = _sentences(_plain(str(entry.get("summary") or entry.get("description") or "")))
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    published = dt.datetime(*when[:6]).replace(tzinfo=dt.UTC) if when else None
    return Item(title, strip_tracking(url), summary, published)


def _since(items: Iterable[Item], start: dt.datetime) -> list[Item]:
    """Items published since `start`; one without a date counts as new (the sent links
    keep it from coming twice)."""
    return [i for i in items if i.published is None or i.published >= start]


def _plain(html: str) -> str:
    """A summary's text: feeds put HTML there; the draft keeps words only."""
    if "<" not in html and "&" not in html:
        return " ".join(html.split())
    import lxml.html

    try:
        text = lxml.html.fromstring(f"<div>{html}</div>").text_content()
    except Exception:  # not HTML after all: its text as it is
        text = re.sub(r"<[^>]*>", " ", html)
    return " ".join(clean_text(text).split())


def _sentences(text: str) -> str:
    """The first sentences, at most about SUMMARY_CHARS."""
    out = ""
    for sentence in re.split(r"(?<=[.!?。！？])\s*", text):
        if not sentence:
            continue
        if out and len(out) + len(sentence) > SUMMARY_CHARS:
            break
        # Chinese sentences follow each other without a space; others with one.
        out += sentence if not out or out.endswith(("。", "！", "？")) else " " + sentence
    if len(out) > SUMMARY_CHARS:
        out = out[: SUMMARY_CHARS - 1].rstrip() + "…"
    return out


def strip_tracking(url: str) -> str:
    """The link without utm_* and the like: readers are not a campaign."""
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING.match(k)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def normalize(url: str) -> str:
    """One spelling of a link for "was it sent already": no tracking, fragment or
    trailing slash, scheme and host in lower case."""
    parts = urlsplit(strip_tracking(url.strip()))
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#|!])")


def _md(text: str) -> str:
    """Plain text as Markdown that says the same: every marker escaped."""
    return _MARKDOWN.sub(r"\\\1", text)


def _link(url: str) -> str:
    return url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")


def _markdown(now: dt.datetime, sections: list[tuple[str, list[Item]]]) -> str:
    lines = [
        "---",
        f'subject: "{PLACEHOLDER} this issue\'s subject"',
        f"date: {now:%Y-%m-%d}",
        "---",
        f"# {PLACEHOLDER} this issue's title",
        "",
    ]
    for name, items in sections:
        lines += [f"## {_md(name)}", ""]
        for item in items:
            summary = f" — {_md(item.summary)}" if item.summary else ""
            lines.append(f"- **[{_md(item.title)}]({_link(item.url)})**{summary} *{_md(name)}*")
        lines.append("")
    if not sections:
        lines += ["Nothing new in the feeds since the last issue.", ""]
    return "\n".join(lines)

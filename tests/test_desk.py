"""The writer's desk: `mailer draft` from real feeds over HTTP, `mailer stats` (terminal,
JSON, a page with charts that fetches nothing), guard rails before a send, counted links."""

from __future__ import annotations

import email
import email.policy
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailer.config import load_settings
from mailer.store import open_store
from mailer.web.serve import create_app
from tests.conftest import Cli, write

ISSUE = "issues/2026-11-20-weekly.md"

RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Model Weekly</title><link>https://models.example/</link>
<item><title>Small models catch up</title>
<link>https://models.example/small?utm_source=rss&amp;utm_medium=feed&amp;id=7</link>
<description>&lt;p&gt;A new &lt;b&gt;3B&lt;/b&gt; model nears last year's 70B. It runs on a laptop. Benchmarks inside.&lt;/p&gt;</description>
<pubDate>Wed, 02 Dec 2026 10:00:00 GMT</pubDate></item>
<item><title>Old news</title><link>https://models.example/old</link>
<description>From last month.</description><pubDate>Mon, 02 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>Already sent *before*</title><link>https://models.example/sent/</link>
<description>We had this one.</description><pubDate>Thu, 03 Dec 2026 10:00:00 GMT</pubDate></item>
</channel></rss>"""
ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>工具周刊</title><id>urn:tools</id>
<updated>2026-12-03T00:00:00Z</updated>
<entry><title>新的向量数据库发布</title><link href="https://tools.example/vector#top"/><id>urn:1</id>
<updated>2026-12-03T08:00:00Z</updated><summary>它更快了。也更省内存。还有第三句话。</summary></entry>
</feed>"""


class Feeds:
    """Feeds over HTTP on 127.0.0.1: an RSS 2.0, an Atom (answering 304 to its ETag), one
    that is not a feed, and one that fails."""

    def __init__(self) -> None:
        self.hits: dict[str, list[str]] = {}
        feeds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                feeds.hits.setdefault(self.path, []).append(self.headers.get("If-None-Match", ""))
                if self.path == "/rss":
                    self._send(200, RSS.encode(), "application/rss+xml")
                elif self.path == "/atom":
                    if self.headers.get("If-None-Match") == '"v1"':
                        self.send_response(304)
                        self.end_headers()
                        return
                    self._send(200, ATOM.encode(), "application/atom+xml", etag='"v1"')
                elif self.path == "/broken":
                    self._send(200, b"<html><body>not a feed", "text/html")
                else:
                    self._send(500, b"oops", "text/plain")

            def _send(self, code: int, body: bytes, kind: str, etag: str = "") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Feeds:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feeds() -> Iterator[Feeds]:
    with Feeds() as f:
        yield f


def test_draft_from_feeds(project: Path, run: Cli, feeds: Feeds) -> None:
    toml = project / "mailer.toml"
    toml.write_text(
        toml.read_text()
        + f'[[sources]]\nurl = "{feeds.url}/rss"\n'
        + f'[[sources]]\nurl = "{feeds.url}/atom"\nname = "Tools"\n'
        + f'[[sources]]\nurl = "{feeds.url}/broken"\n'
        + f'[[sources]]\nurl = "{feeds.url}/gone"\n'
    )
    # An earlier issue already linked one of the items.
    write(
        project / "issues" / "2026-11-27.md", "# Earlier\n\n[that](https://models.example/sent)\n"
    )
    run("subscribers", "add", "a@example.com")
    assert run("send", str(project / "issues" / "2026-11-27.md"), "--yes").exit_code == 0
    out = project / "issues" / "draft.md"
    r = run("draft", "--since", "2026-11-25", "-o", str(out))
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "/broken" in warnings[0] and "is not an RSS or Atom feed" in warnings[0]
    assert "/gone" in warnings[1] and "answered HTTP 500" in warnings[1]
    assert "2 items from 2 feed(s)" in r.output
    text = out.read_text()
    assert text.startswith('---\nsubject: "TODO: ')
    assert "## Model Weekly" in text and "## Tools" in text
    assert "https://models.example/small?id=7" in text and "utm_" not in text
    assert "A new 3B model nears last year's 70B. It runs on a laptop." in text
    assert "<b>" not in text and "<p>" not in text
    assert "Old news" not in text and "Already sent" not in text  # too old; sent before
    assert "[新的向量数据库发布](https://tools.example/vector#top)" in text
    # Never overwrites; the same run again uses the cache: the Atom feed answers 304.
    again = run("draft", "--since", "2026-11-25", "-o", str(out))
    assert again.exit_code == 1 and "never overwrites" in again.output
    r = run("draft", "--since", "2026-11-25", "--dry-run")
    assert r.exit_code == 0 and "新的向量数据库发布" in r.output  # from the cached body
    assert feeds.hits["/atom"][-1] == '"v1"'
    # The draft builds and previews; a list send of it is refused until it has a subject.
    assert run("build", str(out), "-o", str(project / "b")).exit_code == 0
    from mailer.web.preview import Previewer

    shown = Previewer(load_settings(project), out).render(out.name)
    assert shown is not None and not shown.error and "Small models catch up" in shown.html
    refused = run("send", str(out), "--yes")
    assert refused.exit_code == 1 and "still the draft's placeholder" in refused.output


def test_draft_without_sources_or_with_a_bad_one_is_one_line(project: Path, run: Cli) -> None:
    r = run("draft")
    assert r.exit_code == 1 and "no feeds to draft from; add [[sources]]" in r.output
    toml = project / "mailer.toml"
    toml.write_text(toml.read_text() + '[[sources]]\nurl = "file:///etc/passwd"\n')
    r = run("draft")
    assert (
        r.exit_code == 1 and "source 1: url must be an absolute http:// or https:// URL" in r.output
    )


# -- numbers ------------------------------------------------------------------------------


def _sent_list(project: Path, run: Cli, n: int) -> None:
    write(project / "list.csv", "email\n" + "".join(f"r{i:04d}@example.com\n" for i in range(n)))
    assert run("subscribers", "import", str(project / "list.csv")).exit_code == 0
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0


def _complaints(project: Path, k: int, kind: str = "complained") -> None:
    from mailer.feedback.apply import Rules, apply_batch
    from mailer.models import STATUS_FOR, DeliveryEvent, EventType, Proof, Source

    settings = load_settings(project)
    with open_store(settings) as store:
        issue = store.pins.find("2026-11-20-weekly")
        assert issue is not None
        events = []
        for i in range(k):
            s = store.subscribers.require(f"r{i:04d}@example.com")
            what = EventType(kind)
            events.append(
                DeliveryEvent(
                    what,
                    Source.SENDGRID,
                    Proof.PROVIDER,
                    f"{kind}{i}",
                    s.email,
                    s.id,
                    issue.id,
                    suppress=STATUS_FOR.get(what),
                )
            )
        apply_batch(store.engine, events, Rules())


def test_stats_in_the_terminal_as_json_and_as_a_page(project: Path, run: Cli, browser: Any) -> None:
    _sent_list(project, run, 120)
    _complaints(project, 1)
    r = run("stats")
    assert r.exit_code == 0, r.output
    assert "119 active subscribers" in r.output and "2026-11-20-weekly" in r.output
    assert re.search(r"new +[▁-█]+ +120", r.output)
    data = json.loads(run("stats", "--json").output)
    (issue,) = data["issues"]
    assert issue["sent"] == 120 and issue["complained"] == 1
    assert issue["complaint_rate"] == round(1 / 120, 5)
    assert data["weeks"][-1]["subscribed"] == 120 and data["weeks"][-1]["complained"] == 1
    page = project / "stats.html"
    assert run("stats", "--html", str(page)).exit_code == 0
    html = page.read_text()
    assert "<script" not in html and " src=" not in html and 'href="http' not in html
    assert "url(http" not in html and "@import" not in html
    tab = browser.new_page()
    requests: list[str] = []
    tab.on("request", lambda req: requests.append(req.url))
    tab.goto(page.as_uri())
    svgs = tab.locator("svg")
    assert svgs.count() == 3
    for i in range(3):
        box = svgs.nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
        assert svgs.nth(i).locator("rect, path").count() > 5  # bars and lines drawn
    assert requests == [page.as_uri()]  # nothing else was fetched
    tab.close()


def test_stats_page_in_serve_only_behind_its_token(project: Path, run: Cli) -> None:
    _sent_list(project, run, 3)
    settings = load_settings(project)
    with open_store(settings) as store, TestClient(create_app(settings, store, False)) as c:
        assert c.get("/stats").status_code == 404  # no stats_token: no page
    token = "s" * 32
    settings = load_settings(project, {"stats_token": token})
    with open_store(settings) as store, TestClient(create_app(settings, store, False)) as c:
        assert c.get("/stats").status_code == 401
        assert c.get("/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get("/stats", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "<svg" in ok.text
        assert "default-src 'none'" in ok.headers["content-security-policy"]
        assert c.get(f"/stats?token={token}").status_code == 200


# -- guard rails -----------------------------------------------------------------------------


def test_guard_rails_warn_ask_and_refuse(project: Path, run: Cli) -> None:
    _sent_list(project, run, 1000)
    second = write(project / "issues" / "2026-11-27-next.md", "# Next\n\nMore.\n")
    _complaints(project, 2)  # 0.2%: over Gmail's guidance
    r = run("send", str(second), "--dry-run")
    assert r.exit_code == 0
    assert "warning: 2026-11-20-weekly: complaint rate 0.20% (2 of 1000), over Gmail's" in r.output
    _complaints(project, 4)  # 0.4%: over the line
    r = run("send", str(second), "--yes")
    assert r.exit_code == 3 and "pass --accept-risk to send anyway" in r.output
    assert "over the 0.3% line" in r.output
    assert not (project / "outbox" / "2026-11-27-next").exists()
    # --due refuses too, with exit 3, unless a human accepts the risk
    import datetime as dt

    due = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(timespec="seconds")
    assert run("send", str(second), "--at", due).exit_code == 0
    r = run("send", "--due")
    assert r.exit_code == 3 and "refused: issues/2026-11-27-next.md" in r.output
    r = run("send", "--due", "--accept-risk")
    assert r.exit_code == 0, r.output
    assert len(list((project / "outbox" / "2026-11-27-next").glob("*.eml"))) == 996


def test_guard_rails_on_bounces_and_a_first_mailing_of_an_import(project: Path, run: Cli) -> None:
    write(project / "list.csv", "email\n" + "".join(f"r{i:04d}@example.com\n" for i in range(200)))
    run("subscribers", "import", str(project / "list.csv"))
    r = run("send", str(project / ISSUE), "--dry-run")
    assert "200 of the recipients came from an import, with no double opt-in on record" in r.output
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    _complaints(project, 5, kind="bounced")  # 2.5%
    second = write(project / "issues" / "2026-11-27-next.md", "# Next\n\nMore.\n")
    r = run("send", str(second), "--dry-run")
    assert "hard-bounce rate 2.50% (5 of 200), over 2%" in r.output
    assert "came from an import" not in r.output  # mailed before: no longer a first mailing


# -- counted links ---------------------------------------------------------------------------


def test_counted_links_redirect_only_to_the_issues_links(project: Path, run: Cli) -> None:
    toml = project / "mailer.toml"
    toml.write_text(toml.read_text() + "count_clicks = true\n")
    run("subscribers", "add", "a@example.com")
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    (eml,) = (project / "outbox").rglob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    counted = re.findall(r'href="https://news\.example\.com(/l/[^"]+)"', html)
    assert counted and all(f"({'https://news.example.com' + c})" in text for c in counted[:1])
    assert "/u/" in html  # our own links stay as they are
    settings = load_settings(project)
    with (
        open_store(settings) as store,
        TestClient(create_app(settings, store, False), follow_redirects=False) as c,
    ):
        web = c.get("/archive/2026-11-20-weekly/").text
        assert "/l/" not in web  # the web version keeps the originals
        first = c.get(counted[0])
        assert first.status_code == 302 and first.headers["location"].startswith("https://")
        assert first.headers["location"] in web  # only ever a link the issue had
        c.get(counted[0])
        token = counted[0].rsplit("/", 1)[1]
        ids, sig = token.rsplit(".", 1)
        ref, n = ids.split(".")
        tampered = f"/l/{ref}.{int(n, 16) + 1:x}.{sig}"
        assert c.get(tampered).status_code == 404
        assert c.get("/l/" + token[:-2] + "xx").status_code == 404
        from mailer.tokens import click_signer

        unknown = click_signer(settings.secret_key).sign(int(ref, 16), 999)
        assert c.get(f"/l/{unknown}").status_code == 404
        target = first.headers["location"]
    report = json.loads(run("report", str(project / ISSUE), "--json").output)
    assert {"url": target, "clicks": 2} in report["top_links"]
    with open_store(settings) as store, store.engine.connect() as conn:
        columns = set(conn.exec_driver_sql("SELECT * FROM issue_links").keys())
        assert columns == {"issue_id", "n", "url", "clicks"}  # nothing names a reader

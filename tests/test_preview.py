"""mailer preview: uvicorn on 127.0.0.1 and headless Chromium, live reload, errors, identity."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mailer.config import Settings
from mailer.web.preview import Previewer, create_preview_app
from mailer.web.sockets import bind_free
from tests.conftest import Cli, write
from tests.servers import run_uvicorn

SQLITE_ONLY = True  # the subject is not the store

ISSUE = "issues/2026-11-20-weekly.md"

LOCAL = "http://127.0.0.1:8025"  # the preview answers only the host it bound


@pytest.fixture
def run(sqlite_project: Path) -> Cli:
    return Cli(sqlite_project)


def serve(previewer: Previewer) -> Iterator[str]:
    sock, _ = bind_free("127.0.0.1", 18025)
    yield from run_uvicorn(create_preview_app(previewer), sock)


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    yield from serve(Previewer(settings, settings.project / "issues"))


def test_preview_html_is_byte_identical_to_build_and_to_what_was_sent(
    run: Cli, sqlite_project: Path, settings: Settings, tmp_path: Path
) -> None:
    write(sqlite_project / "list.csv", "email,name\nann@example.com,Ann <Lee>\n")
    run("subscribers", "import", str(sqlite_project / "list.csv"))
    assert run("send", str(sqlite_project / ISSUE), "--yes").exit_code == 0
    (eml,) = list((sqlite_project / "outbox").rglob("*.eml"))
    sent = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    sent_html = [p for p in sent.iter_parts()][1].get_content()  # type: ignore[attr-defined]
    assert (
        run(
            "build", str(sqlite_project / ISSUE), "-o", str(tmp_path), "--as", "ann@example.com"
        ).exit_code
        == 0
    )
    built = (tmp_path / "2026-11-20-weekly.html").read_bytes()
    with TestClient(
        create_preview_app(Previewer(settings, sqlite_project / ISSUE, "ann@example.com")),
        base_url=LOCAL,
    ) as client:
        served = client.get("/issue/2026-11-20-weekly.md/email.html").content
    assert served == built
    # On the wire every line ends in CRLF (RFC 5322) and the part ends with one: the
    # recipient's client gets these bytes back once it reads the lines.
    assert sent_html.replace("\r\n", "\n").rstrip("\n").encode("utf-8") == built
    assert "Ann &lt;Lee&gt;" in sent["To"] or "Ann <Lee>" in str(sent["To"])


def test_directory_index_and_bad_input(settings: Settings, tmp_path: Path) -> None:
    with TestClient(
        create_preview_app(Previewer(settings, settings.project / "issues")), base_url=LOCAL
    ) as client:
        index = client.get("/")
        assert (
            "本周 AI 周报 · Weekly roundup" in index.text
            and "KB" in index.text
            and "2026-11-20" in index.text
        )
        assert client.get("/issue/nope.md").status_code == 404
    empty = tmp_path / "empty"
    empty.mkdir()
    with TestClient(create_preview_app(Previewer(settings, empty)), base_url=LOCAL) as client:
        r = client.get("/")
        assert r.status_code == 404 and "No issue files" in r.text


def test_cli_preview_missing_issue_and_port_in_use(run: Cli, sqlite_project: Path) -> None:
    r = run("preview", str(sqlite_project / "missing.md"), "--no-open")
    assert (
        r.exit_code == 1
        and r.output
        == f"Error: {sqlite_project / 'missing.md'}: no such issue file or directory; check the path\n"
    )
    taken, port = bind_free("127.0.0.1", 18100)
    try:
        sock, other = bind_free("127.0.0.1", port)
        assert other == port + 1
        sock.close()
    finally:
        taken.close()


def show(page: Any, view: str | None = None) -> None:
    """Click a view (or wait for a reload) and wait until it is on screen."""
    before = page.evaluate("document.body.dataset.shown || ''")
    if view is not None:
        page.click(f"button[data-view={view}]")
    page.wait_for_function(
        "([b, v]) => { const s = document.body.dataset.shown || ''; return s !== b && (!v || s.startsWith(v + ':')); }",
        arg=[before, view],
    )


@pytest.mark.browser
def test_views_live_reload_and_errors_in_chromium(
    live: str, settings: Settings, browser: Any, tmp_path: Path
) -> None:
    issue = settings.project / ISSUE
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{live}/issue/2026-11-20-weekly.md")
    frame = page.frame_locator("#email")
    frame.locator("text=Weekly AI Roundup").wait_for()
    page.locator("#subject", has_text="本周 AI 周报").wait_for()
    assert "KB of 95 KB (Gmail clips at 102)" in page.locator("#size").inner_text()
    page.screenshot(path=str(tmp_path / "desktop.png"))
    assert page.evaluate("document.getElementById('email').getBoundingClientRect().width") >= 600

    show(page, "mobile")
    assert page.evaluate("document.getElementById('email').getBoundingClientRect().width") == 375
    assert (
        page.evaluate(
            "document.getElementById('email').contentDocument.documentElement.scrollWidth"
        )
        <= 375
    )
    page.screenshot(path=str(tmp_path / "mobile.png"))

    show(page, "dark")
    color = "getComputedStyle(document.getElementById('email').contentDocument.querySelector('.mailer-content p')).color"
    assert page.evaluate(color) == "rgb(221, 221, 221)"  # the email's own dark rules apply

    show(page, "text")
    page.locator("#textview", has_text="Unsubscribe: https://news.example.com/u/").wait_for()
    show(page, "source")
    page.locator(
        "#textview", has_text="List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    ).wait_for()

    show(page, "desktop")
    assert page.evaluate(color) == "rgb(34, 34, 34)"  # and light again
    # links in the email open in a new tab (set once the frame has loaded)
    page.wait_for_function(
        "() => document.getElementById('email').contentDocument"
        "?.querySelector('a[href^=\"https://example.com\"]')?.target === '_blank'"
    )

    # live reload: edit the issue, the page changes by itself, keeping the view
    issue.write_text(issue.read_text().replace("Weekly AI Roundup", "Live Edited Title"))
    frame.locator("text=Live Edited Title").wait_for(timeout=5000)
    assert (
        page.evaluate("document.querySelector('button[aria-pressed=true]').dataset.view")
        == "desktop"
    )

    # a broken template shows the error with file and line; fixing it brings the email back
    tpl = settings.project / "templates" / "newsletter.mjml.j2"
    good = tpl.read_text()
    tpl.write_text(good.replace("{{ content }}", "{{ content }"))
    page.locator("#error", has_text="newsletter.mjml.j2").wait_for(timeout=5000)
    frame.locator("text=Cannot render").wait_for(timeout=5000)
    assert "template syntax error" in page.locator("#error").inner_text()
    tpl.write_text(good)
    frame.locator("text=Live Edited Title").wait_for(timeout=5000)
    page.locator("#error").wait_for(state="hidden", timeout=5000)
    with httpx.Client() as http:  # the server kept running through it all
        assert http.get(f"{live}/").status_code == 200
    page.close()


def test_local_images_show_in_the_preview(settings: Settings, sqlite_project: Path) -> None:
    """The preview serves converted local images itself: they show before anything is sent."""
    from io import BytesIO

    from PIL import Image

    (sqlite_project / "issues" / "img").mkdir()
    Image.new("RGB", (2000, 1000), (10, 90, 200)).save(sqlite_project / "issues" / "img" / "c.jpg")
    write(sqlite_project / "issues" / "pics.md", "# Pics\n\nText.\n\n![chart](img/c.jpg)\n")
    with TestClient(
        create_preview_app(Previewer(settings, sqlite_project / "issues")), base_url=LOCAL
    ) as client:
        html = client.get("/issue/pics.md/email.html").text
        import re

        (src,) = re.findall(r'<img[^>]* src="(/media/[0-9a-f]{20}\.jpg)"', html)
        r = client.get(src)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert Image.open(BytesIO(r.content)).size == (1200, 600)
        assert client.get("/media/" + "0" * 20 + ".jpg").status_code == 404

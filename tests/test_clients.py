"""The email as readers' clients and mailbox providers see it, checked by real checkers:
caniemail's data (doiuse-email), axe-core in headless Chromium, contrast computed in the
page, layout at phone to desktop widths in both themes, and the inbox preview."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mailer.compose.build import personalize_for
from mailer.config import Settings, load_settings
from mailer.content.issue import load_issue
from mailer.content.render import Renderer
from tests.conftest import SAMPLES, write

SQLITE_ONLY = True  # the subject is not the store

JS = Path(__file__).resolve().parent / "js"
STRESS = Path(__file__).resolve().parent / "fixtures" / "stress.md"
CLIENTS = "gmail.*,apple-mail.*,outlook.outlook-com,yahoo.*"
WIDTHS = (320, 375, 600, 1024)


def need_checkers() -> None:
    if shutil.which("node") and (JS / "node_modules" / "doiuse-email").is_dir():
        return
    message = "the JS checkers are not installed (make setup runs npm install in tests/js)"
    if os.environ.get("MAILER_REQUIRE_BROWSER") == "1":
        pytest.fail(message + ", and MAILER_REQUIRE_BROWSER=1")
    pytest.skip(message)


def issues(project: Path) -> list[Path]:
    found = [project / "issues" / "2026-11-20-weekly.md", STRESS]
    if (SAMPLES / "ai-daily-digest.md").exists():
        found.append(SAMPLES / "ai-daily-digest.md")
    return found


def html_of(settings: Settings, path: Path, out: Path) -> Path:
    rendered = Renderer(settings).render(load_issue(path))
    html, _, _ = personalize_for(settings, rendered, None)
    return write(out / f"{path.stem}.html", html)


@pytest.mark.parametrize("name", ["example", "stress", "sample"])
def test_caniemail_finds_nothing_beyond_the_allow_list(
    settings: Settings, tmp_path: Path, name: str
) -> None:
    need_checkers()
    path = {p.stem: p for p in issues(settings.project)}.get(
        {"example": "2026-11-20-weekly", "stress": "stress", "sample": "ai-daily-digest"}[name]
    )
    if path is None:
        pytest.skip("the shared sample issue is not there")
    html = html_of(settings, path, tmp_path)
    out = subprocess.run(
        ["node", str(JS / "doiuse.mjs"), str(html), CLIENTS],
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout
    allowed = json.loads((JS / "caniemail-allowlist.json").read_text())
    unexplained = []
    for error in json.loads(out)["errors"]:
        m = re.match(r"`(.+?)` is (?:not|only partially) supported by `(.+?)`", error)
        assert m is not None, error
        feature, client = m.groups()
        if client not in allowed.get(feature, {}).get("clients", []):
            unexplained.append(error)
    assert not unexplained, unexplained


CONTRAST_JS = """
() => {
  const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  let checked = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el.getClientRects().length || el.closest('.mailer-preheader')) continue;
    const fg = parse(getComputedStyle(el).color).slice(0, 3);
    const bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    checked++;
    if (ratio < 4.5) bad.push([n.textContent.trim().slice(0, 30), fg.join(','), bg.join(','), ratio.toFixed(2)]);
  }
  return {checked, bad};
}
"""


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_and_contrast_in_both_themes(
    settings: Settings, tmp_path: Path, browser: Any, scheme: str
) -> None:
    need_checkers()
    for path in issues(settings.project):
        html = html_of(settings, path, tmp_path)
        page = browser.new_page(viewport={"width": 600, "height": 900}, color_scheme=scheme)
        page.goto(html.as_uri())
        page.add_script_tag(path=str(JS / "node_modules" / "axe-core" / "axe.min.js"))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [
            (v["id"], v["impact"], [n["html"][:80] for n in v["nodes"][:3]])
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not serious, (path.name, scheme, serious)
        contrast = page.evaluate(CONTRAST_JS)
        assert contrast["checked"] > 10 and not contrast["bad"], (
            path.name,
            scheme,
            contrast["bad"],
        )
        page.close()


LIGHT_BOXES_JS = """
() => [...document.body.querySelectorAll('*')]
  .filter(e => e.getClientRects().length && !e.closest('.mailer-preheader'))
  .map(e => [e.tagName, getComputedStyle(e).backgroundColor])
  .filter(([, c]) => { const v = (c.match(/[\\d.]+/g) || []).map(Number);
    return (v.length === 3 || v[3] > 0) && (v[0] + v[1] + v[2]) / 3 > 100; })
"""


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_layout_at_every_width_and_no_white_band(
    settings: Settings, tmp_path: Path, browser: Any, scheme: str
) -> None:
    short = write(tmp_path / "short.md", "# Short\n\nOne line.\n")
    for path in [*issues(settings.project), short]:
        html = html_of(settings, path, tmp_path)
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 1400}, color_scheme=scheme)
            page.goto(html.as_uri())
            assert page.evaluate("document.compatMode") == "CSS1Compat"  # the doctype held
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, (path.name, width, scheme, scroll)
            if scheme == "dark":
                # the page below a short email is dark too: no white band
                bottom = page.evaluate(
                    "() => { const e = document.elementFromPoint(10, innerHeight - 5);"
                    " let c = 'rgba(0, 0, 0, 0)';"
                    " for (let x = e; x; x = x.parentElement) { c = getComputedStyle(x).backgroundColor;"
                    " if (c !== 'rgba(0, 0, 0, 0)') break; } return c; }"
                )
                assert bottom == "rgb(18, 18, 18)", (path.name, width, bottom)
                # and no light boxes left in it: code, tables, quotes all turned dark
                light = page.evaluate(LIGHT_BOXES_JS)
                assert not light, (path.name, width, light[:5])
            page.close()


# What email needs and HTML frowns on, each for a reason; anything else html-validate finds
# fails the test.
EMAIL_IDIOMS = {
    "no-inline-style": "clients drop <style> blocks: styles are inline",
    "no-conditional-comment": "Outlook for Windows reads <!--[if mso]> blocks",
    "doctype-style": "mjml writes <!doctype html>",
    "prefer-tbody": "mjml's layout tables",
    "prefer-native-element": "mjml's role=article wrapper (Outlook has no <article>)",
}
OLD_ATTRIBUTES = re.compile(
    r'Attribute "(align|valign|bgcolor|cellpadding|cellspacing|width|height|border)" '
    r"is deprecated on <(table|tr|td|th|body|img)> element"
)


def html_validate(*files: Path) -> list[str]:
    """html-validate's findings over `files`, less the email idioms above."""
    need_checkers()
    tool = JS / "node_modules" / "html-validate" / "bin" / "html-validate.mjs"
    report = files[0].parent / "html-validate.json"  # a file: node cuts a long piped stdout
    report.unlink(missing_ok=True)
    subprocess.run(
        ["node", str(tool), "--formatter", f"json={report}", *map(str, files)],
        capture_output=True,
        timeout=120,
    )
    found = json.loads(report.read_text())
    return [
        f"{Path(f['filePath']).name}:{m['line']}: {m['ruleId']}: {m['message']}"
        for f in found
        for m in f["messages"]
        if m["ruleId"] not in EMAIL_IDIOMS and not OLD_ATTRIBUTES.fullmatch(m["message"])
    ]


def test_mail_web_and_archive_pages_are_valid_html(settings: Settings, tmp_path: Path) -> None:
    import datetime as dt

    from mailer.store.archive import Published
    from mailer.web.archive import Site
    from mailer.web.pages import Field, Form, Pages

    files = []
    for path in issues(settings.project):
        rendered = Renderer(settings).render(load_issue(path), web=True)
        html, _, _ = personalize_for(settings, rendered, None)
        files.append(write(tmp_path / f"{path.stem}.mail.html", html))
        files.append(write(tmp_path / f"{path.stem}.web.html", rendered.web_html))
    site = Site.of(settings)
    item = Published(
        "2026-11-20-weekly",
        "本周 <AI> 周报",
        "Pre & view",
        "2026-11-20",
        dt.datetime.now(dt.UTC),
        "",
        editions=("en",),
    )
    files.append(write(tmp_path / "archive-empty.html", site.index([])))
    files.append(write(tmp_path / "archive.html", site.index([item, item])))
    # A reader's page: a form with every kind of field, the honeypot and the challenge.
    form = Form(
        "/subscribe",
        "Subscribe",
        hidden=[("List-Unsubscribe", "One-Click")],
        fields=[
            Field("email", "Email address", "email", required=True),
            Field("name", "Name", "text"),
            Field("language", "Language", "select", options=[("en", "English")]),
        ],
        honeypot=True,
        challenge={"algorithm": "SHA-256", "challenge": "x", "salt": "y", "signature": "z"},
    )
    page = Pages(settings).render("Subscribe", ["One line", "Two <b>"], form=form)
    files.append(write(tmp_path / "page.html", bytes(page.body).decode()))
    assert html_validate(*files) == []
    # The check bites: markup that is wrong in any HTML is reported.
    broken = write(tmp_path / "broken.html", files[0].read_text().replace("</p>", "</div>", 1))
    assert html_validate(broken)


FOOTER_RULE_JS = """
() => [...document.querySelectorAll('.mailer-footer, .mailer-footer *')]
  .filter(e => parseFloat(getComputedStyle(e).borderTopWidth) > 0)
  .map(e => getComputedStyle(e).borderTopColor)
"""


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_bold_in_a_link_is_the_link_and_the_footer_rule_follows_the_scheme(
    settings: Settings, tmp_path: Path, browser: Any, scheme: str
) -> None:
    path = write(
        tmp_path / "b.md", "# B\n\nSee [the **new** model](https://example.com/m) today.\n"
    )
    page = browser.new_page(color_scheme=scheme)
    page.goto(html_of(settings, path, tmp_path).as_uri())
    link, bold = page.evaluate(
        "() => { const a = document.querySelector('.mailer-content a[href=\"https://example.com/m\"]');"
        " return [getComputedStyle(a).color, getComputedStyle(a.querySelector('strong')).color]; }"
    )
    rules = page.evaluate(FOOTER_RULE_JS)
    page.close()
    assert bold == link, (scheme, bold, link)
    assert rules, "the footer has a top rule"
    for colour in rules:
        level = sum(map(int, re.findall(r"\d+", colour)[:3])) / 3
        assert (level < 100) == (scheme == "dark"), (scheme, colour)


@pytest.mark.browser
def test_the_inbox_preview_is_the_preheader_alone(
    settings: Settings, tmp_path: Path, browser: Any
) -> None:
    """Gmail's preview is the first ~100 characters of the message's text, hidden text
    included: the preheader, then only the invisible padding, never the masthead."""
    link_first = write(
        tmp_path / "linkfirst.md",
        "# 周报\n\n[原文链接](https://example.com/original)\n\n本周最重要的三件事。\n",
    )
    html = html_of(settings, link_first, tmp_path)
    page = browser.new_page()
    page.goto(html.as_uri())
    text = page.evaluate("document.body.textContent")
    page.close()
    preview = re.sub(r"\s+", " ", text).strip()
    assert preview.startswith("本周最重要的三件事。")
    after = preview[len("本周最重要的三件事。") :][:110]
    assert not re.search(r"\w", after.replace("\u034f", "").replace("\u200c", "")), after[:40]


def _outlook(html: str) -> tuple[list[str], list[str]]:
    """What Outlook for Windows reads: the tags and widths inside <!--[if mso | IE]>."""
    blocks = re.findall(r"<!--\[if mso \| IE\]>(.*?)<!\[endif\]-->", html, re.S)
    tags = [t for b in blocks for t in re.findall(r"<(/?\w+)", b)]
    widths = [w for b in blocks for w in re.findall(r'width="(\d+)"', b)]
    return tags, widths


def test_outlook_structure_matches_official_mjml(settings: Settings, tmp_path: Path) -> None:
    """mrml (Rust) builds the email; its Outlook tables must be the ones the official MJML
    (npm) builds from the same source."""
    need_checkers()
    from mailer.content.render import mjml_to_html

    for path in issues(settings.project):
        source = Renderer(settings).mjml(load_issue(path))
        mjml_file = write(tmp_path / f"{path.stem}.mjml", source)
        official = subprocess.run(
            ["node", str(JS / "mjml.mjs"), str(mjml_file)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        ours = mjml_to_html(source, path.name)
        assert _outlook(ours) == _outlook(official), path.name
        assert _outlook(ours)[0], "no Outlook tables at all"


def test_images_get_width_and_height_for_outlook(sqlite_project: Path, tmp_path: Path) -> None:
    """Sizes read from the images themselves (a local HTTP server stands in for the web)."""
    import functools
    import http.server
    import threading

    from PIL import Image

    from tests.servers import free_port

    Image.new("RGB", (1600, 900), "navy").save(tmp_path / "wide.png")
    Image.new("RGB", (100, 50), "red").save(tmp_path / "small.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    dead = f"http://127.0.0.1:{free_port()}/gone.png"
    try:
        issue = write(
            tmp_path / "pics.md",
            f"# Pictures\n\n![wide]({base}/wide.png)\n\n![small]({base}/small.png)\n\n![gone]({dead})\n",
        )
        settings = load_settings(sqlite_project, {"image_size_timeout": 5})
        rendered = Renderer(settings).render(load_issue(issue))
    finally:
        server.shutdown()
        server.server_close()
    html = rendered.html.template
    assert re.search(
        r'<img [^>]*src="' + re.escape(base) + r'/wide.png"[^>]*width="552" height="310"', html
    )
    assert re.search(
        r'<img [^>]*src="' + re.escape(base) + r'/small.png"[^>]*width="100" height="50"', html
    )
    assert re.search(r"<img [^>]*max-width:100%", html)  # and the CSS still scales them on phones
    (warning,) = [w for w in rendered.warnings if "cannot read its size" in w]
    assert warning.startswith(f"image {dead}: cannot read its size (")

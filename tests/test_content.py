"""Issue parsing, rendering, the text part, placeholders and the size guard."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mailer.config import Settings
from mailer.content import markdown
from mailer.content.issue import load_issue, parse_issue
from mailer.content.render import Renderer
from mailer.errors import InputError, TemplateError
from tests.conftest import write

SQLITE_ONLY = True  # the subject is not the store

DIGEST = """# 🧠 **Weekly** digest 周报

First paragraph with *emphasis* and a [link](https://example.com/a).

## 🔧 Tools

- **Tool one** — does things. — Source Blog [Read more →](https://example.com/one)
- **工具二** — 中文说明。 [阅读全文 →](https://example.cn/two)

> A blockquote summary.

### 1. [Numbered link heading](https://example.org/three)

Text after it.

---

| a | b |
|---|---|
| 1 | 2 |

![diagram](https://example.com/img.png)
"""


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return Renderer(settings)


def test_front_matter_sets_subject_preheader_date_slug(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.md",
        "---\nsubject: Hello\npreheader: Pre\ndate: 2026-01-02\nslug: my-slug\n---\n# Other\n\nBody\n",
    )
    issue = load_issue(path)
    assert (issue.subject, issue.preheader, issue.date, issue.slug) == (
        "Hello",
        "Pre",
        "2026-01-02",
        "my-slug",
    )
    assert issue.body.startswith("# Other")


def test_without_front_matter_subject_is_first_heading_text(tmp_path: Path) -> None:
    issue = load_issue(
        write(tmp_path / "2026-05-01 weekly.md", "intro para\n\n### A **bold** `code` title\n")
    )
    assert issue.subject == "A bold code title"
    assert issue.preheader == "intro para"
    assert issue.slug == "2026-05-01-weekly"
    assert issue.date == "2026-05-01"


def test_sample_issue_parses(sample_issue: Path) -> None:
    issue = load_issue(sample_issue)
    assert issue.subject.startswith("Claude 写 CUDA")
    assert issue.preheader.startswith("Hugging Face")
    assert issue.slug == "ai-daily-digest"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\nsubject: [unclosed\n---\nbody\n", "front matter"),
        ("---\n- a\n- b\n---\nbody\n", "front matter must be 'key: value' lines"),
        ("---\nsubjct: typo\n---\n# T\n", "unknown front matter field 'subjct'"),
        ("no heading, no subject\n", "no subject"),
        ("---\nslug: ../etc\n---\n# T\n", "slug '../etc' must be"),
    ],
)
def test_bad_issue_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.md", text)
    with pytest.raises(InputError, match=re.escape(message)) as e:
        load_issue(path)
    assert str(path) in str(e.value)


def test_not_utf8_says_how_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "gbk.md"
    path.write_bytes("# 标题\n".encode("gbk"))
    with pytest.raises(InputError, match=r"not UTF-8 .*iconv -f"):
        load_issue(path)


def test_html_has_every_link_lang_dark_mode_and_fonts(renderer: Renderer, tmp_path: Path) -> None:
    r = renderer.render(load_issue(write(tmp_path / "d.md", DIGEST)))
    html, text = r.personalize("https://news.example.com/u/tok", "a@example.com", "Ann")
    for url in markdown.links(markdown.parse(DIGEST)):
        assert url in html
        if not url.endswith(".png"):
            assert url in text
    assert f'<html lang="{renderer.settings.language}" dir="ltr"' in html
    # Apple Mail must not rescale it, nor clients turn numbers and dates into links; the
    # sharing tags belong to the web version only.
    assert '<meta name="x-apple-disable-message-reformatting">' in html
    assert '<meta name="format-detection" content="telephone=no' in html
    assert "og:title" not in html and 'rel="canonical"' not in html
    # bgcolor only where HTML allows it (premailer puts it wherever a background is set)
    coded = renderer.render(load_issue(write(tmp_path / "c.md", DIGEST + "\nSome `code`.\n")))
    assert "<code" in coded.html.template and "background-color" in coded.html.template
    for page in (html, coded.html.template):
        assert set(re.findall(r"<(\w+)[^>]*\sbgcolor=", page)) <= {
            "table",
            "tr",
            "td",
            "th",
            "body",
        }
    assert re.findall(r"<th\b[^>]*>", html) and all(
        'scope="col"' in th for th in re.findall(r"<th\b[^>]*>", html)
    )
    assert '<meta name="color-scheme" content="light dark"' in html
    assert "PingFang SC" in html and "Noto Sans CJK SC" in html and "Apple Color Emoji" in html
    assert "prefers-color-scheme: dark" in html
    # premailer inlined the content styles onto the elements themselves
    assert re.search(
        r'<table role="presentation" class="mailer-quote"[^>]*>\s*<tr>\s*<td style="[^"]*border-left:4px solid',
        html,
    )
    assert html.startswith("<!doctype html>") and "fonts.googleapis.com" not in html
    assert re.search(r'<img [^>]*style="[^"]*max-width:100%', html)
    assert "display:none" in html and "First paragraph with emphasis" in html


def test_text_part_says_the_same_thing(renderer: Renderer, tmp_path: Path) -> None:
    r = renderer.render(load_issue(write(tmp_path / "d.md", DIGEST)))
    html, text = r.personalize("https://news.example.com/u/tok", "a@example.com", "Ann")
    assert "🔧 Tools\n--------" in text
    assert (
        "- Tool one — does things. — Source Blog Read more →\n  (https://example.com/one)" in text
    )
    assert "> A blockquote summary." in text
    assert "\n\n1. Numbered link heading (https://example.org/three)\n\n" in text
    assert "###" not in text  # a heading, not Markdown markers
    assert "a | b\n--+--\n1 | 2" in text  # aligned, a rule under the header
    assert "[diagram: https://example.com/img.png]" in text
    assert "Unsubscribe:\nhttps://news.example.com/u/tok" in text
    # Why this reader gets it, and for a forwarded copy, where to subscribe.
    why = "You get this because a@example.com subscribed to"
    assert why in text and why in html
    assert "Forwarded to you? Subscribe: https://news.example.com/subscribe" in text
    assert re.search(
        r'<a href="https://news\.example\.com/subscribe" class="mailer-subscribe-link"', html
    )
    assert "Example Media, 1 Example Street" in text
    assert all(len(line.encode()) < 998 for line in text.splitlines())
    long = [line for line in text.splitlines() if markdown._width(line) > 76]
    assert all(re.fullmatch(r"\(?https?://\S+", line.strip()) for line in long), long


@pytest.mark.parametrize("level", ["##", "###"])
def test_a_title_given_as_the_first_heading_shows_once(
    renderer: Renderer, tmp_path: Path, level: str
) -> None:
    issue = load_issue(write(tmp_path / "t.md", f"{level} 本周 Title\n\nBody text.\n\n## Next\n"))
    assert issue.subject == "本周 Title"
    r = renderer.render(issue, web=True)
    _, text = r.personalize("https://news.example.com/u/tok", "a@example.com", "Ann")
    html = r.html.template
    assert html.count("本周 Title</h1>") == 1 and "本周 Title</h2>" not in html
    assert "本周 Title</h3>" not in html
    assert r.web_html.count("本周 Title</h1>") == 1
    assert text.count("本周 Title") == 1 and "本周 Title\n==========" in text
    assert "Next\n----" in text  # the other headings keep their level


def test_text_tables_align_by_display_width() -> None:
    tokens = markdown.parse("| 名称 | n |\n|---|---|\n| 小模型 | 12 |\n| ab | 3 |\n")
    assert markdown.to_text(tokens).strip().split("\n") == [
        "名称   | n",
        "-------+---",
        "小模型 | 12",
        "ab     | 3",
    ]
    wide = "| " + " | ".join("x" * 30 for _ in range(3)) + " |\n|---|---|---|\n| a | b | c |\n"
    text = markdown.to_text(markdown.parse(wide)).strip().split("\n")
    assert text[1] == "---" and text[2] == "a | b | c"  # too wide to align: as it was


def test_cjk_fonts_come_first_for_a_cjk_language(settings: Settings) -> None:
    from mailer.content.render import font_stack

    for lang, first in (("zh-CN", "PingFang SC"), ("zh-TW", "PingFang TC"), ("ja", "Hiragino")):
        stack = font_stack(lang)
        assert stack.index(first) < stack.index("Arial"), lang
    assert font_stack("en").index("Arial") < font_stack("en").index("PingFang SC")
    issue = parse_issue("# T\n\n“引号”，标点。\n", Path("x.md"))
    for lang in ("zh-CN", "en"):
        html = Renderer(dataclasses.replace(settings, language=lang)).render(issue).html.template
        family = re.search(r"font-family:([^;\"]+)", html)
        assert family is not None
        cjk_first = family.group(1).find("PingFang") < family.group(1).find("Arial")
        assert cjk_first == (lang == "zh-CN"), (lang, family.group(1))


def test_names_cannot_inject_markup_or_break_lines(renderer: Renderer, tmp_path: Path) -> None:
    src = renderer.env.loader.searchpath[0]  # type: ignore[union-attr]
    tpl = Path(src) / "newsletter.mjml.j2"
    tpl.write_text(
        tpl.read_text().replace(
            '<mj-text css-class="mailer-content">',
            '<mj-text css-class="mailer-content"><p>Hi {{ name }}</p>',
        )
    )
    txt = Path(src) / "newsletter.txt.j2"
    txt.write_text("Hi {{ name }}!\n" + txt.read_text())
    r = Renderer(renderer.settings).render(load_issue(write(tmp_path / "d.md", DIGEST)))
    html, text = r.personalize(
        'https://x.example/u/a"b', "a@example.com", "<script>alert(1)</script>\r\nBcc: x@evil"
    )
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="https://x.example/u/a&quot;b"' in html
    assert "Hi <script>alert(1)</script> Bcc: x@evil!" in text  # one line, as plain text
    assert "\r" not in text


def test_reserved_placeholder_text_in_an_issue_is_refused(
    renderer: Renderer, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="reserved text __MAILER_EMAIL__"):
        renderer.render(load_issue(write(tmp_path / "d.md", "# T\n\n__MAILER_EMAIL__\n")))


def test_warnings_for_alt_text_links_and_empty_sections(renderer: Renderer, tmp_path: Path) -> None:
    body = "# T\n\n## Empty\n\n## Full\n\n![](https://e.com/x.png) [bad](javascript:alert(1)) [ftp](ftp://x.org/f)\n"
    r = renderer.render(load_issue(write(tmp_path / "w.md", body)))
    assert "line 7: image https://e.com/x.png has no alt text" in r.warnings
    assert "line 3: section 'Empty' is empty" in r.warnings
    assert any("'ftp://x.org/f' is not http(s) or mailto" in w for w in r.warnings)
    # markdown-it refuses javascript: links outright; they never become links
    assert 'href="javascript' not in r.html.template


def test_same_input_same_bytes(renderer: Renderer, sample_issue: Path) -> None:
    a = renderer.render(load_issue(sample_issue))
    b = Renderer(renderer.settings).render(load_issue(sample_issue))
    assert a.html.template == b.html.template and a.text.template == b.text.template


def test_jinja_error_names_file_and_line(settings: Settings, tmp_path: Path) -> None:
    tpl = settings.project / "templates" / "newsletter.mjml.j2"
    tpl.write_text("<mjml>\n<mj-body>\n{% if %}\n</mj-body></mjml>\n")
    with pytest.raises(TemplateError, match=rf"{re.escape(str(tpl))}:3: template syntax error"):
        Renderer(settings).render(load_issue(write(tmp_path / "d.md", "# T\n")))


def test_mjml_error_names_the_template(settings: Settings, tmp_path: Path) -> None:
    tpl = settings.project / "templates" / "newsletter.mjml.j2"
    tpl.write_text("<mjml><mj-body><mj-section>\n")
    with pytest.raises(TemplateError, match=r"newsletter.mjml.j2: MJML error: .*fix the template"):
        Renderer(settings).render(load_issue(write(tmp_path / "d.md", "# T\n")))


def test_project_templates_override_defaults(settings: Settings, tmp_path: Path) -> None:
    (settings.project / "templates" / "newsletter.txt.j2").write_text(
        "CUSTOM {{ content }}{{ unsubscribe_url }}\n"
    )
    r = Renderer(settings).render(load_issue(write(tmp_path / "d.md", "# T\n\nbody\n")))
    assert r.text.template.startswith("CUSTOM T")

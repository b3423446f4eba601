"""The issue, rendered once: Jinja2 → MJML → HTML → premailer, and the plain-text part."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it.token import Token
from markupsafe import Markup

from mailer import files
from mailer.config import Settings
from mailer.content import checks, images, markdown, media, placeholders, templates
from mailer.content.media import Media
from mailer.content.placeholders import Compiled
from mailer.errors import InputError, TemplateError
from mailer.models import Issue

# System fonts only: a web font is a request to a third party from every reader who opens
# the mail (Apple Mail follows <link>s), and mrml adds Google's Roboto link whenever the
# stack names Roboto. A writer who wants one sets web_font.
_LATIN = "'Segoe UI', 'Helvetica Neue', Arial"
_CJK = {
    "zh": "'PingFang SC', 'Hiragino Sans GB', 'Microsoft YaHei', 'Noto Sans CJK SC', 'Noto Sans SC'",
    "zh-Hant": "'PingFang TC', 'Microsoft JhengHei', 'Noto Sans CJK TC', 'Noto Sans TC'",
    "ja": "'Hiragino Sans', 'Hiragino Kaku Gothic ProN', 'Yu Gothic', 'Noto Sans CJK JP'",
    "ko": "'Apple SD Gothic Neo', 'Malgun Gothic', 'Noto Sans CJK KR'",
}
_EMOJI = "sans-serif, 'Apple Color Emoji', 'Segoe UI Emoji', 'Noto Color Emoji'"


def font_stack(language: str) -> str:
    """System fonts for `language`: for Chinese, Japanese or Korean its CJK fonts come before
    the Latin ones, so quotes and punctuation (“” ，) take the CJK glyphs, not narrow Latin
    ones; otherwise Latin first, with Chinese fonts as the fallback for mixed text."""
    base = language.split("-")[0]
    hant = base == "zh" and any(p in language for p in ("Hant", "TW", "HK", "MO"))
    cjk = _CJK["zh-Hant"] if hant else _CJK.get(base)
    head = "-apple-system, BlinkMacSystemFont"
    if cjk:
        return f"{head}, {cjk}, {_LATIN}, {_EMOJI}"
    return f"{head}, {_LATIN}, {_CJK['zh']}, {_EMOJI}"


RTL_LANGUAGES = ("ar", "he", "fa", "ur")
# Invisible characters after the hidden preheader: inbox previews show about 100-140
# characters, and without filler they run on into the first text of the mail.
PREHEADER_PADDING = "&#847;&zwnj;&nbsp;" * 110


@dataclass(frozen=True)
class RenderedIssue:
    issue: Issue
    html: Compiled
    text: Compiled
    warnings: tuple[str, ...]
    media: tuple[Media, ...] = ()  # the local images, converted, that the HTML links to
    web_html: str = ""  # the web version (render(..., web=True)), for the archive

    def personalize(self, unsubscribe_url: str, email: str, name: str = "") -> tuple[str, str]:
        """(html, text) for one recipient."""
        html_values, text_values = placeholders.both_values(unsubscribe_url, email, name)
        return self.html.fill(html_values), self.text.fill(text_values)


class Renderer:
    """Holds the template environment, so a long-lived process (preview) reuses it."""

    def __init__(self, settings: Settings, media_base: str | None = None) -> None:
        self.settings = settings
        self.env = templates.environment(settings.project, settings.language or "en")
        # Local images are linked where `mailer serve` answers them; without a base_url
        # (a build), beside the HTML, where `mailer build` writes them.
        base = settings.base_url.rstrip("/")
        self.media_base = (
            media_base if media_base is not None else f"{base}/media/" if base else "media/"
        )
        self._converted: dict[tuple[str, int, int], Media] = {}

    def render(self, issue: Issue, web: bool = False) -> RenderedIssue:
        """Both parts of the email; with `web`, the web version too (one more MJML pass)."""
        placeholders.reject_reserved(issue.body, issue.source)
        tokens = markdown.parse(issue.body)
        _promote_title(tokens, issue.subject)
        warnings = list(checks.content_warnings(tokens))
        local, sizes = self._local_images(issue, tokens)
        context = self._context(issue, tokens)
        warnings += self._measure_images(tokens, context)
        context["image_sizes"] = {**sizes, **context["image_sizes"]}  # type: ignore[dict-item]
        html = self._html(context, tokens)
        text = templates.render(
            self.env, "newsletter.txt.j2", {**context, "content": markdown.to_text(tokens)}
        )
        return RenderedIssue(
            issue=issue,
            html=Compiled.of(html),
            text=Compiled.of(_normalize_text(text)),
            warnings=tuple(warnings),
            media=tuple(local),
            web_html=self._html({**context, "web": True}, tokens) if web else "",
        )

    def _html(self, context: dict[str, object], tokens: list[Token]) -> str:
        mjml = self._mjml(context, tokens)
        return with_doctype(inline_css(mjml_to_html(mjml, self._path("newsletter.mjml.j2"))))

    def _local_images(
        self, issue: Issue, tokens: list[Token]
    ) -> tuple[list[Media], dict[str, tuple[int, int]]]:
        """Convert each local image, point its <img> at the converted file, and size it."""
        found: dict[str, Media] = {}
        sizes: dict[str, tuple[int, int]] = {}
        issue_dir = Path(issue.source).parent
        for tok in tokens:
            for child in tok.children or []:
                src = str(child.attrs.get("src", "")) if child.type == "image" else ""
                if not src or not media.is_local(src):
                    continue
                line = (tok.map[0] + 1 + issue.line_offset) if tok.map else 0
                m = self._convert(src, issue_dir, f"{issue.source}:{line}")
                url = self.media_base + m.name
                child.attrSet("src", url)
                found[m.name] = m
                sizes[url] = images.fitted((m.width, m.height))
        return list(found.values()), sizes

    def _convert(self, src: str, issue_dir: Path, where: str) -> Media:
        """media.load, remembered by file and modification time: a live preview re-renders
        on every keystroke and should not re-encode a photo each time."""
        from urllib.parse import unquote, urlsplit

        path = issue_dir / unquote(urlsplit(src).path)
        try:
            st = path.stat()
            key: tuple[str, int, int] | None = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key is not None and key in self._converted:
            return self._converted[key]
        m = media.load(src, issue_dir, where, roots=(self.settings.project,))
        if key is not None:
            self._converted[key] = m
        return m

    def _measure_images(self, tokens: list[Token], context: dict[str, object]) -> list[str]:
        """Width and height for each http(s) image, into the context; warnings for the rest."""
        timeout = self.settings.image_size_timeout
        sizes: dict[str, tuple[int, int]] = {}
        warnings = []
        for src in markdown.images(tokens):
            if timeout <= 0 or not src.lower().startswith(("http://", "https://")):
                continue
            if src.startswith(self.media_base):
                continue  # a local image, converted and sized already
            size, why = images.measure(src, timeout)
            if size is None:
                warnings.append(
                    f"image {src}: cannot read its size ({why}); Outlook will show it at its "
                    "natural width"
                )
            else:
                sizes[src] = images.fitted(size)
        context["image_sizes"] = sizes
        return warnings

    def mjml(self, issue: Issue) -> str:
        """The MJML the template makes of an issue, before mrml (tests compare it with
        the official MJML's HTML)."""
        tokens = markdown.parse(issue.body)
        context = self._context(issue, tokens)
        context["image_sizes"] = self._local_images(issue, tokens)[1]
        return self._mjml(context, tokens)

    def _mjml(self, context: dict[str, object], tokens: list[Token]) -> str:
        sizes = context.get("image_sizes")
        content = Markup(markdown.to_html(tokens, sizes if isinstance(sizes, dict) else None))
        return templates.render(self.env, "newsletter.mjml.j2", {**context, "content": content})

    def _context(self, issue: Issue, tokens: list[Token]) -> dict[str, object]:
        s = self.settings
        lang = s.language or "en"
        base = s.base_url.rstrip("/")
        context: dict[str, object] = {
            "issue": issue,
            "web": False,  # the web version: a subscribe form where the email has its footer
            # "View in browser": the issue's page in the archive (none for archive: false).
            "web_url": (
                f"{base}/archive/{issue.slug}/{issue.edition + '/' if issue.edition else ''}"
                if base and issue.archive
                else ""
            ),
            "archive_url": f"{base}/archive/" if base else "",
            "feed_url": f"{base}/feed.xml" if base else "",
            "subscribe_url": f"{base}/subscribe" if base else "",
            "image_sizes": {},
            "newsletter_name": s.display_name,
            "postal_address": s.postal_address,
            "lang": lang,
            "dir": "rtl" if lang.split("-")[0] in RTL_LANGUAGES else "ltr",
            "font_stack": (
                f"'{s.web_font}', {font_stack(lang)}" if s.web_font else font_stack(lang)
            ),
            "web_font": s.web_font,
            "web_font_url": s.web_font_url,
            "accent": s.accent_color,
            "logo_url": s.logo_url,
            "preheader_padding": Markup(PREHEADER_PADDING),
            # An issue whose headings start at ## gets its subject as the one <h1>.
            "has_h1": any(t.type == "heading_open" and t.tag == "h1" for t in tokens),
            "title_text": markdown.heading_text(issue.subject),
            **{f: Markup(tok) for f, tok in placeholders.TOKENS.items()},
        }
        context["css"] = Markup(templates.render(self.env, "email.css", context))
        context["dark_css"] = Markup(templates.render(self.env, "dark.css", context))
        return context

    def _path(self, name: str) -> str:
        try:
            return self.env.loader.get_source(self.env, name)[1] or name  # type: ignore[union-attr]
        except Exception:
            return name


def mjml_to_html(source: str, path: str) -> str:
    from mjml import mjml2html

    try:
        return mjml2html(source, disable_comments=True)
    except ValueError as e:
        raise TemplateError(f"{path}: MJML error: {e}; fix the template's MJML") from None


def with_doctype(html: str) -> str:
    """premailer drops MJML's <!doctype html>: without it clients that honour it render in
    quirks mode (table cells lose inherited colours and sizes)."""
    return html if html[:15].lower().startswith("<!doctype") else "<!doctype html>\n" + html


def inline_css(html: str) -> str:
    from premailer import Premailer

    # premailer logs every CSS property it does not know (mso-*, -webkit-*) through cssutils.
    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
    inlined: str = Premailer(
        html,
        allow_network=False,
        keep_style_tags=False,
        remove_classes=False,
        strip_important=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        cache_css_parsing=True,
        # premailer would turn CSS height:auto into height="auto" over an image's real
        # height attribute, which Outlook needs.
        disable_basic_attributes=["height", "width"],
    ).transform(pretty_print=False)
    # premailer writes bgcolor wherever a background is set; HTML allows it only on tables
    # and their cells (Outlook needs it there), so it goes from <code>, <div>, <p>...
    return _BGCOLOR_ELSEWHERE.sub(r"\1", inlined)


_BGCOLOR_ELSEWHERE = re.compile(
    r'(<(?!(?:table|tr|td|th|body)[\s>])[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*?)?)\s+bgcolor="[^"]*"'
)


def _normalize_text(text: str) -> str:
    # Trailing spaces and runs of blank lines are noise in a text part.
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def write_build(
    rendered_html: str, rendered_text: str, out_dir: Path, slug: str
) -> tuple[Path, Path]:
    """Write both parts atomically: a failed build leaves no half-written files."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = (out_dir / f"{slug}.html", out_dir / f"{slug}.txt")
        for path, data in zip(paths, (rendered_html, rendered_text), strict=True):
            with files.atomic(path, "w", encoding="utf-8", newline="") as f:
                f.write(data)
    except OSError as e:
        raise InputError(
            f"cannot write the build to {out_dir}: {e.strerror or e}; pick another -o DIR"
        ) from None
    return paths


def _promote_title(tokens: list[Token], subject: str) -> None:
    """An issue with no `#` heading shows its subject as the one <h1>. When that subject
    is its first heading (a `## Title` with no front matter), that heading becomes the
    <h1> instead of showing the title twice: in the mail, the text part and the archive."""
    if any(t.type == "heading_open" and t.tag == "h1" for t in tokens):
        return
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            if markdown.inline_text(tokens[i + 1]).strip() != subject:
                return
            close = next(j for j in range(i + 1, len(tokens)) if tokens[j].type == "heading_close")
            tok.tag = tokens[close].tag = "h1"
            tok.markup = tokens[close].markup = "#"
            return

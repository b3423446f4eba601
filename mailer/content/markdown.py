"""CommonMark (plus tables and strikethrough) to HTML and to plain text, from one token stream."""

from __future__ import annotations

import functools
import re
import textwrap
import unicodedata
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

MAX_NESTING = 40


@functools.cache
def parser() -> MarkdownIt:
    # Raw HTML is off: the plain-text part could not say what it says, and an issue file
    # should not be able to smuggle markup (scripts, hidden text) into a mailing.
    # maxNesting: deep enough for any real issue; past it markdown-it drops content
    # silently, so too_deep() refuses an issue that comes near it.
    md = MarkdownIt("commonmark", {"html": False, "typographer": False, "maxNesting": MAX_NESTING})
    md.enable(["table", "strikethrough"])
    # Quotes as a one-cell table: Outlook for Windows drops padding on a block element and
    # paints its background into the margins.
    md.add_render_rule("blockquote_open", _quote_open)
    md.add_render_rule("blockquote_close", _quote_close)
    md.add_render_rule("image", _image)
    return md


def _image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    size = env.get("sizes", {}).get(str(token.attrs.get("src", "")))
    if size is not None:  # Outlook sizes images by these attributes, not by CSS
        token.attrSet("width", str(size[0]))
        token.attrSet("height", str(size[1]))
    return str(self.image(tokens, idx, options, env))


def _quote_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return (
        '<table role="presentation" class="mailer-quote" width="100%" cellpadding="0" '
        'cellspacing="0" border="0"><tr><td>\n'
    )


def _quote_close(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return "</td></tr></table>\n"


def parse(body: str) -> list[Token]:
    tokens = parser().parse(body)
    for tok in tokens:
        if tok.type == "th_open":
            tok.attrSet("scope", "col")  # screen readers announce each cell's column
    return tokens


def too_deep(tokens: Sequence[Token]) -> int | None:
    """The line where blocks nest as deep as the parser goes (past it, content is dropped
    without a word), or None. A list level costs two, a quote one."""
    limit = MAX_NESTING - 1
    for tok in tokens:
        if tok.level >= limit:
            return (tok.map[0] + 1) if tok.map else 1
    return None


def to_html(tokens: Sequence[Token], sizes: dict[str, tuple[int, int]] | None = None) -> str:
    """HTML; `sizes` gives images (by src) their width and height attributes."""
    return str(parser().renderer.render(tokens, parser().options, {"sizes": sizes or {}}))


def inline_text(token: Token) -> str:
    """The visible text of an inline token: Markdown stripped, images by their alt text."""
    out: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "image":
            out.append(child.content)
    return "".join(out).strip()


def images(tokens: Sequence[Token]) -> list[str]:
    """Every image's src, in document order, once each."""
    found: dict[str, None] = {}
    for tok in tokens:
        for child in tok.children or []:
            if child.type == "image":
                found[str(child.attrs.get("src", ""))] = None
    return list(found)


def links(tokens: Sequence[Token]) -> list[str]:
    """Every link and image URL, in document order."""
    found: list[str] = []
    for tok in tokens:
        for child in tok.children or []:
            if child.type == "link_open":
                found.append(str(child.attrs.get("href", "")))
            elif child.type == "image":
                found.append(str(child.attrs.get("src", "")))
    return found


class _TextRenderer:
    """Plain text that says what the HTML says: every link's URL written out."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.prefixes: list[str] = []  # blockquote "> " and list indentation
        self.lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self.pending_marker = ""
        self.row: list[str] = []
        self.table: list[list[str]] = []
        self.markers: list[int] = []  # marker width of each open list item

    def emit(self, text: str, wrap: bool = True) -> None:
        prefix = "".join(self.prefixes)
        marker, self.pending_marker = self.pending_marker, ""
        rest_prefix = prefix + " " * len(marker)
        width = max(WRAP - _width(rest_prefix), 20)
        lines = []
        for line in text.split("\n"):
            lines += wrap_line(line, width) if wrap else [line]
        first = prefix + marker + lines[0]
        self.blocks.append("\n".join([first, *(rest_prefix + line for line in lines[1:])]))

    def inline(self, token: Token) -> str:
        out: list[str] = []
        href_stack: list[str] = []
        for child in token.children or []:
            t = child.type
            if t == "text":
                out.append(child.content)
            elif t == "code_inline":
                out.append(f"`{child.content}`")  # as a reader of the Markdown would see it
            elif t == "softbreak":
                out.append(" ")  # the text is wrapped anew
            elif t == "hardbreak":
                out.append("\n")
            elif t == "link_open":
                href_stack.append(str(child.attrs.get("href", "")))
                out.append("")
            elif t == "link_close":
                href = href_stack.pop() if href_stack else ""
                if href and href.removeprefix("mailto:") not in "".join(out)[-len(href) - 1 :]:
                    out.append(f" ({href})")
            elif t == "image":
                src = str(child.attrs.get("src", ""))
                out.append(f"[{child.content or 'image'}: {src}]")
        return "".join(out).strip()

    def render(self, tokens: Sequence[Token]) -> str:
        for tok in tokens:
            handler = getattr(self, "on_" + tok.type, None)
            if handler is not None:
                handler(tok)
        return "\n\n".join(b for b in self.blocks if b.strip()) + "\n"

    def on_heading_open(self, tok: Token) -> None:
        self.heading = tok.tag

    def on_inline(self, tok: Token) -> None:
        text = self.inline(tok)
        if self.in_cell:
            self.row.append(text.replace("\n", " "))
            return
        if getattr(self, "heading", ""):
            level = self.heading
            self.heading = ""
            if level in ("h1", "h2"):
                self.emit(heading_text(text, "=" if level == "h1" else "-"), wrap=False)
                return
            # ### and deeper: a line of its own between blank lines, no Markdown markers
            # (a reader of the text part sees "### Tools" as noise, not as a heading).
        self.emit(text)

    in_cell = False
    heading = ""

    def _nest(self) -> None:
        # A list inside an item starts under the item's text, not at column 0.
        if self.prefixes and self.markers:
            self.prefixes[-1] = " " * self.markers[-1]

    def on_bullet_list_open(self, tok: Token) -> None:
        self._nest()
        self.lists.append([])

    def on_ordered_list_open(self, tok: Token) -> None:
        self._nest()
        start = tok.attrs.get("start", 1)
        self.lists.append([int(start)])

    def on_bullet_list_close(self, tok: Token) -> None:
        self.lists.pop()

    on_ordered_list_close = on_bullet_list_close

    def on_list_item_open(self, tok: Token) -> None:
        current = self.lists[-1] if self.lists else []
        if current:
            self.pending_marker = f"{current[0]}. "
            current[0] += 1
        else:
            self.pending_marker = "- "
        self.prefixes.append("")
        self.markers.append(len(self.pending_marker))

    def on_list_item_close(self, tok: Token) -> None:
        self.prefixes.pop()
        self.markers.pop()
        self.pending_marker = ""

    def on_paragraph_open(self, tok: Token) -> None:
        # A tight list item's paragraphs are hidden; indentation after the first line
        # comes from the marker width.
        if self.prefixes and self.pending_marker == "" and self.lists:
            self.prefixes[-1] = "   " if self.lists[-1] else "  "

    def on_blockquote_open(self, tok: Token) -> None:
        self.prefixes.append("> ")

    def on_blockquote_close(self, tok: Token) -> None:
        self.prefixes.pop()

    def on_hr(self, tok: Token) -> None:
        self.emit("-" * 30)

    def on_fence(self, tok: Token) -> None:
        self.emit(textwrap.indent(tok.content.rstrip("\n"), "    "), wrap=False)

    on_code_block = on_fence

    def on_table_open(self, tok: Token) -> None:
        self.table = []
        self.header_rows = 0

    def on_thead_close(self, tok: Token) -> None:
        self.header_rows = len(self.table)

    def on_tr_open(self, tok: Token) -> None:
        self.row = []

    def on_tr_close(self, tok: Token) -> None:
        self.table.append(self.row)

    def on_th_open(self, tok: Token) -> None:
        self.in_cell = True

    on_td_open = on_th_open

    def on_th_close(self, tok: Token) -> None:
        self.in_cell = False

    on_td_close = on_th_close

    def on_table_close(self, tok: Token) -> None:
        rows, self.table = self.table, []
        self.emit(table_text(rows, self.header_rows), wrap=False)

    header_rows = 0


def table_text(rows: list[list[str]], header_rows: int) -> str:
    """A table as monospace text: columns padded to their display width (CJK counts two),
    a rule under the header; a table too wide for the text part keeps " | " alone."""
    n = max((len(r) for r in rows), default=0)
    widths = [max((_width(r[i]) for r in rows if i < len(r)), default=0) for i in range(n)]
    fits = sum(widths) + 3 * (n - 1) <= WRAP
    lines = []
    for at, cells in enumerate(rows):
        if fits:
            cells = [c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=False)]
        lines.append(" | ".join(cells).rstrip())
        if at + 1 == header_rows:
            lines.append("-+-".join("-" * w for w in widths) if fits else "-" * 3)
    return "\n".join(lines)


WRAP = 76  # display columns of the plain-text part (RFC 3676's advice, CJK counted double)
_URL = re.compile(r"\(?(?:https?://|mailto:)\S+")
_CLOSING = "，。、；：！？）」』】》〉…,.;:!?)"  # never at the start of a line (kinsoku)


def _char_width(c: str) -> int:
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def _width(text: str) -> int:
    """Display columns: CJK characters take two in a monospace mail reader."""
    return sum(_char_width(c) for c in text.split("\n")[0])


def _units(word: str) -> list[str]:
    """Where a word may break: a URL never; CJK between any two characters (keeping
    closing punctuation with the character before it); other text only at spaces."""
    if _URL.match(word) or all(_char_width(c) == 1 for c in word):
        return [word]
    units: list[str] = []
    run = ""
    for c in word:
        if _char_width(c) == 2 or c in _CLOSING:
            if run:
                units.append(run)
                run = ""
            if c in _CLOSING and units:
                units[-1] += c
            else:
                units.append(c)
        else:
            run += c
    if run:
        units.append(run)
    return units


def wrap_line(line: str, width: int = WRAP) -> list[str]:
    """One line wrapped to `width` display columns, never breaking a URL."""
    if _width(line) <= width:
        return [line]
    lines: list[str] = []
    current, used = "", 0
    for word in line.split():
        for n, unit in enumerate(_units(word)):
            sep = " " if current and n == 0 else ""
            w = _width(unit)
            if current and used + len(sep) + w > width:
                lines.append(current)
                current, used = unit, w
            else:
                current += sep + unit
                used += len(sep) + w
    if current:
        lines.append(current)
    return lines or [""]


def heading_text(title: str, rule: str = "=") -> str:
    """A title as the text part shows an <h1> ('=') or <h2> ('-'): wrapped, underlined."""
    lines = wrap_line(title, WRAP)
    return "\n".join([*lines, rule * min(max(_width(line) for line in lines), WRAP)])


def to_text(tokens: Sequence[Token]) -> str:
    return _TextRenderer().render(tokens)

"""CommonMark (plus tables and strikethrough) to HTML and to plain text, from one token stream."""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Sequence

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
    return md


def parse(body: str) -> list[Token]:
    return parser().parse(body)


def too_deep(tokens: Sequence[Token]) -> int | None:
    """The line where blocks nest as deep as the parser goes (past it, content is dropped
    without a word), or None. A list level costs two, a quote one."""
    limit = MAX_NESTING - 1
    for tok in tokens:
        if tok.level >= limit:
            return (tok.map[0] + 1) if tok.map else 1
    return None


def to_html(tokens: Sequence[Token]) -> str:
    return str(parser().renderer.render(tokens, parser().options, {}))


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

    def emit(self, text: str) -> None:
        prefix = "".join(self.prefixes)
        marker, self.pending_marker = self.pending_marker, ""
        lines = text.split("\n")
        first = prefix + marker + lines[0]
        rest_prefix = prefix + " " * len(marker)
        self.blocks.append("\n".join([first, *(rest_prefix + line for line in lines[1:])]))

    def inline(self, token: Token) -> str:
        out: list[str] = []
        href_stack: list[str] = []
        for child in token.children or []:
            t = child.type
            if t in ("text", "code_inline"):
                out.append(child.content)
            elif t == "softbreak" or t == "hardbreak":
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
            if level == "h1":
                text = f"{text}\n{'=' * min(_width(text), 70)}"
            elif level == "h2":
                text = f"{text}\n{'-' * min(_width(text), 70)}"
            else:
                text = f"{'#' * int(level[1])} {text}"
        self.emit(text)

    in_cell = False
    heading = ""

    def on_bullet_list_open(self, tok: Token) -> None:
        self.lists.append([])

    def on_ordered_list_open(self, tok: Token) -> None:
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

    def on_list_item_close(self, tok: Token) -> None:
        self.prefixes.pop()
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
        self.emit(textwrap.indent(tok.content.rstrip("\n"), "    "))

    on_code_block = on_fence

    def on_table_open(self, tok: Token) -> None:
        self.table = []

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
        self.emit("\n".join(" | ".join(cells) for cells in rows))


def _width(text: str) -> int:
    # CJK characters take two columns in a monospace mail reader.
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text.split("\n")[0])


def to_text(tokens: Sequence[Token]) -> str:
    return _TextRenderer().render(tokens)

"""What a writer should hear about before sending: sizes, missing alt text, odd links."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from markdown_it.token import Token

from mailer.content.media import is_local

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail clips messages whose HTML exceeds ~102 KB
# What we allow, with a margin: Gmail counts the HTML as delivered (each reader's own links
# and address are longer than the placeholders), and once clipped, the unsubscribe link and
# postal address at the end are hidden behind "[Message clipped]".
REFUSE_BYTES = 95 * 1024
WARN_BYTES = 75 * 1024


def too_large(path: object, size: int) -> str:
    """The one-line refusal for an issue whose HTML is over REFUSE_BYTES, or ''."""
    if size <= REFUSE_BYTES:
        return ""
    return (
        f"{path}: HTML is {size / 1024:.1f} KB; Gmail clips at {GMAIL_CLIP_BYTES // 1024} KB "
        f"and mailer keeps a margin (at most {REFUSE_BYTES // 1024} KB): shorten the issue or "
        "split it in two"
    )


SAFE_SCHEMES = ("http://", "https://", "mailto:")


def content_warnings(tokens: Sequence[Token]) -> Iterable[str]:
    yield from _image_and_link_warnings(tokens)
    yield from _empty_sections(tokens)


def _image_and_link_warnings(tokens: Sequence[Token]) -> Iterable[str]:
    for tok in tokens:
        line = (tok.map[0] + 1) if tok.map else 0
        for child in tok.children or []:
            if child.type == "image":
                src = str(child.attrs.get("src", ""))
                if not child.content.strip():
                    yield f"line {line}: image {src} has no alt text"
                if not src.lower().startswith(("http://", "https://")) and not is_local(src):
                    yield f"line {line}: image {src!r} is not an http(s) URL; mail clients won't load it"
            elif child.type == "link_open":
                href = str(child.attrs.get("href", ""))
                if not href.lower().startswith(SAFE_SCHEMES):
                    yield f"line {line}: link {href!r} is not http(s) or mailto"


def _empty_sections(tokens: Sequence[Token]) -> Iterable[str]:
    """A heading followed directly by another heading of the same or higher rank, or the end."""
    headings = [(i, t) for i, t in enumerate(tokens) if t.type == "heading_open"]
    for n, (i, tok) in enumerate(headings):
        level = int(tok.tag[1])
        end = headings[n + 1][0] if n + 1 < len(headings) else len(tokens)
        body = [t for t in tokens[i + 3 : end] if t.type not in ("hr",)]
        next_level = int(headings[n + 1][1].tag[1]) if n + 1 < len(headings) else 0
        if not body and (next_level == 0 or next_level <= level):
            title = tokens[i + 1].content
            line = tok.map[0] + 1 if tok.map else 0
            yield f"line {line}: section {title!r} is empty"


def size_warnings(html_bytes: int) -> list[str]:
    if html_bytes > REFUSE_BYTES:
        return []  # an error, reported by the caller
    if html_bytes > WARN_BYTES:
        return [
            f"HTML is {html_bytes / 1024:.1f} KB: close to the {REFUSE_BYTES // 1024} KB mailer allows "
            f"(Gmail clips at {GMAIL_CLIP_BYTES // 1024} KB)"
        ]
    return []


def footer_problems(html: str, text: str, postal_address: str, unsubscribe_token: str) -> list[str]:
    """What the law and the mailbox providers require in every message, checked in the
    rendered parts: an unsubscribe link and the sender's postal address (CAN-SPAM, GDPR).
    A template edit that lost either must not go out to a list."""
    import html as html_lib
    import re

    # The link itself: the preference page's link (the same token, then /preferences)
    # is no unsubscribe link.
    link = re.compile(re.escape(unsubscribe_token) + r"(?!/)")
    problems = []
    for part, body, postal in (
        ("HTML", html, html_lib.escape(postal_address, quote=False)),
        ("text", text, postal_address),
    ):
        if not link.search(body):
            problems.append(f"the {part} part has no {{{{ unsubscribe_url }}}} link")
        if postal_address and postal not in body and postal_address not in body:
            problems.append(f"the {part} part does not show the postal_address")
    return problems

"""An issue's article links, and the same email with them counted (count_clicks).

A counted link is BASE/l/TOKEN, TOKEN signing the issue's link number and the link's own
number: no reader in it, and `mailer serve` redirects only to a link the issue had. Links to
our own pages (unsubscribe, archive, preferences) are never counted.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Mapping

_HREF = re.compile(r'href="(https?://[^"\s]+)"', re.I)


def article_links(html: str, base_url: str) -> tuple[str, ...]:
    """The http(s) links of an email, once each, in order, but those to `base_url`."""
    own = base_url.rstrip("/") + "/" if base_url else None
    found = (html_lib.unescape(m.group(1)) for m in _HREF.finditer(html))
    return tuple(dict.fromkeys(u for u in found if own is None or not u.startswith(own)))


def counted(
    html: str, text: str, numbers: Mapping[str, int], url_for: Callable[[int], str]
) -> tuple[str, str]:
    """The HTML and text with each numbered link replaced by its counted URL."""
    if not numbers:
        return html, text

    def href(m: re.Match[str]) -> str:
        n = numbers.get(html_lib.unescape(m.group(1)))
        return m.group(0) if n is None else f'href="{html_lib.escape(url_for(n))}"'

    html = _HREF.sub(href, html)
    # The text part writes a link out in parentheses after its words: "(URL)".
    for url in sorted(numbers, key=len, reverse=True):
        text = text.replace(f"({url})", f"({url_for(numbers[url])})")
    return html, text

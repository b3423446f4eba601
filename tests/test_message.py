"""The body encoder that encodes an issue's constant head once gives, for every recipient,
the very bytes (and so the very text) that encoding the whole message would."""

from __future__ import annotations

import base64
import quopri
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.compose.message import EncodedBody, crlf, encode_body
from mailer.content.placeholders import TOKENS, Compiled

chunk = st.lists(
    st.sampled_from([*"abc xyz.=\t\n", "你好", "—", "é", "\r\n", " \n", "."]),
    max_size=120,
).map("".join)
token = st.sampled_from(list(TOKENS.values()))
value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list("&<=. ")),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.tuples(chunk, st.one_of(st.none(), token)), max_size=6),
    values=st.fixed_dictionaries({f: value for f in TOKENS}),
    encoding=st.sampled_from(["base64", "quoted-printable"]),
    long_head=st.integers(0, 3000),
)
def test_encoded_head_gives_the_bytes_of_encoding_the_whole(
    parts: list[tuple[str, str | None]], values: dict[str, str], encoding: str, long_head: int
) -> None:
    head = ("Issue body 你好 line\n" * (long_head // 20))[:long_head]
    template = crlf(head + "".join(text + (tok or "") for text, tok in parts))
    compiled = Compiled.of(template)
    body = EncodedBody(compiled, encoding)
    filled = compiled.fill(values)
    expected = encode_body(filled, encoding, is_crlf=True)
    got = body.fill(values)
    assert got == expected
    decoded = base64.b64decode(got) if encoding == "base64" else quopri.decodestring(got)
    text, want = decoded.decode("utf-8").replace("\r\n", "\n"), filled.replace("\r\n", "\n")
    assert text in (want, want + "\n")  # QP ends the body with a line break


def test_a_real_footer_costs_only_its_own_encoding() -> None:
    """The head (everything before the first placeholder, cut at a boundary) is encoded
    once: what is left per recipient is the footer, not the issue."""
    issue = "<p>正文 body</p>\n" * 2000 + "<a href='__MAILER_UNSUBSCRIBE_URL__'>退订</a>\n"
    for encoding in ("base64", "quoted-printable"):
        body = EncodedBody(Compiled.of(crlf(issue)), encoding)
        assert len(b"".join(body.tail)) < 200, encoding
        url = "https://news.example.com/u/" + "x" * 90
        assert body.fill({"unsubscribe_url": url}) == encode_body(
            crlf(issue).replace("__MAILER_UNSUBSCRIBE_URL__", url), encoding, is_crlf=True
        )


def test_every_line_of_every_message_ends_in_crlf(sqlite_project: Path) -> None:
    """SMTP sends a message's bytes as they are (no second pass over 30 KB per recipient),
    so a bare CR or LF must never get into one, whatever a name holds; an address with a
    line break (only possible behind the importer's back) is refused, not sent."""
    from mailer.compose.dkim import keygen
    from mailer.compose.mailing import IssueMailing, snapshot_of
    from mailer.config import load_settings
    from mailer.content.issue import load_issue
    from mailer.content.render import Renderer
    from mailer.models import Recipient

    keygen(sqlite_project / "dkim.pem", "s1", "example.com")
    names = ["Ann\r\nBcc: x@evil.example", "Bo\rb", "Cy\nd", "李\u2028雷", "Zoë \x1b[31m", ""]
    for extra in ({}, {"dkim_domain": "example.com", "dkim_selector": "s1"}):
        if extra:
            extra = {**extra, "dkim_private_key": str(sqlite_project / "dkim.pem")}
        settings = load_settings(sqlite_project, extra)
        rendered = Renderer(settings).render(
            load_issue(sqlite_project / "issues" / "2026-11-20-weekly.md")
        )
        mailing = IssueMailing(
            settings, snapshot_of(settings, rendered), slug="s", issue_id=1, ref=1
        )
        for i, name in enumerate(names, 1):
            data = mailing.message(Recipient(i, f"r{i}@example.com", name, i))
            assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None, name
            assert b"\r\nBcc:" not in data
        with pytest.raises(ValueError, match="line break"):
            mailing.message(Recipient(9, "r9@example.com\r\nRCPT TO:<x@evil.example>", "", 9))

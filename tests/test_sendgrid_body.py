"""SendGrid's request body is encoded for speed: for any names and addresses it is the
plain-data request, and each personalization makes SendGrid render exactly the message the
SMTP and outbox providers build for that person."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.compose.mailing import IssueMailing
from mailer.config import load_settings
from mailer.content.placeholders import TOKENS
from mailer.models import ONE_CLICK, Recipient, Snapshot
from mailer.providers.sendgrid.body import build_body, build_request

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
tricky = st.sampled_from(
    ['"', "\\", "%s", "%d", "{", "&amp;", "<b>", "'", "\n", "\u2028", "é", "你"]
)
names = st.lists(st.one_of(text, tricky), max_size=4).map("".join)
locals_ = st.sampled_from(["ann", "o'neil", "tom&jerry", "a+b", "x%sy", "Zoë"])
field_sets = st.sets(st.sampled_from(list(TOKENS)))


def substituted(content: str, subs: dict[str, str]) -> str:
    """What SendGrid does with a personalization's substitutions: each key replaced by its
    value, in one pass (a value holding a key is not substituted again)."""
    if not subs:
        return content
    pattern = re.compile("|".join(re.escape(k) for k in sorted(subs, key=len, reverse=True)))
    return pattern.sub(lambda m: subs[m.group(0)], content)


def test_every_personalization_renders_the_message_smtp_would_send(sqlite_project: Path) -> None:
    base = load_settings(sqlite_project)
    # With a bounce mailbox mailer reads, List-Unsubscribe also offers a mailto: per person.
    with_mailto = load_settings(
        sqlite_project,
        {
            "bounce_address": "bounces@example.com",
            "bounce_imap_url": "imaps://bounces@mail.example.com/INBOX",
        },
    )

    @settings(max_examples=150, deadline=None)
    @given(
        people=st.lists(st.tuples(locals_, names), min_size=1, max_size=5),
        html_fields=field_sets,
        text_fields=field_sets,
        mailto=st.booleans(),
    )
    def check(
        people: list[tuple[str, str]], html_fields: set[str], text_fields: set[str], mailto: bool
    ) -> None:
        s = with_mailto if mailto else base
        html = "<p>Hi</p>" + "".join(f"<i>{TOKENS[f]}</i>" for f in sorted(html_fields))
        plain = "Hi\n" + "".join(f"{TOKENS[f]}\n" for f in sorted(text_fields))
        snap = Snapshot("Subject", "", html, plain, {"List-Id": "x <x.example.com>"}, "a.md")
        mailing = IssueMailing(s, snap, slug="s", issue_id=7, ref=99, message_nonce="n")
        group = [
            Recipient(i + 1, f"{local}{i}@example.com", name, 1000 + i)
            for i, (local, name) in enumerate(people)
        ]
        body = json.loads(build_body(mailing, group))
        assert body == build_request(mailing, group)  # the encoding is the plain data
        text_part, html_part = body["content"][0]["value"], body["content"][1]["value"]
        assert body["custom_args"] == {"mailer_issue": "7"}
        for r, p in zip(group, body["personalizations"], strict=True):
            want_html, want_text, url = mailing.parts(r)
            assert substituted(html_part, p["substitutions"]) == want_html
            assert substituted(text_part, p["substitutions"]) == want_text
            _, email, name = mailing.fields(r)
            assert p["to"] == [{"email": email, **({"name": name} if name else {})}]
            # What SendGrid sends: message-level headers and custom_args, then the
            # personalization's, merged key by key.
            headers = {**body["headers"], **p["headers"]}
            assert headers == {**snap.headers, **mailing.list_headers(url, r)}
            assert headers["List-Unsubscribe-Post"] == ONE_CLICK
            custom_args = {**body["custom_args"], **p["custom_args"]}
            assert custom_args == {"mailer_issue": "7", "mailer_subscriber": str(r.key)}

    check()

"""The Mail Send request (the body SendGrid's own `sendgrid` package would send): pure.

One request of up to 1000 personalizations, one recipient each: their address, their
List-Unsubscribe header, the substitutions of their placeholders, their subscriber id in
custom_args. What is the same for everyone (the content, List-Unsubscribe-Post, the
issue's headers and id) goes once at the message level: SendGrid merges message-level
headers and custom_args into every personalization, key by key, and into its events.

`MailSend.request` builds the request as plain data; `MailSend.body` encodes the same
request, as a test checks for any names and addresses. The body is built for speed, each
part behind its own name, measured: the message level (30-40 KB of content, the same for
every request of a mailing) is encoded once per mailing; a personalization, whose shape is
the same for every recipient of a request, is encoded by filling that shape with its
values through the json module's C string encoder (a dict per recipient, encoded again,
cost as much as the whole of the floor's work per recipient).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from mailer.models import FIELDS, ONE_CLICK, Fields, Mailing, Recipient
from mailer.text import escape_html

MAX_PERSONALIZATIONS = 1000
# Substitution keys: the same shape as the placeholders, which an issue may not contain.
# The text part gets its own keys where its values are not HTML-escaped.
KEYS = {f: f"__MAILER_{f.upper()}__" for f in FIELDS}
TEXT_KEYS = {f: f"__MAILER_{f.upper()}_TEXT__" for f in FIELDS}


@dataclass(frozen=True)
class Substitutions:
    """Which key carries which field in one request, and how.

    The HTML gets every field it uses HTML-escaped, under KEYS. The text part shares a
    field's key when the value reads the same escaped for everyone in the request, and
    otherwise has its own key (TEXT_KEYS) with the value as it is.
    """

    keys: tuple[tuple[str, str, bool], ...]  # (key, field, escaped), in this order
    text_keys: tuple[tuple[str, str], ...]  # (field, key) for the text template

    @classmethod
    def plan(cls, mailing: Mailing, people: Sequence[Fields]) -> Substitutions:
        html, text = mailing.html_fields, mailing.text_fields
        differs = {
            f
            for f in text & html
            if any(escape_html(getattr(p, f)) != getattr(p, f) for p in people)
        }
        text_keys = {f: TEXT_KEYS[f] if f in differs else KEYS[f] for f in text}
        keys = [(KEYS[f], f, True) for f in sorted(html)]
        keys += [(text_keys[f], f, False) for f in sorted(text) if f in differs or f not in html]
        return cls(tuple(keys), tuple(sorted(text_keys.items())))

    def values(self, fields: Fields) -> tuple[str, ...]:
        return tuple(
            escape_html(getattr(fields, f)) if escaped else getattr(fields, f)
            for _, f, escaped in self.keys
        )


class MailSend:
    """Mail Send requests for one mailing."""

    def __init__(self, mailing: Mailing) -> None:
        self.mailing = mailing
        self._message_level: dict[tuple[tuple[str, str], ...], bytes] = {}

    def _fields(self, group: Sequence[Recipient]) -> list[Fields]:
        if len(group) > MAX_PERSONALIZATIONS:
            raise ValueError(f"at most {MAX_PERSONALIZATIONS} recipients per request")
        return [self.mailing.fields(r) for r in group]

    def request(self, group: Sequence[Recipient]) -> dict[str, Any]:
        """The request as plain data: what `body` encodes."""
        mailing = self.mailing
        fields = self._fields(group)
        subs = Substitutions.plan(mailing, fields)
        keys = [key for key, _, _ in subs.keys]
        return {
            "personalizations": [
                {
                    "to": [{"email": f.email, **({"name": f.name} if f.name else {})}],
                    "headers": {"List-Unsubscribe": mailing.list_unsubscribe(f.unsubscribe_url, r)},
                    "substitutions": dict(zip(keys, subs.values(f), strict=True)),
                    "custom_args": {"mailer_subscriber": str(r.key)},
                }
                for r, f in zip(group, fields, strict=True)
            ],
            **self.message_level(subs.text_keys),
        }

    def body(self, group: Sequence[Recipient]) -> bytes:
        """The request, encoded: JSON as UTF-8 bytes (a test holds it to `request`)."""
        mailing = self.mailing
        fields = self._fields(group)
        subs = Substitutions.plan(mailing, fields)
        shape, enc = _personalization_shape(subs), encode_basestring
        encoded = ",".join(
            [
                shape
                % (
                    enc(f.email),
                    ',"name":' + enc(f.name) if f.name else "",
                    enc(mailing.list_unsubscribe(f.unsubscribe_url, r)),
                    *map(enc, subs.values(f)),
                    r.key,
                )
                for r, f in zip(group, fields, strict=True)
            ]
        )
        # Joined apart from the content: one non-ASCII character in the issue would widen
        # the whole string to 4 bytes a character and make its encoding the dearest step.
        head = ('{"personalizations":[' + encoded + "],").encode("utf-8")
        return head + self._encoded_message_level(subs.text_keys)

    def message_level(self, text_keys: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        """Everything but the personalizations."""
        mailing = self.mailing
        level: dict[str, Any] = {
            "from": {
                "email": mailing.from_email,
                **({"name": mailing.from_name} if mailing.from_name else {}),
            },
            "subject": mailing.subject,
            "content": [
                {"type": "text/plain", "value": mailing.text_template({**KEYS, **dict(text_keys)})},
                {"type": "text/html", "value": mailing.html_template(KEYS)},
            ],
            "headers": {**mailing.issue_headers, "List-Unsubscribe-Post": ONE_CLICK},
            "custom_args": {"mailer_issue": str(mailing.issue_id)},
        }
        if mailing.reply_to:
            level["reply_to"] = {"email": mailing.reply_to}
        return level

    def _encoded_message_level(self, text_keys: tuple[tuple[str, str], ...]) -> bytes:
        """The message level without its opening brace, encoded once per text keys."""
        if text_keys not in self._message_level:
            text = json.dumps(
                self.message_level(text_keys), ensure_ascii=False, separators=(",", ":")
            )
            self._message_level[text_keys] = text[1:].encode("utf-8")
        return self._message_level[text_keys]


def _personalization_shape(subs: Substitutions) -> str:
    """A personalization as JSON with a %s for each value: the same for every recipient
    of a request."""
    substitutions = ",".join(f"{encode_basestring(key)}:%s" for key, _, _ in subs.keys)
    return (
        '{"to":[{"email":%s%s}],"headers":{"List-Unsubscribe":%s},'
        '"substitutions":{' + substitutions + '},"custom_args":{"mailer_subscriber":"%d"}}'
    )


def build_request(mailing: Mailing, group: Sequence[Recipient]) -> dict[str, Any]:
    """One request as plain data (tests; the provider keeps a MailSend for its mailing)."""
    return MailSend(mailing).request(group)


def build_body(mailing: Mailing, group: Sequence[Recipient]) -> bytes:
    return MailSend(mailing).body(group)

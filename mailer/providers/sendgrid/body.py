"""The Mail Send request (the body SendGrid's own `sendgrid` package would send): pure.

One request of up to 1000 personalizations, one recipient each, per-recipient
List-Unsubscribe header and substitutions, custom_args with ids only. What is the same
for everyone (List-Unsubscribe-Post, the issue's headers, the issue id in custom_args)
goes once at the message level: SendGrid merges message-level headers and custom_args into
every personalization, key by key, and into its events.
"""

from __future__ import annotations

import functools
import json
import json.encoder
import operator
from collections.abc import Callable, Sequence
from typing import Any

from mailer.models import FIELDS, ONE_CLICK, Mailing, Recipient
from mailer.text import escape_html

# A str -> JSON string literal encoder in C; keeps non-ASCII as is (ensure_ascii=False).
_ENC: Callable[[str], str] = json.encoder.encode_basestring

MAX_PERSONALIZATIONS = 1000
# Substitution keys: the same shape as the placeholders, which an issue may not contain.
# The text part gets its own keys where its values are not HTML-escaped.
KEYS = {f: f"__MAILER_{f.upper()}__" for f in ("unsubscribe_url", "email", "name")}
TEXT_KEYS = {f: f"__MAILER_{f.upper()}_TEXT__" for f in KEYS}


def build_request(mailing: Mailing, group: Sequence[Recipient]) -> dict[str, Any]:
    """The request body as a dict (what `build_body` sends, parsed back)."""
    result: dict[str, Any] = json.loads(build_body(mailing, group))
    return result


def build_body(mailing: Mailing, group: Sequence[Recipient]) -> bytes:
    """The JSON body for POST /v3/mail/send, as UTF-8 bytes.

    Substitutions carry only the fields the templates use. A field whose value reads the
    same escaped and unescaped for everyone in the request shares one key between the
    HTML and the text part; otherwise the text part gets its own, unescaped key.

    A personalization is one %-format of JSON text made once per request, its values
    through the json module's C string encoder: building a dict per recipient and encoding
    it again cost twice the whole of the plain floor's work per recipient.
    """
    if len(group) > MAX_PERSONALIZATIONS:
        raise ValueError(f"at most {MAX_PERSONALIZATIONS} recipients per request")
    html_fields, text_fields = mailing.html_fields, mailing.text_fields
    plain = [mailing.fields(r) for r in group]  # (url, email, name) in FIELDS order
    escaped = [(*p, *map(escape_html, p)) for p in plain]  # and the same HTML-escaped: 6 values
    split = {
        f for f in text_fields & html_fields if any(v[_AT[f]] != v[_AT[f] + 3] for v in escaped)
    }
    # Which value goes under which key, worked out once per request, not per recipient.
    text_keys = {f: TEXT_KEYS[f] if f in split else KEYS[f] for f in text_fields}
    subs = [(KEYS[f], _AT[f] + 3) for f in sorted(html_fields)]  # the escaped copy
    subs += [
        (text_keys[f], _AT[f]) for f in sorted(text_fields) if f in split or f not in html_fields
    ]
    pick = _picker([at for _, at in subs])
    person = (
        '{"to":[{"email":%s%s}],"headers":{"List-Unsubscribe":%s},"substitutions":{'
        + ",".join(_ENC(key) + ":%s" for key, _ in subs)
        + '},"custom_args":{"mailer_subscriber":"%d"}}'
    )
    unsubscribe = mailing.list_unsubscribe
    personalizations = [
        person
        % (
            _ENC(email),
            ',"name":' + _ENC(name) if name else "",
            _ENC(unsubscribe(url, r)),
            *map(_ENC, pick(values)),
            r.key,
        )
        for r, (url, email, name), values in zip(group, plain, escaped, strict=True)
    ]
    # Joined apart from the content: one non-ASCII character in the issue would widen the
    # whole 500 KB string to 4 bytes a character and make its encoding the dearest step.
    head = ('{"personalizations":[' + ",".join(personalizations) + "],").encode("utf-8")
    return head + _tail(mailing, tuple(sorted(text_keys.items())))


@functools.lru_cache(maxsize=8)
def _tail(mailing: Mailing, text_keys: tuple[tuple[str, str], ...]) -> bytes:
    """Everything after the personalizations, the same for every request of a mailing
    whose text part uses the same keys: encoded once."""
    rest: dict[str, Any] = {
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
        rest["reply_to"] = {"email": mailing.reply_to}
    return json.dumps(rest, ensure_ascii=False, separators=(",", ":"))[1:].encode("utf-8")


_AT = {f: i for i, f in enumerate(FIELDS)}


def _picker(at: list[int]) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    """A C-level getter of the values at `at`, always as a tuple."""
    if not at:
        return lambda values: ()
    get = operator.itemgetter(*at)
    if len(at) == 1:
        return lambda values: (get(values),)
    return get

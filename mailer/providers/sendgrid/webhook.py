"""SendGrid's signed event webhook: check (pure), then read into our own events.

The signature (ECDSA P-256 / SHA-256 over timestamp + raw body, with the public key from
SendGrid's Mail Settings) is checked by the `sendgrid` package's own `EventWebhook`, as
SendGrid documents it. Each event is read on its own: one that cannot be understood (or
nests too deeply to store) is rejected alone, never a reason to refuse the others.
"""

from __future__ import annotations

import binascii
import datetime as dt
import json
import re
import time
from base64 import b64decode
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from mailer.models import DeliveryEvent, EventType, Proof, Source
from mailer.providers.sendgrid import words

SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP
MAX_AGE = 600  # seconds: older deliveries are replays
MAX_EVENTS = 10000
MAX_DEPTH = 32  # nesting an event may have and still be stored


class BadSignature(Exception):
    pass


class BadPayload(Exception):
    pass


class BadKey(ValueError):
    pass


_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²".isdigit() is true


def check_headers(signature: str | None, timestamp: str | None, now: float | None = None) -> None:
    """BadSignature unless the headers are well-formed and fresh. Checked before the body
    is read: a request without them costs no 8 MB read."""
    if not signature or not timestamp:
        raise BadSignature("missing signature headers")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise BadSignature("bad timestamp")
    age = (now or time.time()) - int(timestamp)
    if age > MAX_AGE or age < -MAX_AGE:
        raise BadSignature("timestamp outside the allowed window")
    if len(signature) > 200:
        raise BadSignature("signature too long")
    try:
        b64decode(signature, validate=True)
    except (ValueError, binascii.Error) as e:
        raise BadSignature(f"unreadable signature ({e})") from None


def load_public_key(public_key_b64: str) -> Any:
    """The configured key; BadKey says what is wrong with it. `mailer serve` calls this at
    start-up: a bad key is one line and an exit, not a server that refuses every event."""
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        b64decode(public_key_b64, validate=True)
        key = EventWebhook().convert_public_key_to_ecdsa(public_key_b64)
    except (ValueError, binascii.Error, TypeError) as e:
        raise BadKey(f"is not a base64 DER public key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise BadKey("is not an elliptic-curve (ECDSA) public key")
    return key


def verify(key: Any, signature: str, timestamp: str, body: bytes) -> None:
    """BadSignature unless `key` signed exactly timestamp + body."""
    try:
        text = body.decode("utf-8")  # SendGrid posts UTF-8 JSON; the SDK checks text
    except UnicodeDecodeError:
        raise BadSignature("signature does not match") from None
    if not EventWebhook().verify_signature(text, signature, timestamp, public_key=key):
        raise BadSignature("signature does not match")


def parse(body: bytes) -> tuple[list[DeliveryEvent], int]:
    """(events, rejected): each event read on its own."""
    items = _items(body)
    if len(items) > MAX_EVENTS:
        raise BadPayload(f"more than {MAX_EVENTS} events")
    # Only a \u0000 or a \uD800-\uDFFF escape makes text a database cannot store (JSON
    # forbids raw control characters): a body without one needs its strings left alone.
    texts = bool(_UNSTORABLE_ESCAPE.search(body))
    times: dict[object, dt.datetime] = {}  # a batch's events share their whole seconds
    events, rejected = [], 0
    for item in items:
        try:
            event = _event(item, texts, times)
        except (ValueError, TypeError, OverflowError, RecursionError):
            event = None
        if event is None:
            rejected += 1
        else:
            events.append(event)
    return events, rejected


_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _items(body: bytes) -> list[Any]:
    """The body's JSON array. An event nested past what the parser can take makes the whole
    parse fail: then the array is read element by element and that one alone is dropped."""
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("body is not JSON") from None
    except RecursionError:
        data = _elements(body)
    if not isinstance(data, list):
        raise BadPayload("expected a JSON array of events")
    return data


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_TOO_DEEP = object()  # an element rejected for its depth, counted like any unreadable one


def _elements(body: bytes) -> list[Any]:
    """The top-level array's elements, each parsed alone; one deeper than MAX_DEPTH is not
    parsed at all. Strings are skipped whole, so brackets inside them do not count."""
    elements: list[Any] = []
    depth, deepest, start = 0, 0, -1
    for m in _TOKEN.finditer(body):
        token = m.group()
        if depth == 1 and token.startswith(b'"'):
            elements.append(_TOO_DEEP)  # a string where an event should be: unreadable
        elif token in (b"[", b"{"):
            depth += 1
            if depth == 2:
                start, deepest = m.start(), 2
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            if depth == 2 and start >= 0:
                elements.append(_element(body[start : m.end()], deepest))
                start = -1
            depth -= 1
    if depth != 0 or not body.lstrip().startswith(b"["):
        raise BadPayload("body is not JSON")
    return elements


def _element(text: bytes, depth: int) -> Any:
    if depth - 1 > MAX_DEPTH:
        return _TOO_DEEP
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return _TOO_DEEP


def _no_constant(name: str) -> None:
    return None  # NaN and Infinity: PostgreSQL's JSON has no such values


_CONTAINERS = (dict, list)


def _storable(value: Any, texts: bool, depth: int = 0) -> Any:
    """JSON a database can store: bounded depth and, when `texts`, no NUL and no lone
    surrogate in any string. Without `texts`, only the nesting is looked at."""
    if depth > MAX_DEPTH or value is _TOO_DEEP:
        raise ValueError("nested too deeply")
    if texts:
        if isinstance(value, str):
            return _clean_text(value)
        if isinstance(value, dict):
            return {_clean_text(k): _storable(v, texts, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [_storable(v, texts, depth + 1) for v in value]
        return value
    if isinstance(value, _CONTAINERS):
        for v in value.values() if isinstance(value, dict) else value:
            if isinstance(v, _CONTAINERS):
                _storable(v, texts, depth + 1)
    return value


def _clean_text(value: str) -> str:
    if "\x00" in value or not _encodable(value):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_IDS = (str, int)
_NUMBERS = (int, float)


def _event(item: Any, texts: bool, times: dict[object, dt.datetime]) -> DeliveryEvent | None:
    """One event in our words; what of it is stored is made storable (see _storable)."""
    if not isinstance(item, dict):
        return None
    name, event_id, ts, url = (
        item.get("event"),
        item.get("sg_event_id"),
        item.get("timestamp"),
        item.get("url"),
    )
    if not isinstance(name, str) or (event_id is not None and not isinstance(event_id, _IDS)):
        return None
    kind = words.event_type(name, item.get("type"))
    at = times.get(ts)
    if at is None:
        if isinstance(ts, _NUMBERS) and 0 < ts < 1e11:
            at = times[ts] = dt.datetime.fromtimestamp(ts, dt.UTC)
        else:
            at = dt.datetime.now(dt.UTC)
    data = _worth_keeping(kind, item)
    return DeliveryEvent(
        type=kind,
        source=Source.SENDGRID,
        proof=Proof.PROVIDER,
        event_id=_storable(str(event_id)[:200], texts) if event_id else None,
        email=str(item.get("email", ""))[:320] or None,
        subscriber_id=_id(item.get("mailer_subscriber")),
        issue_id=_id(item.get("mailer_issue")),
        at=at,
        url=_storable(url[:2000], texts) if isinstance(url, str) else None,
        suppress=None if kind in PLAIN else words.suppression(kind, item.get("reason")),
        data=None if data is None else _storable(data, texts),
    )


# What is kept of an event beyond its type, time, link and ids: why a message failed, and
# an event of a kind we do not know, whole. Not a reader's IP address or browser.
KEPT = ("reason", "status", "type", "response", "attempt", "bounce_classification")


# Kinds that say a message arrived or was read: nothing about them is worth keeping.
PLAIN = frozenset({EventType.PROCESSED, EventType.DELIVERED, EventType.OPENED, EventType.CLICKED})


def _worth_keeping(kind: EventType, item: dict[str, Any]) -> dict[str, Any] | None:
    if kind in PLAIN:
        return None
    if kind is EventType.UNKNOWN:
        return {k: v for k, v in item.items() if k != "email"}
    kept = {k: item[k] for k in KEPT if k in item}
    return kept or None


def _id(value: Any) -> int | None:
    """One of our ids from custom_args (SendGrid sends them back as strings)."""
    if isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) < 11:
        n = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        return None
    return n if 0 < n < 2**31 else None  # the ids are 32-bit columns

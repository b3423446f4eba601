"""SendGrid's signed event webhook: verify (pure), then parse into our own event words.

Signature: ECDSA P-256 / SHA-256 over timestamp + raw body, base64 DER, with the public key
from SendGrid's Mail Settings (base64 DER SubjectPublicKeyInfo).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import time
from typing import Any

from mailer.models import DeliveryEvent, EventType

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_AGE = 600  # seconds: older deliveries are replays
MAX_EVENTS = 10000

# SendGrid's words → ours. One dict, as anymail does it.
EVENTS = {
    "processed": EventType.PROCESSED,
    "delivered": EventType.DELIVERED,
    "deferred": EventType.DEFERRED,
    "bounce": EventType.BOUNCED,
    "blocked": EventType.BLOCKED,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
}
# Why SendGrid dropped a message → what it says about the address.
DROP_REASONS = {
    "Bounced Address": EventType.BOUNCED,
    "Unsubscribed Address": EventType.UNSUBSCRIBED,
    "Spam Reporting Address": EventType.COMPLAINED,
    "Invalid": EventType.BOUNCED,
}


class BadSignature(Exception):
    pass


class BadPayload(Exception):
    pass


class BadKey(ValueError):
    pass


def check_headers(
    signature_b64: str | None, timestamp: str | None, now: float | None = None
) -> bytes:
    """The signature's bytes, if the headers are well-formed and fresh; else BadSignature.

    Checked before the body is read: a request without them costs no 8 MB read.
    """
    if not signature_b64 or not timestamp:
        raise BadSignature("missing signature headers")
    age = (now or time.time()) - parse_timestamp(timestamp)
    if age > MAX_AGE or age < -MAX_AGE:
        raise BadSignature("timestamp outside the allowed window")
    if len(signature_b64) > 200:
        raise BadSignature("signature too long")
    try:
        return base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error) as e:
        raise BadSignature(f"unreadable signature ({e})") from None


def verify(key: Any, signature: bytes, timestamp: str, body: bytes) -> None:
    """Raise BadSignature unless `key` signed exactly timestamp + body."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BadSignature("signature does not match") from None


_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²".isdigit() is true


def parse_timestamp(value: str) -> int:
    """The signature timestamp, strictly: at most 12 ASCII digits, else BadSignature."""
    if not _TIMESTAMP.fullmatch(value):
        raise BadSignature("bad timestamp")
    return int(value)


def load_public_key(public_key_b64: str) -> Any:
    """The configured key as an EC public key; ValueError says what is wrong with it.

    `mailer serve` calls this at start-up: a bad key is one line and an exit, not a
    server that refuses every genuine event.
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode(public_key_b64, validate=True))
    except (ValueError, binascii.Error, TypeError) as e:
        raise BadKey(f"is not a base64 DER public key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise BadKey("is not an elliptic-curve (ECDSA) public key")
    return key


def parse(body: bytes) -> tuple[list[DeliveryEvent], int]:
    """(events, rejected): each event is read on its own; one that cannot be understood
    is counted and skipped, never a reason to refuse the others."""
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("body is not JSON") from None
    except RecursionError:
        raise BadPayload("body nests too deeply") from None
    if not isinstance(data, list):
        raise BadPayload("expected a JSON array of events")
    if len(data) > MAX_EVENTS:
        raise BadPayload(f"more than {MAX_EVENTS} events")
    events, rejected = [], 0
    for item in data:
        try:
            event = _event(_clean(item))
        except (ValueError, TypeError, OverflowError, RecursionError):
            event = None
        if event is None:
            rejected += 1
        else:
            events.append(event)
    return events, rejected


def _no_constant(name: str) -> None:
    return None  # NaN and Infinity: PostgreSQL's JSON has no such values


def _clean(value: Any, depth: int = 0) -> Any:
    """JSON a database can store: no NUL, no lone surrogates, bounded depth."""
    if depth > 32:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_clean(k, depth): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _event(item: Any) -> DeliveryEvent | None:
    if not isinstance(item, dict) or not isinstance(item.get("event"), str):
        return None
    if item.get("sg_event_id") is not None and not isinstance(item["sg_event_id"], str | int):
        return None
    kind = EVENTS.get(item["event"], EventType.UNKNOWN)
    if kind is EventType.BOUNCED and item.get("type") == "blocked":
        kind = EventType.BLOCKED  # a temporary block, not a dead address
    suppress: EventType | None = None
    if kind in (EventType.BOUNCED, EventType.COMPLAINED, EventType.UNSUBSCRIBED):
        suppress = kind
    elif kind is EventType.DROPPED:
        suppress = DROP_REASONS.get(str(item.get("reason", "")))
    ts = item.get("timestamp")
    at = (
        dt.datetime.fromtimestamp(ts, dt.UTC)
        if isinstance(ts, int | float) and 0 < ts < 1e11
        else dt.datetime.now(dt.UTC)
    )
    url = item.get("url")
    return DeliveryEvent(
        type=kind,
        provider_event_id=str(item["sg_event_id"])[:200] if item.get("sg_event_id") else None,
        email=str(item.get("email", ""))[:320],
        issue_id=_int(item.get("mailer_issue")),
        subscriber_id=_int(item.get("mailer_subscriber")),
        at=at,
        url=str(url)[:2000] if isinstance(url, str) else None,
        suppress=suppress,
        raw=item,
    )


def _int(value: Any) -> int | None:
    try:
        n = int(str(value))
    except (TypeError, ValueError):
        return None
    return n if 0 < n < 2**31 else None  # the ids are 32-bit columns

"""SendGrid's signed event webhook: verify (pure), then parse into our own event words.

Signature: ECDSA P-256 / SHA-256 over timestamp + raw body, base64 DER, with the public key
from SendGrid's Mail Settings (base64 DER SubjectPublicKeyInfo).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
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


def verify(
    public_key_b64: str,
    signature_b64: str | None,
    timestamp: str | None,
    body: bytes,
    now: float | None = None,
) -> None:
    """Raise BadSignature unless SendGrid signed exactly this body within MAX_AGE."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    if not signature_b64 or not timestamp:
        raise BadSignature("missing signature headers")
    if not timestamp.isdigit():
        raise BadSignature("bad timestamp")
    age = (now or time.time()) - int(timestamp)
    if age > MAX_AGE or age < -MAX_AGE:
        raise BadSignature("timestamp outside the allowed window")
    try:
        key = load_der_public_key(base64.b64decode(public_key_b64))
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error) as e:
        raise BadSignature(f"unreadable key or signature ({e})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise BadSignature("the configured key is not an EC public key")
    try:
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BadSignature("signature does not match") from None


def parse(body: bytes) -> list[DeliveryEvent]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("body is not JSON") from None
    if not isinstance(data, list):
        raise BadPayload("expected a JSON array of events")
    if len(data) > MAX_EVENTS:
        raise BadPayload(f"more than {MAX_EVENTS} events")
    return [event for item in data if (event := _event(item)) is not None]


def _event(item: Any) -> DeliveryEvent | None:
    if not isinstance(item, dict) or not isinstance(item.get("event"), str):
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
    return n if 0 < n < 2**62 else None

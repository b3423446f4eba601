"""What a message in the bounce mailbox says: a bounce (RFC 3464), a complaint (RFC 5965
ARF), or neither. Pure: bytes in, a Report out.

flufl.bounce finds the failed addresses in the many dialects MTAs write (Postfix, Exim,
qmail, Exchange, ...) and tells permanent from temporary failures; ARF is read with the
email package. Who it was sent to comes, most trusted first, from the VERP token in the
address the bounce came back to, then from our Message-ID quoted in it, then from the
failed address itself.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

from mailer.tokens import verp_ids

HARD, SOFT, COMPLAINT, UNSUBSCRIBE = "hard", "soft", "complaint", "unsubscribe"
# Headers a delivering MTA records the envelope recipient in (the VERP address).
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_MESSAGE_ID = re.compile(r"<([0-9a-f]{16})\.([0-9a-f]{1,8})@[^>\s]+>")


@dataclass
class Finding:
    kind: str  # HARD, SOFT or COMPLAINT
    email: str | None = None  # the address that failed or complained, if the report says
    subscriber_id: int | None = None
    issue_id: int | None = None  # from VERP
    message_nonce: str | None = None  # from our Message-ID: the issue, via the ledger
    signed: bool = False  # the ids came from a signed VERP address


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    reason: str = ""  # why there are none: "not a bounce or complaint", ...


def read(raw: bytes, secret_key: str, bounce_address: str) -> Report:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    asked = _verp(msg, secret_key, bounce_address, "u.")
    if asked is not None:  # a mail to the List-Unsubscribe mailto: the person leaving
        return Report([_finding(UNSUBSCRIBE, None, asked, None)])
    verp = _verp(msg, secret_key, bounce_address)
    original = _original_headers(msg)
    mid = _our_message_id(original)
    if _is_arf(msg):
        to = original.get("To") if original is not None else None
        address = email.utils.parseaddr(str(to))[1].lower() if to else None
        return Report([_finding(COMPLAINT, address or None, verp, mid)])
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripping over a malformed message: not a bounce we can use
        return Report(reason="a malformed report the bounce detectors could not read")
    found = [_finding(HARD, _text(a), verp, mid) for a in sorted(permanent)]
    found += [_finding(SOFT, _text(a), verp, mid) for a in sorted(temporary - permanent)]
    if not found and verp is not None and _is_dsn(msg):
        # A DSN naming no address we can read, but sent back to a VERP address: its
        # Status says which kind it is.
        status = _first_status(msg)
        if status:
            found = [_finding(HARD if status.startswith("5") else SOFT, None, verp, mid)]
    if not found:
        return Report(reason="not a bounce or complaint (an auto-reply, spam, a person)")
    return Report(found)


def _finding(
    kind: str, address: str | None, verp: tuple[int, int] | None, mid: tuple[str, int] | None
) -> Finding:
    f = Finding(kind, address)
    if verp is not None:
        f.subscriber_id, f.issue_id = verp
        f.signed = True
    elif mid is not None:
        f.message_nonce, f.subscriber_id = mid
    return f


def _text(address: bytes | str) -> str:
    value = address.decode("utf-8", "replace") if isinstance(address, bytes) else address
    return value.strip().strip("<>").lower()


def _verp(
    msg: Message, secret_key: str, bounce_address: str, kind: str = ""
) -> tuple[int, int] | None:
    """The ids in a VERP address the message was delivered to: `local+TOKEN@domain` for
    bounces, `local+u.TOKEN@domain` (kind "u.") for mailto: unsubscribes."""
    if not bounce_address:
        return None
    local, _, domain = bounce_address.lower().rpartition("@")
    after = re.escape(kind) + r"([0-9a-f]{1,8}\.[0-9a-f]{1,8}\.[a-z2-7]{16})@"
    pattern = re.compile(re.escape(local) + r"\+" + after + re.escape(domain), re.I)
    for name in _ENVELOPE_HEADERS:
        for value in msg.get_all(name) or []:
            m = pattern.search(str(value))
            if m:
                ids = verp_ids(secret_key, m.group(1))
                if ids is not None:
                    return ids
    return None


def _original_headers(msg: Message) -> Message | None:
    """The headers of the message that bounced, from the report's last part."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            return email.message_from_bytes(bytes(text), policy=email.policy.compat32)
    return None


def _our_message_id(original: Message | None) -> tuple[str, int] | None:
    """(issue's message nonce, subscriber id) from a Message-ID mailer wrote."""
    if original is None:
        return None
    m = _MESSAGE_ID.search(str(original.get("Message-ID", "")))
    return (m.group(1), int(m.group(2), 16)) if m else None


def _is_arf(msg: Message) -> bool:
    return (
        msg.get_content_type() == "multipart/report"
        and str(msg.get_param("report-type", "")).lower() == "feedback-report"
    ) or any(p.get_content_type() == "message/feedback-report" for p in msg.walk())


def _is_dsn(msg: Message) -> bool:
    return any(p.get_content_type() == "message/delivery-status" for p in msg.walk())


def _first_status(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            m = re.search(r"^Status:\s*([245]\.\d{1,3}\.\d{1,3})", part.as_string(), re.M | re.I)
            if m:
                return m.group(1)
    return ""

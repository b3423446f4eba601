"""What a message in the bounce mailbox says: a bounce (RFC 3464 DSN, or what an MTA
writes instead), a complaint (RFC 5965 ARF), a mail to the List-Unsubscribe mailto:
address, or nothing we act on. Pure: bytes in, events out.

flufl.bounce finds the failed addresses in the many dialects MTAs write (Postfix, Exim,
qmail, Exchange...) and tells permanent from temporary failures; ARF is read with the email
package. Whom a report concerns is proven, best first, by the sealed VERP address it came
back to, then by our sealed Message-ID quoted in it (matched in the ledger when applied).
A report that only names an address proves nothing: anyone can mail this mailbox.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message

from mailer.models import STATUS_FOR, DeliveryEvent, EventType, Proof, Source
from mailer.tokens import MAILTO, VERP, Sealer, open_message_id, verp_ids

# Headers a delivering MTA records the envelope recipient in (the VERP address).
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_MESSAGE_ID = re.compile(r"<([0-9a-fA-F]{56})@[^>\s]+>")
# Parts that hold other parts. A real report has a handful; a message with more is not
# parsed at all (the email package's parser recurses once per level).
_CONTAINER = re.compile(rb"^content-type:\s*(?:multipart|message)/", re.I | re.M)
MAX_PARTS = 64


@dataclass
class Report:
    events: list[DeliveryEvent] = field(default_factory=list)
    reason: str = ""  # why there are none: "not a bounce or complaint", ...
    refused: bool = False  # not read at all (too deep): flagged for a human


@dataclass(frozen=True)
class _Proof:
    proof: Proof
    subscriber_id: int | None = None
    issue_id: int | None = None
    message_nonce: str | None = None
    note: str = ""


def read(raw: bytes, sealer: Sealer, bounce_address: str) -> Report:
    containers = len(_CONTAINER.findall(raw))
    if containers > MAX_PARTS:
        return Report(
            reason=f"{containers} nested parts (at most {MAX_PARTS}): not read", refused=True
        )
    try:
        return _read(raw, sealer, bounce_address)
    except RecursionError:
        return Report(reason="nests too deeply to read", refused=True)


def _read(raw: bytes, sealer: Sealer, bounce_address: str) -> Report:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    event_id = f"imap:{hashlib.sha256(raw).hexdigest()[:32]}"
    asked = _verp(msg, sealer, bounce_address, MAILTO, "u.")
    if asked.proof is Proof.SEALED:  # a mail to the List-Unsubscribe mailto: the person leaving
        return Report([_event(EventType.UNSUBSCRIBED, Source.MAILTO, f"{event_id}:0", None, asked)])
    sealed = _verp(msg, sealer, bounce_address, VERP)
    original = _original_headers(msg)
    proof = sealed if sealed.proof is Proof.SEALED else _quoted(msg, original, sealer, sealed.note)
    if _is_arf(msg):
        # Feedback loops often redact whom a complaint is from; with a seal to prove it,
        # the address it gives is not checked against it.
        to = _arf_recipient(msg) if proof.proof is Proof.ADDRESS else None
        return Report([_event(EventType.COMPLAINED, Source.ARF, f"{event_id}:0", to, proof)])
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except RecursionError:
        raise
    except Exception:  # a detector tripping over a malformed message: not one we can use
        return Report(reason="a malformed report the bounce detectors could not read")
    failed = [(EventType.BOUNCED, _text(a)) for a in sorted(permanent)]
    failed += [(EventType.SOFT_BOUNCED, _text(a)) for a in sorted(temporary - permanent)]
    if not failed and proof.proof is not Proof.ADDRESS and _is_dsn(msg):
        # A DSN naming no address we can read, but proven ours: its Status says the kind.
        status = _first_status(msg)
        if status:
            failed = [(EventType.BOUNCED if status.startswith("5") else EventType.SOFT_BOUNCED, "")]
    if not failed:
        return Report(reason="not a bounce or complaint (an auto-reply, spam, a person)")
    return Report(
        [
            _event(kind, Source.DSN, f"{event_id}:{n}", address or None, proof)
            for n, (kind, address) in enumerate(failed)
        ]
    )


def _event(
    kind: EventType, source: Source, event_id: str, address: str | None, p: _Proof
) -> DeliveryEvent:
    return DeliveryEvent(
        type=kind,
        source=source,
        proof=p.proof,
        event_id=event_id,
        email=address,
        subscriber_id=p.subscriber_id,
        issue_id=p.issue_id,
        message_nonce=p.message_nonce,
        suppress=STATUS_FOR.get(kind),
        data={"source": source},
        note=p.note,
    )


def _text(address: bytes | str) -> str:
    value = address.decode("utf-8", "replace") if isinstance(address, bytes) else address
    return value.strip().strip("<>").lower()


def _verp(msg: Message, sealer: Sealer, bounce_address: str, kind: str, prefix: str = "") -> _Proof:
    """The ids sealed in the VERP address the message was delivered to: `local+TOKEN@domain`
    for bounces, `local+u.TOKEN@domain` for mailto: unsubscribes."""
    if not bounce_address:
        return _Proof(Proof.ADDRESS)
    local, _, domain = bounce_address.lower().rpartition("@")
    pattern = re.compile(
        re.escape(local) + r"\+" + re.escape(prefix) + r"([a-z2-7]{39})@" + re.escape(domain),
        re.I,
    )
    note = ""
    for name in _ENVELOPE_HEADERS:
        for value in msg.get_all(name) or []:
            for token in pattern.findall(str(value)):
                ids = verp_ids(sealer, kind, token)
                if ids is not None:
                    return _Proof(Proof.SEALED, subscriber_id=ids[0], issue_id=ids[1])
                note = "it came back to a VERP address whose seal does not open"
    return _Proof(Proof.ADDRESS, note=note)


def _quoted(msg: Message, original: Message | None, sealer: Sealer, note: str) -> _Proof:
    """Our sealed Message-ID in the quoted original: its headers part, or (Exim and others
    copy the message into the text) any Message-ID line of the report's text."""
    for token in _quoted_ids(msg, original):
        opened = open_message_id(sealer, token)
        if opened is not None:
            nonce, subscriber_id = opened
            return _Proof(Proof.MESSAGE_ID, subscriber_id=subscriber_id, message_nonce=nonce)
        note = note or "the Message-ID it quotes is not one we sealed"
    return _Proof(Proof.ADDRESS, note=note)


_MESSAGE_ID_LINE = re.compile(r"^Message-ID:[ \t]*<([0-9a-fA-F]{56})@", re.I | re.M)


def _quoted_ids(msg: Message, original: Message | None) -> list[str]:
    if original is not None:
        m = _MESSAGE_ID.search(str(original.get("Message-ID", "")))
        if m is not None:
            return [m.group(1)]
    found = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                found += _MESSAGE_ID_LINE.findall(data.decode("utf-8", "replace"))
    return found[:10]


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


def _arf_recipient(msg: Message) -> str | None:
    """Whom a complaint is about, as far as the report says (often redacted)."""
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            fields = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(fields, Message):
                value = fields.get("Original-Rcpt-To")
            else:
                found = re.search(r"^Original-Rcpt-To:\s*(\S+)", str(payload), re.M | re.I)
                value = found.group(1) if found else None
            if value:
                return email.utils.parseaddr(str(value))[1].lower() or None
    return None


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

"""RFC 5322 messages, built from a per-issue skeleton with per-recipient bytes spliced in.

The email package would re-encode every header and body for each of a million
recipients; here everything that is the same for all of them is encoded once, and a
recipient costs one substitution plus one C-level quoted-printable or base64 pass.
List-Id and the List-Unsubscribe headers are added here, once, for every provider.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import email.utils
import functools
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage

from mailer.content.placeholders import Compiled
from mailer.models import ONE_CLICK


@dataclass(frozen=True)
class Part:
    content_type: str
    transfer_encoding: str  # "quoted-printable" or "base64"


def choose_encoding(sample: str) -> str:
    """Quoted-printable for mostly-ASCII text; base64 where QP would triple CJK bytes."""
    data = sample.encode("utf-8")
    non_ascii = sum(1 for b in data if b > 127)
    return "base64" if non_ascii * 6 > len(data) else "quoted-printable"


def crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def encode_body(text: str, transfer_encoding: str, is_crlf: bool = False) -> bytes:
    """The body part's bytes; `is_crlf` says the lines end in CRLF already (a template
    normalized once per issue, filled with values that hold no line breaks)."""
    return encode_body_bytes((text if is_crlf else crlf(text)).encode("utf-8"), transfer_encoding)


class EncodedBody:
    """A part's CRLF body template, transfer-encoded once as far as its first placeholder.

    Per-recipient values sit in the footer, so encoding every message whole would redo
    the same 20-40 KB for each recipient. base64 turns each 57 input bytes into one
    76-character line and quoted-printable starts afresh after every line break: the bytes
    before a 57-byte (base64) or line (QP) boundary encode to the same text alone as inside
    the whole. That head is encoded here; a recipient costs only the tail's encoding. The
    equivalence is checked on the template itself, falling back to no head if it fails.
    """

    def __init__(self, template: Compiled, transfer_encoding: str) -> None:
        self.encoding = transfer_encoding
        self.fields = template.fields
        literals = [lit.encode("utf-8") for lit in template.literals]
        first = literals[0]
        if not self.fields:  # nothing personal in this part: all of it encoded here
            self.head, self.tail = encode_body_bytes(first, transfer_encoding), []
            return
        if transfer_encoding == "base64":
            cut = len(first) // 57 * 57
        else:
            cut = first.rfind(b"\r\n") + 2 if b"\r\n" in first else 0
        self.head = _encode(first[:cut], transfer_encoding) if cut else b""
        self.tail = [first[cut:], *literals[1:]]
        # QP picks CRLF soft breaks from the first line ending it sees: the tail needs one.
        crlf_tail = transfer_encoding == "base64" or any(b"\r\n" in lit for lit in self.tail)
        sample = {f: f for f in self.fields}
        whole = encode_body_bytes(template.fill(sample).encode("utf-8"), transfer_encoding)
        if not crlf_tail or self.fill(sample) != whole:
            self.head, self.tail = b"", literals

    def fill(self, values: Mapping[str, str]) -> bytes:
        """The encoded body with these values (which hold no line breaks) in place."""
        if not self.fields:
            return self.head
        tail = self.tail
        out = [tail[0]]
        for field, literal in zip(self.fields, tail[1:], strict=True):
            out.append(values[field].encode("utf-8"))
            out.append(literal)
        return self.head + encode_body_bytes(b"".join(out), self.encoding)


def _encode(data: bytes, transfer_encoding: str) -> bytes:
    if transfer_encoding == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)


def encode_body_bytes(data: bytes, transfer_encoding: str) -> bytes:
    encoded = _encode(data, transfer_encoding)
    if transfer_encoding == "base64" or encoded.endswith(b"\r\n"):
        return encoded
    return encoded + b"\r\n"


def header_line(name: str, value: str) -> bytes:
    """One header, RFC 2047-encoded where not ASCII, folded below 78 columns."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg[name] = value
    return msg.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"


def list_headers(unsubscribe_url: str, mailto: str = "") -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers every message carries, whichever provider sends it."""
    return {
        "List-Unsubscribe": list_unsubscribe(unsubscribe_url, mailto),
        "List-Unsubscribe-Post": ONE_CLICK,
    }


def list_unsubscribe(unsubscribe_url: str, mailto: str = "") -> str:
    """The List-Unsubscribe value. The mailto: alternative is offered only where mailer
    reads that mailbox."""
    if mailto:
        return f"<{unsubscribe_url}>, <mailto:{mailto}?subject=unsubscribe>"
    return f"<{unsubscribe_url}>"


def folded(name: str, value: str) -> str:
    """`Name: value` CRLF, folded after the commas of a list (List-Unsubscribe's URIs) so
    lines stay under 78 columns where the pieces allow (RFC 5322 2.1.1)."""
    line = f"{name}: {value}"
    if len(line) <= 78 or ", " not in value:
        return line + "\r\n"
    lines, current = [], f"{name}:"
    for piece in value.split(", "):
        if current.endswith(":"):
            current += " " + piece
        elif len(current) + 2 + len(piece) <= 78:
            current += ", " + piece
        else:
            lines.append(current + ",")
            current = " " + piece
    return "\r\n".join([*lines, current]) + "\r\n"


@functools.lru_cache(maxsize=4)
def _date_of_second(second: int) -> bytes:
    # +0000, not -0000: the zone is known (RFC 5322 3.3)
    return email.utils.formatdate(second, usegmt=False).replace("-0000", "+0000").encode()


def _date(when: float) -> bytes:
    """The Date header's value; made once a second, not once a message."""
    return _date_of_second(int(when))


def address(name: str, addr: str) -> str:
    """Name <addr>, the name quoted or RFC 2047-encoded as it needs; ASCII out."""
    return email.utils.formataddr((name, addr), charset="utf-8") if name else addr


class MessageFactory:
    """Everything about an issue's messages that does not depend on the recipient."""

    def __init__(
        self,
        *,
        sender: str,
        reply_to: str,
        subject: str,
        issue_headers: dict[str, str],
        seed: str,
        text_sample: str,
        html_sample: str,
    ) -> None:
        self.text_part = Part("text/plain", choose_encoding(text_sample))
        self.html_part = Part("text/html", choose_encoding(html_sample))
        digest = hashlib.sha256(f"{seed}\0{subject}".encode()).hexdigest()[:16]
        self.boundary = f"=_mailer_{digest}"  # "=_" cannot occur in QP or base64 bodies
        common = [
            header_line("From", sender),
            header_line("Subject", subject),
            *(header_line(k, v) for k, v in issue_headers.items()),
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n'.encode(),
        ]
        if reply_to:
            common.insert(1, header_line("Reply-To", reply_to))
        self.common_headers = b"".join(common)

    def build(
        self,
        to: str,
        message_id: str,
        recipient_headers: dict[str, str],
        html: str | bytes,
        text: str | bytes,
        date: float | None = None,
        is_crlf: bool = False,
    ) -> bytes:
        """The message; a body given as bytes is already transfer-encoded (EncodedBody)."""
        personal = b"".join(
            [
                b"To: " + to.encode("ascii") + b"\r\n",
                b"Date: " + _date(date or time.time()) + b"\r\n",
                b"Message-ID: " + message_id.encode("ascii") + b"\r\n",
                *(folded(k, v).encode("ascii") for k, v in recipient_headers.items()),
            ]
        )
        b = self.boundary.encode()
        return b"".join(
            [
                self.common_headers,
                personal,
                b"\r\n--" + b + b"\r\n",
                self._part_head(self.text_part),
                text
                if isinstance(text, bytes)
                else encode_body(text, self.text_part.transfer_encoding, is_crlf),
                b"\r\n--" + b + b"\r\n",
                self._part_head(self.html_part),
                html
                if isinstance(html, bytes)
                else encode_body(html, self.html_part.transfer_encoding, is_crlf),
                b"\r\n--" + b + b"--\r\n",
            ]
        )

    @staticmethod
    def _part_head(part: Part) -> bytes:
        return (
            f'Content-Type: {part.content_type}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {part.transfer_encoding}\r\n\r\n"
        ).encode()

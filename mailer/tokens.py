"""Every token mailer puts in mail, made and checked by one implementation each.

Two kinds, by where they travel:

- **Link tokens** (`TokenSigner`): ids in hex and an HMAC-SHA256 signature, namespaced,
  in URLs. `sign` and `unsign` share one MAC function, and `unsign` accepts only the
  spelling `sign` gives (no padding bits, no leading zeros). The bytes are those of
  itsdangerous's `Signer` (django-concat key derivation, SHA-256, URL-safe base64), so
  links sent before keep working; a known-answer test pins them.
- **Sealed ids** (`Sealer`): AES-SIV (RFC 5297, deterministic authenticated encryption)
  of a few numbers, in lower-case base32. Used where an id would otherwise show in mail
  headers: the VERP envelope sender, the mailto: unsubscribe address and the Message-ID.
  Nobody can read a subscriber id out of one, nor make one that opens: a report that
  quotes one proves it concerns a message we sent. The same numbers always seal the
  same way, so a deliberate resend keeps its Message-ID.

A link token carries the subscriber's random nonce, checked against the database: erasing
a person destroys it, so their old links are dead even if their id were ever handed out
again. Tokens do not expire (RFC 8058 links must keep working for months); rotating
secret_key revokes them all.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from base64 import b32decode, b32encode, urlsafe_b64encode

from mailer.models import Recipient

# A link token's payload: ids in lower-case hex, joined by dots.
_PAYLOAD = re.compile(r"^[0-9a-f]{1,16}(?:\.[0-9a-f]{1,16})*$")


class TokenSigner:
    """Link tokens for one namespace: `payload.signature`."""

    def __init__(self, secret_key: str, namespace: str) -> None:
        salt = f"mailer.{namespace}".encode()
        # itsdangerous's "django-concat" derivation, so links already sent stay valid.
        key = hashlib.sha256(salt + b"signer" + secret_key.encode()).digest()
        # Keyed once; each token copies it (a million links per million sent).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def _mac(self, payload: bytes) -> bytes:
        """The signature of a payload, as URL-safe base64 without padding."""
        mac = self._keyed.copy()
        mac.update(payload)
        return urlsafe_b64encode(mac.digest()).rstrip(b"=")

    def sign(self, *ids: int) -> str:
        payload = b".".join([b"%x" % i for i in ids])
        return (payload + b"." + self._mac(payload)).decode("ascii")

    def unsign(self, token: str, count: int) -> tuple[int, ...] | None:
        """The ids inside a valid token, or None for anything forged, altered or malformed."""
        if not token or len(token) > 200 or not token.isascii():
            return None
        payload, _, _ = token.rpartition(".")
        if not _PAYLOAD.match(payload):
            return None
        ids = tuple(int(p, 16) for p in payload.split("."))
        # Compared whole against the one spelling sign() gives: base64's padding bits or a
        # leading zero in an id never pass as the same token.
        if len(ids) != count or not hmac.compare_digest(self.sign(*ids), token):
            return None
        return ids


def unsubscribe_signer(secret_key: str) -> TokenSigner:
    return TokenSigner(secret_key, "unsubscribe")


def confirm_signer(secret_key: str) -> TokenSigner:
    """Double opt-in links: (subscriber id, nonce, one-time confirmation nonce)."""
    return TokenSigner(secret_key, "confirm")


def click_signer(secret_key: str) -> TokenSigner:
    """Counted links: (the issue's link number, the link's number in it). No reader."""
    return TokenSigner(secret_key, "click")


def resubscribe_signer(secret_key: str) -> TokenSigner:
    return TokenSigner(secret_key, "resubscribe")


def issue_ref(slug: str) -> int:
    """The number links carry for an issue: derived from the slug, so it is known (and
    the same) before the first send, in a preview, and after it."""
    return int.from_bytes(hashlib.sha256(slug.encode("utf-8")).digest()[:6], "big")


def unsubscribe_prefix(base_url: str) -> str:
    """Every unsubscribe link is this followed by its token."""
    return f"{base_url.rstrip('/')}/u/"


def unsubscribe_token(signer: TokenSigner, r: Recipient, issue_ref: int) -> str:
    """What an unsubscribe link carries: the person's id and link secret, and the issue."""
    return signer.sign(r.key, r.nonce, issue_ref)


def unsubscribe_url(base_url: str, signer: TokenSigner, r: Recipient, issue_ref: int) -> str:
    return unsubscribe_prefix(base_url) + unsubscribe_token(signer, r, issue_ref)


# -- sealed ids: VERP, mailto: unsubscribe, Message-ID -----------------------------------

_BASE32 = re.compile(r"^[a-z2-7]+$")


def derive_key(secret_key: str, purpose: bytes, length: int = 32) -> bytes:
    """A key of its own for one purpose (RFC 5869 HKDF from secret_key): sealing, the
    sign-up form's challenges. One derivation for every key that is not a link token's."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    salt, _, info = purpose.partition(b"/")
    return HKDF(hashes.SHA256(), length=length, salt=salt, info=info).derive(secret_key.encode())


class Sealer:
    """Numbers sealed with AES-SIV under a key derived from secret_key.

    Each use has its own associated data (`kind`), so a sealed VERP id never opens as a
    Message-ID. Numbers are packed as unsigned 32-bit integers (subscriber and issue ids)
    or raw bytes (an issue's random Message-ID nonce).
    """

    def __init__(self, secret_key: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        # A key of its own, apart from the link tokens': AES-256-SIV takes 64 bytes.
        self._siv = AESSIV(derive_key(secret_key, b"mailer.seal/AES-SIV", 64))

    def seal(self, kind: str, plain: bytes) -> bytes:
        return self._siv.encrypt(plain, [kind.encode()])

    def open(self, kind: str, sealed: bytes) -> bytes | None:
        """The sealed bytes, or None for anything we did not seal (or sealed for another kind)."""
        from cryptography.exceptions import InvalidTag

        if not 16 < len(sealed) <= 64:
            return None
        try:
            return self._siv.decrypt(sealed, [kind.encode()])
        except InvalidTag:
            return None


# VERP: the envelope sender of each message names its recipient and issue, so a bounce
# that quotes nothing still says whom it concerns; the mailto: unsubscribe address names
# them the same way. Lower-case base32: mail servers may change the case of a local part,
# which must stay under 64 characters before the @ (the token is 39).
VERP = "verp"
MAILTO = "mailto-unsubscribe"


def verp_token(sealer: Sealer, kind: str, subscriber_id: int, issue_id: int) -> str:
    sealed = sealer.seal(kind, struct.pack(">II", subscriber_id, issue_id))
    return b32encode(sealed).decode("ascii").rstrip("=").lower()


def verp_ids(sealer: Sealer, kind: str, token: str) -> tuple[int, int] | None:
    """(subscriber id, issue id) of a token we sealed for `kind`, else None."""
    token = token.lower()
    if not _BASE32.match(token) or len(token) != 39:
        return None
    data = sealer.open(kind, b32decode(token.upper() + "=" * (-len(token) % 8)))
    if data is None or len(data) != 8:
        return None
    subscriber_id, issue_id = struct.unpack(">II", data)
    return subscriber_id, issue_id


def verp_address(bounce_address: str, token: str) -> str:
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{token}@{domain}"


# A ledger message's Message-ID: the issue's random nonce and the person, sealed, in hex
# (a quarter of base32's cost, and no length limit to keep). Opaque, stable for a
# deliberate resend, different in every project.
MESSAGE_ID = "message-id"
_HEX_TOKEN = re.compile(r"^[0-9a-f]{56}$")


def message_id_token(sealer: Sealer, issue_nonce: str, subscriber_id: int) -> str:
    plain = bytes.fromhex(issue_nonce) + struct.pack(">I", subscriber_id)
    return sealer.seal(MESSAGE_ID, plain).hex()


def open_message_id(sealer: Sealer, token: str) -> tuple[str, int] | None:
    """(issue nonce, subscriber id) of a Message-ID local part we sealed, else None."""
    token = token.lower()
    if not _HEX_TOKEN.match(token):
        return None
    data = sealer.open(MESSAGE_ID, bytes.fromhex(token))
    if data is None or len(data) != 12:
        return None
    return data[:8].hex(), struct.unpack(">I", data[8:])[0]

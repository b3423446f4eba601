"""Signed tokens for links in mail: namespaced, compared in constant time, no address inside.

A token carries only numbers (the subscriber's id and random nonce, the issue's ref) and
an HMAC-SHA256 signature, so a forwarded link reveals nothing and an altered one is
refused. The nonce is checked against the database: erasing a person destroys it, so
their old links are dead even if their id were ever handed out again. Unsubscribe tokens
do not expire (RFC 8058 links must keep working for months); rotating secret_key revokes
them all.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from base64 import b32encode
from binascii import b2a_base64

from itsdangerous import BadSignature, Signer

from mailer.models import Recipient

# A token's payload, ids in hex joined by dots: one format per count of ids.
_HEX = {n: b".".join([b"%x"] * n) for n in range(1, 5)}
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PAYLOAD = re.compile(r"^[0-9a-f]{1,16}(?:\.[0-9a-f]{1,16})*$")


class TokenSigner:
    def __init__(self, secret_key: str, namespace: str) -> None:
        self._signer = Signer(secret_key, salt=f"mailer.{namespace}", digest_method=hashlib.sha256)

        # Signing is per recipient (a million links per million sent): the key is derived
        # once and HMAC's two keyed SHA-256 states (RFC 2104) are kept and copied, half
        # the cost of copying an hmac object. Same bytes as itsdangerous.
        key = self._signer.derive_key()
        block = hashlib.sha256().block_size
        if len(key) > block:  # RFC 2104: a key longer than a block is hashed first
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def sign(self, *ids: int) -> str:
        payload = (_HEX.get(len(ids)) or b".".join([b"%x"] * len(ids))) % ids
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        # itsdangerous's encoding: URL-safe base64 without padding
        mac = b2a_base64(outer.digest(), newline=False).translate(_URLSAFE).rstrip(b"=")
        return (payload + b"." + mac).decode("ascii")

    def unsign(self, token: str, count: int) -> tuple[int, ...] | None:
        """The ids inside a valid token, or None for anything forged, altered or malformed."""
        if not token or len(token) > 200 or not token.isascii():
            return None
        try:
            payload = self._signer.unsign(token).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None
        if not _PAYLOAD.match(payload):
            return None
        ids = tuple(int(p, 16) for p in payload.split("."))
        # Only the canonical spelling: base64's padding bits would otherwise let a changed
        # last character (or leading zeros in an id) pass as the same token.
        if len(ids) != count or not hmac.compare_digest(self.sign(*ids), token):
            return None
        return ids


def unsubscribe_signer(secret_key: str) -> TokenSigner:
    return TokenSigner(secret_key, "unsubscribe")


def confirm_signer(secret_key: str) -> TokenSigner:
    """Double opt-in links: (subscriber id, nonce, one-time confirmation nonce)."""
    return TokenSigner(secret_key, "confirm")


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


# -- VERP: the envelope sender of each message names its recipient and issue -------------
# Lower-case base32 and hex only: mail servers may change the case of a local part, and
# the whole address must stay under 64 characters before the @.
_VERP = re.compile(r"^([0-9a-f]{1,8})\.([0-9a-f]{1,8})\.([a-z2-7]{16})$")


def _verp_mac(secret_key: str, payload: str) -> str:
    mac = hmac.new(secret_key.encode(), b"mailer.verp\0" + payload.encode(), hashlib.sha256)
    return b32encode(mac.digest()[:10]).decode("ascii").lower()


def verp_token(secret_key: str, subscriber_id: int, issue_id: int) -> str:
    payload = f"{subscriber_id:x}.{issue_id:x}"
    return f"{payload}.{_verp_mac(secret_key, payload)}"


def verp_ids(secret_key: str, token: str) -> tuple[int, int] | None:
    """(subscriber id, issue id) of a genuine token, else None."""
    m = _VERP.match(token.lower())
    if not m:
        return None
    payload = f"{m.group(1)}.{m.group(2)}"
    if not hmac.compare_digest(_verp_mac(secret_key, payload), m.group(3)):
        return None
    return int(m.group(1), 16), int(m.group(2), 16)


def verp_address(bounce_address: str, token: str) -> str:
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{token}@{domain}"

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
from base64 import urlsafe_b64encode

from itsdangerous import BadSignature, Signer

from mailer.models import Recipient

_PAYLOAD = re.compile(r"^[0-9a-f]{1,16}(?:\.[0-9a-f]{1,16})*$")


class TokenSigner:
    def __init__(self, secret_key: str, namespace: str) -> None:
        self._signer = Signer(secret_key, salt=f"mailer.{namespace}", digest_method=hashlib.sha256)

        # Signing is per recipient: derive the key once and copy a keyed HMAC, instead of
        # itsdangerous deriving it again for every one of a million links. Same bytes.
        self._mac = hmac.new(self._signer.derive_key(), digestmod=hashlib.sha256)

    def sign(self, *ids: int) -> str:
        payload = b".".join(b"%x" % i for i in ids)
        mac = self._mac.copy()
        mac.update(payload)
        # itsdangerous's encoding: URL-safe base64 without padding
        return (payload + b"." + urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode("ascii")

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


def unsubscribe_url(base_url: str, signer: TokenSigner, r: Recipient, issue_ref: int) -> str:
    return f"{base_url.rstrip('/')}/u/{signer.sign(r.key, r.nonce, issue_ref)}"

"""Signed tokens for links in mail: namespaced, compared in constant time, no address inside.

A token carries only numeric ids (subscriber, issue) and an HMAC-SHA256 signature, so a
forwarded link reveals nothing and an altered one is refused. Unsubscribe tokens do not
expire (RFC 8058 links must keep working for months); rotating secret_key revokes them all.
"""

from __future__ import annotations

import hashlib
import re

from itsdangerous import BadSignature, Signer

_PAYLOAD = re.compile(r"^[0-9a-f]{1,16}(?:\.[0-9a-f]{1,16})*$")


class TokenSigner:
    def __init__(self, secret_key: str, namespace: str) -> None:
        self._signer = Signer(secret_key, salt=f"mailer.{namespace}", digest_method=hashlib.sha256)

    def sign(self, *ids: int) -> str:
        return self._signer.sign(".".join(f"{i:x}" for i in ids)).decode("ascii")

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
        return ids if len(ids) == count else None


def unsubscribe_signer(secret_key: str) -> TokenSigner:
    return TokenSigner(secret_key, "unsubscribe")


def unsubscribe_url(base_url: str, signer: TokenSigner, subscriber_id: int, issue_id: int) -> str:
    return f"{base_url.rstrip('/')}/u/{signer.sign(subscriber_id, issue_id)}"

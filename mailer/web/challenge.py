"""The sign-up form's proof of work: ALTCHA challenges (the `altcha` library, v1 format),
served by mailer serve itself, so no third party sees a reader or holds a key.

A challenge is a signed SHA-256 puzzle: the browser's widget (/altcha.js, vendored) tries
numbers until one hashes right, a fraction of a second for a person and a real cost per
address for a script that signs up thousands. A solution is good once, for ten minutes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from altcha.v1 import ChallengeOptions, create_challenge, extract_params, verify_solution

from mailer.store import Store
from mailer.tokens import derive_key

LIFETIME = dt.timedelta(minutes=10)


class ProofOfWork:
    def __init__(self, secret_key: str, max_number: int, store: Store) -> None:
        self.key = derive_key(secret_key, b"mailer.altcha/HMAC-SHA256")
        self.max_number = max_number
        self.store = store

    @property
    def on(self) -> bool:
        return self.max_number > 0

    def new(self) -> dict[str, Any]:
        """A fresh challenge, as the widget takes it (challengejson, or /altcha/challenge)."""
        expires = dt.datetime.now(dt.UTC) + LIFETIME
        made = create_challenge(
            ChallengeOptions(hmac_key=self.key, max_number=self.max_number, expires=expires)
        )
        return made.to_dict()

    def passed(self, payload: str | None) -> bool:
        """Whether the form carries a solution that is right, signed by us, unexpired and
        not used before (the last is written down: it holds across processes)."""
        if not payload or len(payload) > 2000:
            return False
        try:
            ok, _ = verify_solution(payload, self.key, check_expires=True)
        except Exception:  # a malformed payload is a failed proof, never a 500
            return False
        if not ok:
            return False
        try:
            data = json.loads(base64.b64decode(payload))
            expires = int(extract_params(data)["expires"][0])
        except (ValueError, KeyError, IndexError, TypeError):
            return False  # every challenge we make carries its expiry
        when = dt.datetime.fromtimestamp(expires, dt.UTC)
        return self.store.challenges.spend(str(data["salt"]), when)

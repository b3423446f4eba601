"""The outbox: one RFC 5322 .eml file per recipient, written atomically. The default.

A ledger send names each file after the recipient, so a resend overwrites rather than
duplicates; an ad-hoc mail (test copy, confirmation) gets a name of its own every time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

from mailer import files
from mailer.config import Settings
from mailer.errors import LocalError
from mailer.models import Mailing, Outcome, Recipient

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")


class OutboxProvider:
    name = "outbox"
    group_size = 100
    batched = False

    def __init__(self, settings: Settings) -> None:
        self.root = settings.path(settings.outbox_dir)

    def session(self) -> OutboxSession:
        return OutboxSession(self.root)


class OutboxSession:
    def __init__(self, root: Path) -> None:
        self.root = root

    def send(self, mailing: Mailing, group: Sequence[Recipient]) -> Outcome:
        folder = self.root / mailing.slug
        outcome = Outcome()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for r in group:
                name = _file_name(mailing, r)
                files.write_bytes(folder / name, mailing.message(r))
                outcome.sent[r.key] = name
        except OSError as e:
            # Only this machine saw it; the files already written are recorded as sent.
            error = LocalError(
                f"cannot write to the outbox {folder}: {e.strerror or e}; check outbox_dir"
            )
            error.partial = outcome
            raise error from None
        return outcome

    def close(self) -> None:
        pass


def _file_name(mailing: Mailing, r: Recipient) -> str:
    address = _UNSAFE.sub("_", r.email)
    if mailing.adhoc:
        # Unique per message: two mails to one address in one second are two files.
        mid = mailing.message_id(r).strip("<>").split("@")[0]
        return f"{time.strftime('%Y%m%d-%H%M%S')}-{mid}-{address}.eml"
    return f"{r.key:08d}-{address}.eml"

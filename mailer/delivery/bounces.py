"""`mailer bounces fetch`: read the bounce mailbox, apply what it says, file it away.

Each message is read (unmarked), understood (delivery/dsn.py), applied through the one
status policy in one transaction, and only then moved to the processed folder: a crash
between the two leaves it in the inbox, and the next run finds its events recorded
already (duplicates), so running twice changes nothing. A message that is no bounce or
complaint stays where it is and is reported; nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from dataclasses import dataclass, field

from mailer.config import Settings
from mailer.delivery import dsn
from mailer.providers.imap import Mailbox
from mailer.store import open_store
from mailer.store.events import Bounce, apply_bounce


@dataclass
class FetchResult:
    messages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # bounced, soft, complained...
    moved: int = 0
    left: list[tuple[int, str]] = field(default_factory=list)  # (uid, why) left in place
    changes: list[tuple[str, str]] = field(default_factory=list)  # (address, outcome)


def fetch(settings: Settings, dry_run: bool = False) -> FetchResult:
    settings.require("secret_key")
    result = FetchResult()
    with open_store(settings) as store, Mailbox(settings) as box, store.engine.connect() as conn:
        # A dry run works through every message in one transaction, rolled back at the
        # end, so what it shows adds up (three soft bounces in a row) as the real run would.
        dry = conn.begin() if dry_run else None
        done: list[int] = []
        for uid, raw in box.messages():
            result.messages += 1
            report = dsn.read(raw, settings.secret_key, settings.bounce_address)
            if not report.findings:
                result.left.append((uid, report.reason))
                continue
            digest = hashlib.sha256(raw).hexdigest()[:32]
            with contextlib.nullcontext() if dry_run else conn.begin():
                for n, f in enumerate(report.findings):
                    bounce = Bounce(
                        event_id=f"imap:{digest}:{n}",
                        kind=f.kind,
                        subscriber_id=f.subscriber_id,
                        email=f.email,
                        issue_id=f.issue_id,
                        message_nonce=f.message_nonce,
                        signed=f.signed,
                    )
                    outcome = apply_bounce(conn, bounce, settings.soft_bounce_limit)
                    result.outcomes[outcome] += 1
                    if outcome in ("bounced", "complained", "unsubscribed"):
                        result.changes.append((f.email or f"subscriber {f.subscriber_id}", outcome))
            done.append(uid)
        if dry is not None:
            dry.rollback()  # --dry-run: worked out, shown, not kept
        else:
            box.move(done, settings.bounce_processed_folder)
            result.moved = len(done)
    return result

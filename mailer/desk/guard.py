"""Guard rails before a send: what the last issues' complaints and bounces say, and a list
imported with no consent on record about to be mailed for the first time.

Gmail asks bulk senders to keep spam complaints under 0.1% and refuses their mail over 0.3%
(Yahoo draws the same line); a hard-bounce rate over 2% means an old or bought list. Rates
over fewer than MIN_SENT messages say nothing and are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from mailer.config import Settings
from mailer.content.issue_files import welcome_slug
from mailer.store import Store
from mailer.store.subscribers import Reach

COMPLAINT_WARN = 0.001  # Gmail's guidance
COMPLAINT_HARD = 0.003  # Gmail's and Yahoo's line: over it, `send` asks and `--due` refuses
BOUNCE_WARN = 0.02
RECENT = 3  # issues looked at
MIN_SENT = 100


class Level(IntEnum):
    WARN = 1
    HARD = 2  # `mailer send` asks; `send --due` refuses unless --accept-risk


@dataclass(frozen=True)
class Risk:
    level: Level
    text: str


def risks(settings: Settings, store: Store, reach: Reach | None) -> list[Risk]:
    """What to say before sending (reach: a first send's audience; None for a resume)."""
    found = []
    for f in store.stats.funnels(RECENT, exclude=welcome_slug(settings)):
        if f.sent < MIN_SENT:
            continue
        complaints = f.rate(f.complained)
        if complaints > COMPLAINT_HARD:
            found.append(
                Risk(
                    Level.HARD,
                    f"{f.slug}: complaint rate {complaints:.2%} ({f.complained} of {f.sent}), "
                    f"over the {COMPLAINT_HARD:.1%} line where Gmail and Yahoo refuse bulk mail; "
                    "before the next "
                    "send, remove readers who never open and re-confirm old ones",
                )
            )
        elif complaints > COMPLAINT_WARN:
            found.append(
                Risk(
                    Level.WARN,
                    f"{f.slug}: complaint rate {complaints:.2%} ({f.complained} of {f.sent}), "
                    f"over Gmail's {COMPLAINT_WARN:.1%} guidance; make unsubscribing easy to find and "
                    "re-confirm readers who joined long ago",
                )
            )
        bounces = f.rate(f.bounced)
        if bounces > BOUNCE_WARN:
            found.append(
                Risk(
                    Level.WARN,
                    f"{f.slug}: hard-bounce rate {bounces:.2%} ({f.bounced} of {f.sent}), over "
                    f"{BOUNCE_WARN:.0%}: the list holds dead addresses; clean it (they are suppressed as they "
                    "bounce) and re-confirm addresses from old imports",
                )
            )
    if reach is not None and reach.imported_unmailed:
        found.append(
            Risk(
                Level.WARN,
                f"{reach.imported_unmailed} of the recipients came from an import, with no "
                "double opt-in on record, and were never mailed: mailing people who did not "
                "ask gets a list blocked; be sure they asked, or send them a re-confirmation first",
            )
        )
    return found

"""`mailer status`: how far an issue's send has got, from the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailer.config import Settings
from mailer.content.issue_files import slug_of
from mailer.errors import InputError
from mailer.models import RecipientState
from mailer.store import open_store
from mailer.store.ledger import LedgerCounts, ListedRecipient
from mailer.store.pins import Pinned, VersionSent


@dataclass(frozen=True)
class IssueStatus:
    slug: str
    subject: str
    source: str | None
    version: int | None
    counts: LedgerCounts
    versions: list[VersionSent] = field(default_factory=list)
    batches: dict[str, int] = field(default_factory=dict)
    ambiguous: list[ListedRecipient] = field(default_factory=list)
    failed: list[ListedRecipient] = field(default_factory=list)
    audience: str | None = None  # the pinned expression; None: everyone
    editions: dict[str, int] = field(default_factory=dict)  # recipients by edition
    skipped: dict[str, int] = field(default_factory=dict)  # skipped recipients by why

    def as_json(self) -> dict[str, Any]:
        """What `mailer status --json` prints (CONTRACT: recipients, sent, pending, failed,
        ambiguous at least)."""
        c = self.counts
        return {
            "slug": self.slug,
            "subject": self.subject,
            "source": self.source,
            "recipients": c.recipients,
            "sent": c.sent,
            "pending": c.pending,
            "in_flight": c.requesting,
            "failed": c.failed,
            "ambiguous": c.ambiguous,
            "skipped": c.skipped,
            "version": self.version,
            "versions": [v.__dict__ for v in self.versions],
            "batches": self.batches,
            "audience": self.audience,
            "editions": self.editions,
            "skipped_because": self.skipped,
            "ambiguous_recipients": [r.__dict__ for r in self.ambiguous],
            "failed_recipients": [r.__dict__ for r in self.failed],
        }


def _named(editions: dict[str, int], pinned: Pinned | None) -> dict[str, int]:
    """Recipients by edition, the main one named by its language."""
    main = (pinned.snapshot.language if pinned else "") or "main"
    return {(tag or main): n for tag, n in editions.items()}


def status(settings: Settings, target: str, listed: int | None = 100) -> IssueStatus:
    """The ledger's account of an issue (its file or its slug); the first `listed`
    ambiguous and failed recipients by name (None: all)."""
    slug = slug_of(target)
    with open_store(settings) as store:
        found = store.pins.find(slug)
        if found is None:
            raise InputError(f"issue {slug!r} has not been sent; nothing to report")
        ledger = store.ledger
        return IssueStatus(
            slug=slug,
            subject=found.subject,
            source=found.source,
            version=found.version,
            counts=ledger.counts(found.id),
            versions=store.pins.versions(found.id),
            batches=ledger.batch_counts(found.id),
            ambiguous=ledger.listed(found.id, RecipientState.AMBIGUOUS, listed),
            failed=ledger.listed(found.id, RecipientState.FAILED, listed),
            audience=found.audience,
            editions=_named(ledger.by_edition(found.id), store.pins.load(slug)),
            skipped=ledger.skipped_because(found.id),
        )

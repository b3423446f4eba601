"""`mailer report`: what happened to an issue after it left, from the ledger and events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mailer.config import Settings
from mailer.content.issue_files import slug_of
from mailer.errors import InputError
from mailer.models import EventType
from mailer.store import Store, open_store

# What the events count, in the order `mailer report` shows them.
SHOWN = (
    EventType.DELIVERED,
    EventType.BOUNCED,
    EventType.COMPLAINED,
    EventType.UNSUBSCRIBED,
    EventType.OPENED,
    EventType.CLICKED,
)


@dataclass(frozen=True)
class Link:
    url: str
    clicks: int  # people who clicked it


@dataclass(frozen=True)
class IssueReport:
    slug: str
    subject: str
    recipients: int
    sent: int
    people: dict[str, int]  # event type -> how many people it happened to
    top_links: list[Link] = field(default_factory=list)
    # The same split by language edition (named by its language) and by topic.
    by_edition: dict[str, dict[str, int]] = field(default_factory=dict)
    by_topic: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, kind: EventType) -> int:
        return self.people.get(kind.value, 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "subject": self.subject,
            "recipients": self.recipients,
            "sent": self.sent,
            **{kind.value: self.count(kind) for kind in SHOWN},
            "top_links": [asdict(link) for link in self.top_links],
            "by_edition": {k: _columns(v) for k, v in self.by_edition.items()},
            "by_topic": {k: _columns(v) for k, v in self.by_topic.items()},
        }


BY = ("recipients", "sent", "delivered", "opened", "clicked", "unsubscribed")  # per group


def _columns(counts: dict[str, int]) -> dict[str, int]:
    return {k: counts.get(k, 0) for k in BY}


def _links(settings: Settings, store: Store, issue_id: int, top: int) -> list[tuple[str, int]]:
    """Counted links (count_clicks: redirects followed) where there are any, else the
    provider's click events (people who clicked)."""
    counted = store.links.counts(issue_id)[:top] if settings.count_clicks else []
    return counted or store.events.top_links(issue_id, top)


def report(settings: Settings, target: str, top: int = 10) -> IssueReport:
    slug = slug_of(target)
    with open_store(settings) as store:
        found = store.pins.find(slug)
        if found is None:
            raise InputError(f"issue {slug!r} has not been sent; nothing to report")
        counts = store.ledger.counts(found.id)
        by_edition, by_topic = store.events.by_audience(found.id)
        pinned = store.pins.load(slug)
        main = (pinned.snapshot.language if pinned else "") or settings.language
        return IssueReport(
            slug=slug,
            subject=found.subject,
            recipients=counts.recipients,
            sent=counts.sent,
            people=store.events.engagement(found.id),
            top_links=[Link(url, n) for url, n in _links(settings, store, found.id, top)],
            by_edition={(k or main): v for k, v in by_edition.items()},
            by_topic=by_topic,
        )

"""`mailer report`: what happened to an issue after it left, from the ledger and events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mailer.config import Settings
from mailer.content.issue_files import slug_of
from mailer.errors import InputError
from mailer.models import EventType
from mailer.store import open_store

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
        }


def report(settings: Settings, target: str, top: int = 10) -> IssueReport:
    slug = slug_of(target)
    with open_store(settings) as store:
        found = store.pins.find(slug)
        if found is None:
            raise InputError(f"issue {slug!r} has not been sent; nothing to report")
        counts = store.ledger.counts(found.id)
        return IssueReport(
            slug=slug,
            subject=found.subject,
            recipients=counts.recipients,
            sent=counts.sent,
            people=store.events.engagement(found.id),
            top_links=[Link(url, n) for url, n in store.events.top_links(found.id, top)],
        )

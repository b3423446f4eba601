"""The shared vocabulary: statuses, states and event types, plus small value types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SubscriberStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # awaiting double opt-in
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# Statuses a person (or their mail server) chose; an import must never undo them.
SUPPRESSED = frozenset(
    {SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED}
)


class BatchState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"  # leased by one sender; nothing sent yet
    REQUESTING = "requesting"  # a provider request may be in flight
    SENT = "sent"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"


class RecipientState(StrEnum):
    PENDING = "pending"
    REQUESTING = "requesting"
    SENT = "sent"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"  # may or may not have been delivered: never resent silently
    SKIPPED = "skipped"  # no longer active when its batch went out


class EventType(StrEnum):
    """Delivery events in our own words; each provider maps its words onto these."""

    PROCESSED = "processed"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BLOCKED = "blocked"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Issue:
    """A parsed issue file: metadata plus its Markdown body."""

    slug: str
    subject: str
    preheader: str
    date: str
    body: str
    source: str  # the path it came from, for messages


@dataclass(frozen=True)
class Recipient:
    """One person an issue goes to, as the sender needs them."""

    subscriber_id: int
    email: str
    name: str = ""


@dataclass
class Outcome:
    """What a provider did with a group of recipients."""

    sent: dict[int, str] = field(default_factory=dict)  # subscriber id -> provider message id
    failed: dict[int, str] = field(default_factory=dict)  # subscriber id -> reason (permanent)
    bounced: set[int] = field(default_factory=set)  # failed because the address is dead
    ambiguous: dict[int, str] = field(default_factory=dict)  # may have gone out

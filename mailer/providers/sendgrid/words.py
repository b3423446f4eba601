"""SendGrid's words for what happened, mapped onto ours: one place, as anymail does it."""

from __future__ import annotations

from mailer.models import STATUS_FOR, EventType, SubscriberStatus

# Event names in its webhook.
EVENTS = {
    "processed": EventType.PROCESSED,
    "delivered": EventType.DELIVERED,
    "deferred": EventType.DEFERRED,
    "bounce": EventType.BOUNCED,
    "blocked": EventType.BLOCKED,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
}
# Why it dropped a message: what that says about the address.
DROP_REASONS = {
    "Bounced Address": SubscriberStatus.BOUNCED,
    "Unsubscribed Address": SubscriberStatus.UNSUBSCRIBED,
    "Spam Reporting Address": SubscriberStatus.COMPLAINED,
    "Invalid": SubscriberStatus.BOUNCED,
}
# Its suppression lists (GET /v3/suppression/NAME), as the event each entry reports.
LISTS = {
    "unsubscribes": EventType.UNSUBSCRIBED,
    "bounces": EventType.BOUNCED,
    "spam_reports": EventType.COMPLAINED,
    "invalid_emails": EventType.BOUNCED,
}


def event_type(name: str, bounce_type: object = None) -> EventType:
    kind = EVENTS.get(name, EventType.UNKNOWN)
    if kind is EventType.BOUNCED and bounce_type == "blocked":
        return EventType.BLOCKED  # a temporary block, not a dead address
    return kind


def suppression(kind: EventType, reason: object = None) -> SubscriberStatus | None:
    """The status an event of this kind puts on its address."""
    if kind is EventType.DROPPED:
        return DROP_REASONS.get(str(reason or ""))
    return STATUS_FOR.get(kind)

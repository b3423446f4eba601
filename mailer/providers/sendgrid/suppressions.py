"""SendGrid's suppression lists (unsubscribes, bounces, spam reports, invalid emails),
read page by page with the one API client and told in our own words."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from mailer.config import Settings
from mailer.errors import DeliveryError
from mailer.models import DeliveryEvent, Proof, Source
from mailer.providers.sendgrid import words
from mailer.providers.sendgrid.api import Client

PAGE = 500


def entries(settings: Settings, name: str) -> Iterator[DeliveryEvent]:
    """Every address on one list, as the event that put it there."""
    client = Client(settings)
    try:
        offset = 0
        while True:
            items = client.get(f"/v3/suppression/{name}", limit=PAGE, offset=offset)
            if not isinstance(items, list):
                raise DeliveryError(f"SendGrid's {name} list was not a JSON array")
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("email"), str):
                    yield entry_event(name, item["email"][:320], item.get("created"))
            if len(items) < PAGE:
                return
            offset += PAGE
    finally:
        client.close()


def entry_event(name: str, email: str, created: object) -> DeliveryEvent:
    kind = words.LISTS[name]
    at = (
        dt.datetime.fromtimestamp(created, dt.UTC)
        if isinstance(created, int) and 0 < created < 10**11
        else None
    )
    return DeliveryEvent(
        type=kind,
        source=Source.SYNC,
        proof=Proof.PROVIDER,
        # One entry is one fact: a second sync finds it recorded and changes nothing.
        event_id=f"sendgrid-{name}:{email.lower()}"[:200],
        email=email,
        at=at,
        suppress=words.suppression(kind),
        data={"list": name},
    )

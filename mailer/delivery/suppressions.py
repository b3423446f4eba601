"""`mailer suppressions sync`: SendGrid's suppression lists applied to the local list."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mailer.config import Settings
from mailer.errors import DeliveryError
from mailer.models import Actor, SubscriberStatus, may_change
from mailer.store import open_store

PAGE = 500
# SendGrid's list → the status it means here.
LISTS = {
    "unsubscribes": SubscriberStatus.UNSUBSCRIBED,
    "bounces": SubscriberStatus.BOUNCED,
    "spam_reports": SubscriberStatus.COMPLAINED,
    "invalid_emails": SubscriberStatus.BOUNCED,
}


@dataclass
class ListResult:
    fetched: int = 0
    changed: list[str] = field(default_factory=list)
    already: int = 0  # suppressed here already
    unknown: int = 0  # not on our list


def fetch(settings: Settings, name: str) -> Iterator[str]:
    """Every address on one SendGrid suppression list, page by page."""
    from python_http_client import exceptions
    from sendgrid import SendGridAPIClient

    settings.require("sendgrid_api_key")
    client = SendGridAPIClient(api_key=settings.sendgrid_api_key, host=settings.sendgrid_api_host)
    endpoint = getattr(client.client.suppression, name)
    offset = 0
    while True:
        try:
            response = endpoint.get(
                query_params={"limit": PAGE, "offset": offset}, timeout=settings.sendgrid_timeout
            )
        except exceptions.HTTPError as e:
            from mailer.providers.sendgrid import _explain

            raise DeliveryError(_explain(int(e.status_code), e.body)) from None
        except OSError as e:
            raise DeliveryError(f"cannot reach {settings.sendgrid_api_host}: {e}") from None
        items: Any = response.to_dict
        if not isinstance(items, list):
            raise DeliveryError(f"SendGrid's {name} list was not a JSON array")
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("email"), str):
                yield item["email"]
        if len(items) < PAGE:
            return
        offset += PAGE


def sync(settings: Settings, dry_run: bool = False) -> dict[str, ListResult]:
    results: dict[str, ListResult] = {}
    with open_store(settings) as store:
        for name, status in LISTS.items():
            result = results.setdefault(name, ListResult())
            for raw in fetch(settings, name):
                result.fetched += 1
                try:
                    s = store.subscribers.get(raw)
                except Exception:  # an address SendGrid holds that we would call invalid
                    s = None
                if s is None:
                    result.unknown += 1
                elif not may_change(s.status, status, Actor.PROVIDER):
                    result.already += 1
                else:
                    result.changed.append(s.email)
                    if not dry_run:
                        store.subscribers.set_status(
                            s.id, status, Actor.PROVIDER, f"sendgrid suppression: {name}"
                        )
    return results

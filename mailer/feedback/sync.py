"""`mailer suppressions sync`: SendGrid's suppression lists applied to the local list,
through the same function as every other report."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from mailer.config import Settings
from mailer.feedback.apply import Outcome, Rules, apply
from mailer.models import DeliveryEvent
from mailer.providers.sendgrid import suppressions, words
from mailer.store import open_store

CHUNK = 1000  # entries applied in one transaction


@dataclass
class ListResult:
    fetched: int = 0
    changed: list[str] = field(default_factory=list)  # addresses whose status changed
    already: int = 0  # on our list and suppressed already (or by an earlier sync)
    unknown: int = 0  # not on our list


def sync(settings: Settings, dry_run: bool = False) -> dict[str, ListResult]:
    results: dict[str, ListResult] = {}
    rules = Rules.of(settings)
    with open_store(settings) as store, store.engine.connect() as conn:
        for name in words.LISTS:
            result = results.setdefault(name, ListResult())
            for chunk in _chunks(suppressions.entries(settings, name)):
                with conn.begin() as tx:
                    applied = apply(conn, chunk, rules)
                    if dry_run:
                        tx.rollback()  # worked out, shown, not kept
                result.fetched += len(chunk)
                result.unknown += applied.counts[Outcome.UNKNOWN]
                for v in applied.verdicts:
                    if v.outcome is Outcome.SUPPRESSED:
                        result.changed.append(v.address or v.event.email or "")
                    elif v.outcome is Outcome.DUPLICATE and v.subscriber_id is None:
                        result.unknown += 1
                    elif v.outcome in (Outcome.UNCHANGED, Outcome.DUPLICATE):
                        result.already += 1
    return results


def _chunks(items: Iterable[DeliveryEvent]) -> Iterator[list[DeliveryEvent]]:
    it = iter(items)
    while chunk := list(islice(it, CHUNK)):
        yield chunk

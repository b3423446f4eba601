"""The welcome: what a person gets once, when they confirm their subscription.

`issues/welcome.md` (or the `welcome_issue` setting) and, with `welcome_latest`, the
latest issue. Both go through the ledger like any send: the person is enrolled in the
pinned issue in a batch of their own (once: enrolling twice is a no-op) and only that
batch is sent, so a welcome never joins or disturbs a send in progress.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mailer import languages
from mailer.audience import parse
from mailer.config import Settings
from mailer.content.issue import load_issue
from mailer.content.issue_files import welcome_path
from mailer.errors import DeliveryError
from mailer.models import SubscriberStatus
from mailer.providers import make_provider
from mailer.sending.engine import Sender
from mailer.sending.send import (
    editions_for,
    mailing_for,
    prepare,
    prepare_editions,
    snapshot_with_editions,
)
from mailer.store import Store
from mailer.store.pins import Pinned


@dataclass
class Welcomed:
    sent: list[str]  # slugs sent to the person by this call


def welcome(settings: Settings, store: Store, subscriber_id: int) -> Welcomed:
    s = store.subscribers.by_id(subscriber_id)
    done = Welcomed([])
    if s is None or s.status != SubscriberStatus.ACTIVE:
        return done
    targets: list[Pinned] = []
    welcome_pin = _pin_welcome(settings, store)
    if welcome_pin is not None:
        targets.append(welcome_pin)
    if settings.welcome_latest:
        latest = store.pins.latest(exclude=welcome_pin.slug if welcome_pin else "")
        if latest is not None:
            targets.append(latest)
    language = s.language or settings.language
    for pinned in targets:
        if pinned.audience and not parse(pinned.audience).matches(s.topics, language):
            continue  # the latest issue went to an audience this reader is not in
        tags = [e.language for e in pinned.snapshot.editions]
        edition = languages.falls_to(language, tags) or ""
        seq = store.ledger.enroll(pinned.issue_id, subscriber_id, edition)
        if seq is None:
            continue  # had it already

        links = store.links.numbers(pinned.issue_id) if settings.count_clicks else None
        sender = Sender(
            store.ledger,
            make_provider(settings),
            mailing_for(settings, pinned, "", links),
            settings,
            pinned.version,
            only_batch=seq,
            editions=editions_for(settings, pinned, links),
        )
        result = sender.run()
        if result.stopped:
            raise DeliveryError(f"the welcome {pinned.slug!r} stopped: {result.stopped}")
        done.sent.append(pinned.slug)
    return done


def _pin_welcome(settings: Settings, store: Store) -> Pinned | None:
    """The welcome file as pinned: pinned on first use (nobody enrolled), pinned again as
    a new version when the file changed, so each new subscriber gets the current text."""
    path = welcome_path(settings)
    if path is None or not path.is_file():
        return None

    # Never in the archive, so no "view in browser" link to a page that does not exist.
    issue = dataclasses.replace(load_issue(path), archive=False)
    rendered = prepare(settings, path, web=False, issue=issue)
    editions = prepare_editions(settings, path, rendered, web=False)
    snapshot = snapshot_with_editions(settings, rendered, editions)
    for r in (rendered, *(e for _, e in editions)):
        store.archive.put_media((m.name, m.content_type, m.data) for m in r.media)
    pins = store.pins
    pinned = pins.pin(rendered.issue.slug, snapshot, settings.batch_size, enroll_all=False)
    if pinned.snapshot.content_hash != snapshot.content_hash:
        pinned = pins.repin(pinned, snapshot)
    return pinned

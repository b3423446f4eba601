"""The store: subscribers, consent, the delivery ledger and events, on SQLAlchemy Core."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from mailer.errors import StoreError
from mailer.store import db
from mailer.store.archive import Archive
from mailer.store.challenges import Challenges
from mailer.store.events import Events
from mailer.store.feeds import FeedCache
from mailer.store.ledger import Ledger
from mailer.store.links import Links
from mailer.store.mailbox import Examined
from mailer.store.owners import Leases
from mailer.store.pins import Pins
from mailer.store.preferences import Preferences
from mailer.store.queue import MailQueue
from mailer.store.stats import Stats
from mailer.store.subscribers import Subscribers

if TYPE_CHECKING:
    from mailer.config import Settings


class Store:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def subscribers(self) -> Subscribers:
        return Subscribers(self.engine)

    @property
    def preferences(self) -> Preferences:
        return Preferences(self.engine)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.engine)

    @property
    def pins(self) -> Pins:
        return Pins(self.engine)

    @property
    def queue(self) -> MailQueue:
        return MailQueue(self.engine)

    @property
    def archive(self) -> Archive:
        return Archive(self.engine)

    @property
    def challenges(self) -> Challenges:
        return Challenges(self.engine)

    @property
    def feeds(self) -> FeedCache:
        return FeedCache(self.engine)

    @property
    def links(self) -> Links:
        return Links(self.engine)

    @property
    def stats(self) -> Stats:
        return Stats(self.engine)

    @property
    def leases(self) -> Leases:
        return Leases(self.engine)

    @property
    def examined(self) -> Examined:
        return Examined(self.engine)

    @property
    def events(self) -> Events:
        return Events(self.engine)


def open_url(url: str, migrate: bool = True) -> Store:
    engine = db.create_engine(url)
    try:
        if migrate:
            db.upgrade(engine)
    except sa.exc.OperationalError as e:
        engine.dispose()
        raise StoreError(f"cannot open the database at {_safe(url)}: {db._reason(e)}") from None
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


def open_store(settings: Settings, migrate: bool = True) -> Store:
    return open_url(settings.resolved_database_url, migrate)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"

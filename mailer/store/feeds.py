"""`mailer draft`'s memory of each feed: its validators (ETag, Last-Modified) and last body."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from mailer.store.schema import feed_cache
from mailer.store.subscribers import now


@dataclass(frozen=True)
class Cached:
    etag: str | None
    last_modified: str | None
    body: bytes | None


class FeedCache:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get(self, url: str) -> Cached | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(feed_cache).where(feed_cache.c.url == url)).first()
        if row is None:
            return None
        return Cached(row.etag, row.last_modified, bytes(row.body) if row.body else None)

    def put(self, url: str, etag: str | None, last_modified: str | None, body: bytes) -> None:
        values = {
            "etag": (etag or None) and etag[:500],
            "last_modified": (last_modified or None) and last_modified[:100],
            "body": body,
            "fetched_at": now(),
        }
        with self.engine.begin() as conn:
            done = conn.execute(
                feed_cache.update().where(feed_cache.c.url == url).values(**values)
            ).rowcount
            if not done:
                conn.execute(feed_cache.insert().values(url=url, **values))

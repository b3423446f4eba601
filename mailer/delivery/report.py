"""`mailer report`: what happened to an issue after it left, from the ledger and events."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mailer.config import Settings
from mailer.content.issue import load_issue
from mailer.errors import InputError
from mailer.models import EventType
from mailer.store import open_store
from mailer.store.schema import events
from mailer.store.subscribers import erased_tally


def report(settings: Settings, slug_or_path: str, top: int = 10) -> dict[str, Any]:
    from pathlib import Path

    slug = load_issue(Path(slug_or_path)).slug if Path(slug_or_path).is_file() else slug_or_path
    with open_store(settings) as store:
        found = store.ledger.find(slug)
        if found is None:
            raise InputError(f"issue {slug!r} has not been sent; nothing to report")
        issue_id = int(found["id"])
        counts = store.ledger.counts(issue_id)
        with store.engine.connect() as conn:
            unique: dict[str, int] = dict(
                conn.execute(
                    sa.select(events.c.type, sa.func.count(sa.distinct(events.c.subscriber_id)))
                    .where(events.c.issue_id == issue_id)
                    .group_by(events.c.type)
                ).all()
            )
            for kind, n in erased_tally(conn, issue_id, "event").items():
                unique[kind] = unique.get(kind, 0) + n
            links = conn.execute(
                sa.select(
                    events.c.url, sa.func.count(sa.distinct(events.c.subscriber_id)).label("n")
                )
                .where(
                    events.c.issue_id == issue_id,
                    events.c.type == EventType.CLICKED,
                    events.c.url.is_not(None),
                )
                .group_by(events.c.url)
                .order_by(sa.desc("n"), events.c.url)
                .limit(top)
            ).all()
    return {
        "slug": slug,
        "subject": found["subject"],
        "recipients": counts["recipients"],
        "sent": counts["sent"],
        "delivered": unique.get(EventType.DELIVERED.value, 0),
        "bounced": unique.get(EventType.BOUNCED.value, 0),
        "complained": unique.get(EventType.COMPLAINED.value, 0),
        "unsubscribed": unique.get(EventType.UNSUBSCRIBED.value, 0),
        "opened": unique.get(EventType.OPENED.value, 0),
        "clicked": unique.get(EventType.CLICKED.value, 0),
        "top_links": [{"url": url, "clicks": n} for url, n in links],
    }

"""What the web shows of pinned issues: the archive list, each web version, and media.

Read from the ledger's pins, never from issue files: the archive shows what was sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from mailer.store.schema import issue_versions, issues, media
from mailer.store.subscribers import now


@dataclass(frozen=True)
class Published:
    slug: str
    subject: str
    preheader: str
    date: str  # the issue's own date, or the day it was first sent
    sent_at: dt.datetime
    web_html: str


class Archive:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _query(self) -> sa.Select[tuple[object, ...]]:
        v = issue_versions
        return (
            sa.select(
                issues.c.slug,
                v.c.subject,
                v.c.preheader,
                v.c.issue_date,
                issues.c.created_at,
                v.c.web_html,
            )
            .join(v, (v.c.issue_id == issues.c.id) & (v.c.version == issues.c.version))
            # The welcome mail is pinned with archive false: only issues are listed.
            .where(v.c.archive == sa.true(), v.c.web_html.is_not(None), v.c.web_html != "")
        )

    def issues(self, limit: int = 1000) -> list[Published]:
        """Archived issues, newest first."""
        q = self._query().order_by(issues.c.created_at.desc(), issues.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_published(r) for r in conn.execute(q)]

    def issue(self, slug: str) -> Published | None:
        with self.engine.connect() as conn:
            row = conn.execute(self._query().where(issues.c.slug == slug)).first()
        return _published(row) if row is not None else None

    # -- media ----------------------------------------------------------------------------

    def put_media(self, items: Iterable[tuple[str, str, bytes]]) -> None:
        """Store (name, content type, bytes); a name already there is the same bytes."""
        rows = list(items)
        if not rows:
            return
        with self.engine.begin() as conn:
            have = set(
                conn.execute(
                    sa.select(media.c.name).where(media.c.name.in_([r[0] for r in rows]))
                ).scalars()
            )
            new = [
                {"name": n, "content_type": t, "data": d, "created_at": now()}
                for n, t, d in rows
                if n not in have
            ]
            if new:
                conn.execute(media.insert(), new)

    def media(self, name: str) -> tuple[str, bytes] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(media.c.content_type, media.c.data).where(media.c.name == name)
            ).first()
        return (row.content_type, bytes(row.data)) if row is not None else None

    def media_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(media.c.name).order_by(media.c.name)).scalars())


def _published(r: sa.Row[tuple[object, ...]]) -> Published:
    sent = r.created_at
    assert isinstance(sent, dt.datetime)
    return Published(
        slug=str(r.slug),
        subject=str(r.subject),
        preheader=str(r.preheader),
        date=str(r.issue_date or "") or sent.date().isoformat(),
        sent_at=sent,
        web_html=str(r.web_html),
    )

"""What the web shows of pinned issues: the archive list, each web version, and media.

Read from the ledger's pins, never from issue files: the archive shows what was sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from mailer.store.schema import issue_editions, issue_versions, issues, media
from mailer.store.subscribers import now


@dataclass(frozen=True)
class Published:
    slug: str
    subject: str
    preheader: str
    date: str  # the issue's own date, or the day it was first sent
    sent_at: dt.datetime
    web_html: str
    language: str = ""  # this page's language ("" the list's)
    editions: tuple[str, ...] = ()  # the other editions' tags: /archive/SLUG/TAG/


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
                v.c.language,
                issues.c.id,
                issues.c.version,
            )
            .join(v, (v.c.issue_id == issues.c.id) & (v.c.version == issues.c.version))
            # The welcome mail is pinned with archive false: only issues are listed.
            .where(v.c.archive == sa.true(), v.c.web_html.is_not(None), v.c.web_html != "")
        )

    def issues(self, limit: int = 1000) -> list[Published]:
        """Archived issues, newest first (each once, in its main edition)."""
        q = self._query().order_by(issues.c.created_at.desc(), issues.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            tags = _editions(conn, [r.id for r in rows])
        return [_published(r, tags.get(r.id, ())) for r in rows]

    def issue(self, slug: str, language: str = "") -> Published | None:
        """An issue's page: its main edition, or the one in `language`."""
        with self.engine.connect() as conn:
            row = conn.execute(self._query().where(issues.c.slug == slug)).first()
            if row is None:
                return None
            tags = _editions(conn, [row.id]).get(row.id, ())
            main = _published(row, tags)
            if not language:
                return main
            e = conn.execute(
                sa.select(issue_editions).where(
                    issue_editions.c.issue_id == row.id,
                    issue_editions.c.version == row.version,
                    issue_editions.c.language == language,
                )
            ).first()
        if e is None or not e.web_html:
            return None
        return dataclasses.replace(
            main,
            subject=e.subject,
            preheader=e.preheader,
            web_html=e.web_html,
            language=e.language,
        )

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


def _editions(conn: sa.Connection, ids: list[int]) -> dict[int, tuple[str, ...]]:
    """The other editions' tags of these issues' current versions."""
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(issue_editions.c.issue_id, issue_editions.c.language)
        .join(
            issues,
            (issues.c.id == issue_editions.c.issue_id)
            & (issues.c.version == issue_editions.c.version),
        )
        .where(issue_editions.c.issue_id.in_(ids), issue_editions.c.web_html.is_not(None))
        .order_by(issue_editions.c.language)
    )
    found: dict[int, list[str]] = {}
    for issue_id, tag in rows:
        found.setdefault(issue_id, []).append(tag)
    return {k: tuple(v) for k, v in found.items()}


def _published(r: sa.Row[tuple[object, ...]], editions: tuple[str, ...] = ()) -> Published:
    sent = r.created_at
    assert isinstance(sent, dt.datetime)
    return Published(
        slug=str(r.slug),
        subject=str(r.subject),
        preheader=str(r.preheader),
        date=str(r.issue_date or "") or sent.date().isoformat(),
        sent_at=sent,
        web_html=str(r.web_html),
        language=str(r.language or ""),
        editions=editions,
    )

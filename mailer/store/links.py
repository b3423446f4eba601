"""Counted links (count_clicks): each article link of a pinned issue by number, and how many
times its redirect was followed. Per link, never per reader."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from mailer.store.schema import issue_links, issues


def number_links(conn: sa.Connection, issue_id: int, urls: Sequence[str]) -> None:
    """Number an issue's new links after its others (in the caller's transaction, with
    the pin): a link keeps its number across versions."""
    have = set(
        conn.execute(
            sa.select(issue_links.c.url).where(issue_links.c.issue_id == issue_id)
        ).scalars()
    )
    top = (
        conn.execute(
            sa.select(sa.func.max(issue_links.c.n)).where(issue_links.c.issue_id == issue_id)
        ).scalar()
        or 0
    )
    new = [u for u in dict.fromkeys(urls) if u not in have]
    if new:
        conn.execute(
            issue_links.insert(),
            [{"issue_id": issue_id, "n": top + i, "url": u} for i, u in enumerate(new, 1)],
        )


class Links:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def numbers(self, issue_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(issue_links.c.url, issue_links.c.n).where(
                    issue_links.c.issue_id == issue_id
                )
            )
            return {str(u): int(n) for u, n in rows}

    def follow(self, ref: int, n: int) -> str | None:
        """The link numbered n of the issue whose link number is `ref`, counted once; None
        when there is no such link (a tampered or stale number is a 404, never a redirect
        to anything but a link the issue had)."""
        with self.engine.begin() as conn:
            issue_id = conn.execute(sa.select(issues.c.id).where(issues.c.ref == ref)).scalar()
            if issue_id is None:
                return None
            where = (issue_links.c.issue_id == issue_id, issue_links.c.n == n)
            url = conn.execute(sa.select(issue_links.c.url).where(*where)).scalar()
            if url is None:
                return None
            conn.execute(issue_links.update().where(*where).values(clicks=issue_links.c.clicks + 1))
        return str(url)

    def counts(self, issue_id: int) -> list[tuple[str, int]]:
        """(link, clicks), most first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(issue_links.c.url, issue_links.c.clicks)
                .where(issue_links.c.issue_id == issue_id, issue_links.c.clicks > 0)
                .order_by(issue_links.c.clicks.desc(), issue_links.c.n)
            )
            return [(str(u), int(c)) for u, c in rows]

"""Pinned issues: what was sent, so a resume sends the same thing without the Markdown file
or the templates. An issue (slug, link ref, Message-ID nonce) and its versions; the first
pin also snapshots the list into the ledger (store/ledger.py), in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mailer.errors import InputError
from mailer.models import RecipientState, Snapshot
from mailer.store.links import number_links
from mailer.store.schema import issue_editions, issue_versions, issues, recipients
from mailer.store.snapshot import snapshot_list
from mailer.store.subscribers import Selection, now
from mailer.tokens import issue_ref


@dataclass(frozen=True)
class IssueRecord:
    """An issue as the ledger knows it."""

    id: int
    slug: str
    subject: str
    created_at: dt.datetime
    ref: int | None
    source: str | None
    version: int | None  # the pinned version the rest of its list gets; None: never sent
    message_nonce: str | None
    audience: str | None  # the expression its list was chosen by; None: everyone

    @classmethod
    def from_row(cls, row: sa.Row[tuple[object, ...]]) -> IssueRecord:
        m = row._mapping
        return cls(**{k: m[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class VersionSent:
    """One pinned version of an issue, and how many recipients were sent it."""

    version: int
    content_hash: str  # its first 12 characters
    source: str | None
    pinned_at: dt.datetime
    sent: int


@dataclass(frozen=True)
class Pinned:
    """An issue in the ledger and the version the rest of its list gets."""

    issue_id: int
    slug: str
    ref: int
    version: int
    message_nonce: str
    snapshot: Snapshot
    created: bool = False  # pinned by this call: the first send
    audience: str | None = None  # the expression its list was chosen by; None: everyone


class Pins:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def find(self, slug: str) -> IssueRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(issues).where(issues.c.slug == slug)).first()
        return IssueRecord.from_row(row) if row else None

    def pinned_issues(self) -> list[IssueRecord]:
        """Every issue with a pinned version, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(issues).where(issues.c.version.is_not(None)).order_by(issues.c.id)
            ).all()
        return [IssueRecord.from_row(r) for r in rows]

    def load(self, slug: str, version: int | None = None) -> Pinned | None:
        """The pinned issue by slug (its current version, or the one asked for)."""
        with self.engine.connect() as conn:
            return self._load(conn, slug, version)

    def _load(self, conn: sa.Connection, slug: str, version: int | None = None) -> Pinned | None:
        issue = conn.execute(sa.select(issues).where(issues.c.slug == slug)).first()
        if issue is None or issue.version is None:
            return None
        v = conn.execute(
            sa.select(issue_versions).where(
                issue_versions.c.issue_id == issue.id,
                issue_versions.c.version == (version or issue.version),
            )
        ).first()
        if v is None:
            return None
        editions = tuple(
            _snapshot(e, v)
            for e in conn.execute(
                sa.select(issue_editions)
                .where(
                    issue_editions.c.issue_id == issue.id,
                    issue_editions.c.version == v.version,
                )
                .order_by(issue_editions.c.language)
            )
        )
        snapshot = _snapshot(v, v, editions)
        return Pinned(
            issue.id,
            slug,
            issue.ref,
            v.version,
            issue.message_nonce,
            snapshot,
            audience=issue.audience,
        )

    def versions(self, issue_id: int) -> list[VersionSent]:
        """Each pinned version with how many recipients were sent it."""
        with self.engine.connect() as conn:
            sent: dict[int | None, int] = dict(
                conn.execute(
                    sa.select(recipients.c.version, sa.func.count())
                    .where(
                        recipients.c.issue_id == issue_id,
                        recipients.c.state == RecipientState.SENT,
                    )
                    .group_by(recipients.c.version)
                ).all()
            )
            rows = conn.execute(
                sa.select(
                    issue_versions.c.version,
                    issue_versions.c.content_hash,
                    issue_versions.c.source,
                    issue_versions.c.created_at,
                )
                .where(issue_versions.c.issue_id == issue_id)
                .order_by(issue_versions.c.version)
            ).all()
        return [
            VersionSent(
                r.version, r.content_hash[:12], r.source, r.created_at, int(sent.get(r.version, 0))
            )
            for r in rows
        ]

    def pin(
        self,
        slug: str,
        snapshot: Snapshot,
        batch_size: int,
        enroll_all: bool = True,
        audience: Selection | None = None,
    ) -> Pinned:
        """The issue as the ledger holds it, pinning `snapshot` on the first call.

        The first call also snapshots its audience (the active list, or those `audience`
        picks) into recipients, in INSERT ... SELECTs inside the database: a million rows
        never pass through Python. Two first sends at once: one pins, the other finds its pin.
        """
        try:
            with self.engine.begin() as conn:
                found = self._load(conn, slug)
                if found is not None:
                    self.check_source(found, snapshot)
                    return found
                return self._create(conn, slug, snapshot, batch_size, enroll_all, audience)
        except sa.exc.IntegrityError:
            with self.engine.connect() as conn:
                found = self._load(conn, slug)
            if found is None:
                raise
            self.check_source(found, snapshot)
            return found

    @staticmethod
    def check_source(found: Pinned, snapshot: Snapshot) -> None:
        """One slug, one issue file: another file that maps to it is refused, not skipped."""
        first = found.snapshot.source
        if first and snapshot.source and first != snapshot.source:
            raise InputError(
                f"{snapshot.source}: its slug {found.slug!r} belongs to {first}, already in "
                f"the ledger; give this issue its own 'slug:' in front matter"
            )

    def _create(
        self,
        conn: sa.Connection,
        slug: str,
        snapshot: Snapshot,
        batch_size: int,
        enroll_all: bool = True,
        audience: Selection | None = None,
    ) -> Pinned:
        at = now()
        pinned_audience = None if audience is None or audience.audience.everyone else audience
        ref = issue_ref(slug)
        clash = conn.execute(sa.select(issues.c.slug).where(issues.c.ref == ref)).scalar()
        # The same slug here means another sender pinned it since this transaction's first
        # read (PostgreSQL reads each statement afresh): the INSERT below then fails on the
        # unique slug, and pin() reads that pin back.
        if clash is not None and clash != slug:
            raise InputError(
                f"issue slugs {clash!r} and {slug!r} share a link number; set another 'slug:'"
            )
        nonce = secrets.token_hex(8)
        issue_id = conn.execute(
            issues.insert().values(
                slug=slug,
                subject=snapshot.subject[:500],
                created_at=at,
                ref=ref,
                source=snapshot.source[:1000],
                version=1,
                message_nonce=nonce,
                audience=str(pinned_audience.audience) if pinned_audience else None,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        self._add_version(conn, issue_id, 1, snapshot)
        text = str(pinned_audience.audience) if pinned_audience else None
        pinned = Pinned(int(issue_id), slug, ref, 1, nonce, snapshot, True, text)
        if enroll_all:  # else a welcome mail: people are enrolled one by one (enroll)
            snapshot_list(
                conn,
                int(issue_id),
                batch_size,
                at,
                pinned_audience,
                [e.language for e in snapshot.editions],
            )
        return pinned

    def repin(self, pinned: Pinned, snapshot: Snapshot) -> Pinned:
        """A deliberate --update-content: the rest of the list gets a new version."""
        with self.engine.begin() as conn:
            version = (
                conn.execute(
                    sa.select(sa.func.max(issue_versions.c.version)).where(
                        issue_versions.c.issue_id == pinned.issue_id
                    )
                ).scalar()
                or 0
            ) + 1
            self._add_version(conn, pinned.issue_id, version, snapshot)
            conn.execute(
                issues.update()
                .where(issues.c.id == pinned.issue_id)
                .values(version=version, subject=snapshot.subject[:500])
            )
        return Pinned(
            pinned.issue_id,
            pinned.slug,
            pinned.ref,
            version,
            pinned.message_nonce,
            snapshot,
            audience=pinned.audience,
        )

    def sent_html(self) -> Iterator[str]:
        """The HTML of every version and edition ever pinned, one at a time (what `draft`
        reads the links already sent from)."""
        with self.engine.connect() as conn:
            for table in (issue_versions, issue_editions):
                rows = conn.execute(sa.select(table.c.html), execution_options={"yield_per": 50})
                for (html,) in rows:
                    yield str(html)

    def last_sent_at(self, exclude: str = "") -> dt.datetime | None:
        """When the newest issue (but `exclude`, the welcome) was first sent."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(sa.func.max(issues.c.created_at)).where(
                    issues.c.slug != exclude, issues.c.version.is_not(None)
                )
            ).scalar()
        return found if isinstance(found, dt.datetime) else None

    def latest(self, exclude: str = "") -> Pinned | None:
        """The most recently pinned issue but `exclude` (the welcome mail's slug) that
        reached someone: an issue whose send delivered to nobody (all ambiguous, stopped
        at once) is not one to greet a new reader with."""
        delivered = (
            sa.select(recipients.c.issue_id)
            .where(recipients.c.issue_id == issues.c.id, recipients.c.state == RecipientState.SENT)
            .exists()
        )
        with self.engine.connect() as conn:
            slugs = conn.execute(
                sa.select(issues.c.slug)
                .where(issues.c.slug != exclude, issues.c.version.is_not(None), delivered)
                .order_by(issues.c.created_at.desc(), issues.c.id.desc())
                .limit(1)
            ).scalars()
            slug = next(iter(slugs), None)
            return self._load(conn, slug) if slug is not None else None

    @staticmethod
    def _add_version(conn: sa.Connection, issue_id: int, version: int, s: Snapshot) -> None:
        conn.execute(
            issue_versions.insert().values(
                issue_id=issue_id,
                version=version,
                content_hash=s.content_hash,
                subject=s.subject,
                preheader=s.preheader,
                html=s.html,
                text=s.text,
                headers=s.headers,
                source=s.source[:1000],
                created_at=now(),
                web_html=s.web_html or None,
                archive=s.archive,
                issue_date=s.date[:40],
                language=s.language,
            )
        )
        # Article links numbered with the pin (kept numbers across versions), for counting.
        number_links(conn, issue_id, [*s.links, *(u for e in s.editions for u in e.links)])
        if s.editions:
            conn.execute(
                issue_editions.insert(),
                [
                    {
                        "issue_id": issue_id,
                        "version": version,
                        "language": e.language,
                        "subject": e.subject,
                        "preheader": e.preheader,
                        "html": e.html,
                        "text": e.text,
                        "source": e.source[:1000],
                        "web_html": e.web_html or None,
                    }
                    for e in s.editions
                ],
            )


def _snapshot(words: Any, version: Any, editions: tuple[Snapshot, ...] = ()) -> Snapshot:
    """A pinned version as a Snapshot: its words (the main issue's, or an edition's row)
    with what every edition shares from the version (headers, archive, date)."""
    return Snapshot(
        words.subject,
        words.preheader,
        words.html,
        words.text,
        dict(version.headers),
        words.source or "",
        web_html=words.web_html or "",
        archive=bool(version.archive),
        date=version.issue_date or "",
        language=words.language or "",
        editions=editions,
    )

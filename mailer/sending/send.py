"""`mailer send` and `mailer status` as core calls: plan (reads only), confirm (the CLI's
job), run (writes: retry flags, the pinned snapshot, the send itself)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mailer import addresses, languages, selection
from mailer.audience import EVERYONE, Audience, parse
from mailer.compose.dkim import signer_from
from mailer.compose.mailing import IssueMailing, snapshot_of
from mailer.config import Settings, check_base_url
from mailer.content import checks
from mailer.content.issue import DRAFT_MARK, SLUG, load_issue
from mailer.content.issue_files import (
    edition_of,
    editions_beside,
    looks_like_issue_file,
    read_issue,
    refuse_welcome,
    welcome_slug,
)
from mailer.content.media import Media
from mailer.content.placeholders import TOKENS
from mailer.content.render import RenderedIssue, Renderer
from mailer.errors import InputError, SizeError
from mailer.models import Issue, RecipientState, Snapshot, SubscriberStatus
from mailer.providers import make_provider
from mailer.sending.adhoc import AdhocResult, send_adhoc
from mailer.sending.engine import Progress, Provider, RunResult, Sender
from mailer.store import open_store
from mailer.store.ledger import LedgerCounts
from mailer.store.pins import Pinned
from mailer.store.subscribers import Reach, Selection, now

REQUIRED = ("from_email", "base_url", "secret_key", "postal_address")


@dataclass
class Plan:
    """What a send would do. Making one changes nothing."""

    settings: Settings
    slug: str
    subject: str
    snapshot: Snapshot | None  # rendered from the file; None when resuming by slug alone
    pinned: Pinned | None  # what the ledger holds, if the issue was sent before
    recipients: int  # how many this run would send to
    counts: LedgerCounts  # the ledger so far (all zero on a first send)
    retry: RecipientState | None = None
    update_content: bool = False
    warnings: list[str] = field(default_factory=list)
    media: tuple[Media, ...] = ()  # local images the snapshot links to, stored when it runs
    audience: Audience = EVERYONE  # who it goes to (pinned at the first send)
    reach: Reach | None = None  # how many the audience holds now, and why (a first send)

    @property
    def finished(self) -> bool:
        return self.pinned is not None and self.recipients == 0

    @property
    def changed(self) -> bool:
        """The file renders differently from the version the ledger pinned."""
        return (
            self.pinned is not None
            and self.snapshot is not None
            and self.snapshot.content_hash != self.pinned.snapshot.content_hash
        )


def prepare(
    settings: Settings, path: Path, web: bool = True, issue: Issue | None = None
) -> RenderedIssue:
    """The issue rendered and checked as it would be sent (`issue`: already read from
    `path`, possibly adjusted by the caller)."""
    settings.require(*REQUIRED)
    issue = issue or load_issue(path)
    # An issue in another language than the list's (front matter, or an edition) gets
    # its words, fonts and direction in that language.
    rendered = Renderer(settings.in_language(issue.language)).render(issue, web=web)
    problems = checks.footer_problems(
        rendered.html.template,
        rendered.text.template,
        settings.postal_address,
        TOKENS["unsubscribe_url"],
    )
    if problems:
        raise InputError(
            f"{path}: {problems[0]}; restore it in templates/ (see 'mailer init') before sending"
        )
    size = len(rendered.html.template.encode("utf-8"))
    too_large = checks.too_large(path, size)
    if too_large:
        raise SizeError(too_large)
    return rendered


def prepare_editions(
    settings: Settings, path: Path, main: RenderedIssue, web: bool = True
) -> list[tuple[str, RenderedIssue]]:
    """The language editions beside `path` (X.en.md beside X.md), rendered and checked
    each in its own language: one slug, one date, one audience, the main file's."""
    main_language = main.issue.language or settings.language
    found = []
    for tag, file in editions_beside(path):
        if languages.within(main_language, tag) or languages.within(tag, main_language):
            raise InputError(
                f"{file}: names the {tag} edition, but {path.name} is in {main_language} "
                f"already; rename it, or set 'language:' in {path.name}'s front matter"
            )
        if not any(languages.within(o, tag) for o in settings.offered_languages):
            offered = ", ".join(f'"{t}"' for t in (*settings.offered_languages, tag))
            raise InputError(
                f"{file}: no reader can choose {tag}; offer it in mailer.toml: "
                f"languages = [{offered}]"
            )
        edition = read_issue(file)
        issue = dataclasses.replace(
            edition, archive=main.issue.archive, date=edition.date or main.issue.date
        )
        found.append((tag, prepare(settings, file, web, issue)))
    return found


def snapshot_with_editions(
    settings: Settings, main: RenderedIssue, editions: list[tuple[str, RenderedIssue]]
) -> Snapshot:
    base = snapshot_of(settings, main)
    return dataclasses.replace(
        base,
        language=main.issue.language or settings.language,
        editions=tuple(
            dataclasses.replace(
                snapshot_of(settings.in_language(tag), r), headers=base.headers, language=tag
            )
            for tag, r in editions
        ),
    )


def plan(
    settings: Settings,
    target: str | Path,
    retry: RecipientState | None = None,
    update_content: bool = False,
    to: str | None = None,
) -> Plan:
    """Read the issue (its file, or the ledger's pin for a slug) and the ledger; write nothing.
    `to`: an audience expression, over the issue's own `audience:`."""
    settings.require(*REQUIRED)
    signer_from(settings)  # a missing or malformed DKIM key stops here, before anything
    snapshot: Snapshot | None = None
    slug, warnings = str(target), list[str]()
    found_media: tuple[Media, ...] = ()
    local = check_base_url(settings)
    asked, where = to, "--to"
    if looks_like_issue_file(target):
        snapshot, slug, warnings, found_media, own = _from_file(settings, Path(target))
        if asked is None and own is not None:
            asked, where = own, f"{target}: audience"
    elif not SLUG.fullmatch(slug):
        raise InputError(f"{target}: no such issue file or slug; check the path")
    requested = selection.audience(settings, asked, where) if asked is not None else None
    if local:
        warnings.append(local)
    with open_store(settings) as store:
        pinned = store.pins.load(slug)
        if pinned is None:
            if snapshot is None:
                raise InputError(
                    f"{target}: no such issue file, and no issue with that slug was sent"
                )
            audience = requested or EVERYONE
            tags = [e.language for e in snapshot.editions]
            reach = store.subscribers.reach(
                Selection(audience, settings.language),
                now(),
                tags,
                store.pins.last_sent_at(welcome_slug(settings)),
            )
            if reach.total == 0:
                raise InputError(_nobody(store.subscribers.count(SubscriberStatus.ACTIVE), reach))
            return Plan(
                settings,
                slug,
                snapshot.subject,
                snapshot,
                None,
                reach.total,
                LedgerCounts(),
                warnings=warnings,
                media=found_media,
                audience=audience,
                reach=reach,
            )
        if snapshot is not None:
            store.pins.check_source(pinned, snapshot)
        counts = store.ledger.counts(pinned.issue_id)
    audience = parse(pinned.audience) if pinned.audience else EVERYONE
    if requested is not None and str(requested) != str(audience):
        raise InputError(
            f"{slug!r} went to the audience {str(audience)!r} at its first send, and a resume "
            f"keeps it; {where} asks for {str(requested)!r} (drop it, or send a new issue)"
        )
    pending = counts.unfinished + (counts.of(retry) if retry else 0)
    p = Plan(settings, slug, pinned.snapshot.subject, snapshot, pinned, pending, counts, retry)
    p.update_content, p.warnings, p.media = update_content, warnings, found_media
    p.audience = audience
    if update_content and snapshot is None:
        raise InputError("--update-content needs the issue file, not its slug")
    return p


def _from_file(
    settings: Settings, target: Path
) -> tuple[Snapshot, str, list[str], tuple[Media, ...], str | None]:
    """An issue file made ready to pin: its snapshot (with editions), slug, warnings, media
    and its own `audience:`; or one line saying why it cannot be sent."""
    refuse_welcome(settings, target)
    main = edition_of(target)
    if main is not None:
        raise InputError(
            f"{target}: is the {main[1]} edition of {main[0].name}; send {main[0]} and "
            "each reader gets the edition of their language"
        )
    issue = load_issue(target)
    if not issue.date:  # the masthead shows the day it went out, as the archive does
        issue = dataclasses.replace(issue, date=_send_day(settings, issue.slug))
    rendered = prepare(settings, target, issue=issue)
    if rendered.issue.subject.startswith(DRAFT_MARK):  # a test copy of a draft is fine
        raise InputError(
            f"{target}: the subject is still the draft's placeholder "
            f"({rendered.issue.subject[:60]!r}); write the issue's own subject"
        )
    editions = prepare_editions(settings, target, rendered)
    snapshot = snapshot_with_editions(settings, rendered, editions)
    warnings = [*rendered.warnings, *(w for _, r in editions for w in r.warnings)]
    media = (*rendered.media, *(m for _, r in editions for m in r.media))
    return snapshot, rendered.issue.slug, warnings, media, rendered.issue.audience


def _send_day(settings: Settings, slug: str) -> str:
    """An undated issue's date: the day of its first send, kept by its pin so a resume on
    another day renders the same message (and matches what was pinned)."""
    with open_store(settings) as store:
        pinned = store.pins.load(slug)
    if pinned is not None:
        return pinned.snapshot.date
    zone = None
    if settings.timezone:
        import zoneinfo

        zone = zoneinfo.ZoneInfo(settings.timezone)
    return dt.datetime.now(zone).date().isoformat()


def _nobody(active: int, reach: Reach) -> str:
    if active == 0:
        return "no active subscribers; add some with 'mailer subscribers import FILE'"
    if reach.paused:
        return f"the audience's {reach.paused} reader(s) are all paused; nothing to send now"
    return (
        f"the audience picks none of the {active} active subscribers; "
        "check it with 'mailer subscribers count --status active --where EXPR'"
    )


def run(p: Plan, on_progress: Progress | None = None) -> RunResult:
    """Apply the plan: pin (first send), switch versions or retry if asked, then send."""
    s = p.settings
    provider = make_provider(s)
    with open_store(s) as store:
        ledger = store.ledger
        # Images first: once the issue is pinned, a reader may open it at any moment.
        store.archive.put_media((m.name, m.content_type, m.data) for m in p.media)
        audience = Selection(p.audience, s.language)
        pinned = (
            store.pins.pin(
                p.slug, p.snapshot, claim_size(s, provider, p.recipients), audience=audience
            )
            if p.snapshot
            else p.pinned
        )
        assert pinned is not None  # plan() refused a slug that was never pinned
        if p.update_content and p.snapshot is not None and p.changed:
            pinned = store.pins.repin(pinned, p.snapshot)
        if p.retry is not None:
            ledger.retry(pinned.issue_id, p.retry)
        links = store.links.numbers(pinned.issue_id) if s.count_clicks else None
        mailing, editions = mailing_for(s, pinned, "", links), editions_for(s, pinned, links)
        return Sender(
            ledger.for_audience(audience),
            provider,
            mailing,
            s,
            pinned.version,
            on_progress,
            editions=editions,
        ).run()


def claim_size(settings: Settings, provider: Provider, recipients: int) -> int:
    """Recipients per ledger batch: what one worker claims at a time. SendGrid takes a
    whole batch in one request. A provider that sends message by message (SMTP, the
    outbox) gets batches small enough that every connection has work (1,500 recipients
    in batches of 1,000 would keep two of four connections busy), about four per worker,
    and no smaller than a group: each batch costs the ledger a claim and a settle."""
    if provider.batched:
        return settings.batch_size
    spread = recipients // (settings.concurrency * 4)
    return max(provider.group_size, min(settings.batch_size, spread))


def mailing_for(
    settings: Settings,
    pinned: Pinned,
    language: str = "",
    links: Mapping[str, int] | None = None,
) -> IssueMailing:
    """The pinned issue's mailing, in one of its editions ("": the main one); `links`: its
    link numbers, when count_clicks counts them."""
    return IssueMailing(
        settings,
        pinned.snapshot.edition(language),
        slug=pinned.slug,
        issue_id=pinned.issue_id,
        ref=pinned.ref,
        message_nonce=pinned.message_nonce,
        version=pinned.version,
        links=links if settings.count_clicks else None,
    )


def editions_for(
    settings: Settings, pinned: Pinned, links: Mapping[str, int] | None = None
) -> dict[str, IssueMailing]:
    return {
        e.language: mailing_for(settings, pinned, e.language, links)
        for e in pinned.snapshot.editions
    }


def send_test(settings: Settings, path: Path, emails: list[str]) -> tuple[AdhocResult, list[str]]:
    """[TEST] copies to the given addresses only, outside the ledger; and warnings."""
    settings.require(*REQUIRED)
    local = check_base_url(settings, test=True)
    rendered = prepare(settings, path, web=False)
    if rendered.media:  # a test copy's images must load too: served from the database
        with open_store(settings) as store:
            store.archive.put_media((m.name, m.content_type, m.data) for m in rendered.media)
    issue = dataclasses.replace(rendered.issue, subject=f"[TEST] {rendered.issue.subject}")
    people = []
    for raw in emails:
        try:
            people.append((addresses.normalize(raw), ""))
        except addresses.InvalidAddress as e:
            raise InputError(f"--test {raw!r}: {e}") from None
    result = send_adhoc(settings, dataclasses.replace(rendered, issue=issue), people)
    return result, [*rendered.warnings, *([local] if local else [])]

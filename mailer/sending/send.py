"""`mailer send` and `mailer status` as core calls: plan (reads only), confirm (the CLI's
job), run (writes: retry flags, the pinned snapshot, the send itself)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from mailer import addresses
from mailer.compose.dkim import signer_from
from mailer.compose.mailing import IssueMailing, snapshot_of
from mailer.config import Settings, check_base_url
from mailer.content import checks
from mailer.content.issue import SLUG, load_issue
from mailer.content.issue_files import looks_like_issue_file, refuse_welcome
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
    rendered = Renderer(settings).render(issue or load_issue(path), web=web)
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


def plan(
    settings: Settings,
    target: str | Path,
    retry: RecipientState | None = None,
    update_content: bool = False,
) -> Plan:
    """Read the issue (its file, or the ledger's pin for a slug) and the ledger; write nothing."""
    settings.require(*REQUIRED)
    signer_from(settings)  # a missing or malformed DKIM key stops here, before anything
    snapshot, slug, warnings = None, str(target), []
    found_media: tuple[Media, ...] = ()
    local = check_base_url(settings)
    if looks_like_issue_file(target):
        refuse_welcome(settings, Path(target))
        rendered = prepare(settings, Path(target))
        snapshot, slug = snapshot_of(settings, rendered), rendered.issue.slug
        warnings, found_media = list(rendered.warnings), rendered.media
    elif not SLUG.fullmatch(slug):
        raise InputError(f"{target}: no such issue file or slug; check the path")
    if local:
        warnings.append(local)
    with open_store(settings) as store:
        pinned = store.pins.load(slug)
        if pinned is None:
            if snapshot is None:
                raise InputError(
                    f"{target}: no such issue file, and no issue with that slug was sent"
                )
            n = store.subscribers.count(SubscriberStatus.ACTIVE)
            if n == 0:
                raise InputError(
                    "no active subscribers; add some with 'mailer subscribers import FILE'"
                )
            return Plan(
                settings,
                slug,
                snapshot.subject,
                snapshot,
                None,
                n,
                LedgerCounts(),
                warnings=warnings,
                media=found_media,
            )
        if snapshot is not None:
            store.pins.check_source(pinned, snapshot)
        counts = store.ledger.counts(pinned.issue_id)
    pending = counts.unfinished + (counts.of(retry) if retry else 0)
    p = Plan(settings, slug, pinned.snapshot.subject, snapshot, pinned, pending, counts, retry)
    p.update_content, p.warnings, p.media = update_content, warnings, found_media
    if update_content and snapshot is None:
        raise InputError("--update-content needs the issue file, not its slug")
    return p


def run(p: Plan, on_progress: Progress | None = None) -> RunResult:
    """Apply the plan: pin (first send), switch versions or retry if asked, then send."""
    s = p.settings
    provider = make_provider(s)
    with open_store(s) as store:
        ledger = store.ledger
        # Images first: once the issue is pinned, a reader may open it at any moment.
        store.archive.put_media((m.name, m.content_type, m.data) for m in p.media)
        pinned = (
            store.pins.pin(p.slug, p.snapshot, claim_size(s, provider, p.recipients))
            if p.snapshot
            else p.pinned
        )
        assert pinned is not None  # plan() refused a slug that was never pinned
        if p.update_content and p.snapshot is not None and p.changed:
            pinned = store.pins.repin(pinned, p.snapshot)
        if p.retry is not None:
            ledger.retry(pinned.issue_id, p.retry)
        mailing = mailing_for(s, pinned)
        return Sender(ledger, provider, mailing, s, pinned.version, on_progress).run()


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


def mailing_for(settings: Settings, pinned: Pinned) -> IssueMailing:
    return IssueMailing(
        settings,
        pinned.snapshot,
        slug=pinned.slug,
        issue_id=pinned.issue_id,
        ref=pinned.ref,
        message_nonce=pinned.message_nonce,
        version=pinned.version,
    )


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

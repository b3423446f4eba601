"""`mailer send` and `mailer status` as core calls: plan, confirm (the CLI's job), run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailer.config import Settings
from mailer.content import checks
from mailer.content.issue import load_issue
from mailer.content.render import RenderedIssue, Renderer
from mailer.delivery.compose import Personalizer
from mailer.delivery.engine import Progress, RunResult, Sender
from mailer.errors import InputError, SizeError
from mailer.models import Recipient, RecipientState, SubscriberStatus
from mailer.providers import Job, make_provider
from mailer.store import Store, open_store

REQUIRED = ("from_email", "base_url", "secret_key", "postal_address")


@dataclass
class Plan:
    settings: Settings
    store: Store
    rendered: RenderedIssue
    issue_id: int | None  # None: never sent before
    recipients: int  # how many this run would send to
    counts: dict[str, int]  # the ledger so far (empty on a first send)

    @property
    def slug(self) -> str:
        return self.rendered.issue.slug

    @property
    def finished(self) -> bool:
        return self.issue_id is not None and self.recipients == 0


def prepare(settings: Settings, path: Path) -> RenderedIssue:
    settings.require(*REQUIRED)
    rendered = Renderer(settings).render(load_issue(path))
    size = len(rendered.html.template.encode("utf-8"))
    if size > checks.GMAIL_CLIP_BYTES:
        raise SizeError(
            f"{path}: HTML is {size / 1024:.1f} KB, over Gmail's 102 KB clipping limit; "
            "shorten the issue before sending"
        )
    return rendered


def plan(
    settings: Settings, path: Path, retry: RecipientState | None = None, dry_run: bool = False
) -> Plan:
    rendered = prepare(settings, path)
    store = open_store(settings)
    try:
        return _plan(settings, store, rendered, retry, dry_run)
    except BaseException:
        store.close()
        raise


def _plan(
    settings: Settings,
    store: Store,
    rendered: RenderedIssue,
    retry: RecipientState | None,
    dry_run: bool,
) -> Plan:
    found = store.ledger.find(rendered.issue.slug)
    if found is None:
        n = store.subscribers.count(SubscriberStatus.ACTIVE)
        if n == 0:
            raise InputError(
                "no active subscribers; add some with 'mailer subscribers import FILE'"
            )
        return Plan(settings, store, rendered, None, n, {})
    issue_id = int(found["id"])
    if retry is not None and not dry_run:
        store.ledger.retry(issue_id, retry)
    counts = store.ledger.counts(issue_id)
    pending = counts["pending"] + counts["requesting"]
    if retry is not None and dry_run:
        pending += counts[retry.value]
    return Plan(settings, store, rendered, issue_id, pending, counts)


def run(p: Plan, on_progress: Progress | None = None) -> RunResult:
    ledger = p.store.ledger
    issue_id, _ = ledger.start(p.slug, p.rendered.issue.subject, p.settings.batch_size)
    job = Job(issue_id, p.slug, Personalizer(p.settings, p.rendered, issue_id))
    return Sender(ledger, make_provider(p.settings), job, p.settings, on_progress).run()


def send_test(settings: Settings, path: Path, emails: list[str]) -> RunResult:
    """[TEST] copies to the given addresses only, outside the ledger."""
    from mailer import addresses

    rendered = prepare(settings, path)
    issue = dataclasses.replace(rendered.issue, subject=f"[TEST] {rendered.issue.subject}")
    rendered = dataclasses.replace(rendered, issue=issue)
    group = []
    for i, raw in enumerate(emails):
        try:
            group.append(Recipient(0, addresses.normalize(raw), ""))
        except addresses.InvalidAddress as e:
            raise InputError(f"--test {raw!r}: {e}") from None
        del i
    job = Job(0, rendered.issue.slug, Personalizer(settings, rendered, 0), adhoc=True)
    session = make_provider(settings).session()
    try:
        outcome = session.send(job, group)
    finally:
        session.close()
    return RunResult(
        sent=len(outcome.sent), failed=len(outcome.failed), ambiguous=len(outcome.ambiguous)
    )


def status(settings: Settings, slug_or_path: str) -> dict[str, Any]:
    with open_store(settings) as store:
        return _status(store, slug_or_path)


def _status(store: Store, slug_or_path: str) -> dict[str, Any]:
    slug = slug_or_path
    if Path(slug_or_path).is_file():
        slug = load_issue(Path(slug_or_path)).slug
    found = store.ledger.find(slug)
    if found is None:
        raise InputError(f"issue {slug!r} has not been sent; nothing to report")
    issue_id = int(found["id"])
    counts = store.ledger.counts(issue_id)
    return {
        "slug": slug,
        "subject": found["subject"],
        "recipients": counts["recipients"],
        "sent": counts["sent"],
        "pending": counts["pending"] + counts["requesting"],
        "failed": counts["failed"],
        "ambiguous": counts["ambiguous"],
        "skipped": counts["skipped"],
        "batches": store.ledger.batch_counts(issue_id),
        "ambiguous_recipients": store.ledger.listed(issue_id, RecipientState.AMBIGUOUS, 100),
        "failed_recipients": store.ledger.listed(issue_id, RecipientState.FAILED, 100),
    }

"""Ad-hoc mails outside the ledger: [TEST] copies of an issue, confirmation emails.

Each has its own identity: a fresh random Message-ID per mail, a distinct key per
address (so outcomes are counted per address), and a file name of its own in the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailer.compose.mailing import IssueMailing, snapshot_of
from mailer.config import Settings
from mailer.content.render import RenderedIssue
from mailer.models import Outcome, Recipient
from mailer.providers import make_provider
from mailer.tokens import issue_ref


@dataclass
class AdhocResult:
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # address -> reason


def send_adhoc(
    settings: Settings, rendered: RenderedIssue, people: list[tuple[str, str]]
) -> AdhocResult:
    """Send `rendered` to each (address, name), one message each."""
    mailing = IssueMailing(
        settings,
        snapshot_of(settings, rendered),
        slug=rendered.issue.slug,
        issue_id=0,
        ref=issue_ref(rendered.issue.slug),
        adhoc=True,
    )
    group = [Recipient(-(i + 1), email, name) for i, (email, name) in enumerate(people)]
    session = make_provider(settings).session()
    try:
        outcome: Outcome = session.send(mailing, group)
    finally:
        session.close()
    result = AdhocResult()
    for r in group:
        if r.key in outcome.sent:
            result.sent.append(r.email)
        else:
            result.failed[r.email] = outcome.failed.get(r.key) or outcome.ambiguous.get(
                r.key, "not sent"
            )
    return result

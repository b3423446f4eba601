"""What one recipient gets: the rendered issue personalized, and `mailer build`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailer.config import Settings
from mailer.content import checks
from mailer.content.issue import load_issue
from mailer.content.render import RenderedIssue, Renderer, write_build
from mailer.delivery.message import MessageFactory
from mailer.models import Recipient
from mailer.tokens import TokenSigner, unsubscribe_signer, unsubscribe_url

# Who `mailer build` and `mailer preview` personalize for when no subscriber is named.
SAMPLE = Recipient(subscriber_id=0, email="reader@example.com", name="Reader")
PREVIEW_SECRET = "preview-only-not-a-real-secret"


class Personalizer:
    """Per-recipient parts of one issue: the signed unsubscribe URL, the HTML and text."""

    def __init__(self, settings: Settings, rendered: RenderedIssue, issue_id: int) -> None:
        self.base_url = settings.base_url or "https://example.invalid"
        self.signer: TokenSigner = unsubscribe_signer(settings.secret_key or PREVIEW_SECRET)
        self.rendered = rendered
        self.issue_id = issue_id
        self.factory = MessageFactory(
            settings,
            rendered.issue.subject,
            rendered.issue.slug,
            rendered.text.template,
            rendered.html.template,
        )

    def unsubscribe_url(self, recipient: Recipient) -> str:
        return unsubscribe_url(self.base_url, self.signer, recipient.subscriber_id, self.issue_id)

    def parts(self, recipient: Recipient) -> tuple[str, str, str]:
        """(html, text, unsubscribe URL)."""
        url = self.unsubscribe_url(recipient)
        html, text = self.rendered.personalize(url, recipient.email, recipient.name)
        return html, text, url

    def message(self, recipient: Recipient, message_id: str | None = None) -> bytes:
        html, text, url = self.parts(recipient)
        return self.factory.build(recipient, url, html, text, message_id=message_id)


@dataclass
class BuildResult:
    subject: str
    files: list[tuple[Path, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str = ""


def personalize_for(
    settings: Settings, rendered: RenderedIssue, as_email: str | None
) -> tuple[str, str, bytes]:
    """(html, text, message) as `as_email` gets it, or as the sample reader would.

    For a subscriber of an issue already in the ledger, the bytes are the very ones the
    send produced: the same issue id goes into their unsubscribe link.
    """
    recipient, issue_id = SAMPLE, 0
    if as_email:
        from mailer.store import open_store

        with open_store(settings) as store:
            recipient = store.subscribers.recipient(as_email)
            found = store.ledger.find(rendered.issue.slug)
            issue_id = int(found["id"]) if found else 0
    p = Personalizer(settings, rendered, issue_id)
    html, text, _ = p.parts(recipient)
    return html, text, p.message(recipient)


def build_issue(
    settings: Settings, path: Path, out_dir: Path, as_email: str | None = None
) -> BuildResult:
    rendered = Renderer(settings).render(load_issue(path))
    html, text, _ = personalize_for(settings, rendered, as_email)
    size = len(html.encode("utf-8"))
    result = BuildResult(subject=rendered.issue.subject, warnings=list(rendered.warnings))
    result.warnings += checks.size_warnings(size)
    if size > checks.GMAIL_CLIP_BYTES:
        result.error = (
            f"{path}: HTML is {size / 1024:.1f} KB, over Gmail's 102 KB clipping limit; "
            "shorten the issue or split it in two"
        )
        return result
    out = out_dir if out_dir.is_absolute() else Path.cwd() / out_dir
    html_path, text_path = write_build(html, text, out, rendered.issue.slug)
    result.files = [(html_path, size), (text_path, len(text.encode("utf-8")))]
    return result

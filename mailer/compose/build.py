"""What one recipient gets of an issue file, as `mailer build` and `mailer preview` show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailer import files
from mailer.compose.mailing import IssueMailing, snapshot_of
from mailer.config import Settings
from mailer.content import checks, markdown, media
from mailer.content.issue_files import edition_path, read_issue
from mailer.content.render import RenderedIssue, Renderer, write_build
from mailer.errors import InputError
from mailer.models import Recipient
from mailer.store import open_store
from mailer.tokens import issue_ref

# Who `mailer build` and `mailer preview` personalize for when no subscriber is named.
SAMPLE = Recipient(key=0, email="reader@example.com", name="Reader")


@dataclass
class BuildResult:
    subject: str
    files: list[tuple[Path, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    local_images: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, w, h, bytes
    remote_images: list[str] = field(default_factory=list)


def personalize_for(
    settings: Settings, rendered: RenderedIssue, as_email: str | None
) -> tuple[str, str, bytes]:
    """(html, text, message) as `as_email` gets it, or as the sample reader would.

    A subscriber's links carry the issue's ref (derived from its slug) and their own
    nonce, so the parts are byte for byte what the send will produce for them, before
    the first send as after it.
    """
    recipient, issue_id, nonce = SAMPLE, 0, None
    slug = rendered.issue.slug
    if as_email:
        with open_store(settings) as store:
            recipient = store.subscribers.recipient(as_email)
            found = store.pins.find(slug)
            if found is not None:
                issue_id, nonce = int(found.id), found.message_nonce
    mailing = IssueMailing(
        settings,
        snapshot_of(settings, rendered),
        slug=slug,
        issue_id=issue_id,
        ref=issue_ref(slug),
        message_nonce=nonce,
    )
    html, text, _ = mailing.parts(recipient)
    return html, text, mailing.message(recipient)


def build_issue(
    settings: Settings,
    path: Path,
    out_dir: Path,
    as_email: str | None = None,
    language: str | None = None,
) -> BuildResult:
    """Compile one issue file, or with `language` its edition in that language (X.en.md),
    in the language it is written in."""
    if language:
        path = edition_path(path, language)
    issue = read_issue(path)
    settings = settings.in_language(issue.language)
    rendered = Renderer(settings).render(issue)
    html, text, _ = personalize_for(settings, rendered, as_email)
    size = len(html.encode("utf-8"))
    result = BuildResult(subject=rendered.issue.subject, warnings=list(rendered.warnings))
    result.warnings += checks.size_warnings(size)
    if checks.too_large(path, size):
        result.error = checks.too_large(path, size)
        return result
    out = out_dir if out_dir.is_absolute() else Path.cwd() / out_dir
    name = rendered.issue.slug + (f".{issue.edition}" if issue.edition else "")
    html_path, text_path = write_build(html, text, out, name)
    result.files = [(html_path, size), (text_path, len(text.encode("utf-8")))]
    for m in rendered.media:  # beside the HTML, for a look or an upload; serve has them too
        write_media(out / "media", m.name, m.data)
        result.local_images.append((m.name, m.width, m.height, len(m.data)))
    tokens = markdown.parse(rendered.issue.body)
    result.remote_images = [s for s in markdown.images(tokens) if not media.is_local(s)]
    return result


def write_media(directory: Path, name: str, data: bytes) -> None:

    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / name).exists():  # named by content: present means the same
            files.write_bytes(directory / name, data)
    except OSError as e:
        raise InputError(f"cannot write {directory / name}: {e.strerror or e}") from None

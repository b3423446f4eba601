"""Which files are issues: the one place that says so for send, schedule and preview."""

from __future__ import annotations

from pathlib import Path

from mailer.config import Settings
from mailer.content.issue import load_issue
from mailer.errors import InputError

# Markdown, or any text file (CONTRACT): what `send`, `--due` and `preview DIR` take.
ISSUE_SUFFIXES = (".md", ".markdown", ".txt")


def looks_like_issue_file(target: str | Path) -> bool:
    """A command's ISSUE argument names a file (not a slug): it exists, has an issue's
    suffix, or a path separator."""
    p = Path(target)
    return p.is_file() or p.suffix.lower() in ISSUE_SUFFIXES or "/" in str(target)


def slug_of(target: str) -> str:
    """An issue's slug, from its file or as given."""
    return load_issue(Path(target)).slug if Path(target).is_file() else target


def welcome_path(settings: Settings) -> Path | None:
    return settings.path(settings.welcome_issue).resolve() if settings.welcome_issue else None


def issue_files(settings: Settings) -> list[Path]:
    """The issues under issues_dir, but the welcome mail (never sent to the whole list)."""
    folder = settings.path(settings.issues_dir)
    if not folder.is_dir():
        return []
    welcome = welcome_path(settings)
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in ISSUE_SUFFIXES and p.is_file() and p.resolve() != welcome
    )


def refuse_welcome(settings: Settings, path: Path) -> None:
    if path.resolve() == welcome_path(settings):
        raise InputError(
            f"{path} is the welcome mail: mailer serve sends it to each person who confirms; "
            "to mail it to the whole list, copy it to a file of its own"
        )

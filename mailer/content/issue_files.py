"""Which files are issues: the one place that says so for send, schedule and preview."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mailer import languages
from mailer.config import Settings
from mailer.content.issue import load_issue
from mailer.errors import InputError
from mailer.models import Issue

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


def edition_of(path: Path) -> tuple[Path, str] | None:
    """For `X.en.md` beside an `X.md` (any issue suffix): (the main file, "en"). Else None:
    a file named like an edition with no main file beside it is an issue of its own."""
    stem, dot, tag = path.stem.rpartition(".")
    if not dot or not stem:
        return None
    try:
        language = languages.canonical(tag)
    except ValueError:
        return None
    for suffix in ISSUE_SUFFIXES:
        main = path.with_name(stem + suffix)
        if main.is_file():
            return main, language
    return None


def editions_beside(main: Path) -> list[tuple[str, Path]]:
    """The language editions of a main issue file, by tag, sorted: (tag, path)."""
    found: dict[str, Path] = {}
    if not main.parent.is_dir():
        return []
    for p in sorted(main.parent.iterdir()):
        if (
            p.suffix.lower() in ISSUE_SUFFIXES
            and p.name.startswith(main.stem + ".")
            and p.is_file()
        ):
            edition = edition_of(p)
            if edition is not None and edition[0].resolve() == main.resolve():
                found.setdefault(edition[1], p)
    return sorted(found.items())


def read_issue(path: Path) -> Issue:
    """An issue file as sent: an edition (X.en.md) takes its main file's slug, date and
    archive flag, and its language from its name."""
    issue = load_issue(path)
    edition = edition_of(path)
    if edition is None:
        return issue
    main_path, tag = edition
    if issue.audience is not None:
        raise InputError(f"{path}: audience belongs in {main_path.name}, the main edition")
    main = load_issue(main_path)
    return dataclasses.replace(
        issue,
        slug=main.slug,
        language=tag,
        edition=tag,
        date=issue.date or main.date,
        archive=main.archive,
        send_at=main.send_at,
    )


def edition_path(main: Path, language: str) -> Path:
    """`--lang TAG` for an issue file: its edition in that language (or itself)."""
    tag = languages.canonical(language)
    if edition_of(main) is not None:
        raise InputError(f"{main}: is an edition already; name the main file with --lang")
    for found, path in editions_beside(main):
        if found == tag:
            return path
    names = ", ".join(t for t, _ in editions_beside(main)) or "none"
    raise InputError(
        f"{main}: has no {tag} edition ({main.stem}.{tag}{main.suffix} beside it); editions: {names}"
    )


def welcome_path(settings: Settings) -> Path | None:
    return settings.path(settings.welcome_issue).resolve() if settings.welcome_issue else None


def welcome_missing(settings: Settings) -> str:
    """Why no welcome goes out though the setting names one ("" when it does or is off)."""
    path = welcome_path(settings)
    if path is None or path.is_file():
        return ""
    return (
        f"welcome off: {settings.welcome_issue} does not exist, so new subscribers get no "
        'welcome mail; write it (or set welcome_issue = "" to say so)'
    )


def welcome_slug(settings: Settings) -> str:
    """The welcome mail's slug ("" without one): the ledger holds it like an issue, but it
    is no list send (`draft`, `stats` and the guard rails look past it)."""
    path = welcome_path(settings)
    if path is None or not path.is_file():
        return ""
    try:
        return load_issue(path).slug
    except InputError:
        return path.stem


def issue_files(settings: Settings) -> list[Path]:
    """The issues under issues_dir, but the welcome mail (never sent to the whole list)."""
    folder = settings.path(settings.issues_dir)
    if not folder.is_dir():
        return []
    welcome = welcome_path(settings)
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in ISSUE_SUFFIXES
        and p.is_file()
        and p.resolve() != welcome
        and edition_of(p) is None  # an edition goes with its main file
    )


def refuse_welcome(settings: Settings, path: Path) -> None:
    if path.resolve() == welcome_path(settings):
        raise InputError(
            f"{path} is the welcome mail: mailer serve sends it to each person who confirms; "
            "to mail it to the whole list, copy it to a file of its own"
        )

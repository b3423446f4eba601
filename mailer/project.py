"""`mailer init`: scaffold a newsletter project without ever overwriting a file."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mailer.content.templates import PACKAGE_DIR, default_templates_dir

SCAFFOLD = PACKAGE_DIR / "scaffold"


def _subscribers_example() -> Path:
    installed = SCAFFOLD / "subscribers.csv.example"
    return installed if installed.exists() else PACKAGE_DIR.parent / "subscribers.csv.example"


@dataclass
class InitResult:
    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def init_project(directory: Path) -> InitResult:
    result = InitResult()
    directory.mkdir(parents=True, exist_ok=True)
    toml = (SCAFFOLD / "mailer.toml").read_text(encoding="utf-8")
    _write(
        directory / "mailer.toml", toml.replace("{secret_key}", secrets.token_urlsafe(32)), result
    )
    for src in sorted(default_templates_dir().iterdir()):
        if src.is_file():
            _write(directory / "templates" / src.name, src.read_text(encoding="utf-8"), result)
    example = (SCAFFOLD / "example-issue.md").read_text(encoding="utf-8")
    _write(directory / "issues" / "2026-11-20-weekly.md", example, result)
    # The welcome_issue setting's default file: without it confirmed readers get nothing.
    welcome = (SCAFFOLD / "welcome.md").read_text(encoding="utf-8")
    _write(directory / "issues" / "welcome.md", welcome, result)
    _copy(_subscribers_example(), directory / "subscribers.csv.example", result)
    return result


def _write(path: Path, text: str, result: InitResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as f:  # "x": fail rather than overwrite
            f.write(text)
    except FileExistsError:
        result.kept.append(path)
    else:
        result.created.append(path)


def _copy(src: Path, dst: Path, result: InitResult) -> None:
    if dst.exists():
        result.kept.append(dst)
        return
    shutil.copyfile(src, dst)
    result.created.append(dst)

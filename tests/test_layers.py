"""Layering is checked by import-linter against the contracts in pyproject.toml: on the real
tree it passes, and on a copy given one import that points the wrong way it fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(exe), str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "mailer", tree / "mailer", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_its_contracts(copy: Path) -> None:
    r = lint_imports(copy)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize(
    "module,line,broken",
    [
        # upward: the store reaching for the send
        ("store/ledger.py", "from mailer.sending import engine", "point down"),
        # upward, by a relative import inside a function
        ("content/render.py", "def _x() -> None:\n    from ..compose import dkim", "point down"),
        # between packages of one layer that must not know each other
        ("providers/outbox.py", "import mailer.store.ledger", "point down"),
        ("sending/adhoc.py", "from mailer.feedback import apply", "point down"),
        # `from mailer import X` names the package through its parent
        ("models.py", "from mailer import config", "point down"),
        # a module import-linter was never told about
        ("new_module.py", "x = 1", "point down"),
        # click below the command line
        ("web/pages.py", "import click", "click"),
    ],
)
def test_one_bad_import_breaks_a_contract(
    copy: Path, tmp_path: Path, module: str, line: str, broken: str
) -> None:
    tree = tmp_path / "t"
    shutil.copytree(copy, tree)
    path = tree / "mailer" / module
    path.write_text((path.read_text() if path.exists() else "") + "\n" + line + "\n")
    r = lint_imports(tree)
    assert r.returncode != 0, r.stdout
    assert "BROKEN" in r.stdout and broken in r.stdout, r.stdout

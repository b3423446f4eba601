"""Every command has help with an example and is in the README (sqlite-utils' test_docs)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from mailer.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group = cli, prefix: str = "mailer") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix} {name}")
    return found


@pytest.mark.parametrize("name,command", commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_an_example_and_is_in_the_readme(
    name: str, command: click.Command
) -> None:
    assert command.help and "Example:" in command.help, name
    assert f"`{name}" in README, f"{name} is not in README.md"

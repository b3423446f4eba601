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


def _block(lang: str, first_line: str = "") -> str:
    """The README's fenced block of `lang` whose first line starts with `first_line`."""
    import re

    for body in re.findall(rf"```{lang}\n(.*?)```", README, re.S):
        if body.startswith(first_line):
            return str(body)
    raise AssertionError(f"no ```{lang} block starting {first_line!r} in README.md")


def _readme_command(line: str, project: Path) -> list[str]:
    """A command from the README, on this machine: the test project for /srv/newsletter,
    this venv's mailer for .venv/bin/mailer."""
    import re
    import sys

    mailer = str(Path(sys.executable).parent / "mailer")
    line = re.sub(r"(?:/srv/newsletter/)?\.venv/bin/mailer", lambda _: mailer, line)
    return ["bash", "-c", line.replace("/srv/newsletter", str(project))]


def _schedule_one(project: Path) -> None:
    """The example issue, due a minute ago."""
    import datetime as dt

    when = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    issue = project / "issues" / "2026-11-20-weekly.md"
    issue.write_text(
        issue.read_text(encoding="utf-8").replace(
            "slug: 2026-11-20-weekly\n", f'slug: 2026-11-20-weekly\nsend_at: "{when}"\n'
        ),
        encoding="utf-8",
    )


def test_the_readme_crontab_line_runs_as_written(sqlite_project: Path) -> None:
    import subprocess

    from tests.conftest import Cli

    Cli(sqlite_project)("subscribers", "import", str(sqlite_project / "subscribers.csv.example"))
    _schedule_one(sqlite_project)
    line = _block("crontab").strip()
    schedule, command = line.split(None, 5)[:5], line.split(None, 5)[5]
    assert schedule == ["*/5", "*", "*", "*", "*"]
    first = subprocess.run(_readme_command(command, sqlite_project), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "sent 5" in first.stdout
    again = subprocess.run(_readme_command(command, sqlite_project), capture_output=True, text=True)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")  # quiet: nothing due


def test_the_readme_systemd_units_run_as_written(sqlite_project: Path) -> None:
    import configparser
    import re
    import shutil
    import subprocess
    import sys

    from tests.conftest import Cli

    Cli(sqlite_project)("subscribers", "import", str(sqlite_project / "subscribers.csv.example"))
    _schedule_one(sqlite_project)
    units = {}
    for name in ("mailer-due.service", "mailer-due.timer"):
        text = _block("ini", f"# /etc/systemd/system/{name}")
        unit = configparser.ConfigParser(strict=True, interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_string(text)
        units[name] = (unit, text)
    service = units["mailer-due.service"][0]
    timer = units["mailer-due.timer"][0]
    assert service["Service"]["Type"] == "oneshot"
    assert timer["Timer"]["OnCalendar"] == "*:0/5" and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    workdir = service["Service"]["WorkingDirectory"].replace("/srv/newsletter", str(sqlite_project))
    r = subprocess.run(
        _readme_command(service["Service"]["ExecStart"], sqlite_project),
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "sent 5" in r.stdout, r.stderr
    mailer = str(Path(sys.executable).parent / "mailer")
    if shutil.which("systemd-analyze"):  # where systemd is, it checks the units too
        unit_dir = sqlite_project / "units"
        unit_dir.mkdir()
        for name, (_, text) in units.items():
            body = re.sub(r"(?:/srv/newsletter/)?\.venv/bin/mailer", lambda _: mailer, text)
            (unit_dir / name).write_text(body.replace("/srv/newsletter", str(sqlite_project)))
        check = subprocess.run(
            ["systemd-analyze", "verify", *(str(unit_dir / n) for n in units)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0 and "mailer-due" not in check.stderr, check.stderr

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


def test_the_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    """Every Quick start line, in order, in a fresh folder, with this venv's mailer on
    PATH. The two servers run until they answer, then get Ctrl-C and must stop promptly;
    `mailer serve` is given a free port (8000 may be taken on this machine)."""
    import os
    import re
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "BROWSER": "true",  # preview opens "the browser": a command that does nothing
    }
    for key in [k for k in env if k.startswith("MAILER_")]:
        del env[key]
    cwd = tmp_path
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in _block("sh", "pip install").splitlines()]
    assert lines[0].startswith("pip install .")  # installing is what this venv did already
    for line in lines[1:]:
        if line.startswith("mailer init"):
            subprocess.run(line.split("&&")[0], shell=True, cwd=cwd, env=env, check=True)
            cwd = cwd / line.split("cd ")[1].strip()
            continue
        if line in ("mailer serve",) or line.startswith("mailer preview"):
            if line == "mailer serve":
                sock = socket.socket()
                sock.bind(("127.0.0.1", 0))
                line += f" --port {sock.getsockname()[1]}"
                sock.close()
            proc = subprocess.Popen(
                line,
                shell=True,
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                assert proc.stdout is not None
                said = ""
                while (url := re.search(r"http://[\d.:]+/?", said)) is None:
                    more = proc.stdout.readline()  # "port 8025 is in use; using 8026" first
                    assert more, (line, said, proc.stderr.read() if proc.stderr else "")
                    said += more
                path = "healthz" if line.startswith("mailer serve") else ""
                for _ in range(200):  # until it answers
                    try:
                        answer = httpx.get(
                            url.group().rstrip("/") + "/" + path, follow_redirects=True
                        )
                        assert answer.status_code == 200, (line, answer.status_code)
                        break
                    except httpx.TransportError:
                        time.sleep(0.05)
                started = time.monotonic()
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=15)
                assert time.monotonic() - started < 3, f"{line}: {time.monotonic() - started:.1f} s"
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            continue
        if line == "mailer send issues/2026-11-20-weekly.md":  # "asks": a person at a terminal
            code, said = _at_a_terminal(line, cwd, env, answer=b"y\n")
            assert code == 0 and "sent 5" in said, (line, said)
            continue
        r = subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, (line, r.stdout, r.stderr)
        if line.startswith("mailer status"):
            assert re.search(r"sent\s+5", r.stdout), r.stdout
    assert (cwd / "public" / "archive" / "index.html").is_file()
    assert "send_at:" in (cwd / "issues" / "next.md").read_text(encoding="utf-8")


def _at_a_terminal(line: str, cwd: Path, env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """Run `line` with a pseudo-terminal for stdin and stdout, answering its question."""
    import os
    import pty
    import subprocess

    main, other = pty.openpty()
    proc = subprocess.Popen(
        line, shell=True, cwd=cwd, env=env, stdin=other, stdout=other, stderr=other
    )
    os.close(other)
    said = b""
    answered = False
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the other end closed: the command is done
            break
        if not chunk:
            break
        said += chunk
        if not answered and b"?" in said:
            os.write(main, answer)
            answered = True
    os.close(main)
    return proc.wait(timeout=60), said.decode("utf-8", "replace")

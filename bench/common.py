"""Shared helpers: run a measurement in a fresh child process, report time and peak memory."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "bench"  # the floors: imported from there, never copied
SAMPLE = ROOT.parent / "shared" / "samples" / "ai-daily-digest.md"  # a real issue
DATA = ROOT / "bench" / ".data"
PG_URL = os.environ.get(
    "MAILER_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def child(fn: Callable[..., dict[str, Any]]) -> None:
    """Entry point of a measured child: run fn(*argv), print its result with peak RSS."""
    start = time.perf_counter()
    result = fn(*sys.argv[2:])
    result.setdefault("seconds", time.perf_counter() - start)
    result["peak_mb"] = peak_mb()
    print(json.dumps(result))


def peak_mb() -> float:
    """This process's peak RSS since its exec (VmHWM). ru_maxrss is not that: it keeps the
    high-water mark of the forked copy of the parent before exec, so a child of a bench
    process that had grown to 150 MB reported 150 MB whatever it used itself."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return run([sys.executable, str(ROOT / "bench" / script), "--child", *args], env)


def run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a process to its end: its last JSON line (if any), plus what the kernel counted for
    it alone: wall seconds, user and system CPU seconds, peak RSS. Mailer and floor are
    measured the same way, interpreter start included."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, for its rusage
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    result: dict[str, Any] = {}
    lines = stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result = dict(json.loads(lines[-1]))
    result.update(wall=wall, user=usage.ru_utime, sys=usage.ru_stime)
    result.setdefault("peak_mb", usage.ru_maxrss / 1024)  # a floor's: may include the fork
    return result


def make_project(n: int, name: str) -> Path:
    """A project whose SQLite list holds n active subscribers (inserted directly: fast)."""
    import datetime as dt

    from mailer.project import init_project
    from mailer.store import open_url
    from mailer.store.schema import subscribers

    root = DATA / name
    if root.exists():
        shutil.rmtree(root)
    init_project(root)
    toml = root / "mailer.toml"  # a list is only sent with an https base_url
    toml.write_text(toml.read_text().replace("http://127.0.0.1:8000", "https://news.example.com"))
    with open_url(f"sqlite:///{root / 'mailer.db'}") as store, store.engine.begin() as conn:
        now = dt.datetime.now(dt.UTC)
        for start in range(0, n, 10000):
            conn.execute(
                subscribers.insert(),
                [
                    {
                        "email": f"user{i}@example{i % 500}.com",
                        "email_key": f"user{i}@example{i % 500}.com",
                        "name": f"Name {i}",
                        "status": "active",
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                        "nonce": i + 1,
                    }
                    for i in range(start, min(n, start + 10000))
                ],
            )
    return root


def issue_html(project: Path) -> Path:
    """The real issue's rendered HTML in a project, for floor_smtp.py --html and mailmerge."""
    from mailer.config import load_settings
    from mailer.content.issue import load_issue
    from mailer.content.render import Renderer

    path = project / "issue.html"
    path.write_text(Renderer(load_settings(project)).render(load_issue(SAMPLE)).html.template)
    return path


def floor_smtp(port: int, n: int, threads: int, html: Path) -> dict[str, Any]:
    """../shared/bench/floor_smtp.py sending the same HTML n times over `threads` connections."""
    return run(
        [
            sys.executable,
            str(SHARED / "floor_smtp.py"),
            "--port",
            str(port),
            "--n",
            str(n),
            "--threads",
            str(threads),
            "--html",
            str(html),
        ]
    )


def smtp_sink() -> str:
    """Postfix's smtp-sink: the C sink the shared floors are measured against."""
    found = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(found).exists():
        raise SystemExit("smtp-sink not found: apt-get install postfix")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing listens on {port}")


def fresh_pg_schema(name: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{name}"


def postgres_up() -> bool:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(
            PG_URL, poolclass=sa.NullPool, connect_args={"connect_timeout": 3}
        )
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def row(label: str, value: str, target: str = "") -> str:
    return f"  {label:<52} {value:>18}  {target}"

"""Shared helpers: run a measurement in a fresh child process, report time and peak memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
PG_URL = os.environ.get(
    "MAILER_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def child(fn: Callable[..., dict[str, Any]]) -> None:
    """Entry point of a measured child: run fn(*argv), print its result with peak RSS."""
    start = time.perf_counter()
    result = fn(*sys.argv[2:])
    result.setdefault("seconds", time.perf_counter() - start)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--child", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


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

"""The rate limit, for real: rate_limit=50 over 500 outbox recipients, 4 workers.

An honest limit sends 500 in (500 - 1) / 50 ≈ 10 s, spaced, with no second over 50 and no
idle tail. Run: .venv/bin/python bench/bench_rate.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.table import Row, at_most


def main(n: int = 500, rate: float = 50) -> list[Row]:
    from mailer.config import load_settings
    from mailer.project import init_project
    from mailer.sending import send as core
    from mailer.store import open_store

    root = Path(tempfile.mkdtemp()) / "project"
    init_project(root)
    base = {"base_url": "https://news.example.com"}
    with open_store(load_settings(root, base)) as store:
        for i in range(n):
            store.subscribers.add(f"r{i:04d}@example.com")
    settings = load_settings(root, {**base, "rate_limit": rate, "concurrency": 4})
    plan = core.plan(settings, root / "issues" / "2026-11-20-weekly.md")
    start = time.monotonic()
    result = core.run(plan)
    elapsed = time.monotonic() - start
    if result.sent != n:
        raise SystemExit(f"rate bench: sent {result.sent} of {n}")
    ended = time.time()
    stamps = sorted(p.stat().st_mtime for p in (root / "outbox").rglob("*.eml"))
    first = stamps[0]
    per_second = [sum(1 for t in stamps if s <= t - first < s + 1) for s in range(int(elapsed) + 1)]
    window = max(sum(1 for t in stamps if s <= t < s + 10) for s in stamps)
    ideal = (n - 1) / rate
    return [
        at_most(
            f"rate_limit={rate:g}/s, {n} outbox recipients: busiest 10 s window "
            f"(busiest second {max(per_second)})",
            f"{window} messages",
            f"{rate * 10:g} (the limit)",
            window / (rate * 10),
            None,
            1.05,
        ),
        at_most(
            f"rate_limit={rate:g}/s: run time against (n - 1) / rate "
            f"(last message to end {ended - stamps[-1]:.2f} s)",
            f"{elapsed:.1f} s",
            f"{ideal:.1f} s",
            elapsed / ideal,
            None,
            1.05,
        ),
    ]


if __name__ == "__main__":
    from bench.table import render

    print(render(main()))

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


def main(n: int = 500, rate: float = 50) -> list[str]:
    from mailer.config import load_settings
    from mailer.delivery import send as core
    from mailer.project import init_project
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
    ended = time.time()
    stamps = sorted(p.stat().st_mtime for p in (root / "outbox").rglob("*.eml"))
    first = stamps[0]
    per_second = [sum(1 for t in stamps if s <= t - first < s + 1) for s in range(int(elapsed) + 1)]
    window = max(sum(1 for t in stamps if s <= t < s + 10) for s in stamps)
    return [
        f"rate limit {rate:g}/s over {n} outbox recipients, 4 workers",
        f"  sent {result.sent} in {elapsed:.1f} s ({result.sent / elapsed:.1f}/s; ideal {(n - 1) / rate:.1f} s)",
        f"  busiest second {max(per_second)}, busiest 10 s window {window} (limit {rate * 10:g})",
        f"  first second {per_second[0]}, from the last message to the end of the run "
        f"{ended - stamps[-1]:.2f} s",
    ]


if __name__ == "__main__":
    print("\n".join(main()))

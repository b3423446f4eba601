"""Does /subscribe answer a new address and a subscribed one alike? Median and p90 times
of 300 sign-ups each, through the app in-process (no network), rate limit off.

Run: .venv/bin/python bench/subscribe_timing.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(n: int = 300) -> list[str]:
    from starlette.testclient import TestClient

    from mailer.config import load_settings
    from mailer.project import init_project
    from mailer.store import open_store
    from mailer.web import serve

    root = Path(tempfile.mkdtemp()) / "project"
    init_project(root)
    settings = load_settings(root, {"base_url": "https://news.example.com"})
    serve.RateLimit.allow = lambda self, key: True  # type: ignore[method-assign]
    times: dict[str, list[float]] = {"new address": [], "subscribed address": []}
    with open_store(settings) as store:
        store.subscribers.add("active@example.com")
        with TestClient(serve.create_app(settings, store, background=False)) as client:
            for i in range(n):
                for kind, email in (
                    ("new address", f"new{i}@example.com"),
                    ("subscribed address", "active@example.com"),
                ):
                    start = time.perf_counter()
                    assert client.post("/subscribe", data={"email": email}).status_code == 200
                    times[kind].append(time.perf_counter() - start)
    return [
        f"{kind}: median {statistics.median(v) * 1000:.2f} ms, "
        f"p90 {sorted(v)[int(len(v) * 0.9)] * 1000:.2f} ms"
        for kind, v in times.items()
    ]


if __name__ == "__main__":
    print("\n".join(main()))

"""`make bench`: every workload against its floor in ../shared/bench, one table; then the
latency table and what the rest costs. Sizes: BENCH_ROWS (import), BENCH_SEND (send)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_build, bench_import, bench_latency, bench_rate, bench_send, bench_webhook
from bench.table import render

if __name__ == "__main__":
    rows = bench_send.main()
    rows += bench_import.main(int(os.environ.get("BENCH_ROWS", "1000000")))
    rows += bench_rate.main()
    rows += bench_webhook.main()
    print(render(rows), flush=True)
    print("\nSMTP across a network (smtp-sink behind latency_proxy.py):", flush=True)
    bench_latency.main()
    print("\nAlso measured:", flush=True)
    print("\n".join(bench_build.main() + bench_send.dkim_cost()), flush=True)
    failed = [r.workload for r in rows if not r.passed]
    if failed:
        print(f"\n{len(failed)} of {len(rows)} targets missed", flush=True)

"""`make bench`: every benchmark, one report. Sizes: BENCH_ROWS (import), BENCH_SEND (send)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_build, bench_import, bench_latency, bench_rate, bench_send

if __name__ == "__main__":
    import os

    print("\n".join(bench_build.main()), flush=True)
    print("\n".join(bench_import.main(int(os.environ.get("BENCH_ROWS", "1000000")))), flush=True)
    print("\n".join(bench_send.main()), flush=True)
    print("\n".join(bench_rate.main()), flush=True)
    print("\nSMTP across a network (smtp-sink behind latency_proxy):", flush=True)
    bench_latency.main()

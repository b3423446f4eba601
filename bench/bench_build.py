"""Build speed: warm compile of the shared sample issue, cold `mailer build`, `mailer --help`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, row

SAMPLE = ROOT.parent / "shared" / "samples" / "ai-daily-digest.md"
EXAMPLE = ROOT / "mailer" / "scaffold" / "example-issue.md"


def wall(cmd: list[str], cwd: Path, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> list[str]:
    from mailer.config import load_settings
    from mailer.content.issue import load_issue
    from mailer.content.render import Renderer
    from mailer.project import init_project

    issue_path = SAMPLE if SAMPLE.exists() else EXAMPLE
    lines = [f"build ({issue_path.name})"]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "p"
        init_project(project)
        renderer = Renderer(load_settings(project))
        issue = load_issue(issue_path)
        renderer.render(issue)  # warm: templates compiled, modules imported
        times = []
        for _ in range(50):
            start = time.perf_counter()
            renderer.render(load_issue(issue_path))
            times.append(time.perf_counter() - start)
        lines.append(
            row(
                "warm compile, median of 50 (target ≤ 10 ms)",
                f"{statistics.median(times) * 1000:.1f} ms",
            )
        )
        mailer = str(Path(sys.executable).parent / "mailer")
        cold = wall([mailer, "build", str(issue_path), "-o", str(Path(tmp) / "out")], project)
        lines.append(row("cold `mailer build`, median of 7 (target ≤ 0.6 s)", f"{cold:.3f} s"))
        helps = wall([mailer, "--help"], project)
        lines.append(row("`mailer --help`, median of 7 (target ≤ 0.25 s)", f"{helps:.3f} s"))
    return lines


if __name__ == "__main__":
    print("\n".join(main()))

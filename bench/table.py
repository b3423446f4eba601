"""The one table `make bench` prints: workload, mailer, floor, ratio, peak RSS, target, pass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    workload: str
    mailer: str  # what mailer did, with its unit
    floor: str  # what the yardstick did, with its unit
    ratio: float  # as the target reads it (time or CPU ratio; for "at least", a speed ratio)
    peak_mb: float | None  # mailer's peak RSS, where it was measured
    target: str  # "≤ 1.3×" or "≥ 5×"
    passed: bool


def at_most(
    workload: str, mailer: str, floor: str, ratio: float, peak: float | None, limit: float
) -> Row:
    return Row(workload, mailer, floor, ratio, peak, f"≤ {limit:g}×", ratio <= limit)


def at_least(
    workload: str, mailer: str, floor: str, ratio: float, peak: float | None, limit: float
) -> Row:
    return Row(workload, mailer, floor, ratio, peak, f"≥ {limit:g}×", ratio >= limit)


def render(rows: list[Row]) -> str:
    """A Markdown table, so a run can go into README as it is."""
    lines = [
        "| workload | mailer | floor | ratio | peak RSS | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = f"{r.peak_mb:.0f} MB" if r.peak_mb is not None else "-"
        verdict = "pass" if r.passed else "**FAIL**"
        lines.append(
            f"| {r.workload} | {r.mailer} | {r.floor} | {r.ratio:.2f}× | {peak} | {r.target} "
            f"| {verdict} |"
        )
    return "\n".join(lines)

"""Import a generated CSV (1 % invalid, 1 % duplicates) into SQLite and PostgreSQL.

Beside it, the floors: ../shared/bench/floor_import.py (csv.reader into executemany, no
validation), `sqlite-utils insert --csv` on the same file, and for PostgreSQL a COPY floor
(bench/floor_pg_import.py).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DATA,
    PG_URL,
    ROOT,
    SHARED,
    child,
    fresh_pg_schema,
    measure,
    postgres_up,
    run,
)
from bench.table import Row, at_least, at_most


def generate(rows: int) -> Path:
    """A realistic list from ../shared/bench/make_list.py: shuffled, 7 domains, mixed-script
    names, 1 % invalid rows and 1 % duplicates differing only in case."""
    path = DATA / f"list-{rows}.csv"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        bad = str(rows // 100)
        run(
            [
                sys.executable,
                str(SHARED / "make_list.py"),
                str(path),
                str(rows),
                "--invalid",
                bad,
                "--dupes",
                bad,
            ]
        )
    return path


def mailer_import(url: str, path: str) -> dict[str, Any]:
    from mailer.store import open_url
    from mailer.store.imports import import_csv

    with open_url(url) as store:
        start = time.perf_counter()
        r = import_csv(store.engine, Path(path))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "added": r.added, "invalid": r.invalid, "duplicates": r.duplicates}


def fresh(db: Path) -> Path:
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    return db


def main(rows: int) -> list[Row]:
    path = generate(rows)
    small = generate(10000)
    res: dict[str, dict[str, Any]] = {}
    res["mailer"] = measure(
        "bench_import.py", "mailer", f"sqlite:///{fresh(DATA / 'i.db')}", str(path)
    )
    res["floor"] = run(
        [sys.executable, str(SHARED / "floor_import.py"), str(path), str(fresh(DATA / "f.db"))]
    )
    res["mailer 10k"] = measure(
        "bench_import.py", "mailer", f"sqlite:///{fresh(DATA / 'i.db')}", str(small)
    )
    m, f = res["mailer"], res["floor"]
    out = [
        at_most(
            f"import {rows:,} rows (make_list.py, 1 % invalid, 1 % dupes), SQLite",
            f"{m['wall']:.1f} s",
            f"{f['wall']:.1f} s",
            m["wall"] / f["wall"],
            m["peak_mb"],
            2.0,
        )
    ]
    utils = Path(sys.executable).parent / "sqlite-utils"
    su = run([str(utils), "insert", str(fresh(DATA / "su.db")), "s", str(path), "--csv"])
    out.append(
        at_least(
            f"import {rows:,} rows, SQLite: speed against `sqlite-utils insert --csv`",
            f"{m['wall']:.1f} s",
            f"{su['wall']:.1f} s",
            su["wall"] / m["wall"],
            m["peak_mb"],
            1.0,
        )
    )
    if postgres_up():
        pm = measure("bench_import.py", "mailer", fresh_pg_schema("bench_import"), str(path))
        pf = run(
            [
                sys.executable,
                str(ROOT / "bench" / "floor_pg_import.py"),
                str(path),
                PG_URL,
                "bench_import_floor",
            ]
        )
        out.append(
            at_most(
                f"import {rows:,} rows, PostgreSQL (floor: COPY, bench/floor_pg_import.py)",
                f"{pm['wall']:.1f} s",
                f"{pf['wall']:.1f} s",
                pm["wall"] / pf["wall"],
                pm["peak_mb"],
                2.0,
            )
        )
    big, little = m["peak_mb"], res["mailer 10k"]["peak_mb"]
    out.append(
        at_most(
            f"import memory: peak at {rows:,} / peak at 10,000 (≤ 150 MB)",
            f"{big:.0f} MB",
            f"{little:.0f} MB",
            big / little,
            big,
            1.3,
        )
    )
    out[-1].passed = out[-1].passed and big <= 150
    if m.get("added", 0) + m.get("invalid", 0) + m.get("duplicates", 0) != rows + 2 * (rows // 100):
        raise SystemExit(f"the import did not account for every row: {m}")
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(lambda which, *args: mailer_import(*args))
    else:
        from bench.table import render

        print(render(main(int(os.environ.get("BENCH_ROWS", "1000000")))))

"""Import a generated CSV (1 % invalid, 1 % duplicates) into SQLite and PostgreSQL.

Beside it, the floor: the same rows inserted with plain executemany and no validation,
and `sqlite-utils insert --csv` on the same file.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, child, fresh_pg_schema, measure, postgres_up, row


def generate(rows: int) -> Path:
    path = DATA / f"subscribers-{rows}.csv"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "company", "city"])
        for i in range(rows):
            r = rng.random()
            if r < 0.01:
                email = f"broken {i}@example"  # invalid
            elif r < 0.02 and i > 10:
                email = f"user{i - 1}@example{(i - 1) % 500}.com"  # a duplicate of the row before
            else:
                email = f"user{i}@example{i % 500}.com"
            w.writerow([email, f"Name {i} 名字", f"Company {i % 1000}", "Berlin"])
    tmp.replace(path)
    return path


def mailer_import(url: str, path: str) -> dict[str, Any]:
    from mailer.store import open_url
    from mailer.store.imports import import_csv

    with open_url(url) as store:
        start = time.perf_counter()
        r = import_csv(store.engine, Path(path))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "added": r.added, "invalid": r.invalid, "duplicates": r.duplicates}


def floor_import(url: str, path: str) -> dict[str, Any]:
    """The same rows, no validation, plain executemany into the same table: the floor."""
    import datetime as dt

    from mailer.store import open_url
    from mailer.store.schema import subscribers

    with open_url(url) as store:
        start = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        seen: set[str] = set()
        with store.engine.begin() as conn, open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader)
            chunk: list[dict[str, Any]] = []
            for email, name, company, city in reader:
                key = email.lower()
                if key in seen:  # the table's unique key would refuse it
                    continue
                seen.add(key)
                chunk.append(
                    {
                        "email": email,
                        "email_key": key,
                        "name": name,
                        "status": "active",
                        "attributes": {"company": company, "city": city},
                        "created_at": now,
                        "updated_at": now,
                        "nonce": len(seen),
                    }
                )
                if len(chunk) == 5000:
                    conn.execute(subscribers.insert(), chunk)
                    chunk = []
            if chunk:
                conn.execute(subscribers.insert(), chunk)
        seconds = time.perf_counter() - start
    return {"seconds": seconds}


def main(rows: int) -> list[str]:
    path = generate(rows)
    lines = [f"import of {rows:,} rows ({path.name})"]
    db = DATA / "import.db"
    results: dict[str, dict[str, Any]] = {}
    for label, fn in (("mailer import, SQLite", "mailer"), ("floor: executemany, SQLite", "floor")):
        for p in db.parent.glob("import.db*"):
            p.unlink()
        results[label] = measure("bench_import.py", fn, f"sqlite:///{db}", str(path))
    sqlite_utils = shutil.which("sqlite-utils") or str(Path(sys.executable).parent / "sqlite-utils")
    if Path(sqlite_utils).exists():
        for p in db.parent.glob("su.db*"):
            p.unlink()
        start = time.perf_counter()
        subprocess.run(
            [sqlite_utils, "insert", str(DATA / "su.db"), "subscribers", str(path), "--csv"],
            check=True,
        )
        results["sqlite-utils insert --csv"] = {
            "seconds": time.perf_counter() - start,
            "peak_mb": float("nan"),
        }
    if postgres_up():
        results["mailer import, PostgreSQL"] = measure(
            "bench_import.py", "mailer", fresh_pg_schema("bench_import"), str(path)
        )
        results["floor: executemany, PostgreSQL"] = measure(
            "bench_import.py", "floor", fresh_pg_schema("bench_import"), str(path)
        )
    for label, r in results.items():
        lines.append(
            row(
                label,
                f"{rows / r['seconds']:,.0f} rows/s",
                f"{r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB",
            )
        )
    m, f = results["mailer import, SQLite"], results["floor: executemany, SQLite"]
    lines.append(
        row("SQLite: mailer / floor (target ≤ 2.5×)", f"{m['seconds'] / f['seconds']:.2f}×")
    )
    lines.append(row("SQLite: peak memory (target ≤ 200 MB)", f"{m['peak_mb']:.0f} MB"))
    if "sqlite-utils insert --csv" in results:
        su = results["sqlite-utils insert --csv"]
        lines.append(
            row(
                "SQLite: mailer vs sqlite-utils (target: faster)",
                f"{su['seconds'] / m['seconds']:.2f}× faster",
            )
        )
    lines.append(
        row(
            "reported",
            f"added {m['added']:,}",
            f"invalid {m['invalid']:,}, duplicates {m['duplicates']:,}",
        )
    )
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(lambda which, *args: {"mailer": mailer_import, "floor": floor_import}[which](*args))
    else:
        print("\n".join(main(int(os.environ.get("BENCH_ROWS", "1000000")))))

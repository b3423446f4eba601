"""SendGrid's signed event webhook: 20,000 readers' processed, delivered, open and click
events (80,000), signed and posted 1,000 a request over 4 connections by
../shared/bench/floor_webhook.py's `post`, into `mailer serve` and into the floor's
plain receiver (verify, parse, one executemany), with the same events file. SQLite for
both; PostgreSQL for mailer, reported beside."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DATA,
    SHARED,
    free_port,
    fresh_pg_schema,
    make_project,
    postgres_up,
    wait_port,
)
from bench.table import Row, at_most

READERS = 20_000
KINDS = ("processed", "delivered", "open", "click")


def keys() -> tuple[Path, str]:
    """A P-256 key pair: the private key's PEM file (for `post`), the public key in base64
    DER (what SendGrid's settings show)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = DATA / "webhook-key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(public).decode()


def events(issue_id: int) -> Path:
    """What SendGrid posts after a send to READERS people: each one's four events, in the
    order they happen (all processed first, then deliveries, opens, clicks), a little
    shuffled within each kind as SendGrid's batches are."""
    path = DATA / "webhook-events.jsonl"
    rng = random.Random(7)
    start = 1_790_000_000
    with path.open("w", encoding="utf-8") as f:
        for n, kind in enumerate(KINDS):
            people = list(range(1, READERS + 1))
            rng.shuffle(people)
            for sid in people:
                i = sid - 1
                event = {
                    "email": f"user{i}@example{i % 500}.com",
                    "timestamp": start + n * 600 + rng.randrange(600),
                    "event": kind,
                    "sg_event_id": f"{kind}-{sid}-{rng.getrandbits(48):012x}",
                    "sg_message_id": f"msg{sid // 1000}.filter0001",
                    "smtp-id": f"<msg{sid // 1000}@example.com>",
                    "category": ["newsletter"],
                    "mailer_issue": str(issue_id),
                    "mailer_subscriber": str(sid),
                }
                if kind == "click":
                    event["url"] = f"https://example.com/story/{sid % 12}"
                if kind in ("open", "click"):
                    event["useragent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"
                    event["ip"] = "203.0.113.9"
                f.write(json.dumps(event) + "\n")
    return path


def post(url: str, events_file: Path, key: Path) -> float:
    """Seconds the shared poster took to deliver every batch; every answer must be 2xx."""
    out = subprocess.run(
        [
            sys.executable,
            str(SHARED / "floor_webhook.py"),
            "post",
            "--url",
            url,
            "--events",
            str(events_file),
            "--key",
            str(key),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    seconds, count, bad = float(out[0]), int(out[1]), int(out[2])
    if bad or count != READERS * len(KINDS):
        raise SystemExit(f"webhook post: {bad} of {count} requests were not answered 2xx")
    return seconds


def serve_floor(public: str) -> tuple[subprocess.Popen[bytes], int]:
    db = DATA / "webhook-floor.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(SHARED / "floor_webhook.py"),
            "serve",
            "--port",
            str(port),
            "--db",
            str(db),
            "--public-key",
            public,
        ]
    )
    wait_port(port)
    return proc, port


def project(url: str | None) -> tuple[Path, int]:
    """READERS subscribers and one issue sent to them all, on SQLite (url None) or `url`."""
    from mailer.config import load_settings
    from mailer.models import Snapshot
    from mailer.store import open_store

    root = make_project(READERS if url is None else 0, "webhook" if url is None else "webhook-pg")
    if url is not None:
        toml = root / "mailer.toml"
        toml.write_text(
            toml.read_text().replace(
                'database_url = "sqlite:///mailer.db"', f'database_url = "{url}"'
            )
        )
        _fill(url)
    with open_store(load_settings(root)) as store:
        pinned = store.pins.pin("bench", Snapshot("Subject", "", "h", "t", {}, "b.md"), 1000)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE recipients SET state = 'sent'")
            conn.exec_driver_sql("UPDATE batches SET state = 'sent'")
    return root, pinned.issue_id


def _fill(url: str) -> None:
    from mailer.store import open_url
    from mailer.store.schema import subscribers

    now = dt.datetime.now(dt.UTC)
    with open_url(url) as store, store.engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {
                    "email": f"user{i}@example{i % 500}.com",
                    "email_key": f"user{i}@example{i % 500}.com",
                    "name": f"Name {i}",
                    "status": "active",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                    "nonce": i + 1,
                }
                for i in range(READERS)
            ],
        )


def serve_mailer(root: Path, public: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "--project", str(root), "serve", "--port", str(port)],
        env={**os.environ, "MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY": public},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, port


def measure(proc_port: tuple[subprocess.Popen[bytes], int], events_file: Path, key: Path) -> float:
    proc, port = proc_port
    try:
        return post(f"http://127.0.0.1:{port}/webhooks/sendgrid", events_file, key)
    finally:
        proc.terminate()
        proc.wait(30)


ROUNDS = 3  # floor and mailer in turn; each side's best round counts (this machine's noise
# moved single rounds by a third)


def main() -> list[Row]:
    DATA.mkdir(parents=True, exist_ok=True)
    key, public = keys()
    floors, mine = [], []
    for _ in range(ROUNDS):
        root, issue_id = project(None)
        events_file = events(issue_id)
        floors.append(measure(serve_floor(public), events_file, key))
        mine.append(measure(serve_mailer(root, public), events_file, key))
    floor, best = min(floors), min(mine)
    n = READERS * len(KINDS)
    rows = [
        at_most(
            f"SendGrid webhook, {n:,} signed events (1,000 a request, 4 connections), SQLite, "
            f"best of {ROUNDS}",
            f"{best:.1f} s ({n / best:,.0f}/s)",
            f"{floor:.1f} s ({n / floor:,.0f}/s)",
            best / floor,
            None,
            2.0,
        )
    ]
    if postgres_up():
        pg_root, _ = project(fresh_pg_schema("bench_webhook"))
        pg = measure(serve_mailer(pg_root, public), events_file, key)
        print(
            f"  webhook on PostgreSQL: {pg:.1f} s ({n / pg:,.0f}/s), "
            f"{pg / floor:.2f}x the SQLite floor",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    from bench.table import render

    print(render(main()))

"""Send to N subscribers through the local SendGrid-compatible server and over SMTP,
each beside a floor that does only the unavoidable work."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import smtplib
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, child, measure, row

ISSUE = Path(__file__).resolve().parent.parent / "mailer" / "scaffold" / "example-issue.md"
KEY = "SG.test-key"  # the key ../shared/bench/floor_sendgrid.py sends


def make_project(n: int, name: str) -> Path:
    """A project whose SQLite list holds n active subscribers (inserted directly: fast)."""
    from mailer.project import init_project
    from mailer.store import open_url
    from mailer.store.schema import subscribers

    root = DATA / name
    if root.exists():
        import shutil

        shutil.rmtree(root)
    init_project(root)
    toml = root / "mailer.toml"  # a list is only sent with an https base_url
    toml.write_text(toml.read_text().replace("http://127.0.0.1:8000", "https://news.example.com"))
    with open_url(f"sqlite:///{root / 'mailer.db'}") as store, store.engine.begin() as conn:
        now = dt.datetime.now(dt.UTC)
        for start in range(0, n, 10000):
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
                    for i in range(start, min(n, start + 10000))
                ],
            )
    return root


def mailer_send(project: str, provider: str, host: str, port: str) -> dict[str, Any]:
    from mailer.config import load_settings
    from mailer.delivery import send as core

    overrides: dict[str, Any] = {"provider": provider, "concurrency": 4}
    if provider == "sendgrid":
        overrides.update(sendgrid_api_key=KEY, sendgrid_api_host=f"http://{host}:{port}")
    else:
        overrides.update(smtp_host=host, smtp_port=int(port), smtp_security="none")
    settings = load_settings(project, overrides)
    start = time.perf_counter()
    plan = core.plan(settings, ISSUE)
    result = core.run(plan)
    return {"seconds": time.perf_counter() - start, "sent": result.sent}


def floor_sendgrid(project: str, _provider: str, host: str, port: str) -> dict[str, Any]:
    """Build the same payloads (a signed URL per recipient, 1000 per request) and post them
    over kept connections, 4 at a time: no ledger, no retries, nothing else."""
    import sqlalchemy as sa

    from mailer.config import load_settings
    from mailer.content.issue import load_issue
    from mailer.content.render import Renderer
    from mailer.tokens import unsubscribe_signer

    settings = load_settings(project)
    start = time.perf_counter()
    rendered = Renderer(settings).render(load_issue(ISSUE))
    html, text = rendered.html.template, rendered.text.template
    signer = unsubscribe_signer(settings.secret_key)
    engine = sa.create_engine(f"sqlite:///{Path(project) / 'mailer.db'}")
    sent = 0
    lock = threading.Lock()
    batches: list[list[tuple[int, str, str]]] = []
    done = threading.Event()

    def worker() -> None:
        nonlocal sent
        conn = http.client.HTTPConnection(host, int(port))
        while True:
            with lock:
                if not batches:
                    if done.is_set():
                        break
                    batch = None
                else:
                    batch = batches.pop()
            if batch is None:
                time.sleep(0.001)
                continue
            ps = []
            for sid, email, name in batch:
                url = f"{settings.base_url}/u/{signer.sign(sid, 1)}"
                ps.append(
                    {
                        "to": [{"email": email, "name": name}],
                        "headers": {
                            "List-Unsubscribe": f"<{url}>",
                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                        },
                        # the payload mailer sends: the fields the default templates use
                        "substitutions": {
                            "__MAILER_UNSUBSCRIBE_URL__": url,
                            "__MAILER_EMAIL__": email,
                        },
                        "custom_args": {"mailer_issue": "1", "mailer_subscriber": str(sid)},
                    }
                )
            body = json.dumps(
                {
                    "personalizations": ps,
                    "from": {"email": settings.from_email},
                    "subject": rendered.issue.subject,
                    "content": [
                        {"type": "text/plain", "value": text},
                        {"type": "text/html", "value": html},
                    ],
                }
            )
            conn.request(
                "POST",
                "/v3/mail/send",
                body,
                {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
            )
            conn.getresponse().read()
            with lock:
                sent += len(batch)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    with engine.connect() as c:
        last = 0
        while True:
            rows = c.execute(
                sa.text(
                    "SELECT id, email, name FROM subscribers WHERE id > :l ORDER BY id LIMIT 1000"
                ),
                {"l": last},
            ).all()
            if not rows:
                break
            last = rows[-1][0]
            while len(batches) > 8:
                time.sleep(0.001)
            with lock:
                batches.append([tuple(r) for r in rows])  # type: ignore[misc]
    done.set()
    for t in threads:
        t.join()
    engine.dispose()
    return {"seconds": time.perf_counter() - start, "sent": sent}


def floor_smtp(project: str, _provider: str, host: str, port: str) -> dict[str, Any]:
    """One pre-built message, per-recipient byte substitution, 4 kept connections."""
    import sqlalchemy as sa

    from mailer.config import load_settings
    from mailer.content.issue import load_issue
    from mailer.content.render import Renderer
    from mailer.delivery.mailing import IssueMailing, snapshot_of
    from mailer.models import Recipient

    settings = load_settings(project)
    start = time.perf_counter()
    rendered = Renderer(settings).render(load_issue(ISSUE))
    p = IssueMailing(settings, snapshot_of(settings, rendered), slug="s", issue_id=1, ref=1)
    template = p.message(Recipient(1, "PLACEHOLDER@example.com", ""))
    engine = sa.create_engine(f"sqlite:///{Path(project) / 'mailer.db'}")
    with engine.connect() as c:
        people = c.execute(sa.text("SELECT id, email FROM subscribers ORDER BY id")).all()
    engine.dispose()
    chunks = [people[i::4] for i in range(4)]

    def worker(chunk: list[Any]) -> None:
        s = smtplib.SMTP(host, int(port))
        for _sid, email in chunk:
            s.sendmail(
                settings.from_email,
                [email],
                template.replace(b"PLACEHOLDER@example.com", email.encode()),
            )
        s.quit()

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - start, "sent": len(people)}


def dkim_cost(n: int = 2000) -> list[str]:
    """What DKIM signing adds per message: the same messages built with and without it."""
    from mailer.config import load_settings
    from mailer.content.issue import load_issue
    from mailer.content.render import Renderer
    from mailer.delivery.dkim import keygen
    from mailer.delivery.mailing import IssueMailing, snapshot_of
    from mailer.models import Recipient

    project = make_project(10, "dkim")
    key = project / "dkim.pem"
    key.unlink(missing_ok=True)
    keygen(key, "s1", "example.com")
    times = {}
    for label, extra in (
        ("plain", {}),
        (
            "dkim",
            {"dkim_domain": "example.com", "dkim_selector": "s1", "dkim_private_key": str(key)},
        ),
    ):
        settings = load_settings(project, extra)
        rendered = Renderer(settings).render(load_issue(ISSUE))
        m = IssueMailing(settings, snapshot_of(settings, rendered), slug="s", issue_id=1, ref=1)
        start = time.perf_counter()
        for i in range(1, n + 1):
            m.message(Recipient(i, f"r{i}@example.com", "", i))
        times[label] = (time.perf_counter() - start) / n
    cost = times["dkim"] - times["plain"]
    return [
        f"DKIM signing ({n:,} messages of a real issue, RSA-2048)",
        row(
            "message without / with DKIM",
            f"{times['plain'] * 1e6:,.0f} µs / {times['dkim'] * 1e6:,.0f} µs",
        ),
        row(
            "DKIM cost per message (one CPU)",
            f"{cost * 1e6:,.0f} µs",
            f"{1 / cost:,.0f} messages/s",
        ),
    ]


def main() -> list[str]:
    from tests.servers import SendGridServer, SmtpServer

    n_big = int(os.environ.get("BENCH_SEND", "1000000"))
    lines = [f"send through the local SendGrid server ({n_big:,} and 10,000 subscribers)"]
    with SendGridServer(KEY) as sg:
        sg.state.keep_bodies = False
        host, port = "127.0.0.1", str(sg.httpd.server_address[1])
        res: dict[str, dict[str, Any]] = {}
        for n in (10000, n_big):
            proj = str(make_project(n, f"send-{n}"))
            res[f"mailer {n}"] = measure("bench_send.py", "mailer", proj, "sendgrid", host, port)
            proj = str(make_project(n, f"send-{n}"))
            res[f"floor {n}"] = measure(
                "bench_send.py", "floor_sendgrid", proj, "sendgrid", host, port
            )
        for label, r in res.items():
            lines.append(
                row(
                    f"{label}: recipients/s",
                    f"{r['sent'] / r['seconds']:,.0f}/s",
                    f"{r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB",
                )
            )
        m, f = res[f"mailer {n_big}"], res[f"floor {n_big}"]
        lines.append(
            row("mailer / floor time (target ≤ 1.5×)", f"{m['seconds'] / f['seconds']:.2f}×")
        )
        lines.append(row("peak memory (target ≤ 150 MB)", f"{m['peak_mb']:.0f} MB"))
        lines.append(
            row(
                f"peak {n_big:,} / peak 10,000 (target ≤ 1.3×)",
                f"{m['peak_mb'] / res['mailer 10000']['peak_mb']:.2f}×",
            )
        )
    lines += dkim_cost()
    lines.append("send 10,000 messages over SMTP (aiosmtpd sink, 4 connections)")
    with SmtpServer(keep_messages=False) as smtp:
        res = {}
        for label, fn in (("mailer", "mailer"), ("floor", "floor_smtp")):
            proj = str(make_project(10000, "smtp-10000"))
            res[label] = measure("bench_send.py", fn, proj, "smtp", "127.0.0.1", str(smtp.port))
        for label, r in res.items():
            lines.append(
                row(
                    f"{label}: messages/s",
                    f"{r['sent'] / r['seconds']:,.0f}/s",
                    f"{r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB",
                )
            )
        lines.append(
            row(
                "mailer / floor time (target ≤ 1.4×)",
                f"{res['mailer']['seconds'] / res['floor']['seconds']:.2f}×",
            )
        )
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        fns = {"mailer": mailer_send, "floor_sendgrid": floor_sendgrid, "floor_smtp": floor_smtp}
        child(lambda which, *args: fns[which](*args))
    else:
        print("\n".join(main()))

"""Send to N subscribers through the local SendGrid-compatible server and over SMTP,
each beside a floor that does only the unavoidable work."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    SAMPLE,
    SHARED,
    child,
    floor_smtp,
    free_port,
    issue_html,
    make_project,
    measure,
    row,
    run,
    smtp_sink,
    wait_port,
)
from bench.table import Row, at_least, at_most

ISSUE = SAMPLE  # the real issue in ../shared/samples
KEY = "SG.test-key"  # the key ../shared/bench/floor_sendgrid.py sends


def mailer_send(project: str, provider: str, host: str, port: str) -> dict[str, Any]:
    from mailer.config import load_settings
    from mailer.sending import send as core

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


def dkim_cost(n: int = 2000) -> list[str]:
    """What DKIM signing adds per message: the same messages built with and without it."""
    from mailer.compose.dkim import keygen
    from mailer.compose.mailing import IssueMailing, snapshot_of
    from mailer.config import load_settings
    from mailer.content.issue import load_issue
    from mailer.content.render import Renderer
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


@contextlib.contextmanager
def server_cpu() -> Iterator[list[float]]:
    """CPU seconds this process (the stand-in server, here, while a child sends to it)
    spends inside the block; the list holds them afterwards."""
    spent = [0.0]
    before = resource.getrusage(resource.RUSAGE_SELF)
    yield spent
    after = resource.getrusage(resource.RUSAGE_SELF)
    spent[0] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def sendgrid_rows(n_big: int) -> list[Row]:
    """Mailer and ../shared/bench/floor_sendgrid.py against one local SendGrid stand-in."""
    from tests.servers import SendGridServer

    rows: list[Row] = []
    with SendGridServer(KEY) as sg:
        sg.state.keep_bodies = False
        port = str(sg.httpd.server_address[1])
        res: dict[str, dict[str, Any]] = {}
        for n in sorted({10000, 200000, n_big}):
            proj = str(make_project(n, f"send-{n}"))
            with server_cpu() as cpu:
                res[f"mailer {n}"] = measure(
                    "bench_send.py", "mailer", proj, "sendgrid", "127.0.0.1", port
                )
            res[f"mailer {n}"]["server_cpu"] = cpu[0]
            floor = [sys.executable, str(SHARED / "floor_sendgrid.py"), "--port", port]
            with server_cpu() as cpu:
                res[f"floor {n}"] = run([*floor, "--n", str(n), "--threads", "4"])
            res[f"floor {n}"]["server_cpu"] = cpu[0]
            if res[f"mailer {n}"]["sent"] != n:
                raise SystemExit(f"mailer sent {res[f'mailer {n}']['sent']} of {n}")
        m, f = res[f"mailer {n_big}"], res[f"floor {n_big}"]
        rows.append(
            at_most(
                f"SendGrid API, {n_big:,} recipients, batch 1000, concurrency 4 (local stand-in; "
                f"its CPU: {m['server_cpu']:.1f} s on mailer's requests, "
                f"{f['server_cpu']:.1f} s on the floor's)",
                f"{m['wall']:.1f} s",
                f"{f['wall']:.1f} s",
                m["wall"] / f["wall"],
                m["peak_mb"],
                1.3,
            )
        )
        m, f = res["mailer 200000"], res["floor 200000"]
        rows.append(
            at_most(
                "SendGrid, CPU seconds (user) for 200,000 recipients",
                f"{m['user']:.1f} s",
                f"{f['user']:.1f} s",
                m["user"] / f["user"],
                m["peak_mb"],
                1.5,
            )
        )
        small, big = res["mailer 10000"]["peak_mb"], res[f"mailer {n_big}"]["peak_mb"]
        rows.append(
            at_most(
                f"send memory: peak at {n_big:,} / peak at 10,000 (≤ 150 MB)",
                f"{big:.0f} MB",
                f"{small:.0f} MB",
                big / small,
                big,
                1.3,
            )
        )
        rows[-1].passed = rows[-1].passed and big <= 150
    return rows


def smtp_rows(n: int = 10000, n_mailmerge: int = 2000) -> list[Row]:
    """Mailer, ../shared/bench/floor_smtp.py and mailmerge 2.3 to Postfix's smtp-sink."""
    port = free_port()
    sink = subprocess.Popen(
        [smtp_sink(), "-u", "nobody", "-c", f"127.0.0.1:{port}", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        proj = make_project(n, f"smtp-{n}")
        html = issue_html(proj)
        m = measure("bench_send.py", "mailer", str(proj), "smtp", "127.0.0.1", str(port))
        f = floor_smtp(port, n, 4, html)
        rows = [
            at_most(
                f"SMTP, {n:,} messages of a real issue to smtp-sink, 4 connections",
                f"{n / m['wall']:,.0f}/s",
                f"{n / f['wall']:,.0f}/s",
                m["wall"] / f["wall"],
                m["peak_mb"],
                1.3,
            )
        ]
        mm = mailmerge(proj, html, port, n_mailmerge)
        rows.append(
            at_least(
                f"SMTP speed against mailmerge 2.3 ({n_mailmerge:,} messages, one process)",
                f"{n / m['wall']:,.0f}/s",
                f"{n_mailmerge / mm['wall']:,.0f}/s",
                (n / m["wall"]) / (n_mailmerge / mm["wall"]),
                m["peak_mb"],
                5,
            )
        )
        return rows
    finally:
        sink.terminate()
        sink.wait()


def mailmerge(project: Path, html: Path, port: int, n: int) -> dict[str, Any]:
    """mailmerge 2.3 sending the same HTML to n addresses through the same sink."""
    work = project / "mailmerge"
    work.mkdir(exist_ok=True)
    (work / "server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nsecurity = Never\n"
    )
    (work / "template.txt").write_text(
        "TO: {{email}}\nSUBJECT: Weekly issue\nFROM: News <news@example.com>\n"
        "CONTENT-TYPE: text/html\n\n" + html.read_text()
    )
    with (work / "database.csv").open("w") as f:
        f.write("email\n" + "".join(f"user{i}@example{i % 7}.org\n" for i in range(n)))
    exe = str(Path(sys.executable).parent / "mailmerge")
    return run(
        [
            exe,
            "--no-dry-run",
            "--no-limit",
            "--output-format",
            "raw",
            "--template",
            str(work / "template.txt"),
            "--database",
            str(work / "database.csv"),
            "--config",
            str(work / "server.conf"),
        ]
    )


def main() -> list[Row]:
    n_big = int(os.environ.get("BENCH_SEND", "1000000"))
    return sendgrid_rows(n_big) + smtp_rows()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(lambda which, *args: mailer_send(*args))
    else:
        from bench.table import render

        print(render(main()))

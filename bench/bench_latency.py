"""SMTP across a network: mailer and the plain smtplib floor (../shared/bench/floor_smtp.py)
through ../shared/bench/latency_proxy.py in front of Postfix's smtp-sink, at RTT 0, 20 and
100 ms with 4 and 32 connections. The one-round-trip-a-message limit is
connections / RTT; with pipelining (RFC 2920) mailer should come near it.

    .venv/bin/python bench/bench_latency.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import time
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
    smtp_sink,
    wait_port,
)

ISSUE = SAMPLE  # the real issue in ../shared/samples


def mailer_send(root: str, port: str, connections: str) -> dict[str, Any]:
    from mailer.config import load_settings
    from mailer.sending import send as core

    settings = load_settings(
        root,
        {
            "provider": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": int(port),
            "smtp_security": "none",
            "concurrency": int(connections),
        },
    )
    plan = core.plan(settings, ISSUE)
    start = time.perf_counter()
    result = core.run(plan)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "sent": result.sent, "per_second": result.sent / seconds}


def one(rtt_ms: int, connections: int, n: int) -> tuple[float, float]:
    sink_port = free_port()
    procs = [
        subprocess.Popen(
            [smtp_sink(), "-u", "nobody", "-c", f"127.0.0.1:{sink_port}", "256"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    port = sink_port
    if rtt_ms:
        port = free_port()
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(SHARED / "latency_proxy.py"),
                    "--listen",
                    str(port),
                    "--to",
                    f"127.0.0.1:{sink_port}",
                    "--delay-ms",
                    str(rtt_ms / 2),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        wait_port(port)
        root = make_project(n, f"latency-{n}")
        ours = measure("bench_latency.py", str(root), str(port), str(connections))
        floor = floor_smtp(port, n, connections, issue_html(root))
        return float(ours["per_second"]), float(floor["per_second"])
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def sendgrid_send(root: str, url: str) -> dict[str, Any]:
    from mailer.config import load_settings
    from mailer.sending import send as core

    settings = load_settings(
        root,
        {"provider": "sendgrid", "sendgrid_api_key": "SG.bench", "sendgrid_api_host": url},
    )
    plan = core.plan(settings, ISSUE)
    start = time.perf_counter()
    result = core.run(plan)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "sent": result.sent}


def sendgrid(n: int, delay_ms: int = 25) -> None:
    """SendGrid through the proxy: connections opened against the ideal time,
    requests x RTT / concurrency."""
    from tests.servers import SendGridServer

    with SendGridServer("SG.bench") as sg:
        sg.state.keep_bodies = False
        port = free_port()
        proxy = subprocess.Popen(
            [
                sys.executable,
                str(SHARED / "latency_proxy.py"),
                "--listen",
                str(port),
                "--to",
                f"127.0.0.1:{sg.httpd.server_address[1]}",
                "--delay-ms",
                str(delay_ms),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port)
            root = make_project(n, f"latency-{n}")
            sg.state.connections = 0
            r = measure("bench_latency.py", "sendgrid", str(root), f"http://127.0.0.1:{port}")
        finally:
            proxy.terminate()
            proxy.wait()
        requests, rtt, concurrency = len(sg.state.requests), 2 * delay_ms / 1000, 4
        ideal = requests * rtt / concurrency
        print(
            f"| SendGrid, {n:,} recipients, RTT {2 * delay_ms} ms, 4 workers | "
            f"{r['seconds']:.2f} s | {requests} requests, {sg.state.connections} connections "
            f"opened | ideal {ideal:.2f} s (requests x RTT / concurrency) |",
            flush=True,
        )


def main() -> None:
    smtp_sink()
    quick = "--quick" in sys.argv
    print(
        "| RTT | connections | mailer msg/s | floor msg/s (smtplib) | one-RTT limit | mailer % of limit |"
    )
    print("|---|---|---|---|---|---|")
    for rtt in (0, 20, 100):
        for conns in (4, 32):
            limit = conns / (rtt / 1000) if rtt else 0.0
            n = 2000 if not rtt else int(min(max(limit * (4 if quick else 10), 400), 8000))
            ours, floor = one(rtt, conns, n)
            share = f"{100 * ours / limit:.0f} %" if limit else "-"
            print(
                f"| {rtt} ms | {conns} | {ours:,.0f} | {floor:,.0f} | "
                f"{f'{limit:,.0f}' if limit else '-'} | {share} |",
                flush=True,
            )
    print()
    sendgrid(20000 if quick else 100000)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child" and sys.argv[2] == "sendgrid":
        del sys.argv[2]
        child(sendgrid_send)
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(mailer_send)
    else:
        main()

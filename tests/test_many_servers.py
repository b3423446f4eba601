"""Several `mailer serve` processes on one PostgreSQL share the mail queue: one SIGKILLed
in the middle of it loses nothing, and a confirmation goes twice only if it was the very
mail in flight when its process died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailer.config import load_settings
from mailer.store import open_store
from tests.conftest import make_project, postgres_url, wait_until
from tests.servers import SmtpServer, free_port

N = 60


@pytest.fixture
def pg_project(tmp_path: Path) -> Iterator[Path]:
    for url in postgres_url():
        yield make_project(tmp_path, url)


def _serve(project: Path, smtp: SmtpServer) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "MAILER_PROVIDER": "smtp",
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": str(smtp.port),
        "MAILER_SMTP_SECURITY": "none",
    }
    cmd = [sys.executable, "-m", "mailer", "--project", str(project), "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            return False

    wait_until(up, "mailer serve to answer")
    return proc, url


def test_a_killed_server_leaves_its_queue_to_the_other(pg_project: Path) -> None:
    settings = load_settings(pg_project)
    people = [f"reader{i:02d}@example.com" for i in range(N)]
    with open_store(settings) as store:
        for p in people:
            store.queue.signup(p, "", "198.51.100.7", "test")
    with SmtpServer() as smtp:
        smtp.handler.data_delay = 0.05  # a relay a little way off: mails take time
        first, _ = _serve(pg_project, smtp)
        second, _ = _serve(pg_project, smtp)
        try:
            wait_until(lambda: sum(smtp.handler.delivered.values()) >= N // 4, "a quarter sent")
            first.send_signal(signal.SIGKILL)
            first.wait()
            with open_store(settings) as store:
                wait_until(lambda: store.queue.count() == 0, "the queue to drain")
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.terminate()
                proc.communicate(timeout=30)
        delivered = dict(smtp.handler.delivered)
    assert set(delivered) == set(people)  # every confirmation went
    assert sum(n - 1 for n in delivered.values()) <= 1  # twice: at most the one in flight

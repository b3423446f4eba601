"""Kill the sender (SIGKILL, a separate process) at random moments, resume, repeat.

Whatever the moment: nobody gets the issue twice, nobody is missed, and every recipient
whose fate is unknown is listed as ambiguous (and got it at most once).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import Cli, write
from tests.servers import SendGridServer, SmtpServer

ISSUE = "issues/2026-11-20-weekly.md"
N = 400


def start_sender(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailer",
            "--project",
            str(project),
            "send",
            str(project / ISSUE),
            "--yes",
            *args,
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def ledger(project: Path, db_url: str) -> dict[str, str]:
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT s.email, r.state FROM recipients r JOIN subscribers s ON s.id = r.subscriber_id"
            )
        ).all()
    engine.dispose()
    return {email.lower(): state for email, state in rows}


def wait_for(seen: Callable[[], int], target: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the server has received `target` messages, or the sender has exited.

    Kills land on observed progress, not on a timer: the same test on a slow machine
    and a fast one (the poll only looks; it stands in for no event).
    """
    deadline = time.monotonic() + 120
    while seen() < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def kill_and_resume(
    project: Path,
    env: dict[str, str],
    seed: int,
    kills: int,
    db_url: str,
    seen: Callable[[], int],
) -> list[int]:
    rng = random.Random(seed)
    codes = []
    sent_after_kill = []
    for _ in range(kills):
        proc = start_sender(project, env)
        # somewhere in the next stretch of the list: a random number of messages more
        wait_for(seen, seen() + rng.randint(1, N // (kills + 2)), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert "Traceback" not in err, err
        states = ledger(project, db_url).values() if _has_ledger(db_url) else []
        sent_after_kill.append(sum(1 for s in states if s == "sent"))
    # The kills landed mid-send: progress was made, and the list was not finished.
    print("sent after each kill:", sent_after_kill)
    assert any(0 < n < N for n in sent_after_kill), sent_after_kill
    final = start_sender(project, env)
    _, err = final.communicate(timeout=120)
    assert "Traceback" not in err.decode(), err.decode()
    codes.append(final.returncode)
    return codes


def _has_ledger(db_url: str) -> bool:
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        found = sa.inspect(conn).has_table("recipients")
    engine.dispose()
    return found


def check_exactly_once(delivered: dict[str, int], states: dict[str, str]) -> int:
    assert len(states) == N
    assert all(n <= 1 for n in delivered.values()), {e: n for e, n in delivered.items() if n > 1}
    ambiguous = 0
    for email, state in states.items():
        if state == "sent":
            assert delivered.get(email) == 1, (email, state)
        elif state == "ambiguous":
            ambiguous += 1
            assert delivered.get(email, 0) <= 1
        else:
            raise AssertionError(f"{email} left {state}")
    print("ambiguous after the final run:", ambiguous)
    return ambiguous


@pytest.fixture
def listed(run: Cli) -> Cli:
    write(
        run.project / "list.csv", "email\n" + "".join(f"r{i:04d}@example.com\n" for i in range(N))
    )
    assert run("subscribers", "import", str(run.project / "list.csv")).exit_code == 0
    return run


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(keep_messages=False) as server:
        server.handler.data_delay = 0.01
        yield server


@pytest.mark.parametrize("seed", [1, 2])
def test_smtp_sender_killed_at_random_never_twice_never_missed(
    listed: Cli, project: Path, db_url: str, smtp: SmtpServer, seed: int
) -> None:
    env = {
        "MAILER_PROVIDER": "smtp",
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": str(smtp.port),
        "MAILER_SMTP_SECURITY": "none",
        "MAILER_BATCH_SIZE": "25",
        "MAILER_CONCURRENCY": "2",
        "MAILER_RATE_LIMIT": "150",
    }
    delivered = smtp.handler.delivered
    codes = kill_and_resume(
        project, env, seed, kills=5, db_url=db_url, seen=lambda: sum(delivered.values())
    )
    ambiguous = check_exactly_once(dict(delivered), ledger(project, db_url))
    assert codes[-1] == (3 if ambiguous else 0)
    status = json.loads(listed("status", str(project / ISSUE), "--json").output)
    assert (
        status["ambiguous"] == ambiguous
        and status["pending"] == 0
        and status["sent"] == N - ambiguous
    )


def test_sendgrid_sender_killed_at_random_never_twice_never_missed(
    listed: Cli, project: Path, db_url: str
) -> None:
    with SendGridServer() as sg:
        sg.state.keep_bodies = False
        sg.state.latency = 0.08
        env = {
            "MAILER_PROVIDER": "sendgrid",
            "SENDGRID_API_KEY": sg.state.api_key,
            "MAILER_SENDGRID_API_HOST": sg.url,
            "MAILER_BATCH_SIZE": "10",
            "MAILER_CONCURRENCY": "2",
            "MAILER_RATE_LIMIT": "80",
        }
        codes = kill_and_resume(
            project,
            env,
            seed=7,
            kills=6,
            db_url=db_url,
            seen=lambda: sum(sg.state.delivered.values()),
        )
        ambiguous = check_exactly_once(dict(sg.state.delivered), ledger(project, db_url))
        assert codes[-1] == (3 if ambiguous else 0)
        if ambiguous:
            r = listed("send", str(project / ISSUE), "--yes", "--retry-ambiguous", env=env)
            assert r.exit_code == 0, r.output
            assert all(n >= 1 for n in sg.state.delivered.values()) and len(sg.state.delivered) == N


def test_the_audience_is_pinned_across_a_kill(
    run: Cli, project: Path, db_url: str, smtp: SmtpServer
) -> None:
    """Sending to topic:ai, the sender is killed mid-send. Before the resume a newcomer
    takes the topic (not added: the audience was pinned), one reader not yet mailed drops
    it (skipped: they left it), and the resume is run with the same --to."""
    toml = project / "mailer.toml"
    toml.write_text(toml.read_text() + '[topics]\nai = "AI"\nml = "ML"\n')
    rows = "".join(f"r{i:04d}@example.com,{'ai' if i % 2 else 'ml'}\n" for i in range(200))
    write(project / "list.csv", "email,topics\n" + rows)
    assert run("subscribers", "import", str(project / "list.csv")).exit_code == 0
    env = {
        "MAILER_PROVIDER": "smtp",
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": str(smtp.port),
        "MAILER_SMTP_SECURITY": "none",
        "MAILER_BATCH_SIZE": "10",
        "MAILER_CONCURRENCY": "1",
        "MAILER_RATE_LIMIT": "100",
    }
    delivered = smtp.handler.delivered
    proc = start_sender(project, env, "--to", "topic:ai")
    wait_for(lambda: sum(delivered.values()), 30, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()
    states = ledger(project, db_url)
    assert len(states) == 100  # the snapshot: the ai readers only
    unsent = sorted(e for e, s in states.items() if s == "pending")
    assert unsent, "the kill came after the last message"
    leaver = unsent[-1]
    assert run("subscribers", "add", "newcomer@example.com").exit_code == 0
    assert run("subscribers", "topics", "newcomer@example.com", "--add", "ai").exit_code == 0
    assert run("subscribers", "topics", leaver, "--remove", "ai").exit_code == 0
    # Another audience for the resume is refused; the same one resumes.
    other = run("send", str(project / ISSUE), "--yes", "--to", "topic:ml", env=env)
    assert other.exit_code == 1 and "keeps it" in other.output
    final = start_sender(project, env, "--to", "topic:ai")
    _, err = final.communicate(timeout=120)
    assert "Traceback" not in err.decode()
    states = ledger(project, db_url)
    assert "newcomer@example.com" not in states and "newcomer@example.com" not in delivered
    assert states[leaver] == "skipped" and leaver not in delivered
    ai = {f"r{i:04d}@example.com" for i in range(200) if i % 2}
    assert set(delivered) <= ai and all(n == 1 for n in delivered.values())
    for address, state in states.items():
        assert state in ("sent", "ambiguous", "skipped"), (address, state)
        if state == "sent":
            assert delivered.get(address) == 1
    assert len(states) == 100 and list(states.values()).count("skipped") == 1

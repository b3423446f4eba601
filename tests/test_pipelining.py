"""SMTP pipelining (RFC 2920): one round trip a message, and the exactly-once rules kept
per message whatever the server answers or drops inside a pipelined group."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import Cli, write
from tests.scripted_smtp import ScriptedSmtp

ISSUE = "issues/2026-11-20-weekly.md"
N = 25
PEOPLE = [f"p{i:02d}@example.com" for i in range(N)]


@pytest.fixture
def listed(sqlite_project: Path) -> Cli:
    run = Cli(sqlite_project)
    write(sqlite_project / "people.csv", "email\n" + "".join(f"{p}\n" for p in PEOPLE))
    assert run("subscribers", "import", str(sqlite_project / "people.csv")).exit_code == 0
    return run


def send(run: Cli, server: ScriptedSmtp) -> tuple[int, dict[str, object]]:
    r = run(
        "--provider",
        "smtp",
        "--set",
        "smtp_host=127.0.0.1",
        "--set",
        f"smtp_port={server.port}",
        "--set",
        "smtp_security=none",
        "--set",
        "concurrency=1",  # one connection: message numbers follow the list's order
        "send",
        str(run.project / ISSUE),
        "--yes",
    )
    status = json.loads(run("status", str(run.project / ISSUE), "--json").output)
    return r.exit_code, status


def test_one_round_trip_a_message_when_the_server_pipelines(listed: Cli) -> None:
    with ScriptedSmtp(ahead_wait=5.0) as server:
        code, status = send(listed, server)
    assert code == 0 and status["sent"] == N
    assert Counter(server.delivered()) == Counter(PEOPLE)
    # Groups of 10 (10, 10, 5): every message but a group's last had the next message's
    # MAIL, RCPT and DATA in the same write as its final dot.
    assert server.ahead == N - 3
    assert server.connections == 1
    # The ledger is cut in groups, not batch_size (1000): with concurrency 4 each of the
    # 3 groups could go over its own connection.
    assert status["batches"] == {"sent": 3}


def test_a_server_without_pipelining_gets_one_command_at_a_time(listed: Cli) -> None:
    with ScriptedSmtp(pipelining=False) as server:
        code, status = send(listed, server)
    assert code == 0 and status["sent"] == N
    assert Counter(server.delivered()) == Counter(PEOPLE)


def _at(number: int, stage: str, reply: str):  # type: ignore[no-untyped-def]
    return lambda n, s: reply if (n, s) == (number, stage) else None


@pytest.mark.parametrize(
    ("stage", "reply", "sent", "failed", "ambiguous", "bodies_of_3"),
    [
        # Lost before its body left: safe to send again, and it is.
        ("MAIL", "DROP", N, 0, 0, 1),
        ("RCPT", "DROP", N, 0, 0, 1),
        ("DATA", "DROP", N, 0, 0, 1),
        # 4xx anywhere in the group: tried again; 5xx: failed, never assumed sent.
        ("MAIL", "451 4.3.0 try later", N, 0, 0, 1),
        ("RCPT", "451 4.7.1 greylisted", N, 0, 0, 1),
        ("DATA", "451 4.3.0 try later", N, 0, 0, 1),
        ("END", "451 4.3.0 queue full", N, 0, 0, 2),  # refused once, accepted the second time
        ("RCPT", "550 5.1.1 no such user", N - 1, 1, 0, 0),
        ("MAIL", "553 5.7.1 sender refused", N - 1, 1, 0, 0),
        ("END", "554 5.7.1 message rejected", N - 1, 1, 0, 1),
    ],
)
def test_each_reply_in_a_pipelined_group_decides_its_own_message(
    listed: Cli,
    stage: str,
    reply: str,
    sent: int,
    failed: int,
    ambiguous: int,
    bodies_of_3: int,
) -> None:
    third = PEOPLE[2]  # the third MAIL on the one connection
    with ScriptedSmtp(script=_at(3, stage, reply)) as server:
        code, status = send(listed, server)
    assert (status["sent"], status["failed"], status["ambiguous"]) == (sent, failed, ambiguous)
    assert status["pending"] == 0
    assert code == (0 if not failed and not ambiguous else 3)
    delivered = Counter(server.delivered())
    assert set(delivered.values()) <= {1}  # nobody twice
    assert set(delivered) == set(PEOPLE) - ({third} if sent < N else set())
    assert sum(1 for r in server.received if r.rcpt == third) == bodies_of_3
    if ambiguous:
        assert [r["email"] for r in status["ambiguous_recipients"]] == [third]
    if "5.1.1" in reply:
        r = listed("subscribers", "show", third)
        assert "bounced" in r.output


def test_a_server_gone_mid_group_keeps_what_it_took(listed: Cli) -> None:
    """The first message is accepted, then the server hangs up before the second's body
    and accepts no new connection: the first is recorded sent, the rest stay pending, and
    the resume sends each of them once and the first not again."""
    with ScriptedSmtp(script=_at(2, "MAIL", "DROP"), refuse_after=1) as first:
        code, status = send(listed, first)
    assert code == 1
    assert first.delivered() == [PEOPLE[0]]
    assert (status["sent"], status["pending"], status["ambiguous"]) == (1, N - 1, 0)
    with ScriptedSmtp() as second:
        code, status = send(listed, second)
    assert code == 0 and status["sent"] == N
    assert Counter(first.delivered() + second.delivered()) == Counter(PEOPLE)


def test_a_reply_lost_after_the_final_dot_is_ambiguous_for_that_message_only(
    listed: Cli,
) -> None:
    """The server may have message 3. It is listed ambiguous; the messages pipelined behind
    it never had their bodies sent, so they go out (the run stops, as on any unanswered
    request, and the resume sends the rest); nobody gets anything twice."""
    third = PEOPLE[2]
    with ScriptedSmtp(script=_at(3, "END", "DROP")) as server:
        code, status = send(listed, server)
        assert code == 3 and status["ambiguous"] == 1
        assert [r["email"] for r in status["ambiguous_recipients"]] == [third]
        code, status = send(listed, server)  # the resume
    assert (status["sent"], status["ambiguous"], status["pending"]) == (N - 1, 1, 0)
    assert Counter(server.delivered()) == Counter(p for p in PEOPLE if p != third)
    assert [r.rcpt for r in server.received].count(third) == 1  # received once, unanswered


@hsettings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_envelope_addresses_are_quoted_as_smtplib_quotes_them(addr: str) -> None:
    """MAIL FROM and RCPT TO skip smtplib's address parse for a bare address; for any
    printable ASCII string the result is what smtplib.quoteaddr gives."""
    import smtplib

    from mailer.providers.smtp import _angle

    assert _angle(addr) == smtplib.quoteaddr(addr)

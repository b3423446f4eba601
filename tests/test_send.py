"""mailer send through the outbox, SMTP (aiosmtpd) and SendGrid (a local API server)."""

from __future__ import annotations

import email
import email.policy
import gc
import json
import re
import shutil
import subprocess
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.compose.mailing import snapshot_of
from mailer.config import load_settings
from mailer.models import Mailing, Outcome
from mailer.providers import make_provider
from mailer.sending import send as core
from mailer.sending.engine import Sender
from mailer.store import open_store
from tests.conftest import Cli, write
from tests.servers import SendGridServer, SmtpServer

ISSUE = "issues/2026-11-20-weekly.md"


def add_list(run: Cli, *emails: str) -> None:
    rows = "".join(f"{e},Name {i}\n" for i, e in enumerate(emails))
    path = write(run.project / "list.csv", "email,name\n" + rows)
    assert run("subscribers", "import", str(path)).exit_code == 0


def eml_files(project: Path) -> list[Path]:
    return sorted((project / "outbox").rglob("*.eml"))


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_outbox_send_delivers_contract_messages(run: Cli, project: Path) -> None:
    add_list(run, "ann@example.com", "bob@example.com", "cat@example.com")
    run("subscribers", "unsubscribe", "cat@example.com")
    result = run("send", str(project / ISSUE), "--yes")
    assert result.exit_code == 0, result.output
    assert "done: 2 of 2 recipients sent" in result.output
    files = eml_files(project)
    assert len(files) == 2
    for path in files:
        raw = path.read_bytes()
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
        assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF everywhere
        msg = parse(raw)
        for header in (
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "MIME-Version",
        ):
            assert msg[header], header
        assert b"Subject: =?utf-8?" in raw  # RFC 2047: the subject is not ASCII
        assert str(msg["Subject"]) == "本周 AI 周报 · Weekly roundup: small models catch up"
        assert len(msg.get_all("To")) == 1 and "@example.com" in msg["To"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = re.fullmatch(
            r"<(https://news\.example\.com/u/[A-Za-z0-9._-]+)>", msg["List-Unsubscribe"]
        )
        assert url, msg["List-Unsubscribe"]
        assert msg.get_content_type() == "multipart/alternative"
        text, html = [p for p in msg.iter_parts()]
        assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
        assert url.group(1) in text.get_content() and url.group(1) in html.get_content()
        for part in (text, html):
            assert "Example Media, 1 Example Street" in part.get_content()
    assert "cat@example.com" not in " ".join(p.name for p in files)


def test_resend_sends_nothing_twice(run: Cli, project: Path) -> None:
    add_list(run, "ann@example.com", "bob@example.com")
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    first = {p: p.stat().st_mtime_ns for p in eml_files(project)}
    add_list(run, "late@example.com")  # joined after the snapshot: this issue is not theirs
    again = run("send", str(project / ISSUE), "--yes")
    assert again.exit_code == 0
    assert "'2026-11-20-weekly' was already sent: 2 sent, nothing left to send" in again.output
    assert {p: p.stat().st_mtime_ns for p in eml_files(project)} == first


def test_an_undated_issue_is_dated_by_its_first_send(run: Cli, project: Path) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from mailer.store.schema import issue_versions

    add_list(run, "ann@example.com")
    path = write(project / "issues" / "undated.md", "# Undated\n\nNo date anywhere.\n")
    assert run("send", str(path), "--yes").exit_code == 0
    today = dt.datetime.now().date().isoformat()
    (eml,) = (project / "outbox" / "undated").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert re.search(rf'class="mailer-date"[^>]*>{today}<', html)  # the masthead
    settings = load_settings(project)
    with open_store(settings) as store:
        pinned = store.pins.load("undated")
        assert pinned is not None and pinned.snapshot.date == today
        # A resume on another day renders with the pinned day, so it matches the pin.
        with store.engine.begin() as conn:
            conn.execute(sa.update(issue_versions).values(issue_date="2026-01-02"))
    assert core._send_day(settings, "undated") == "2026-01-02"
    plan = core.plan(settings, path)
    assert plan.snapshot is not None and plan.snapshot.date == "2026-01-02"


def test_refuses_without_confirmation_and_dry_run_records_nothing(run: Cli, project: Path) -> None:
    add_list(run, "ann@example.com")
    no = run("send", str(project / ISSUE))
    assert no.exit_code == 1 and "refusing to send without confirmation: pass --yes" in no.output
    dry = run("send", str(project / ISSUE), "--dry-run")
    assert (
        dry.exit_code == 0 and "1 recipients via outbox" in dry.output and "dry run" in dry.output
    )
    assert eml_files(project) == []
    status = run("status", str(project / ISSUE))
    assert status.exit_code == 1 and "has not been sent" in status.output


def test_no_subscribers_and_missing_settings_are_clear(run: Cli, project: Path) -> None:
    r = run("send", str(project / ISSUE), "--yes")
    assert r.exit_code == 1
    assert (
        r.output == "Error: no active subscribers; add some with 'mailer subscribers import FILE'\n"
    )
    toml = project / "mailer.toml"
    toml.write_text(
        toml.read_text().replace(
            'postal_address = "Example Media, 1 Example Street, 10115 Berlin, Germany"', ""
        )
    )
    r = run("send", str(project / ISSUE), "--yes")
    assert r.exit_code == 1
    assert (
        r.output
        == f'Error: missing setting postal_address: set MAILER_POSTAL_ADDRESS or add postal_address = "..." to {toml}\n'
    )
    r = run("send", str(project / ISSUE), "--yes", env={"MAILER_POSTAL_ADDRESS": "PO Box 1"})
    assert "missing setting" not in r.output


def test_test_copies_go_outside_the_ledger(run: Cli, project: Path) -> None:
    add_list(run, "ann@example.com")
    r = run("send", str(project / ISSUE), "--test", "me@example.org")
    assert r.exit_code == 0 and "sent 1 test message(s) via outbox" in r.output
    (path,) = eml_files(project)
    msg = parse(path.read_bytes())
    assert str(msg["Subject"]).startswith("[TEST] ") and msg["To"] == "me@example.org"
    assert run("status", str(project / ISSUE)).exit_code == 1  # nothing recorded


def test_unsubscribe_during_a_send_is_honoured(project: Path, run: Cli) -> None:
    emails = [f"u{i:02d}@example.com" for i in range(30)]
    add_list(run, *emails)
    settings = load_settings(project, {"batch_size": 10, "concurrency": 1})
    plan = core.plan(settings, project / ISSUE)
    store = open_store(settings)
    assert plan.snapshot is not None
    pinned = store.pins.pin(plan.slug, plan.snapshot, 10)
    issue_id = pinned.issue_id
    provider = make_provider(settings)

    class UnsubscribingProvider:
        name, group_size, batched = "outbox", 5, False

        def session(self):  # type: ignore[no-untyped-def]
            inner = provider.session()

            class S:
                def send(self, mailing: Mailing, group):  # type: ignore[no-untyped-def]
                    out: Outcome = inner.send(mailing, group)
                    store.subscribers.unsubscribe("u29@example.com", "test")  # mid-send
                    return out

                def close(self) -> None:
                    inner.close()

            return S()

    mailing = core.mailing_for(settings, pinned)
    result = Sender(store.ledger, UnsubscribingProvider(), mailing, settings).run()
    assert result.sent == 29
    counts = store.ledger.counts(issue_id)
    assert counts.skipped == 1 and counts.sent == 29
    assert not any("u29@" in p.name for p in eml_files(project))
    store.close()


# -- SMTP ---------------------------------------------------------------------------------


def smtp_env(server: SmtpServer) -> dict[str, str]:
    return {
        "MAILER_PROVIDER": "smtp",
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": str(server.port),
        "MAILER_SMTP_SECURITY": "none",
    }


def test_smtp_send_retries_4xx_and_bounces_5_1_1(run: Cli, project: Path, smtp: SmtpServer) -> None:
    add_list(
        run, "ann@example.com", "temp-bob@example.com", "dead-cat@example.com", "dan@example.com"
    )
    r = run("send", str(project / ISSUE), "--yes", env=smtp_env(smtp))
    assert r.exit_code == 3, r.output
    assert smtp.handler.delivered == {
        "ann@example.com": 1,
        "temp-bob@example.com": 1,
        "dan@example.com": 1,
    }
    status = json.loads(run("status", str(project / ISSUE), "--json").output)
    assert (
        status["recipients"],
        status["sent"],
        status["failed"],
        status["pending"],
        status["ambiguous"],
    ) == (4, 3, 1, 0, 0)
    assert "550 5.1.1" in status["failed_recipients"][0]["error"]
    assert "status:   bounced" in run("subscribers", "show", "dead-cat@example.com").output
    for msg in smtp.handler.parsed():
        assert msg["List-Unsubscribe"].startswith("<https://news.example.com/u/")


def test_smtp_login_refused_is_one_line_and_ledger_intact(run: Cli, project: Path) -> None:
    with SmtpServer(auth=("user", "right")) as server:
        add_list(run, "ann@example.com")
        env = {**smtp_env(server), "MAILER_SMTP_USERNAME": "user", "MAILER_SMTP_PASSWORD": "wrong"}
        r = run("send", str(project / ISSUE), "--yes", env=env)
        assert r.exit_code == 1
        assert (
            "refused the login for 'user' (535); check smtp_username and smtp_password" in r.output
        )
        assert server.handler.delivered == {}
        env["MAILER_SMTP_PASSWORD"] = "right"
        assert run("send", str(project / ISSUE), "--yes", env=env).exit_code == 0
        assert server.handler.delivered == {"ann@example.com": 1}


def test_smtp_unreachable_stops_with_everything_pending(run: Cli, project: Path) -> None:
    add_list(run, "ann@example.com", "bob@example.com")
    env = {
        "MAILER_PROVIDER": "smtp",
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": "1",
        "MAILER_SMTP_SECURITY": "none",
    }
    r = run("send", str(project / ISSUE), "--yes", env=env)
    assert r.exit_code == 1 and "cannot connect to SMTP server 127.0.0.1:1" in r.output
    status = json.loads(run("status", str(project / ISSUE), "--json").output)
    assert (status["pending"], status["sent"], status["ambiguous"]) == (2, 0, 0)


# -- SendGrid -----------------------------------------------------------------------------


def sg_env(server: SendGridServer, **more: str) -> dict[str, str]:
    return {
        "MAILER_PROVIDER": "sendgrid",
        "SENDGRID_API_KEY": server.state.api_key,
        "MAILER_SENDGRID_API_HOST": server.url,
        "MAILER_SENDGRID_TIMEOUT": "1",
        **more,
    }


def test_sendgrid_request_shape(run: Cli, project: Path, sendgrid: SendGridServer) -> None:
    emails = [f"u{i:04d}@example.com" for i in range(1500)]
    add_list(run, *emails)
    r = run("send", str(project / ISSUE), "--yes", env=sg_env(sendgrid))
    assert r.exit_code == 0, r.output
    assert gc.get_freeze_count() == 0  # the send froze the heap while it ran, and only then
    reqs = sendgrid.state.requests
    assert sorted(len(q["personalizations"]) for q in reqs) == [500, 1000]
    assert set(sendgrid.state.delivered.values()) == {1} and len(sendgrid.state.delivered) == 1500
    body = reqs[0]
    p = body["personalizations"][0]
    assert len(p["to"]) == 1
    # SendGrid merges the message level's headers and custom_args into each personalization
    custom_args = {**body["custom_args"], **p["custom_args"]}
    assert set(custom_args) == {"mailer_issue", "mailer_subscriber"}
    assert "@" not in json.dumps(custom_args)  # ids only, never the address
    assert p["headers"]["List-Unsubscribe"].startswith("<https://news.example.com/u/")
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Unsubscribe-Post" not in p["headers"]  # said once, not a thousand times
    url = p["headers"]["List-Unsubscribe"][1:-1]
    # only the fields the templates use; values that read the same escaped share one key
    assert p["substitutions"] == {
        "__MAILER_UNSUBSCRIBE_URL__": url,
        "__MAILER_EMAIL__": p["to"][0]["email"],
    }
    for part in body["content"]:
        assert "__MAILER_UNSUBSCRIBE_URL__" in part["value"] and "__MAILER_EMAIL__" in part["value"]
    assert body["headers"]["List-Id"]
    status = json.loads(run("status", str(project / ISSUE), "--json").output)
    assert status["sent"] == 1500 and status["batches"] == {"sent": 2}


def test_sendgrid_requests_share_one_kept_alive_connection_per_worker(
    run: Cli, project: Path, sendgrid: SendGridServer
) -> None:
    """The sendgrid package's client would open a connection (over TLS, two or three round
    trips) for every request; each worker keeps one."""
    add_list(run, *(f"k{i:04d}@example.com" for i in range(2500)))
    env = sg_env(sendgrid, MAILER_CONCURRENCY="1", MAILER_BATCH_SIZE="500")
    r = run("send", str(project / ISSUE), "--yes", env=env)
    assert r.exit_code == 0, r.output
    assert len(sendgrid.state.requests) == 5
    assert sendgrid.state.connections == 1


def test_sendgrid_text_part_gets_unescaped_values(
    run: Cli, project: Path, sendgrid: SendGridServer
) -> None:
    add_list(run, "plain@example.com", "tom&jerry@example.com")
    assert run("send", str(project / ISSUE), "--yes", env=sg_env(sendgrid)).exit_code == 0
    (body,) = sendgrid.state.requests
    text, html = body["content"][0]["value"], body["content"][1]["value"]
    assert "__MAILER_EMAIL_TEXT__" in text and "__MAILER_EMAIL__" in html
    tom = next(
        p for p in body["personalizations"] if p["to"][0]["email"] == "tom&jerry@example.com"
    )
    assert tom["substitutions"]["__MAILER_EMAIL__"] == "tom&amp;jerry@example.com"
    assert tom["substitutions"]["__MAILER_EMAIL_TEXT__"] == "tom&jerry@example.com"


def test_sendgrid_retries_429_and_5xx(run: Cli, project: Path, sendgrid: SendGridServer) -> None:
    add_list(run, "ann@example.com", "bob@example.com")
    sendgrid.state.script = ["429", "500", "503"]
    r = run("send", str(project / ISSUE), "--yes", env=sg_env(sendgrid))
    assert r.exit_code == 0, r.output
    assert sendgrid.state.delivered == {"ann@example.com": 1, "bob@example.com": 1}


def test_sendgrid_bad_key_is_one_line_nothing_lost(
    run: Cli, project: Path, sendgrid: SendGridServer
) -> None:
    add_list(run, "ann@example.com")
    r = run(
        "send",
        str(project / ISSUE),
        "--yes",
        env={**sg_env(sendgrid), "SENDGRID_API_KEY": "SG.wrong"},
    )
    assert r.exit_code == 1
    assert (
        "SendGrid refused the request (401): request: The provided authorization grant is invalid, expired, or revoked; check sendgrid_api_key (SENDGRID_API_KEY)"
        in r.output
    )
    assert json.loads(run("status", str(project / ISSUE), "--json").output)["pending"] == 1
    assert run("send", str(project / ISSUE), "--yes", env=sg_env(sendgrid)).exit_code == 0
    assert sendgrid.state.delivered == {"ann@example.com": 1}


def test_sendgrid_400_shows_its_error_fields(
    run: Cli, project: Path, sendgrid: SendGridServer
) -> None:
    add_list(run, "ann@example.com")
    sendgrid.state.script = ["400"]
    r = run("send", str(project / ISSUE), "--yes", env=sg_env(sendgrid))
    assert r.exit_code == 1
    assert (
        "SendGrid refused the request (400): from.email: The from address does not match a verified Sender Identity."
        in r.output
    )


@pytest.mark.parametrize("answer", ["close", "stall"])
def test_sendgrid_unanswered_request_is_ambiguous_never_resent(
    run: Cli, project: Path, sendgrid: SendGridServer, answer: str
) -> None:
    add_list(run, "ann@example.com", "bob@example.com")
    sendgrid.state.script = [answer]
    sendgrid.state.stall_seconds = 2.0
    r = run("send", str(project / ISSUE), "--yes", env=sg_env(sendgrid))
    assert r.exit_code == 3, r.output
    status = run("status", str(project / ISSUE))
    assert "ambiguous  2" in status.output and "ambiguous: batch 0 ann@example.com" in status.output
    again = run("send", str(project / ISSUE), "--yes", env=sg_env(sendgrid))
    assert again.exit_code == 3 and sendgrid.state.delivered == {
        "ann@example.com": 1,
        "bob@example.com": 1,
    }
    retry = run("send", str(project / ISSUE), "--yes", "--retry-ambiguous", env=sg_env(sendgrid))
    assert retry.exit_code == 0, retry.output
    assert sendgrid.state.delivered == {"ann@example.com": 2, "bob@example.com": 2}  # on purpose


def test_two_senders_share_one_issue(project: Path, run: Cli, sendgrid: SendGridServer) -> None:
    emails = [f"u{i:04d}@example.com" for i in range(600)]
    add_list(run, *emails)
    settings = load_settings(
        project,
        {
            "provider": "sendgrid",
            "sendgrid_api_key": sendgrid.state.api_key,
            "sendgrid_api_host": sendgrid.url,
            "batch_size": 20,
            "concurrency": 1,
        },
    )
    # Each sender has one connection; the server holds the first request until a second
    # arrives, which can only come from the other sender: both really send, however slow.
    sendgrid.state.rendezvous = threading.Barrier(2)
    plan = core.plan(settings, project / ISSUE)
    assert plan.snapshot is not None
    with open_store(settings) as store:
        store.pins.pin(plan.slug, plan.snapshot, 20)
    results = []

    def one_sender() -> None:
        results.append(core.run(core.plan(settings, project / ISSUE)))

    threads = [threading.Thread(target=one_sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.sent for r in results) == 600 and all(r.sent > 0 for r in results)
    assert len(sendgrid.state.delivered) == 600 and set(sendgrid.state.delivered.values()) == {1}


@pytest.mark.skipif(
    shutil.which("spamassassin") is None,
    reason="spamassassin is not installed (apt-get install spamassassin)",
)
def test_spamassassin_scores_real_issues_low(run: Cli, project: Path, sample_issue: Path) -> None:
    add_list(run, "ann@example.com")
    for issue in (project / ISSUE, sample_issue):
        assert run("send", str(issue), "--yes").exit_code == 0
    for path in eml_files(project):
        report = subprocess.run(
            ["spamassassin", "-L", "-t"], input=path.read_bytes(), capture_output=True, timeout=120
        ).stdout.decode("utf-8", "replace")  # the report quotes the message's own bytes
        score = float(
            re.search(r"Content analysis details:\s+\((-?[\d.]+) points", report).group(1)
        )  # type: ignore[union-attr]
        assert score <= 0.5, report


def test_smtp_dropped_connections_are_reopened(
    run: Cli, project: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailer.providers.smtp as smtp_provider

    monkeypatch.setattr(smtp_provider, "BACKOFF", 0.01)
    add_list(run, "ann@example.com", "drop-bob@example.com", "cat@example.com")
    r = run(
        "send", str(project / ISSUE), "--yes", env={**smtp_env(smtp), "MAILER_CONCURRENCY": "1"}
    )
    assert r.exit_code == 3, r.output
    # the server hung up on bob every time; the connection was reopened for the others
    assert smtp.handler.delivered == {"ann@example.com": 1, "cat@example.com": 1}
    status = json.loads(run("status", str(project / ISSUE), "--json").output)
    assert (
        status["failed"] == 1
        and "connection lost before DATA" in status["failed_recipients"][0]["error"]
    )


def test_sendgrid_request_covers_every_placeholder_the_templates_use(
    project: Path, run: Cli
) -> None:
    """Whatever mix of fields the HTML and text templates use, every token in the content
    has a substitution, and each part gets its own escaping."""
    from mailer.compose.mailing import IssueMailing
    from mailer.content.issue import load_issue
    from mailer.content.placeholders import TOKENS
    from mailer.content.render import Renderer
    from mailer.models import Recipient
    from mailer.providers.sendgrid.body import TEXT_KEYS, build_request

    txt = project / "templates" / "newsletter.txt.j2"
    txt.write_text("Hi {{ name }}!\n" + txt.read_text())  # name in the text part only
    settings = load_settings(project)
    rendered = Renderer(settings).render(load_issue(project / ISSUE))
    mailing = IssueMailing(settings, snapshot_of(settings, rendered), slug="s", issue_id=1, ref=1)
    group = [Recipient(1, "a@example.com", "Ann & Bo"), Recipient(2, "tom&jerry@example.com", "")]
    body = build_request(mailing, group)
    text, html = body["content"][0]["value"], body["content"][1]["value"]
    for p in body["personalizations"]:
        subs = p["substitutions"]
        for part in (text, html):
            for token in [*TOKENS.values(), *TEXT_KEYS.values()]:
                if token in part:
                    assert token in subs, token
    ann = body["personalizations"][0]["substitutions"]
    assert "Hi __MAILER_NAME__!" in text and ann["__MAILER_NAME__"] == "Ann & Bo"  # text: unescaped
    assert (
        body["personalizations"][1]["substitutions"]["__MAILER_EMAIL__"]
        == "tom&amp;jerry@example.com"
    )

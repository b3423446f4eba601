"""mailer suppressions sync (against a local SendGrid server) and mailer report."""

from __future__ import annotations

import json
from pathlib import Path

from mailer.config import load_settings
from mailer.feedback.apply import Rules, apply_batch
from mailer.providers.sendgrid.webhook import parse
from mailer.store import open_store
from tests.conftest import Cli, write
from tests.servers import SendGridServer

ISSUE = "issues/2026-11-20-weekly.md"


def env(server: SendGridServer) -> dict[str, str]:
    return {"SENDGRID_API_KEY": server.state.api_key, "MAILER_SENDGRID_API_HOST": server.url}


def test_sync_applies_every_list_paginated(
    run: Cli, project: Path, sendgrid: SendGridServer
) -> None:
    many = [f"u{i:04d}@example.com" for i in range(600)]
    write(
        project / "l.csv",
        "email\n"
        + "\n".join([*many, "b@example.com", "s@example.com", "i@example.com", "keep@example.com"])
        + "\n",
    )
    run("subscribers", "import", str(project / "l.csv"))
    sendgrid.state.suppressions = {
        "/v3/suppression/unsubscribes": [{"email": e, "created": 1} for e in many]
        + [{"email": "stranger@example.com"}],
        "/v3/suppression/bounces": [{"email": "B@example.com", "reason": "550", "status": "5.1.1"}],
        "/v3/suppression/spam_reports": [{"email": "s@example.com"}],
        "/v3/suppression/invalid_emails": [
            {
                "email": "i@example.com",
                "reason": "Mail domain mentioned in email address is unknown",
            }
        ],
    }
    dry = run("suppressions", "sync", "--dry-run", env=env(sendgrid))
    assert dry.exit_code == 0, dry.output
    assert (
        "unsubscribes: 601 at SendGrid, would change 600, already suppressed 0, not on the list 1"
        in dry.output
    )
    assert run("subscribers", "count", "--status", "active").stdout == "604\n"
    r = run("suppressions", "sync", env=env(sendgrid))
    assert (
        "bounces: 1 at SendGrid, changed 1" in r.output
        and "spam_reports: 1 at SendGrid, changed 1" in r.output
    )
    assert run("subscribers", "count", "--status", "active").stdout == "1\n"
    again = run("suppressions", "sync", env=env(sendgrid))
    assert "unsubscribes: 601 at SendGrid, changed 0, already suppressed 600" in again.output
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    assert [p.name for p in (project / "outbox").rglob("*.eml")] == [
        next(p.name for p in (project / "outbox").rglob("*keep@example.com.eml"))
    ]


def test_sync_with_a_bad_key_is_one_line(run: Cli, sendgrid: SendGridServer) -> None:
    r = run("suppressions", "sync", env={**env(sendgrid), "SENDGRID_API_KEY": "SG.bad"})
    assert r.exit_code == 1 and r.output.startswith("Error: SendGrid refused the request (401)")


def test_report_counts_unique_events_and_top_links(run: Cli, project: Path) -> None:
    write(project / "l.csv", "email\na@example.com\nb@example.com\nc@example.com\n")
    run("subscribers", "import", str(project / "l.csv"))
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    settings = load_settings(project)
    with open_store(settings) as store:
        iid = store.pins.find("2026-11-20-weekly").id  # type: ignore[union-attr]
        ids = {
            e: store.subscribers.require(e).id
            for e in ("a@example.com", "b@example.com", "c@example.com")
        }
        raw = [
            {
                "event": "delivered",
                "email": e,
                "sg_event_id": f"d{e}",
                "mailer_issue": iid,
                "mailer_subscriber": ids[e],
            }
            for e in ids
        ] + [
            {
                "event": "open",
                "email": "a@example.com",
                "sg_event_id": "o1",
                "mailer_issue": iid,
                "mailer_subscriber": ids["a@example.com"],
            },
            {
                "event": "open",
                "email": "a@example.com",
                "sg_event_id": "o2",
                "mailer_issue": iid,
                "mailer_subscriber": ids["a@example.com"],
            },
            {
                "event": "click",
                "email": "a@example.com",
                "sg_event_id": "c1",
                "url": "https://example.com/x",
                "mailer_issue": iid,
                "mailer_subscriber": ids["a@example.com"],
            },
            {
                "event": "click",
                "email": "b@example.com",
                "sg_event_id": "c2",
                "url": "https://example.com/x",
                "mailer_issue": iid,
                "mailer_subscriber": ids["b@example.com"],
            },
            {
                "event": "click",
                "email": "b@example.com",
                "sg_event_id": "c3",
                "url": "https://example.com/y",
                "mailer_issue": iid,
                "mailer_subscriber": ids["b@example.com"],
            },
            {
                "event": "spamreport",
                "email": "c@example.com",
                "sg_event_id": "s1",
                "mailer_issue": iid,
                "mailer_subscriber": ids["c@example.com"],
            },
        ]
        apply_batch(store.engine, parse(json.dumps(raw).encode())[0], Rules())
    r = json.loads(run("report", str(project / ISSUE), "--json").output)
    assert (
        r["recipients"],
        r["sent"],
        r["delivered"],
        r["opened"],
        r["clicked"],
        r["complained"],
    ) == (3, 3, 3, 1, 2, 1)
    assert r["top_links"] == [
        {"url": "https://example.com/x", "clicks": 2},
        {"url": "https://example.com/y", "clicks": 1},
    ]
    assert "delivered     3" in run("report", str(project / ISSUE)).output


def test_a_database_that_fails_is_an_error_never_not_on_the_list(
    run: Cli, project: Path, sendgrid: SendGridServer
) -> None:
    """Before, a lookup that raised counted the address as 'not on the list'."""
    import sqlalchemy as sa

    run("subscribers", "add", "gone@example.com")
    sendgrid.state.suppressions = {"/v3/suppression/bounces": [{"email": "gone@example.com"}]}
    with open_store(load_settings(project)) as store, store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE events"))  # the database breaks under the sync
    r = run("suppressions", "sync", env=env(sendgrid))
    assert r.exit_code == 1 and r.output.startswith("Error: the database failed:"), r.output
    assert "not on the list" not in r.output

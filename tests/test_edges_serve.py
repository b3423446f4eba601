"""mailer serve under hostile input: a correct status for everything, never a 500 or a leak."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from mailer.config import Settings, load_settings
from mailer.errors import ConfigError
from mailer.store import Store
from mailer.web.http import redact
from mailer.web.serve import create_app
from tests.conftest import Cli, wait_until
from tests.servers import free_port, run_uvicorn
from tests.web import PUBLIC, drain, events, signed

SETTINGS = {"sendgrid_webhook_public_key": PUBLIC}  # read by conftest's settings fixture


# -- the webhook -----------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["1" * 400, "9" * 5000, "²", "-1", "1e9", " 1", ""])
def test_webhook_timestamps_are_parsed_strictly(client: TestClient, stamp: str) -> None:
    body = events({"event": "bounce", "email": "a@example.com"})
    headers: dict[str, Any] = {**signed(body)}
    headers["X-Twilio-Email-Event-Webhook-Timestamp"] = stamp.encode("utf-8")  # raw bytes
    r = client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert r.status_code == 401


def test_webhook_checks_headers_before_reading_a_big_body(client: TestClient) -> None:
    body = b"[" + b" " * (8 * 1024 * 1024 - 10) + b"]"
    r = client.post(
        "/webhooks/sendgrid", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 401 and r.text == "missing signature"


def test_one_bad_event_never_fails_the_batch(client: TestClient, store: Store) -> None:
    sid = store.subscribers.add("b@example.com")[0].id
    bad: list[Any] = [
        {"event": "click", "url": "\ud800x", "sg_event_id": "s1", "email": "b@example.com"},
        {"event": "open", "useragent": "a\x00b", "sg_event_id": "s2", "email": "b@example.com"},
        {"event": "open", "sg_event_id": "s3", "x": float("nan")},
        {"event": "open", "sg_event_id": "s4", "mailer_subscriber": str(2**40)},
        {"event": "open", "sg_event_id": "s5", "nest": json.loads("[" * 60 + "]" * 60)},
        {"event": "open", "sg_event_id": {"not": "a string"}},
    ]
    good = {
        "event": "bounce",
        "email": "b@example.com",
        "sg_event_id": "real-bounce",
        "mailer_subscriber": str(sid),
    }
    body = json.dumps([*bad, good], allow_nan=True).encode()
    r = client.post("/webhooks/sendgrid", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    assert r.text.startswith("recorded ") and ", rejected " in r.text
    assert store.subscribers.require("b@example.com").status == "bounced"


@pytest.mark.parametrize("depth", [40, 1000, 5000, 50000])
def test_one_deep_event_is_rejected_alone(client: TestClient, store: Store, depth: int) -> None:
    """An event nested past what can be stored (or parsed at all) costs only itself: the
    real events beside it are applied."""
    ann = store.subscribers.add("ann@example.com")[0].id
    bob = store.subscribers.add("bob@example.com")[0].id
    deep = "[" * depth + "]" * depth
    body = (
        "["
        + json.dumps(
            {
                "event": "spamreport",
                "email": "ann@example.com",
                "sg_event_id": "r1",
                "mailer_subscriber": str(ann),
            }
        )
        + ',{"event": "brand_new", "sg_event_id": "d1", "email": "x@example.com", "n": '
        + deep
        + "},"
        + json.dumps(
            {
                "event": "bounce",
                "email": "bob@example.com",
                "sg_event_id": "r2",
                "mailer_subscriber": str(bob),
                "reason": "550 [x] {y}",
            }
        )
        + "]"
    ).encode()
    r = client.post("/webhooks/sendgrid", content=body, headers=signed(body))
    assert r.status_code == 200 and r.text == "recorded 2, duplicates 0, rejected 1", r.text
    assert store.subscribers.require("ann@example.com").status == "complained"
    assert store.subscribers.require("bob@example.com").status == "bounced"


def test_a_body_nested_past_any_parser_is_a_400(client: TestClient) -> None:
    body = b"[" * 100000
    assert client.post("/webhooks/sendgrid", content=body, headers=signed(body)).status_code == 400


def test_a_malformed_webhook_key_stops_serve_at_start(settings: Settings, store: Store) -> None:
    broken = load_settings(settings.project, {"sendgrid_webhook_public_key": "bm90IGEga2V5"})
    with pytest.raises(ConfigError, match="sendgrid_webhook_public_key is not a base64 DER"):
        create_app(broken, store)
    r = Cli(settings.project)("--set", "sendgrid_webhook_public_key=%%%", "serve")
    assert r.exit_code == 1 and r.output.startswith("Error: sendgrid_webhook_public_key ")


# -- sign-ups ------------------------------------------------------------------------------


def test_subscribe_answers_the_same_for_everyone_even_with_the_provider_down(
    project: Path, store: Store
) -> None:
    from mailer.models import Actor, SubscriberStatus

    store.subscribers.add("active@example.com")
    gone = store.subscribers.add("gone@example.com")[0]
    store.subscribers.set_status(gone.id, SubscriberStatus.COMPLAINED, Actor.PROVIDER, "t")
    dead_port = free_port()  # nothing listens: every send fails
    down = load_settings(
        project,
        {
            "provider": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": dead_port,
            "smtp_security": "none",
            "smtp_timeout": 2,
        },
    )
    app = create_app(down, store, background=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        answers = []
        for address in ("new@example.com", "active@example.com", "gone@example.com"):
            r = c.post("/subscribe", data={"email": address})
            answers.append((r.status_code, r.text.replace(address[0] + "•••", "X•••")))
        assert len(set(answers)) == 1 and answers[0][0] == 200
        drain(c)  # the provider is down: the confirmations wait in the queue
    # the new address, and the complained one: a sign-up on the form is a new consent
    assert store.queue.count() == 2
    with store.engine.begin() as conn:  # its retry comes due now
        conn.exec_driver_sql("UPDATE mail_queue SET next_at = '2000-01-01 00:00:00'")
    up = create_app(load_settings(project), store, background=False)
    with TestClient(up) as c:
        drain(c)
    assert store.queue.count() == 0
    mails = sorted(p.name for p in (project / "outbox" / "confirmations").glob("*.eml"))
    assert len(mails) == 2 and not any("active@example.com" in m for m in mails)
    assert {"new@example.com", "gone@example.com"} == {m.rsplit("-", 1)[1][:-4] for m in mails}


def test_concurrent_subscribes_and_long_forwarded_for(settings: Settings, store: Store) -> None:
    """Live, through uvicorn (which trusts X-Forwarded-For from 127.0.0.1), with the
    background thread sending: many sign-ups for one address at once, one subscriber."""
    server = run_uvicorn(create_app(settings, store))
    url = next(server)
    try:
        start = threading.Barrier(6)
        codes: list[int] = []

        def post() -> None:
            with httpx.Client(base_url=url) as http:
                start.wait()
                r = http.post(
                    "/subscribe",
                    data={"email": "same@example.com"},
                    headers={"X-Forwarded-For": "1" * 300},
                )
                codes.append(r.status_code)

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(set(codes)) <= [200, 429] and 200 in codes
        # the background thread drains what the pages queued
        wait_until(lambda: not store.queue.count(), "the mail queue to drain")
        with store.engine.connect() as conn:
            left = conn.exec_driver_sql(
                "SELECT attempts, last_error, next_at FROM mail_queue"
            ).all()
        assert not left, left
        s = store.subscribers.require("same@example.com")
        assert s.status == "pending" and len(s.consent_source or "") > 0
    finally:
        server.close()


# -- logs and headers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,shown",
    [
        ("//u/1.2a.3.AbCdEfGhIjKlMnOp", "//u/{redacted}"),
        ("/news/u/4.5f.6.QRSTuvwxyz0123456789abc", "/news/u/{redacted}"),
        ("/subscribe/ada@example.com", "/subscribe/{redacted}"),
        ("/x/ada%40example.com", "/x/{redacted}"),
        ("/confirm/" + "A" * 60, "/confirm/{redacted}"),
        ("/healthz", "/healthz"),
    ],
)
def test_the_access_log_redacts_by_shape(
    client: TestClient, caplog: pytest.LogCaptureFixture, path: str, shown: str
) -> None:
    assert redact(path) == shown
    with caplog.at_level(logging.INFO, logger="mailer.access"):
        client.get(path)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert logged.startswith("GET /") and "ada" not in logged and "AbCd" not in logged
    assert "AAAAAAAA" not in logged and "QRST" not in logged


def test_pages_with_buttons_cannot_be_framed(client: TestClient) -> None:
    r = client.get("/subscribe")
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_a_dead_database_is_a_503_not_a_500(
    client: TestClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.subscribers.add("ann@example.com")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE mail_queue")
    with caplog.at_level(logging.INFO, logger="mailer.access"):
        r = client.post("/subscribe", data={"email": "ann@example.com"})
    assert r.status_code == 503
    logged = " ".join(rec.getMessage() for rec in caplog.records)
    assert "ann@" not in logged and "Traceback" not in logged


def test_report_counts_people_not_events(
    client: TestClient, settings: Settings, store: Store, run: Cli, project: Path
) -> None:
    from tests.web import url_for

    for e in ("a@example.com", "b@example.com"):
        store.subscribers.add(e)
    issue = project / "issues" / "2026-11-20-weekly.md"
    assert run("send", str(issue), "--yes").exit_code == 0
    from mailer.tokens import issue_ref

    ref = issue_ref("2026-11-20-weekly")
    issue_id = store.pins.find("2026-11-20-weekly").id  # type: ignore[union-attr]
    a = store.subscribers.require("a@example.com")
    client.post(
        url_for(settings, store, "a@example.com", ref), data={"List-Unsubscribe": "One-Click"}
    )
    body = events(
        {
            "event": "group_unsubscribe",
            "email": "a@example.com",
            "sg_event_id": "g1",
            "mailer_issue": str(issue_id),
            "mailer_subscriber": str(a.id),
        }
    )
    client.post("/webhooks/sendgrid", content=body, headers=signed(body))
    report = json.loads(run("report", str(issue), "--json").output)
    assert report["unsubscribed"] == 1 and report["recipients"] == 2
    shown = run("subscribers", "show", "a@example.com").output
    assert "issue 2026-11-20-weekly" in shown and "issue ref" not in shown  # as the owner knows it


# -- the fuzz test ---------------------------------------------------------------------

FUZZ_EXAMPLES = 1500
SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "u",
            "confirm",
            "resubscribe",
            "subscribe",
            "webhooks",
            "sendgrid",
            "healthz",
            "archive",
            "media",
            "feed.xml",
            "manage",
            "preferences",
            "l",
            "stats",
            "challenge",
            "altcha.js",
            "zh-CN",
            "\x00",
            "\n",
            "",
            ".",
            "..",
        ]
    ),
    st.text(min_size=0, max_size=40),
)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "Content-Type",
            "Content-Length",
            "X-Forwarded-For",
            "User-Agent",
            "X-Twilio-Email-Event-Webhook-Signature",
            "X-Twilio-Email-Event-Webhook-Timestamp",
            "Host",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    max_size=4,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.just(b"List-Unsubscribe=One-Click"),
    st.builds(lambda e: f"email={e}".encode(), st.text(max_size=60)),
    st.builds(
        lambda v: json.dumps(v).encode(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ),
    ),
)


PUBLIC_PATHS = [
    "/webhooks/sendgrid",
    "/subscribe",
    "/healthz",
    "/archive/",
    "/archive/%00/",
    "/archive/%00/zh-CN/",
    "/archive/2026-11-20-weekly/%00/",
    "/archive/a%0ab/",
    "/archive/%1b%5b2J/",
    "/archive/" + "a" * 300 + "/",
    "/feed.xml",
    "/media/%00.png",
    "/media/0123456789abcdef0123.png",
    "/media/0123456789abcdef012%00.png",
    "/l/%00",
    "/l/1.2.3",
    "/manage",
    "/stats",
    "/stats?token=%00",
]


def test_every_public_path_a_nul_or_control_can_reach_is_a_4xx(
    client: TestClient, store: Store
) -> None:
    for path in PUBLIC_PATHS[3:]:
        r = client.get(path)
        assert r.status_code < 500, (path, r.status_code)
        if "%00" in path or "%0a" in path or "%1b" in path:
            assert r.status_code == 404, (path, r.status_code)


@pytest.mark.parametrize("raw", ["%0a", "%0d%0a", "%1b%5b2J", "%07", "%e2%80%ae", "%c2%85"])
def test_the_access_log_escapes_control_characters(
    client: TestClient, caplog: pytest.LogCaptureFixture, raw: str
) -> None:
    with caplog.at_level(logging.INFO, logger="mailer.access"):
        client.get(f"/archive/x{raw}GET /forged 200/")
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.isprintable() and "\u202e" not in line, line
    assert line.startswith("GET /archive/x\\") and line.endswith("ms"), line


def test_fuzz_serve_never_answers_500(client: TestClient, settings: Settings, store: Store) -> None:
    """Thousands of generated requests (paths, methods, headers, bodies, real and forged
    tokens): every answer is a deliberate status, never a 500."""
    from mailer.tokens import confirm_signer, unsubscribe_signer

    ann = store.subscribers.add("ann@example.com")[0]
    real = [
        "/u/" + unsubscribe_signer(settings.secret_key).sign(ann.id, ann.nonce, 1),
        "/confirm/" + confirm_signer(settings.secret_key).sign(ann.id, ann.nonce, 5),
    ]
    seen: list[int] = []

    @hsettings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE"]),
        path=st.one_of(
            st.sampled_from([*real, *PUBLIC_PATHS]),
            # percent-encoded: the app sees the decoded path, any character at all
            st.lists(SEGMENTS, min_size=1, max_size=4).map(
                lambda p: "/" + "/".join(quote(seg, safe="@.:") for seg in p)
            ),
        ),
        headers=HEADERS,
        body=BODIES,
    )
    def one(method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        r = client.request(method, "http://testserver" + path, headers=headers, content=body)
        seen.append(r.status_code)
        assert r.status_code < 500, (
            method,
            path,
            r.status_code,
        )

    one()
    print(f"fuzz: {len(seen)} requests reached the app; statuses {sorted(set(seen))}")
    assert len(seen) == FUZZ_EXAMPLES

"""mailer serve: one-click unsubscribe, double opt-in and SendGrid's signed webhook."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from mailer.config import Settings
from mailer.models import Recipient
from mailer.store import Store
from mailer.tokens import unsubscribe_signer, unsubscribe_url
from mailer.web.serve import create_app
from tests.conftest import Cli, wait_until
from tests.servers import run_uvicorn
from tests.web import PUBLIC, _decoded, confirm_links, drain, events, signed, url_for

SETTINGS = {"sendgrid_webhook_public_key": PUBLIC}  # conftest's settings fixture reads it


def test_get_shows_a_page_and_changes_nothing(
    client: TestClient, settings: Settings, store: Store
) -> None:
    store.subscribers.add("ann@example.com", "Ann")
    r = client.get(url_for(settings, store, "ann@example.com"))
    assert r.status_code == 200
    assert "a•••@example.com" in r.text and "ann@example.com" not in r.text
    assert (
        '<meta name="robots" content="noindex, nofollow">' in r.text
        and r.headers["x-robots-tag"] == "noindex, nofollow"
    )
    assert store.subscribers.require("ann@example.com").status == "active"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_unsubscribes_at_once_idempotently(
    client: TestClient, settings: Settings, store: Store, encoding: str
) -> None:
    store.subscribers.add("ann@example.com")
    path = url_for(settings, store, "ann@example.com")
    for _ in range(2):
        if encoding == "urlencoded":
            r = client.post(
                path,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        else:
            r = client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
        assert r.status_code == 200 and "location" not in r.headers
        assert "You are unsubscribed" in r.text
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"
    assert len(store.subscribers.history(store.subscribers.require("ann@example.com").id)) == 1


@pytest.mark.parametrize(
    "body,ctype",
    [
        (b"", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=Yes", "application/x-www-form-urlencoded"),
        (b"{}", "application/json"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        (b"a=" + b"x" * 100000, "application/x-www-form-urlencoded"),
    ],
)
def test_post_without_the_one_click_body_is_refused(
    client: TestClient, settings: Settings, store: Store, body: bytes, ctype: str
) -> None:
    store.subscribers.add("ann@example.com")
    r = client.post(
        url_for(settings, store, "ann@example.com"), content=body, headers={"Content-Type": ctype}
    )
    assert r.status_code == 400
    assert store.subscribers.require("ann@example.com").status == "active"


def test_forged_tokens_all_get_the_same_answer(
    client: TestClient, settings: Settings, store: Store
) -> None:
    store.subscribers.add("ann@example.com")
    good = url_for(settings, store, "ann@example.com")
    ann = store.subscribers.require("ann@example.com").recipient
    other_key = unsubscribe_url("", unsubscribe_signer("another secret"), ann, 1)
    signer = unsubscribe_signer(settings.secret_key)
    nobody = "/u/" + signer.sign(99, ann.nonce, 1)  # validly signed, no such person
    wrong_nonce = "/u/" + signer.sign(ann.key, ann.nonce ^ 1, 1)  # validly signed, not ann's
    bad = [
        good[:-3],
        # every other last character, including those base64 decodes to the same bytes
        *(
            good[:-1] + c
            for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            if c != good[-1]
        ),
        good[:8] + ("x" if good[8] != "x" else "y") + good[9:],
        good.replace("/u/", "/u/0"),  # a leading zero: the same id, not the same token
        other_key,
        "/u/" + "x" * 300,
        nobody,
        wrong_nonce,
        "/u/%00",
        "/u/1.1",
    ]
    answers = set()
    for path in bad:
        for method in ("GET", "POST"):
            r = client.request(
                method,
                path,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert r.status_code == 404, (path, r.status_code)
            answers.add(r.text)
    assert len(answers) == 1  # nothing tells a forged token from a real address
    assert store.subscribers.require("ann@example.com").status == "active"


def wait_for_confirmations(project: Path, n: int) -> list[str]:
    """The links, once the background thread has written `n` confirmation mails."""
    folder = project / "outbox" / "confirmations"
    wait_until(
        lambda: folder.is_dir() and len(list(folder.glob("*.eml"))) >= n,
        f"{n} confirmation mail(s)",
    )
    return confirm_links(project)


@pytest.mark.parametrize("suppressed", ["bounced", "complained"])
def test_bounced_or_complained_come_back_only_by_the_form(
    client: TestClient, settings: Settings, store: Store, project: Path, suppressed: str
) -> None:
    """No button in an old email brings back a bounced or complained reader: whoever holds
    the email could press it. A new sign-up on the form (a new consent, confirmed) does."""
    from mailer.models import Actor, SubscriberStatus
    from mailer.tokens import resubscribe_signer

    ann = store.subscribers.add("ann@example.com")[0]
    path = url_for(settings, store, "ann@example.com")
    store.subscribers.set_status(ann.id, SubscriberStatus(suppressed), Actor.PROVIDER, "test")
    r = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert "/resubscribe/" not in r.text and "Subscribe again" not in r.text
    assert "/resubscribe/" not in client.get(path).text
    # a "Subscribe again" link kept from before the bounce mails nothing
    old_button = f"/resubscribe/{resubscribe_signer(settings.secret_key).sign(ann.id, ann.nonce)}"
    r = client.post(old_button)
    assert r.status_code == 200 and "confirmation email is on its way" not in r.text
    drain(client)
    assert confirm_links(project) == []
    assert store.subscribers.require("ann@example.com").status == suppressed
    # the form: a confirmation, and its link brings them back
    r = client.post("/subscribe", data={"email": "ann@example.com"})
    assert r.status_code == 200 and "confirmation email is on its way" in r.text
    drain(client)
    (link,) = confirm_links(project)
    assert store.subscribers.require("ann@example.com").status == suppressed  # not yet
    assert client.post(link, headers={"User-Agent": "UA/2"}).status_code == 200
    s = store.subscribers.require("ann@example.com")
    assert s.status == "active" and s.consent_source == "web:confirm"


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("Ann Lee", "Ann Lee"),
        ("王小明", "王小明"),
        ("O'Brien-Smith, Jr.", "O'Brien-Smith, Jr."),
        ("<b>You won</b>", ""),
        ("=?utf-8?b?WW91IHdvbiAkMTAwMA==?=", ""),
        ("Claim it at http://evil.example", ""),
        ("Visit www.evil.example now", ""),
        ("security@bank.example", ""),
        ('"Your Bank" <security@bank.example>', ""),
        ("Ann\r\nBcc: x@evil.example", ""),
        ("Ann\u202eevil", ""),  # a direction override
    ],
)
def test_a_confirmation_carries_the_typed_name_only_if_it_is_a_name(
    client: TestClient, project: Path, typed: str, shown: str
) -> None:
    import email
    import email.policy

    r = client.post("/subscribe", data={"email": "victim@example.com", "name": typed})
    assert r.status_code == 200
    drain(client)
    (path,) = (project / "outbox" / "confirmations").glob("*.eml")
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    (to,) = msg["To"].addresses  # type: ignore[union-attr]
    assert (to.display_name, to.addr_spec) == (shown, "victim@example.com"), msg["To"]


def test_double_opt_in(client: TestClient, settings: Settings, store: Store, project: Path) -> None:
    r = client.post("/subscribe", data={"email": "New@Example.com", "name": "New <b>"})
    assert r.status_code == 200 and "confirmation email is on its way" in r.text
    drain(client)
    s = store.subscribers.require("new@example.com")
    assert s.status == "pending"
    (mail,) = list((project / "outbox" / "confirmations").glob("*.eml"))
    link = (
        re.search(
            rb"https://news\.example\.com(/confirm/[A-Za-z0-9._-]+)", _decoded(mail.read_bytes())
        )
        .group(1)
        .decode()
    )  # type: ignore[union-attr]
    assert "Confirm" in client.get(link).text
    assert store.subscribers.require("new@example.com").status == "pending"  # GET changed nothing
    assert client.post(link, headers={"User-Agent": "UA/1"}).status_code == 200
    s = store.subscribers.require("new@example.com")
    assert s.status == "active" and s.consent_source == "web:confirm"
    again = client.post("/subscribe", data={"email": "new@example.com"})
    drain(client)
    assert again.text.replace("n•••", "X") == r.text.replace("N•••", "X")  # no enumeration
    assert len(list((project / "outbox" / "confirmations").glob("*.eml"))) == 1


def test_webhook_suppresses_and_dedupes(client: TestClient, store: Store) -> None:
    ids = {
        e: store.subscribers.add(e)[0].id
        for e in (
            "b@example.com",
            "c@example.com",
            "u@example.com",
            "d@example.com",
            "k@example.com",
        )
    }
    body = events(
        {
            "event": "bounce",
            "type": "bounce",
            "email": "b@example.com",
            "sg_event_id": "e1",
            "timestamp": 1700000000,
            "mailer_subscriber": str(ids["b@example.com"]),
            "new_field": {"x": 1},
        },
        {
            "event": "spamreport",
            "email": "c@example.com",
            "sg_event_id": "e2",
            "timestamp": 1700000000,
        },
        {
            "event": "group_unsubscribe",
            "email": "u@example.com",
            "sg_event_id": "e3",
            "timestamp": 1700000000,
        },
        {
            "event": "dropped",
            "reason": "Bounced Address",
            "email": "d@example.com",
            "sg_event_id": "e4",
            "timestamp": 1700000000,
        },
        {
            "event": "bounce",
            "type": "blocked",
            "email": "k@example.com",
            "sg_event_id": "e5",
            "timestamp": 1700000000,
        },
        {
            "event": "delivered",
            "email": "stranger@example.com",
            "sg_event_id": "e6",
            "timestamp": 1700000000,
        },
        {"event": "brand_new_event", "email": "k@example.com", "sg_event_id": "e7"},
        "not an object",
    )
    r = client.post("/webhooks/sendgrid", content=body, headers=signed(body))
    assert r.status_code == 200 and r.text == "recorded 7, duplicates 0, rejected 1"
    statuses = {e: store.subscribers.require(e).status for e in ids}
    assert statuses == {
        "b@example.com": "bounced",
        "c@example.com": "complained",
        "u@example.com": "unsubscribed",
        "d@example.com": "bounced",
        "k@example.com": "active",
    }
    again = client.post("/webhooks/sendgrid", content=body, headers=signed(body))
    assert again.text == "recorded 0, duplicates 7, rejected 1"


@pytest.mark.parametrize(
    "headers,body,code",
    [
        ({}, events({"event": "bounce", "email": "a@example.com"}), 401),
        ("forged", events({"event": "bounce", "email": "a@example.com"}), 403),
        ("old", events({"event": "bounce", "email": "a@example.com"}), 401),
        ("tampered", events({"event": "bounce", "email": "a@example.com"}), 403),
        ("ok", b"not json", 400),
        ("ok", b'{"event": "bounce"}', 400),
        ("ok", b"", 400),
    ],
)
def test_webhook_refuses_unverified_and_malformed(
    client: TestClient, store: Store, headers: Any, body: bytes, code: int
) -> None:
    store.subscribers.add("a@example.com")
    if headers == "forged":
        headers = signed(body, key=ec.generate_private_key(ec.SECP256R1()))
    elif headers == "old":
        headers = signed(body, ts=int(time.time()) - 11 * 60)
    elif headers == "tampered":
        headers = signed(body)
        body = body.replace(b"bounce", b"spamreport")
    elif headers == "ok":
        headers = signed(body)
    r = client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert r.status_code == code
    assert store.subscribers.require("a@example.com").status == "active"


def test_webhook_caps_the_body(client: TestClient) -> None:
    body = b"[" + b" " * (9 * 1024 * 1024) + b"]"
    assert client.post("/webhooks/sendgrid", content=body, headers=signed(body)).status_code == 413


def test_processed_events_settle_ambiguous_recipients(
    client: TestClient, settings: Settings, store: Store
) -> None:
    from mailer.models import Snapshot

    a = store.subscribers.add("a@example.com")[0]
    issue_id = store.pins.pin("s1", Snapshot("Subject", "", "h", "t", {}, "s1.md"), 10).issue_id
    claim = store.ledger.claim(issue_id, "host:1:x")
    assert claim is not None
    store.ledger.take_group(claim, 10)
    store.ledger.record(
        claim, __import__("mailer.models", fromlist=["Outcome"]).Outcome(ambiguous={a.id: "lost"})
    )
    assert store.ledger.counts(issue_id).ambiguous == 1
    body = events(
        {
            "event": "processed",
            "email": "a@example.com",
            "sg_event_id": "p1",
            "mailer_issue": str(issue_id),
            "mailer_subscriber": str(a.id),
        }
    )
    assert client.post("/webhooks/sendgrid", content=body, headers=signed(body)).status_code == 200
    assert store.ledger.counts(issue_id).sent == 1


def test_unsubscribed_by_link_or_webhook_is_never_sent_later(
    client: TestClient, settings: Settings, store: Store, run: Cli, project: Path
) -> None:
    for e in ("keep@example.com", "click@example.com", "hook@example.com"):
        store.subscribers.add(e)
    client.post(
        url_for(settings, store, "click@example.com"), data={"List-Unsubscribe": "One-Click"}
    )
    body = events({"event": "unsubscribe", "email": "hook@example.com", "sg_event_id": "u1"})
    client.post("/webhooks/sendgrid", content=body, headers=signed(body))
    assert run("send", str(project / "issues" / "2026-11-20-weekly.md"), "--yes").exit_code == 0
    names = [p.name for p in (project / "outbox").rglob("*.eml")]
    assert len(names) == 1 and "keep@example.com" in names[0]


def test_the_link_in_a_sent_message_works(
    client: TestClient, settings: Settings, store: Store, project: Path
) -> None:
    s = store.subscribers.add("ann@example.com")[0]
    from mailer.content.issue import load_issue
    from mailer.content.render import Renderer

    rendered = Renderer(settings).render(load_issue(project / "issues" / "2026-11-20-weekly.md"))
    from mailer.compose.mailing import IssueMailing, snapshot_of

    mailing = IssueMailing(settings, snapshot_of(settings, rendered), slug="s", issue_id=3, ref=3)
    raw = mailing.message(Recipient(s.id, s.email, "", s.nonce))
    link = (
        re.search(rb"List-Unsubscribe: <https://news\.example\.com(/u/[^>]+)>", raw)
        .group(1)
        .decode()
    )  # type: ignore[union-attr]
    assert client.post(link, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"


@pytest.fixture
def live(settings: Settings, store: Store) -> Iterator[str]:
    """uvicorn serving the app on 127.0.0.1."""
    yield from run_uvicorn(create_app(settings, store))


def test_uvicorn_end_to_end(
    live: str, settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.subscribers.add("ann@example.com")
    path = url_for(settings, store, "ann@example.com")
    with caplog.at_level("INFO", logger="mailer.access"), httpx.Client(base_url=live) as http:
        assert http.get("/healthz").text == "ok"
        assert http.get(path).status_code == 200
        r = http.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "POST /u/{redacted} 200" in logged
    assert path.split("/u/")[1] not in logged and "ann@" not in logged


@pytest.mark.browser
def test_unsubscribe_button_in_a_real_browser(
    live: str, settings: Settings, store: Store, browser: Any
) -> None:
    store.subscribers.add("ann@example.com")
    page = browser.new_page(viewport={"width": 375, "height": 700})
    page.goto(live + url_for(settings, store, "ann@example.com"))
    assert store.subscribers.require("ann@example.com").status == "active"
    page.click('button:has-text("Unsubscribe")')
    page.wait_for_selector("text=You are unsubscribed")
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"
    page.click('button:has-text("Subscribe again")')
    page.wait_for_selector("text=Check your inbox")
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"
    (link,) = wait_for_confirmations(settings.project, 1)  # sent by the serve's thread
    page.goto(live + link)
    page.click('button:has-text("Confirm")')
    page.wait_for_selector("text=You are subscribed")
    assert store.subscribers.require("ann@example.com").status == "active"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.close()

"""mailer serve as tests drive it: SendGrid's signed webhook (a key made here), what the
pages queued, and the links the outbox's mails carry."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from mailer.config import Settings
from mailer.store import Store
from mailer.tokens import unsubscribe_signer, unsubscribe_url

KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = base64.b64encode(
    KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def signed(
    body: bytes, ts: int | None = None, key: ec.EllipticCurvePrivateKey = KEY
) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time()))
    sig = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def url_for(settings: Settings, store: Store, email: str, issue_ref: int = 1) -> str:
    s = store.subscribers.require(email)
    return unsubscribe_url(
        settings.base_url, unsubscribe_signer(settings.secret_key), s.recipient, issue_ref
    ).removeprefix(settings.base_url)


def drain(client: TestClient) -> None:
    """Send what the pages queued (mailer serve's background thread does it live)."""
    client.app.state.mailer.outbound.drain()  # type: ignore[attr-defined]


def confirm_links(project: Path) -> list[str]:
    """The confirmation links in the outbox, oldest first."""
    mails = sorted(
        (project / "outbox" / "confirmations").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns
    )
    return [
        re.search(  # type: ignore[union-attr]
            rb"https://news\.example\.com(/confirm/[A-Za-z0-9._-]+)", _decoded(m.read_bytes())
        )
        .group(1)
        .decode()
        for m in mails
    ]


def test_coming_back_takes_a_fresh_confirmation(
    client: TestClient, settings: Settings, store: Store, project: Path
) -> None:
    """'Subscribe again' sends a confirmation; only its link makes the person active."""
    ann = store.subscribers.add("ann@example.com")[0]
    path = url_for(settings, store, "ann@example.com")
    r = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"
    action = re.search(r'action="(/resubscribe/[^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    r = client.post(action, headers={"User-Agent": "TestBrowser/1"})
    assert r.status_code == 200 and "confirmation email is on its way" in r.text
    drain(client)
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"  # not yet
    (link,) = confirm_links(project)
    r = client.post(link, headers={"User-Agent": "UA/2"})
    assert r.status_code == 200 and "You are subscribed" in r.text
    s = store.subscribers.require("ann@example.com")
    assert s.status == "active" and s.consent_source == "web:confirm" and s.id == ann.id
    # the link is used up: after another unsubscribe it brings nobody back
    client.post(path, data={"List-Unsubscribe": "One-Click"})
    r = client.post(link)
    assert r.status_code == 410 and "expired" in r.text
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"


def _decoded(raw: bytes) -> bytes:
    import email
    import email.policy

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return "".join(p.get_content() for p in msg.iter_parts()).encode()  # type: ignore[attr-defined]


def test_subscribe_bad_input_and_rate_limit(client: TestClient) -> None:
    assert client.post("/subscribe", data={}).status_code == 400
    assert client.post("/subscribe", data={"email": "not an address"}).status_code == 400
    codes = [
        client.post("/subscribe", data={"email": f"x{i}@example.com"}).status_code for i in range(8)
    ]
    assert 429 in codes


def events(*items: dict[str, Any]) -> bytes:
    return json.dumps(list(items)).encode()

"""One vocabulary: the same fact about a reader has the same outcome whichever source
carried it (SendGrid's webhook, a DSN, an ARF complaint, a mailto: unsubscribe, SendGrid's
suppression lists), and that outcome is the status policy's."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.feedback import mail
from mailer.feedback.apply import Outcome, Rules, apply_batch
from mailer.models import Actor, DeliveryEvent, Snapshot, SubscriberStatus, may_change
from mailer.providers.sendgrid import suppressions, webhook
from mailer.store import Store, open_url
from mailer.tokens import MAILTO, VERP, Sealer, message_id_token, verp_address, verp_token
from tests.reports import arf_complaint, postfix_dsn

SECRET = "a-test-secret-that-is-long-enough"
BOUNCES = "bounces@news.example.com"
READER = "reader@example.com"


@dataclass
class World:
    store: Store
    sealer: Sealer
    subscriber_id: int
    issue_id: int
    nonce: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One reader who was sent one issue."""
    path: Path = tmp_path_factory.mktemp("feedback") / "mailer.db"
    store = open_url(f"sqlite:///{path}")
    sid = store.subscribers.add(READER)[0].id
    pinned = store.pins.pin("issue-1", Snapshot("Subject", "", "h", "t", {}, "i.md"), 100)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE recipients SET state = 'sent'"))
    yield World(store, Sealer(SECRET), sid, pinned.issue_id, pinned.message_nonce)
    store.close()


def _webhook(w: World, word: str) -> list[DeliveryEvent]:
    item = {
        "event": word,
        "email": READER,
        "sg_event_id": secrets.token_hex(8),
        "mailer_subscriber": str(w.subscriber_id),
        "mailer_issue": str(w.issue_id),
    }
    return webhook.parse(json.dumps([item]).encode())[0]


def _mail(raw: bytes, w: World) -> list[DeliveryEvent]:
    return mail.read(raw, w.sealer, BOUNCES).events


def _dsn(w: World) -> list[DeliveryEvent]:
    token = verp_token(w.sealer, VERP, w.subscriber_id, w.issue_id)
    return _mail(postfix_dsn(verp_address(BOUNCES, token), READER, "5.1.1"), w)


def _arf(w: World) -> list[DeliveryEvent]:
    mid = message_id_token(w.sealer, w.nonce, w.subscriber_id)
    headers = f"To: {READER}\nMessage-ID: <{mid}@news.example.com>\n"
    return _mail(arf_complaint(BOUNCES, headers, "redacted@fbl.example.com"), w)


def _mailto(w: World) -> list[DeliveryEvent]:
    token = "u." + verp_token(w.sealer, MAILTO, w.subscriber_id, w.issue_id)
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = READER, verp_address(BOUNCES, token), "unsubscribe"
    m.set_content("unsubscribe\n")
    return _mail(m.as_bytes(), w)


def _sync(name: str) -> list[DeliveryEvent]:
    return [suppressions.entry_event(name, READER, None)]


SOURCES = {
    SubscriberStatus.BOUNCED: [lambda w: _webhook(w, "bounce"), _dsn, lambda w: _sync("bounces")],
    SubscriberStatus.COMPLAINED: [
        lambda w: _webhook(w, "spamreport"),
        _arf,
        lambda w: _sync("spam_reports"),
    ],
    SubscriberStatus.UNSUBSCRIBED: [
        lambda w: _webhook(w, "unsubscribe"),
        _mailto,
        lambda w: _sync("unsubscribes"),
    ],
}


def _outcome(
    w: World, status: SubscriberStatus, events: list[DeliveryEvent]
) -> tuple[str, Outcome]:
    with w.store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events"))
        conn.execute(sa.text("UPDATE subscribers SET status = :s"), {"s": status.value})
    (verdict,) = apply_batch(w.store.engine, events, Rules()).verdicts
    return w.store.subscribers.require(READER).status, verdict.outcome


@settings(max_examples=40, deadline=None)
@given(fact=st.sampled_from(list(SOURCES)), before=st.sampled_from(list(SubscriberStatus)))
def test_a_fact_has_one_outcome_whichever_source_carried_it(
    world: World, fact: SubscriberStatus, before: SubscriberStatus
) -> None:
    outcomes = {_outcome(world, before, source(world)) for source in SOURCES[fact]}
    expected = fact if may_change(before, fact, Actor.PROVIDER) else before
    assert outcomes == {
        (expected.value, Outcome.SUPPRESSED if expected != before else Outcome.UNCHANGED)
    }

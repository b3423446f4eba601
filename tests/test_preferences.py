"""The preference page (topics, language, a pause, name, unsubscribe everything) and /manage,
which mails a link to it. GET never changes anything; every change is in the history."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailer.config import Settings
from mailer.store import Store
from mailer.store.preferences import Choices
from mailer.web.serve import create_app
from tests.servers import run_uvicorn
from tests.web import drain


@pytest.fixture
def settings_toml(project: Path) -> Path:
    toml = project / "mailer.toml"
    toml.write_text(
        toml.read_text()
        + 'languages = ["en", "zh-CN"]\n[topics]\nai = { en = "AI", zh-CN = "人工智能" }\n'
        + 'ml = "Machine learning"\n'
    )
    return project


@pytest.fixture
def prefs_settings(settings_toml: Path) -> Settings:
    from mailer.config import load_settings

    return load_settings(settings_toml)


@pytest.fixture
def prefs_store(prefs_settings: Settings) -> Iterator[Store]:
    from mailer.store import open_store

    with open_store(prefs_settings) as s:
        yield s


def link_for(settings: Settings, store: Store, email_address: str) -> str:
    from mailer.tokens import unsubscribe_signer

    s = store.subscribers.require(email_address)
    return f"/u/{unsubscribe_signer(settings.secret_key).sign(s.id, s.nonce, 0)}/preferences"


def history(store: Store, email_address: str) -> list[str]:
    s = store.subscribers.require(email_address)
    return [h["reason"] for h in store.subscribers.history(s.id)]


def test_get_changes_nothing_and_post_records_each_change(
    prefs_settings: Settings, prefs_store: Store
) -> None:
    store = prefs_store
    s, _ = store.subscribers.add("ann@example.com", "Ann")
    store.preferences.change(s.id, Choices(topics=frozenset({"ai"})), "test")
    before = history(store, "ann@example.com")
    path = link_for(prefs_settings, store, "ann@example.com")
    with TestClient(create_app(prefs_settings, store, background=False)) as client:
        for _ in range(2):
            page = client.get(path + "?topic=ml&pause=3&language=zh-CN&name=X")
            assert page.status_code == 200 and "Preferences for a•••@example.com" in page.text
        assert history(store, "ann@example.com") == before  # GET changed nothing
        r = client.post(
            path,
            data={"topic": ["ml"], "language": "zh-CN", "pause": "2", "name": "Ann L."},
        )
        assert r.status_code == 200 and "已保存。" in r.text  # answered in the new language
        assert client.get("/u/not.a.token/preferences").status_code == 404
    ann = store.subscribers.require("ann@example.com")
    assert ann.topics == ("ml",) and ann.language == "zh-CN" and ann.name == "Ann L."
    assert ann.paused_until is not None
    (last,) = history(store, "ann@example.com")[len(before) :]
    assert last.startswith("web:preferences: topics ml; language zh-CN; paused until ")
    assert last.endswith("; name")


@pytest.mark.browser
def test_preference_page_in_a_real_browser(
    prefs_settings: Settings, prefs_store: Store, browser: Any, run: Any
) -> None:
    """From the footer of a sent issue: change topics, language and pause, then
    unsubscribe from everything."""
    store = prefs_store
    s, _ = store.subscribers.add("bob@example.com", "Bob")
    store.preferences.change(s.id, Choices(topics=frozenset({"ai", "ml"})), "test")
    assert run("send", str(prefs_settings.project / "issues/2026-11-20-weekly.md"), "--yes")
    (eml,) = (prefs_settings.project / "outbox").rglob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    footer = re.search(r'href="https://news\.example\.com(/u/[^"]+/preferences)"', html)
    assert footer is not None and "Manage preferences" in html
    for base in run_uvicorn(create_app(prefs_settings, store)):
        page = browser.new_page(viewport={"width": 375, "height": 800})
        page.goto(base + footer.group(1))
        assert page.is_checked('input[value="ai"]') and page.is_checked('input[value="ml"]')
        page.uncheck('input[value="ai"]')
        page.select_option('select[name="language"]', "zh-CN")
        page.select_option('select[name="pause"]', "4")
        page.click('button:has-text("Save")')
        page.wait_for_selector("text=已保存。")
        bob = store.subscribers.require("bob@example.com")
        assert bob.topics == ("ml",) and bob.language == "zh-CN" and bob.paused_until
        assert page.is_checked('input[value="ml"]') and not page.is_checked('input[value="ai"]')
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.click('button:has-text("退订全部邮件")')
        page.wait_for_selector('h1:has-text("已退订")')
        assert store.subscribers.require("bob@example.com").status == "unsubscribed"
        page.close()


def test_manage_answers_the_same_for_anyone_and_mails_only_the_listed(
    prefs_settings: Settings, prefs_store: Store
) -> None:
    store = prefs_store
    store.subscribers.add("known@example.com")
    with TestClient(create_app(prefs_settings, store, background=False)) as client:
        assert "Email me a link" in client.get("/manage").text
        answers = []
        for address in ("known@example.com", "nobody@example.com"):
            r = client.post("/manage", data={"email": address})
            answers.append((r.status_code, r.text.replace(address[0] + "•••", "X•••")))
        assert answers[0] == answers[1] and answers[0][0] == 200
        drain(client)
        r = client.post("/manage", data={"email": "known@example.com"})  # again, at once
        drain(client)
        assert client.post("/manage", data={"email": "not an address"}).status_code == 400
    mails = list((prefs_settings.project / "outbox" / "preferences").glob("*.eml"))
    assert len(mails) == 1 and "known@example.com" in mails[0].name  # one an hour
    msg = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https://news\.example\.com(/u/[^\s]+/preferences)", text)
    assert link is not None
    with TestClient(create_app(prefs_settings, store, background=False)) as client:
        assert "Preferences for k•••@example.com" in client.get(link.group(1)).text

"""The sign-up form, tried as an attacker would: bombing one inbox, flooding the queue,
forging the client address, bots, and the proof of work (solved in Python and, with the
vendored widget, in a real browser). And sign-up with topics, applied on confirmation."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from altcha.v1 import solve_challenge
from starlette.testclient import TestClient

from mailer.config import Settings, load_settings
from mailer.store import open_store
from mailer.web.serve import create_app
from tests.conftest import Cli
from tests.servers import run_uvicorn
from tests.web import confirm_links, drain


def configure(project: Path, extra: str) -> Settings:
    toml = project / "mailer.toml"
    toml.write_text(toml.read_text().replace("signup_proof_of_work = 0\n", "") + extra)
    return load_settings(project)


TOPICS = '[topics]\nai = "AI"\nml = "Machine learning"\n'


def confirmations(project: Path) -> list[Path]:
    return sorted((project / "outbox" / "confirmations").glob("*.eml"))


def solved(challenge: dict[str, Any]) -> str:
    """What the widget posts: the solution, base64 JSON."""
    solution = solve_challenge(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxNumber"]
    )
    assert solution is not None
    payload = {
        "algorithm": challenge["algorithm"],
        "challenge": challenge["challenge"],
        "number": solution.number,
        "salt": challenge["salt"],
        "signature": challenge["signature"],
    }
    return base64.b64encode(json.dumps(payload).encode()).decode()


def test_fifty_signups_for_one_victim_mail_them_once(project: Path) -> None:
    """Each from another X-Forwarded-For, through real uvicorn on 127.0.0.1: the header is
    not trusted (no trusted_proxies), and an unused confirmation goes once a day."""
    settings = configure(project, "signup_proof_of_work = 0\n")
    with open_store(settings) as store:
        for base in run_uvicorn(create_app(settings, store)):
            with httpx.Client(base_url=base) as http:
                codes = [
                    http.post(
                        "/subscribe",
                        data={"email": "victim@example.com"},
                        headers={"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"},
                    ).status_code
                    for i in range(50)
                ]
            assert codes.count(200) == 5 and codes.count(429) == 45  # one client, 5 a minute
            from tests.conftest import wait_until

            wait_until(lambda: store.queue.count() == 0, "the queue to drain")
        ips = {s.consent_source for s in store.subscribers.iter()}
    assert len(confirmations(project)) == 1 and ips == {"web:subscribe"}


def test_trusted_proxies_name_the_client(project: Path) -> None:
    settings = configure(project, 'signup_proof_of_work = 0\ntrusted_proxies = ["127.0.0.1"]\n')
    with open_store(settings) as store:
        for base in run_uvicorn(create_app(settings, store, background=False)):
            with httpx.Client(base_url=base) as http:
                codes = [
                    http.post(
                        "/subscribe",
                        data={"email": f"p{i}@example.com"},
                        headers={"X-Forwarded-For": f"203.0.113.{i}"},
                    ).status_code
                    for i in range(8)
                ]
        assert codes == [200] * 8  # eight clients: none over its limit
        with store.engine.connect() as conn:
            ips = set(conn.exec_driver_sql("SELECT ip FROM mail_queue").scalars())
    assert ips == {f"203.0.113.{i}" for i in range(8)}


def test_the_queue_is_bounded_and_real_readers_go_first(project: Path, run: Cli) -> None:
    settings = configure(
        project,
        'signup_proof_of_work = 0\nsignup_queue_limit = 10\ntrusted_proxies = ["127.0.0.1"]\n',
    )
    (project / "issues" / "welcome.md").write_text("# Welcome\n\nHello.\n")
    with open_store(settings) as store:
        app = create_app(settings, store, background=False)
        for base in run_uvicorn(app):
            with httpx.Client(base_url=base) as http:
                # a real reader signs up before the flood
                http.post("/subscribe", data={"email": "real@example.com"})
                app.state.mailer.outbound.drain()
                (link,) = confirm_links(project)
                codes = [
                    http.post(
                        "/subscribe",
                        data={"email": f"flood{i}@example.com"},
                        headers={"X-Forwarded-For": f"198.51.100.{i}"},
                    ).status_code
                    for i in range(12)
                ]
                assert codes == [200] * 10 + [503] * 2
                late = http.post(
                    "/subscribe",
                    data={"email": "late@example.com"},
                    headers={"X-Forwarded-For": "198.51.100.99"},
                )
                assert late.status_code == 503 and "try again in a few minutes" in late.text
                # the reader confirms: their welcome is queued behind the flood, and goes first
                assert http.post(link).status_code == 200
        job = store.queue.claim("test")
        assert job is not None and job.kind == "welcome"


def test_a_bot_that_fills_the_honeypot_gets_the_usual_answer_and_no_mail(
    project: Path,
) -> None:
    settings = configure(project, "signup_proof_of_work = 0\n")
    with open_store(settings) as store, TestClient(create_app(settings, store, False)) as client:
        human = client.post("/subscribe", data={"email": "a@example.com"})
        bot = client.post("/subscribe", data={"email": "b@example.com", "website": "x.com"})
        assert human.status_code == bot.status_code == 200
        assert human.text.replace("a•••", "X") == bot.text.replace("b•••", "X")
        assert store.queue.count() == 1


def test_proof_of_work_solved_once_and_topics_applied_on_confirmation(project: Path) -> None:
    settings = configure(project, "signup_proof_of_work = 2000\n" + TOPICS)
    with open_store(settings) as store, TestClient(create_app(settings, store, False)) as client:
        page = client.get("/subscribe").text
        assert "<altcha-widget" in page and 'value="ai"' in page and 'value="ml"' in page
        # A form without the proof (an archive page's): asked for one more step, nothing queued
        r = client.post("/subscribe", data={"email": "c@example.com", "topic": ["ai"]})
        assert r.status_code == 200 and "One more step" in r.text and store.queue.count() == 0
        assert 'value="c@example.com"' in r.text  # the form comes back filled in
        challenge = json.loads(
            client.get("/altcha/challenge").text
        )  # what an embedded form fetches
        payload = solved(challenge)
        data = {"email": "c@example.com", "topic": ["ai"], "altcha": payload}
        assert "Check your inbox" in client.post("/subscribe", data=data).text
        assert store.queue.count() == 1
        again = client.post("/subscribe", data={**data, "email": "d@example.com"})
        assert again.status_code == 400 and store.queue.count() == 1  # a solution works once
        forged = json.loads(
            base64.b64decode(solved(json.loads(client.get("/altcha/challenge").text)))
        )
        forged["signature"] = "0" * 64
        bad = base64.b64encode(json.dumps(forged).encode()).decode()
        r = client.post("/subscribe", data={**data, "email": "e@example.com", "altcha": bad})
        assert r.status_code == 400 and store.queue.count() == 1
        r = client.post("/subscribe", data={**data, "email": "f@example.com", "altcha": "%%%"})
        assert r.status_code == 400
        drain(client)
        c = store.subscribers.require("c@example.com")
        assert c.status == "pending" and c.topics == ()  # nothing applies before confirming
        (link,) = confirm_links(project)
        assert client.post(link).status_code == 200
        c = store.subscribers.require("c@example.com")
        assert c.status == "active" and c.topics == ("ai",) and c.language == "en"


@pytest.mark.browser
def test_the_widget_solves_the_challenge_in_a_real_browser(project: Path, browser: Any) -> None:
    settings = configure(project, "signup_proof_of_work = 5000\n" + TOPICS)
    with open_store(settings) as store:
        for base in run_uvicorn(create_app(settings, store, background=False)):
            page = browser.new_page()
            page.goto(base + "/subscribe")
            page.fill('input[name="email"]', "widget@example.com")
            page.uncheck('input[value="ml"]')
            page.click("altcha-widget input[type=checkbox]")
            page.wait_for_selector('altcha-widget input[name="altcha"]', state="attached")
            page.wait_for_function(
                "document.querySelector('altcha-widget input[name=altcha]').value.length > 10"
            )
            page.click('button:has-text("Subscribe")')
            page.wait_for_selector("text=Check your inbox")
            page.close()
        assert store.queue.count() == 1
        with store.engine.connect() as conn:
            (choices,) = conn.exec_driver_sql("SELECT choices FROM mail_queue").scalars()
    chosen = json.loads(choices) if isinstance(choices, str) else choices
    assert chosen == {"language": "en", "topics": ["ai"]}


def test_mailer_form_prints_a_form_for_another_site(project: Path, run: Cli) -> None:
    configure(project, 'signup_proof_of_work = 1000\nlanguages = ["en", "zh-CN"]\n' + TOPICS)
    r = run("form", "--lang", "zh-CN")
    assert r.exit_code == 0, r.output
    assert 'action="https://news.example.com/subscribe"' in r.output
    assert 'name="topic" value="ai"' in r.output and "主题" in r.output
    assert 'challengeurl="https://news.example.com/altcha/challenge"' in r.output
    assert re.search(r'name="website"', r.output)
    r = run("form", "--lang", "fr")
    assert r.exit_code == 1 and "not one this newsletter offers" in r.output

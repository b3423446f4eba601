"""Language editions: X.md and X.en.md are one issue (one slug, one ledger, one archive
entry), and each reader gets the edition of their language, with its footer and pages."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailer.config import load_settings
from mailer.store import open_store
from mailer.web.serve import create_app
from tests.conftest import Cli, write
from tests.loop import env as smtp_env
from tests.servers import SmtpServer

MAIN = """---
slug: 2026-12-04-digest
date: 2026-12-04
---
# 本周 AI 周报

> 三条模型新闻，一个工具。

## 🚀 模型

- **小模型追上来了**：新的 3B 模型在基准上接近去年的 70B。[阅读全文](https://example.com/a)
"""
EN = """# This week in AI

> Three model stories and a tool.

## 🚀 Models

- **Small models catch up**: a new 3B model nears last year's 70B. [Read more](https://example.com/a)
"""
READERS = "email,language\nzh@example.com,zh-CN\nen@example.com,en\ngb@example.com,en-GB\ndefault@example.com,\n"


@pytest.fixture
def bilingual(project: Path, run: Cli) -> Path:
    """A zh-CN list (the scaffold's language) that also offers English."""
    toml = project / "mailer.toml"
    toml.write_text(
        toml.read_text().replace('language = "en"', 'language = "zh-CN"')
        + 'languages = ["zh-CN", "en"]\n'
    )
    write(project / "issues" / "digest.md", MAIN)
    write(project / "issues" / "digest.en.md", EN)
    write(project / "readers.csv", READERS)
    assert run("subscribers", "import", str(project / "readers.csv")).exit_code == 0
    return project


def messages(project: Path) -> dict[str, email.message.EmailMessage]:
    found = {}
    for p in (project / "outbox").rglob("*.eml"):
        msg = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        found[str(msg["To"]).strip("<>")] = msg
    return found  # type: ignore[return-value]


def parts(msg: email.message.EmailMessage) -> tuple[str, str]:
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return html, text


def check_editions(got: dict[str, email.message.EmailMessage]) -> None:
    assert set(got) == {"zh@example.com", "en@example.com", "gb@example.com", "default@example.com"}
    for who in ("en@example.com", "gb@example.com"):
        msg = got[who]
        html, text = parts(msg)
        assert msg["Subject"] == "This week in AI"
        assert "Small models catch up" in html and "小模型" not in html
        assert "Unsubscribe" in html and "Manage preferences" in text and "退订" not in html
        assert 'lang="en"' in html
        assert "/archive/2026-12-04-digest/en/" in text  # "view in browser": its own page
    for who in ("zh@example.com", "default@example.com"):
        msg = got[who]
        html, text = parts(msg)
        assert msg["Subject"] == "本周 AI 周报"
        assert "小模型追上来了" in html and "退订" in html and "Unsubscribe" not in html
        assert re.search(r"/archive/2026-12-04-digest/\s", text)


def test_each_reader_gets_their_edition_in_the_outbox(bilingual: Path, run: Cli) -> None:
    issue = str(bilingual / "issues" / "digest.md")
    dry = run("send", issue, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "4 recipients" in dry.output and "editions: zh-CN 2, en 2" in dry.output
    r = run("send", issue, "--yes")
    assert r.exit_code == 0, r.output
    check_editions(messages(bilingual))
    status = run("status", issue).output
    assert "editions: zh-CN 2, en 2" in status
    # One issue, one ledger: a resume sends nobody anything, and the edition alone is refused.
    assert "already sent" in run("send", issue, "--yes").output
    r = run("send", str(bilingual / "issues" / "digest.en.md"), "--yes")
    assert r.exit_code == 1 and "is the en edition of digest.md; send" in r.output


def test_each_reader_gets_their_edition_over_smtp(bilingual: Path, run: Cli) -> None:
    with SmtpServer() as smtp:
        r = run("send", str(bilingual / "issues" / "digest.md"), "--yes", env=smtp_env(smtp))
        assert r.exit_code == 0, r.output
        got = {str(m["To"]).strip("<>"): m for m in smtp.handler.parsed()}
    check_editions(got)  # type: ignore[arg-type]


def test_pages_archive_and_build_follow_the_edition(bilingual: Path, run: Cli) -> None:
    assert run("send", str(bilingual / "issues" / "digest.md"), "--yes").exit_code == 0
    got = messages(bilingual)
    settings = load_settings(bilingual)
    with (
        open_store(settings) as store,
        TestClient(create_app(settings, store, background=False)) as client,
    ):
        for who, words in (("en@example.com", "Unsubscribe?"), ("zh@example.com", "退订")):
            link = re.search(r"https://news\.example\.com(/u/[^\s>]+)", parts(got[who])[1])
            assert link is not None
            page = client.get(link.group(1))
            assert page.status_code == 200 and words in page.text, page.text
            prefs = client.get(link.group(1) + "/preferences")
            assert prefs.status_code == 200
            assert ("Your preferences" if who.startswith("en") else "您的订阅偏好") in prefs.text
        index = client.get("/archive/").text
        assert index.count("2026-12-04-digest/") == 2 and 'hreflang="en"' in index
        assert "English" in index
        main = client.get("/archive/2026-12-04-digest/")
        en = client.get("/archive/2026-12-04-digest/en/")
        assert main.status_code == 200 and "小模型追上来了" in main.text
        assert en.status_code == 200 and "Small models catch up" in en.text
        assert client.get("/archive/2026-12-04-digest/fr/").status_code == 404
    out = bilingual / "built"
    r = run("build", str(bilingual / "issues" / "digest.md"), "--lang", "en", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "subject: This week in AI" in r.output
    assert "Small models" in (out / "2026-12-04-digest.en.html").read_text()
    r = run("build", str(bilingual / "issues" / "digest.md"), "--lang", "ja", "-o", str(out))
    assert r.exit_code == 1 and "has no ja edition" in r.output


def test_an_edition_in_a_language_not_offered_is_one_line(bilingual: Path, run: Cli) -> None:
    write(bilingual / "issues" / "digest.ja.md", "# 今週のAI\n\n本文。\n")
    r = run("send", str(bilingual / "issues" / "digest.md"), "--dry-run")
    assert r.exit_code == 1
    assert r.output.strip() == (
        f"Error: {bilingual / 'issues' / 'digest.ja.md'}: no reader can choose ja; offer it "
        'in mailer.toml: languages = ["zh-CN", "en", "ja"]'
    )


def test_report_splits_by_edition_and_topic(bilingual: Path, run: Cli) -> None:
    import json

    from mailer.feedback.apply import Rules, apply_batch
    from mailer.models import DeliveryEvent, EventType, Proof, Source

    toml = bilingual / "mailer.toml"
    toml.write_text(toml.read_text() + '[topics]\nai = "AI"\n')
    run("subscribers", "topics", "en@example.com", "--add", "ai")
    run("subscribers", "topics", "zh@example.com", "--add", "ai")
    assert run("send", str(bilingual / "issues" / "digest.md"), "--yes").exit_code == 0
    settings = load_settings(bilingual)
    with open_store(settings) as store:
        issue_id = store.pins.find("2026-12-04-digest").id  # type: ignore[union-attr]
        events = []
        for i, who in enumerate(("en@example.com", "gb@example.com", "zh@example.com")):
            s = store.subscribers.require(who)
            kind = EventType.OPENED if who != "zh@example.com" else EventType.CLICKED
            events.append(
                DeliveryEvent(kind, Source.SENDGRID, Proof.PROVIDER, f"e{i}", who, s.id, issue_id)
            )
        apply_batch(store.engine, events, Rules())
    r = run("report", str(bilingual / "issues" / "digest.md"), "--json")
    data = json.loads(r.output)
    assert data["by_edition"]["en"]["recipients"] == 2 and data["by_edition"]["en"]["opened"] == 2
    assert data["by_edition"]["zh-CN"]["clicked"] == 1 and data["by_edition"]["zh-CN"]["sent"] == 2
    assert data["by_topic"] == {
        "ai": {
            "recipients": 2,
            "sent": 2,
            "delivered": 0,
            "opened": 1,
            "clicked": 1,
            "unsubscribed": 0,
        }
    }
    text = run("report", str(bilingual / "issues" / "digest.md")).output
    assert "by edition:" in text and "by topic:" in text


def test_preview_shows_each_edition_in_its_language(bilingual: Path) -> None:
    from mailer.web.preview import Previewer

    settings = load_settings(bilingual)
    folder = Previewer(settings, bilingual / "issues")
    assert {"digest.md", "digest.en.md"} <= set(folder.issues())
    en = folder.render("digest.en.md")
    zh = folder.render("digest.md")
    assert en is not None and zh is not None and not en.error and not zh.error
    assert en.subject == "This week in AI" and "Unsubscribe" in en.html and "退订" not in en.html
    assert zh.subject == "本周 AI 周报" and "退订" in zh.html
    assert "/archive/2026-12-04-digest/en/" in en.text

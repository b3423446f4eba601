"""The trust core: an issue, a person and a status can never be mistaken for another.

Each test here reproduces a way the promises (never twice, never skipped, never after
opting out) once broke, and shows it holds now, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from mailer.config import load_settings
from mailer.content.issue import load_issue
from mailer.models import SUPPRESSED, Actor, Outcome, SubscriberStatus, may_change
from mailer.sending import send as core
from mailer.store import open_store
from mailer.store.imports import import_csv
from mailer.web.serve import create_app
from tests.conftest import Cli, write
from tests.servers import SendGridServer, SmtpServer
from tests.web import drain

ISSUE = "issues/2026-11-20-weekly.md"


def add_list(run: Cli, *emails: str) -> None:
    path = write(run.project / "list.csv", "email\n" + "".join(f"{e}\n" for e in emails))
    assert run("subscribers", "import", str(path)).exit_code == 0


def emls(project: Path, slug: str | None = None) -> list[Path]:
    root = project / "outbox" / slug if slug else project / "outbox"
    return sorted(root.rglob("*.eml"))


def parse(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def text_of(path: Path) -> str:
    msg = parse(path)
    return "".join(p.get_content() for p in msg.iter_parts())  # type: ignore[attr-defined]


# -- 1. issues: unique slugs, pinned content -------------------------------------------


def test_non_ascii_file_names_get_distinct_readable_slugs(tmp_path: Path) -> None:
    names = ["第一期", "第二期", "2026-11-20-周报", "2026-11-20-第二期"]
    slugs = [load_issue(write(tmp_path / f"{n}.md", "# 标题\n\n正文\n")).slug for n in names]
    assert len(set(slugs)) == 4, slugs
    assert slugs[0].startswith("DiYiQi-") and slugs[2].startswith("2026-11-20-ZhouBao-")
    # ASCII names keep their plain slug
    assert load_issue(write(tmp_path / "2026-11-20-weekly.md", "# T\n")).slug == "2026-11-20-weekly"


def test_two_chinese_issues_are_both_sent(project: Path, run: Cli) -> None:
    add_list(run, "ann@example.com")
    for name in ("第一期", "第二期"):
        write(project / "issues" / f"{name}.md", f"# {name}\n\n本期内容。\n")
        r = run("send", str(project / "issues" / f"{name}.md"), "--yes")
        assert r.exit_code == 0 and "done: 1 of 1" in r.output, r.output
    assert len(emls(project)) == 2


def partial_send(project: Path, sent: int) -> None:
    """The first `sent` recipients get the issue; the run then stops (as a crash would)."""
    settings = load_settings(project, {"batch_size": 5})
    plan = core.plan(settings, project / ISSUE)
    assert plan.snapshot is not None
    with open_store(settings) as store:
        pinned = store.pins.pin(plan.slug, plan.snapshot, 5)
        from mailer.providers import make_provider

        got = store.ledger.claim_group(pinned.issue_id, "host:1:x", sent, pinned.version)
        assert got is not None
        claim, group, _ = got
        session = make_provider(settings).session()
        outcome: Outcome = session.send(core.mailing_for(settings, pinned), group)
        store.ledger.record(claim, outcome, None, len(group))
        store.ledger.release(claim)


def test_resume_sends_the_pinned_version_and_says_the_file_changed(project: Path, run: Cli) -> None:
    add_list(run, *(f"r{i:02d}@example.com" for i in range(10)))
    partial_send(project, 3)
    issue = project / ISSUE
    issue.write_text(issue.read_text().replace("# ", "# EDITED ", 1))
    r = run("send", str(issue), "--yes")
    assert r.exit_code == 0, r.output
    assert "changed since version 1 was pinned; sending the pinned version" in r.output
    files = emls(project)
    assert len(files) == 10 and not any("EDITED" in text_of(f) for f in files)
    status = json.loads(run("status", str(issue), "--json").output)
    assert [v["sent"] for v in status["versions"]] == [10]


def test_update_content_sends_the_rest_the_new_text_and_status_shows_who_got_which(
    project: Path, run: Cli
) -> None:
    add_list(run, *(f"r{i:02d}@example.com" for i in range(10)))
    partial_send(project, 3)
    issue = project / ISSUE
    issue.write_text(issue.read_text().replace("# ", "# EDITED ", 1))
    r = run("send", str(issue), "--yes", "--update-content")
    assert r.exit_code == 0, r.output
    edited = [f for f in emls(project) if "EDITED" in text_of(f)]
    assert len(edited) == 7
    status = json.loads(run("status", str(issue), "--json").output)
    assert [(v["version"], v["sent"]) for v in status["versions"]] == [(1, 3), (2, 7)]
    assert "version 2" in run("status", str(issue)).output


def test_resume_by_slug_needs_neither_the_file_nor_the_templates(project: Path, run: Cli) -> None:
    add_list(run, *(f"r{i:02d}@example.com" for i in range(6)))
    partial_send(project, 2)
    (project / ISSUE).unlink()
    shutil.rmtree(project / "templates")
    r = run("send", "2026-11-20-weekly", "--yes")
    assert r.exit_code == 0 and "done: 6 of 6" in r.output, r.output
    assert run("send", "no-such-slug", "--yes").output.endswith(
        "Error: no-such-slug: no such issue file, and no issue with that slug was sent\n"
    )


def test_another_file_with_the_same_slug_is_refused_naming_both(project: Path, run: Cli) -> None:
    add_list(run, "ann@example.com")
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    other = write(project / "drafts" / "2026-11-20-weekly.md", "# Another issue\n\nText.\n")
    r = run("send", str(other), "--yes")
    assert r.exit_code == 1
    assert r.output == (
        "Error: drafts/2026-11-20-weekly.md: its slug '2026-11-20-weekly' belongs to "
        "issues/2026-11-20-weekly.md, already in the ledger; give this issue its own "
        "'slug:' in front matter\n"
    )
    assert len(emls(project)) == 1


def test_two_first_sends_at_once_pin_one_issue(project: Path, run: Cli) -> None:
    add_list(run, *(f"r{i:02d}@example.com" for i in range(20)))
    settings = load_settings(project)
    plan = core.plan(settings, project / ISSUE)
    assert plan.snapshot is not None
    snap = plan.snapshot
    start = threading.Barrier(2)
    ids: list[int] = []
    errors: list[BaseException] = []

    def pin() -> None:
        with open_store(settings) as store:
            start.wait()
            try:
                ids.append(store.pins.pin(plan.slug, snap, 5).issue_id)
            except BaseException as e:
                errors.append(e)

    threads = [threading.Thread(target=pin) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(ids) == 2 and ids[0] == ids[1]
    with open_store(settings) as store:
        assert store.ledger.counts(ids[0]).recipients == 20


# -- 2. nothing written before consent -----------------------------------------------


def make_ambiguous(project: Path, n: int) -> None:
    with open_store(load_settings(project)) as store, store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE recipients SET state = 'ambiguous' WHERE subscriber_id IN "
                "(SELECT subscriber_id FROM recipients ORDER BY subscriber_id LIMIT :n)"
            ),
            {"n": n},
        )


def test_a_refused_retry_changes_nothing(
    project: Path, run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_list(run, "a@example.com", "b@example.com", "c@example.com")
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    make_ambiguous(project, 2)
    before = len(emls(project))
    r = run("send", str(project / ISSUE), "--retry-ambiguous")  # no terminal, no --yes
    assert r.exit_code == 1 and "refusing to send without confirmation: pass --yes" in r.output
    monkeypatch.setattr("mailer.cli.interactive", lambda: True)
    r = run("send", str(project / ISSUE), "--retry-ambiguous", input="n\n")
    assert r.exit_code == 1 and "Aborted" in r.output
    monkeypatch.undo()
    r = run("send", str(project / ISSUE), "--yes")  # a plain resume must not resend them
    assert r.exit_code == 3 and "already sent" in r.output
    status = json.loads(run("status", str(project / ISSUE), "--json").output)
    assert status["ambiguous"] == 2 and status["pending"] == 0
    assert len(emls(project)) == before


def test_dry_run_retry_writes_nothing(project: Path, run: Cli) -> None:
    add_list(run, "a@example.com", "b@example.com")
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    make_ambiguous(project, 1)
    r = run("send", str(project / ISSUE), "--retry-ambiguous", "--dry-run")
    assert r.exit_code == 0 and "1 recipients" in r.output
    assert json.loads(run("status", str(project / ISSUE), "--json").output)["ambiguous"] == 1


def test_a_deliberate_resend_keeps_the_message_id(project: Path, run: Cli) -> None:
    add_list(run, "a@example.com")
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    (first,) = emls(project)
    mid = parse(first)["Message-ID"]
    first.unlink()
    make_ambiguous(project, 1)
    assert run("send", str(project / ISSUE), "--retry-ambiguous", "--yes").exit_code == 0
    (again,) = emls(project)
    assert parse(again)["Message-ID"] == mid


def test_message_ids_differ_across_projects(tmp_path: Path, db_url: str) -> None:
    from tests.conftest import make_project

    ids = []
    for name in ("one", "two"):
        root = make_project(tmp_path / name, f"sqlite:///{tmp_path / name / 'm.db'}")
        run = Cli(root)
        add_list(run, "a@example.com")
        assert run("send", str(root / ISSUE), "--yes").exit_code == 0
        (eml,) = emls(root)
        ids.append(parse(eml)["Message-ID"])
    # opaque (sealed: no subscriber id shows), and different in every project
    assert ids[0] != ids[1] and all(re.fullmatch(r"<[0-9a-f]{56}@example\.com>", i) for i in ids)


# -- 3. identities never reused --------------------------------------------------------


def confirm_link(project: Path, before: set[Path]) -> str:
    (new,) = set(emls(project, "confirmations")) - before
    m = re.search(r"https://news\.example\.com(/confirm/[A-Za-z0-9._-]+)", text_of(new))
    assert m is not None
    return m.group(1)


def test_an_erased_persons_links_never_act_on_a_newcomer(project: Path, run: Cli) -> None:
    settings = load_settings(project)
    with (
        open_store(settings) as store,
        TestClient(create_app(settings, store, background=False)) as client,
    ):
        store.subscribers.add("old@example.com")
        client.post("/subscribe", data={"email": "erased@example.com"})
        drain(client)
        link = confirm_link(project, set())
        erased = store.subscribers.require("erased@example.com")
        from mailer.tokens import unsubscribe_signer, unsubscribe_url

        unsub = unsubscribe_url("", unsubscribe_signer(settings.secret_key), erased.recipient, 1)
        store.subscribers.erase("erased@example.com")
        client.post("/subscribe", data={"email": "stranger@example.com"})
        drain(client)
        stranger = store.subscribers.require("stranger@example.com")
        assert stranger.id > erased.id  # the id was not handed out again
        assert client.post(link).status_code == 404
        assert client.post(unsub, data={"List-Unsubscribe": "One-Click"}).status_code == 404
        assert store.subscribers.require("stranger@example.com").status == "pending"


def test_sqlite_ids_survive_erasing_the_newest(tmp_path: Path) -> None:
    from tests.conftest import make_project

    root = make_project(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")
    with open_store(load_settings(root)) as store:
        a = store.subscribers.add("a@example.com")[0]
        b = store.subscribers.add("b@example.com")[0]
        store.subscribers.erase("b@example.com")
        c = store.subscribers.add("c@example.com")[0]
        assert a.id < b.id < c.id


def test_migration_from_0001_keeps_rows_and_stops_id_reuse(tmp_path: Path) -> None:
    """A database made by the first schema: history survives the table rebuild."""
    from alembic import command
    from alembic.config import Config

    from mailer.store import db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            sa.text(
                "INSERT INTO subscribers (email, email_key, name, status, attributes, created_at,"
                " updated_at) VALUES ('a@x.org', 'a@x.org', '', 'active', '{}', '2026-01-01',"
                " '2026-01-01'), ('b@x.org', 'b@x.org', '', 'active', '{}', '2026-01-01',"
                " '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO status_changes (subscriber_id, old_status, new_status, reason, at)"
                " VALUES (1, NULL, 'active', 'import', '2026-01-01')"
            )
        )
    assert db.upgrade(engine) == "0001"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM status_changes")).scalar() == 1
        nonces = conn.execute(sa.text("SELECT nonce FROM subscribers")).scalars().all()
        assert len(set(nonces)) == 2 and all(n > 0 for n in nonces)
    engine.dispose()
    with open_store_url(url) as store:
        store.subscribers.erase("b@x.org")
        assert store.subscribers.add("c@x.org")[0].id == 3


def open_store_url(url: str):  # type: ignore[no-untyped-def]
    from mailer.store import open_url

    return open_url(url)


# -- 4/5. one status policy --------------------------------------------------------------

S = SubscriberStatus
A, P, U, B, C = S.ACTIVE, S.PENDING, S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED
# (actor, old) -> the statuses it may move to. Everything else is refused.
ALLOWED = {
    (Actor.PROVIDER, A): {U, B, C},
    (Actor.PROVIDER, P): {U, B, C},
    (Actor.PROVIDER, U): {B, C},
    (Actor.PROVIDER, B): {C},
    (Actor.PROVIDER, C): set(),
    (Actor.IMPORT, A): {U, B, C},
    (Actor.IMPORT, P): {U, B, C},
    (Actor.IMPORT, U): {B, C},
    (Actor.IMPORT, B): {C},
    (Actor.IMPORT, C): set(),
    (Actor.ONE_CLICK, A): {U},
    (Actor.ONE_CLICK, P): {U},
    (Actor.ONE_CLICK, U): set(),
    (Actor.ONE_CLICK, B): set(),  # never replaces a bounce
    (Actor.ONE_CLICK, C): set(),  # never replaces a complaint
    (Actor.CONFIRMED, A): set(),
    (Actor.CONFIRMED, P): {A},
    (Actor.CONFIRMED, U): {A},
    (Actor.CONFIRMED, B): {A},
    (Actor.CONFIRMED, C): {A},
    (Actor.OWNER, A): {U, B, C},
    (Actor.OWNER, P): {A, U, B, C},
    (Actor.OWNER, U): {A, B, C},
    (Actor.OWNER, B): {A, C},
    (Actor.OWNER, C): {A},
}


@pytest.mark.parametrize("actor", list(Actor))
@pytest.mark.parametrize("old", list(S))
@pytest.mark.parametrize("new", list(S))
def test_status_policy_table(actor: Actor, old: S, new: S) -> None:
    assert may_change(old, new, actor) == (new in ALLOWED[(actor, old)])


def test_no_machine_ever_lifts_a_suppression() -> None:
    for old in SUPPRESSED:
        for new in (A, P):
            for actor in (Actor.PROVIDER, Actor.IMPORT, Actor.ONE_CLICK):
                assert not may_change(old, new, actor)


def test_import_raises_suppression_like_the_webhook(project: Path, run: Cli) -> None:
    settings = load_settings(project)
    with open_store(settings) as store:
        store.subscribers.add("u@example.com")
        store.subscribers.unsubscribe("u@example.com")
        path = write(project / "s.csv", "email,status\nu@example.com,complained\n")
        r = import_csv(store.engine, path)
        assert r.updated == 1 and store.subscribers.require("u@example.com").status == "complained"
        path = write(project / "s.csv", "email,status\nu@example.com,unsubscribed\n")
        import_csv(store.engine, path)
        assert store.subscribers.require("u@example.com").status == "complained"


def test_owner_resubscribe_is_explicit_and_recorded(project: Path, run: Cli) -> None:
    run("subscribers", "add", "ann@example.com")
    run("subscribers", "unsubscribe", "ann@example.com")
    r = run("subscribers", "resubscribe", "ann@example.com")
    assert r.exit_code == 1 and "refusing to resubscribe without confirmation" in r.output
    r = run("subscribers", "resubscribe", "ann@example.com", "--yes")
    assert r.output == "resubscribed ann@example.com (was unsubscribed)\n"
    shown = run("subscribers", "show", "ann@example.com").output
    assert "unsubscribed -> active  (owner: cli resubscribe)" in shown


def test_only_the_newest_confirmation_counts_and_after_unsubscribing_none(
    project: Path, run: Cli
) -> None:
    settings = load_settings(project)
    with (
        open_store(settings) as store,
        TestClient(create_app(settings, store, background=False)) as client,
    ):
        client.post("/subscribe", data={"email": "ann@example.com"})
        drain(client)
        old = confirm_link(project, set())
        seen = set(emls(project, "confirmations"))
        client.post("/subscribe", data={"email": "ann@example.com"})
        drain(client)
        assert set(emls(project, "confirmations")) == seen  # one a day for an unused address
        with store.engine.begin() as conn:  # a day later
            conn.exec_driver_sql("UPDATE subscribers SET confirm_sent_at = '2000-01-01 00:00:00'")
        client.post("/subscribe", data={"email": "ann@example.com"})
        drain(client)
        new = confirm_link(project, seen)
        assert client.post(old).status_code == 410
        assert store.subscribers.require("ann@example.com").status == "pending"
        assert client.post(new).status_code == 200
        r = client.post(new)
        assert r.status_code == 200 and "already subscribed" in r.text
        store.subscribers.unsubscribe("ann@example.com")
        r = client.post(new)
        assert r.status_code == 410 and "You are subscribed" not in r.text
        assert store.subscribers.require("ann@example.com").status == "unsubscribed"


# -- 6. erase erases ------------------------------------------------------------------------


def test_erase_removes_events_and_deliveries_but_keeps_the_numbers(project: Path, run: Cli) -> None:
    add_list(run, "ann@example.com", "bob@example.com")
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    settings = load_settings(project)
    with open_store(settings) as store:
        ann = store.subscribers.require("ann@example.com")
        issue_id = int(store.pins.find("2026-11-20-weekly").id)  # type: ignore[union-attr]
        from mailer.feedback.apply import Rules, apply_batch
        from mailer.models import DeliveryEvent, EventType, Proof, Source

        opened = DeliveryEvent(
            EventType.OPENED,
            Source.SENDGRID,
            Proof.PROVIDER,
            "o1",
            "ann@example.com",
            ann.id,
            issue_id,
            data={"ip": "203.0.113.9", "useragent": "Mozilla/5.0"},
        )
        apply_batch(store.engine, [opened], Rules())
    before = json.loads(run("report", str(project / ISSUE), "--json").output)
    assert run("subscribers", "erase", "ann@example.com", "--yes").exit_code == 0
    with open_store(settings) as store, store.engine.connect() as conn:
        for table in ("events", "recipients", "status_changes"):
            left = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE subscriber_id = :i"), {"i": ann.id}
            ).scalar()
            assert left == 0, table
        assert "203.0.113.9" not in json.dumps(
            [list(r) for r in conn.execute(sa.text("SELECT * FROM events")).all()], default=str
        )
    after = json.loads(run("report", str(project / ISSUE), "--json").output)
    assert (
        {k: after[k] for k in ("recipients", "sent", "opened")}
        == {k: before[k] for k in ("recipients", "sent", "opened")}
        == {"recipients": 2, "sent": 2, "opened": 1}
    )


# -- 7/12. ad-hoc sends have their own identities -------------------------------------------


def test_test_copies_are_counted_per_address(project: Path, run: Cli) -> None:
    r = run("send", str(project / ISSUE), "--test", "a@example.org", "--test", "b@example.org")
    assert r.exit_code == 0 and "sent 2 test message(s)" in r.output, r.output
    ids = {parse(p)["Message-ID"] for p in emls(project)}
    assert len(ids) == 2


def test_test_copies_over_smtp_get_fresh_message_ids_every_run(project: Path, run: Cli) -> None:
    with SmtpServer() as smtp:
        env = {
            "MAILER_PROVIDER": "smtp",
            "MAILER_SMTP_HOST": "127.0.0.1",
            "MAILER_SMTP_PORT": str(smtp.port),
            "MAILER_SMTP_SECURITY": "none",
        }
        for _ in range(2):
            args = ("--test", "a@example.org", "--test", "b@example.org")
            assert run("send", str(project / ISSUE), *args, env=env).exit_code == 0
        ids = [str(m["Message-ID"]) for m in smtp.handler.parsed()]
    assert len(ids) == 4 and len(set(ids)) == 4


def test_two_confirmations_in_one_second_are_two_files(project: Path) -> None:
    settings = load_settings(project)
    with (
        open_store(settings) as store,
        TestClient(create_app(settings, store, background=False)) as client,
    ):
        for _ in range(2):
            client.post("/subscribe", data={"email": "ann@example.com"})
            drain(client)
            with store.engine.begin() as conn:  # lift the one-a-day limit, not the second
                conn.exec_driver_sql("UPDATE subscribers SET confirm_sent_at = NULL")
    assert len(emls(project, "confirmations")) == 2


# -- 8. local errors are not "ambiguous" ------------------------------------------------------


def test_an_outbox_that_cannot_be_written_leaves_everyone_pending(project: Path, run: Cli) -> None:
    add_list(run, "a@example.com", "b@example.com")
    write(project / "blocked", "a file, not a folder")
    r = run("send", str(project / ISSUE), "--yes", env={"MAILER_OUTBOX_DIR": "blocked"})
    assert r.exit_code == 1
    assert "cannot write to the outbox" in r.output and "check outbox_dir" in r.output
    status = json.loads(run("status", str(project / ISSUE), "--json").output)
    assert (status["pending"], status["ambiguous"], status["sent"]) == (2, 0, 0)
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0  # fixed: it all goes
    assert len(emls(project)) == 2


# -- 10. 429s are waited out -----------------------------------------------------------------


def test_sendgrid_429s_do_not_use_up_the_retries(
    project: Path, run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailer.providers.sendgrid.api as sendgrid

    monkeypatch.setattr(sendgrid, "_reset_wait", lambda headers: 0.01)
    add_list(run, "a@example.com")
    with SendGridServer() as sg:
        sg.state.script = ["429"] * 12
        env = {
            "MAILER_PROVIDER": "sendgrid",
            "SENDGRID_API_KEY": sg.state.api_key,
            "MAILER_SENDGRID_API_HOST": sg.url,
        }
        r = run("send", str(project / ISSUE), "--yes", env=env)
        assert r.exit_code == 0, r.output
        assert dict(sg.state.delivered) == {"a@example.com": 1}


# -- 11. preview shows what is sent ------------------------------------------------------------


def test_preview_as_a_subscriber_before_the_first_send_is_what_they_get(
    project: Path, run: Cli
) -> None:
    from mailer.compose.build import personalize_for
    from mailer.content.render import Renderer

    add_list(run, "ann@example.com")
    settings = load_settings(project)
    rendered = Renderer(settings).render(load_issue(project / ISSUE))
    html, text, _ = personalize_for(settings, rendered, "ann@example.com")
    assert run("send", str(project / ISSUE), "--yes").exit_code == 0
    (eml,) = emls(project)
    msg = parse(eml)
    plain, rich = (p.get_content() for p in msg.iter_parts())  # type: ignore[attr-defined]
    crlf = "\r\n"
    # byte for byte, but for the line endings and final newline a MIME part adds
    assert rich.replace(crlf, "\n").rstrip("\n") == html.replace(crlf, "\n").rstrip("\n")
    assert plain.replace(crlf, "\n").rstrip("\n") == text.replace(crlf, "\n").rstrip("\n")

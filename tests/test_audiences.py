"""Audiences: topics and languages on subscribers, the expression grammar, who a send goes
to (pinned at the first send), paused readers, and CSV in and out. On both databases."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailer.audience import All, Any_, Audience, AudienceError, HasTopic, Not, ReadsLang, parse
from mailer.config import load_settings
from mailer.store import open_store
from mailer.store.preferences import Choices
from mailer.store.subscribers import Selection
from tests.conftest import Cli, write

ISSUE = "issues/2026-11-20-weekly.md"
TOPICS = ("ai", "ml", "crypto", "policy")
LANGS = ("en", "zh-CN", "en-GB", "ja")
CONFIG = """
languages = ["en", "zh-CN", "ja"]

[topics]
ai = { en = "AI", zh-CN = "人工智能" }
ml = "Machine learning"
crypto = "Crypto"
policy = "Policy"
"""


def with_topics(project: Path) -> Path:
    toml = project / "mailer.toml"
    toml.write_text(toml.read_text() + CONFIG)
    return project


@pytest.fixture
def topical(project: Path) -> Path:
    return with_topics(project)


def outbox_to(project: Path) -> dict[str, email.message.EmailMessage]:
    found = {}
    for p in (project / "outbox").rglob("*.eml"):
        if "confirmations" in p.parts:
            continue
        msg = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        found[str(msg["To"]).rsplit("<", 1)[-1].strip(">").lower()] = msg
    return found  # type: ignore[return-value]


# -- the grammar ---------------------------------------------------------------------------


def test_expressions_parse_to_one_spelling_and_errors_name_the_column() -> None:
    a = parse("topic:AI and not (lang:en or lang:ja)")
    assert str(a) == "topic:ai and not (lang:en or lang:ja)" and parse(str(a)) == a
    assert a.matches({"ai"}, "zh-CN") and not a.matches({"ai"}, "en-GB")
    for text, column in [
        ("topic:ai and", 13),
        ("topic:ai lang:en", 10),
        ("(topic:ai", 10),
        ("topic:ai & topic:ml", 10),
        ("lang:xx", 6),
        ("tpoic:ai", 1),
    ]:
        with pytest.raises(AudienceError) as e:
            parse(text)
        assert e.value.column == column, (text, str(e.value))
    with pytest.raises(AudienceError, match="nested deeper"):
        parse("not " * 60 + "topic:ai")


def test_a_bad_audience_is_one_line_pointing_at_the_column(topical: Path, run: Cli) -> None:
    run("subscribers", "add", "a@example.com")
    r = run("send", str(topical / ISSUE), "--to", "topic:ai and", "--dry-run")
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "Error: --to 'topic:ai and': expected topic:KEY, lang:CODE, 'not' or '(' but the text "
        "ended at column 13"
    ]
    r = run("send", str(topical / ISSUE), "--to", "topic:aii", "--dry-run")
    assert r.exit_code == 1 and "unknown topic 'aii'; topics: ai, crypto, ml, policy" in r.output
    r = run("subscribers", "count", "--where", "lang:fr")
    assert r.exit_code == 1 and "does not offer; languages: en, zh-CN, ja" in r.output
    assert "Traceback" not in r.output


# -- the store's SQL means what the grammar means, on both databases ------------------------

atoms = st.one_of(
    st.sampled_from(TOPICS).map(HasTopic),
    st.sampled_from(("en", "zh-CN", "ja", "zh")).map(ReadsLang),
)


def _extend(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: All(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Any_(tuple(xs))),
    )


expressions = st.recursive(atoms, _extend, max_leaves=8)  # type: ignore[arg-type]


@pytest.fixture
def population(topical: Path) -> dict[int, tuple[frozenset[str], str]]:
    """300 subscribers with random topics and languages (a third with none: the list's)."""
    rng = random.Random(7)
    settings = load_settings(topical)
    people: dict[int, tuple[frozenset[str], str]] = {}
    with open_store(settings) as store:
        for i in range(300):
            s, _ = store.subscribers.add(f"p{i}@example.com")
            topics = frozenset(t for t in TOPICS if rng.random() < 0.4)
            lang = rng.choice([*LANGS, ""])
            store.preferences.change(s.id, Choices(topics=topics, language=lang), "test")
            people[s.id] = (topics, lang or settings.language)
    return people


@hsettings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(node=expressions)
def test_sql_picks_exactly_whom_the_expression_matches(
    topical: Path, population: dict[int, tuple[frozenset[str], str]], node: object
) -> None:
    audience = parse(str(Audience(node)))  # type: ignore[arg-type]
    settings = load_settings(topical)
    with open_store(settings) as store:
        chosen = {s.id for s in store.subscribers.iter(where=Selection(audience, "en"))}
    expected = {sid for sid, (t, lang) in population.items() if audience.matches(t, lang)}
    assert chosen == expected, str(audience)


# -- topics and languages on the command line and in CSV -------------------------------------


def test_topics_command_show_and_history(topical: Path, run: Cli) -> None:
    run("subscribers", "add", "ada@example.com")
    r = run("subscribers", "topics", "ada@example.com", "--add", "ai", "--add", "ML")
    assert r.exit_code == 0 and r.output == "ada@example.com: ai, ml\n"
    r = run("subscribers", "topics", "ada@example.com", "--remove", "ai")
    assert r.output == "ada@example.com: ml\n"
    r = run("subscribers", "topics", "ada@example.com", "--add", "sports")
    assert r.exit_code == 1 and "unknown topic 'sports'" in r.output
    shown = run("subscribers", "show", "ada@example.com").output
    assert "topics:   ml" in shown and "language: en (the list’s)" in shown
    assert "active -> active  (owner:cli: topics ai, ml)" in shown
    assert "(owner:cli: topics ml)" in shown


def test_import_export_topics_and_language_round_trip(topical: Path, run: Cli) -> None:
    csv = write(
        topical / "in.csv",
        "email,name,language,topics\n"
        'a@example.com,A,en,"ai, ml"\n'
        "b@example.com,B,ZH_cn,policy\n"
        "c@example.com,C,,\n"
        "d@example.com,D,fr,ai\n"
        "e@example.com,E,en,sports\n"
        "f@example.com,F,en-GB,crypto\n",
    )
    r = run("subscribers", "import", str(csv))
    assert r.exit_code == 0, r.output
    assert "added 4" in r.output and "invalid 2" in r.output
    assert "line 5: invalid: language 'fr' is not offered; languages: en, zh-CN, ja" in r.output
    assert "line 6: invalid: unknown topic 'sports'; topics: ai, crypto, ml, policy" in r.output
    out = topical / "out.csv"
    assert run("subscribers", "export", "-o", str(out)).exit_code == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("email,name,status,language,topics,")
    assert rows[1].startswith('a@example.com,A,active,en,"ai,ml",')
    assert rows[2].startswith("b@example.com,B,active,zh-CN,policy,")
    assert rows[3].startswith("c@example.com,C,active,,,")
    # A second import changes topics and language of the people already there.
    again = write(topical / "again.csv", "email,topics,language\na@example.com,crypto,ja\n")
    r = run("subscribers", "import", str(again))
    assert "updated 1" in r.output, r.output
    settings = load_settings(topical)
    with open_store(settings) as store:
        a = store.subscribers.require("a@example.com")
        assert a.topics == ("crypto",) and a.language == "ja"
        # no topics column: topics stay; an empty field clears them
        write(topical / "names.csv", "email,name\na@example.com,Ann\n")
        run("subscribers", "import", str(topical / "names.csv"))
        assert store.subscribers.require("a@example.com").topics == ("crypto",)
        write(topical / "clear.csv", "email,topics\na@example.com,\n")
        run("subscribers", "import", str(topical / "clear.csv"))
        assert store.subscribers.require("a@example.com").topics == ()
    # The export imports back unchanged.
    r = run("subscribers", "import", str(out))
    assert "invalid 0" in r.output and "added 0" in r.output


def test_list_count_export_take_where(topical: Path, run: Cli) -> None:
    write(
        topical / "in.csv",
        "email,language,topics\na@example.com,en,ai\nb@example.com,zh-CN,ai\nc@example.com,en,ml\n",
    )
    run("subscribers", "import", str(topical / "in.csv"))
    r = run("subscribers", "count", "--where", "topic:ai and not lang:en")
    assert r.stdout == "1\n" and "where topic:ai and not lang:en" in r.output
    listed = run("subscribers", "list", "--where", "topic:ai", "--format", "csv").output
    assert "a@example.com" in listed and "b@example.com" in listed and "c@example" not in listed
    out = topical / "ai.csv"
    run("subscribers", "export", "--where", "lang:en", "-o", str(out))
    assert "c@example.com" in out.read_text() and "b@example" not in out.read_text()


# -- sending to an audience -------------------------------------------------------------------


def _people(topical: Path, run: Cli) -> None:
    write(
        topical / "in.csv",
        "email,language,topics\n"
        "ai-en@example.com,en,ai\n"
        "ai-zh@example.com,zh-CN,ai\n"
        "ml-en@example.com,en,ml\n"
        "none@example.com,,\n",
    )
    assert run("subscribers", "import", str(topical / "in.csv")).exit_code == 0


def test_front_matter_audience_sends_to_exactly_those_and_the_flag_wins(
    topical: Path, run: Cli
) -> None:
    _people(topical, run)
    issue = topical / ISSUE
    issue.write_text("---\naudience: topic:ai\n---\n" + issue.read_text())
    r = run("send", str(issue), "--dry-run")
    assert "2 recipients" in r.output and "audience: topic:ai" in r.output
    r = run("send", str(issue), "--to", "topic:ai and not lang:en", "--yes")
    assert r.exit_code == 0, r.output
    assert set(outbox_to(topical)) == {"ai-zh@example.com"}
    # The audience is pinned: a resume with another one is refused, in one line.
    r = run("send", str(issue), "--yes")
    assert r.exit_code == 1 and "went to the audience 'topic:ai and not lang:en'" in r.output
    status = run("status", str(issue)).output
    assert "audience: topic:ai and not lang:en" in status


def test_a_paused_reader_is_skipped_until_the_date(topical: Path, run: Cli) -> None:
    _people(topical, run)
    settings = load_settings(topical)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(weeks=2)
    with open_store(settings) as store:
        s = store.subscribers.require("ml-en@example.com")
        store.preferences.change(s.id, Choices(paused_until=later), "test")
    r = run("send", str(topical / ISSUE), "--yes")
    assert r.exit_code == 0, r.output
    assert "ml-en@example.com" not in outbox_to(topical) and len(outbox_to(topical)) == 3
    # Once the date has passed, the next issue reaches them again.
    with open_store(settings) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE subscribers SET paused_until = '2000-01-01 00:00:00'")
    second = write(topical / "issues/2026-11-27-next.md", "# Next\n\nMore.\n")
    assert run("send", str(second), "--yes").exit_code == 0
    got = [p for p in (topical / "outbox").rglob("*.eml") if "ml-en" in p.name]
    assert len(got) == 1


def test_a_reader_who_pauses_or_drops_the_topic_mid_send_is_skipped(
    topical: Path, run: Cli
) -> None:
    """The snapshot is taken; before their batch goes, one reader drops the topic and
    another pauses: neither is mailed, and the ledger says why."""
    _people(topical, run)
    settings = load_settings(topical)
    from mailer.sending import send as core

    plan = core.plan(settings, str(topical / ISSUE), to="topic:ai or topic:ml")
    with open_store(settings) as store:
        from mailer.sending.send import claim_size  # noqa: F401  (the plan pins on run)

        store.pins.pin(
            plan.slug,
            plan.snapshot,  # type: ignore[arg-type]
            1000,
            audience=Selection(plan.audience, settings.language),
        )
        ai_zh = store.subscribers.require("ai-zh@example.com")
        ml_en = store.subscribers.require("ml-en@example.com")
        store.preferences.change(ai_zh.id, Choices(topics=frozenset()), "test")
        later = dt.datetime.now(dt.UTC) + dt.timedelta(weeks=1)
        store.preferences.change(ml_en.id, Choices(paused_until=later), "test")
    r = run("send", str(topical / ISSUE), "--to", "topic:ai or topic:ml", "--yes")
    assert r.exit_code == 0, r.output
    assert set(outbox_to(topical)) == {"ai-en@example.com"}
    listed = run("status", str(topical / ISSUE), "--all").output
    assert "left the audience" in listed and "paused" in listed

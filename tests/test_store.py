"""The subscriber store on SQLite and PostgreSQL: addresses, import, export, erase, schema."""

from __future__ import annotations

import csv
import gc
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailer import addresses
from mailer.errors import InputError, StoreError
from mailer.models import Actor
from mailer.store import Store, open_url
from mailer.store.imports import import_csv
from tests.conftest import Cli, write


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_url(db_url) as store:
        yield store


def test_addresses_normalize_domain_and_keep_local_part() -> None:
    assert addresses.normalize("  John.Doe@Example.COM ") == "John.Doe@example.com"
    assert addresses.normalize("a@Bücher.de") == "a@xn--bcher-kva.de"
    for bad in ("Bob <bob@example.com>", "a b@example.com", "a@localhost", "nobody", "a@b.test"):
        with pytest.raises(addresses.InvalidAddress):
            addresses.normalize(bad)


@given(st.from_regex(r"[A-Za-z0-9_+.-]{1,20}@[A-Za-z0-9.-]{1,20}\.[A-Za-z]{2,6}", fullmatch=True))
@example("0@00--0.AA")  # a reserved "ab--" label (RFC 5890), not punycode
@example("a@xn--bcher-kva.example")
@hsettings(max_examples=300)
def test_fast_path_agrees_with_email_validator(raw: str) -> None:
    try:
        v = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
        expected: str | None = f"{v.local_part}@{v.ascii_domain}"
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = addresses.normalize(raw)
    except addresses.InvalidAddress:
        got = None
    assert got == expected


def test_uniqueness_is_case_insensitive(store: Store) -> None:
    s, created = store.subscribers.add("Ann@Example.com", "Ann")
    assert created and s.email == "Ann@example.com"
    again, created = store.subscribers.add("ann@EXAMPLE.com")
    assert not created and again.id == s.id
    assert store.subscribers.count() == 1


def test_import_reports_every_row(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "list.csv",
        "\ufeffEMAIL;Name;Company\n"
        "ann@example.com;Ann;A Corp\n"
        "not-an-address;X;\n"
        "ANN@example.com;Ann again;\n"
        'bob@example.com;"Bob\nSmith";B Corp\n'
        "carl@example.com;Carl;C;extra\n"
        "Dee <dee@example.com>;Dee;\n"
        ";nobody;\n",
    )
    r = import_csv(store.engine, path)
    assert (r.rows, r.added, r.invalid, r.duplicates) == (7, 2, 4, 1)
    assert r.invalid_lines[0] == (3, "not-an-address: An email address must have an @-sign.")
    assert r.invalid_lines[1] == (7, "4 fields but the header has 3")
    assert r.invalid_lines[2][0] == 8 and "display name" in r.invalid_lines[2][1]
    assert r.invalid_lines[3] == (9, "no email address")
    assert r.duplicate_lines == [(4, "ANN@example.com")]
    bob = store.subscribers.get("bob@example.com")
    assert bob is not None and bob.name == "Bob Smith" and bob.attributes == {"company": "B Corp"}
    assert bob.consent_source == "import:list.csv"


def test_import_updates_but_never_reactivates(store: Store, tmp_path: Path) -> None:
    write(
        tmp_path / "a.csv",
        "email,name\nann@example.com,Ann\nbob@example.com,Bob\ncat@example.com,Cat\n",
    )
    import_csv(store.engine, tmp_path / "a.csv")
    store.subscribers.unsubscribe("ann@example.com")
    bob = store.subscribers.require("bob@example.com")
    store.subscribers.set_status(bob.id, addresses_status("bounced"), Actor.PROVIDER, "test")
    write(
        tmp_path / "b.csv",
        "email,name\nann@example.com,Ann\nbob@example.com,Bobby\ncat@example.com,Catherine\ndan@example.com,Dan\n",
    )
    r = import_csv(store.engine, tmp_path / "b.csv")
    assert (r.added, r.updated, r.unchanged, r.left_alone) == (1, 1, 0, 2)
    assert store.subscribers.require("ann@example.com").status == "unsubscribed"
    assert store.subscribers.require("bob@example.com").status == "bounced"
    assert store.subscribers.require("cat@example.com").name == "Catherine"


def addresses_status(value: str):  # type: ignore[no-untyped-def]
    from mailer.models import SubscriberStatus

    return SubscriberStatus(value)


def test_import_status_column_can_suppress_not_reactivate(store: Store, tmp_path: Path) -> None:
    write(
        tmp_path / "a.csv", "email,status\nann@example.com,active\nbob@example.com,unsubscribed\n"
    )
    import_csv(store.engine, tmp_path / "a.csv")
    write(tmp_path / "b.csv", "email,status\nann@example.com,complained\nbob@example.com,active\n")
    import_csv(store.engine, tmp_path / "b.csv")
    assert store.subscribers.require("ann@example.com").status == "complained"
    assert store.subscribers.require("bob@example.com").status == "unsubscribed"
    assert [
        h["new_status"]
        for h in store.subscribers.history(store.subscribers.require("ann@example.com").id)
    ] == ["complained"]


def test_dry_run_writes_nothing(store: Store, tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "email\nann@example.com\nbob@example.com\n")
    r = import_csv(store.engine, tmp_path / "a.csv", dry_run=True)
    assert r.added == 2
    assert store.subscribers.count() == 0


def test_duplicates_across_chunks_are_counted_once_and_sign_ups_are_not_duplicates(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later chunk recognises an address an earlier chunk added (SQLite: by id and the
    import's own stamp) or an earlier chunk matched (import_seen); PostgreSQL stages the
    file in pieces and finds the same; someone who signs up while the import runs is an
    existing subscriber to it, not a duplicate line."""
    from mailer.store import import_pg, import_sqlite

    monkeypatch.setattr(import_pg, "STAGE", 3)  # PostgreSQL stages the file three rows a COPY
    store.subscribers.add("old@example.com", "Old")
    write(
        tmp_path / "a.csv",
        "email,name\n"
        "a@example.com,A\nold@example.com,Old\nb@example.com,B\n"  # chunk 1
        "A@EXAMPLE.COM,again\nc@example.com,C\nOLD@example.com,again\n"  # chunk 2
        "late@example.com,Late\nb@example.com,again\nd@example.com,D\n",  # chunk 3
    )
    real = import_sqlite.chunked

    def sign_up_between_chunks(*args, **kw):  # type: ignore[no-untyped-def]
        for n, chunk in enumerate(real(*args, **kw)):
            if n == 1:  # the first chunk is in (SQLite) or staged (PostgreSQL)
                store.subscribers.add("late@example.com", "Signed up")
            yield chunk

    for dry_run in (True, False):
        monkeypatch.setattr(import_sqlite, "chunked", sign_up_between_chunks)
        monkeypatch.setattr(import_pg, "chunked", sign_up_between_chunks)
        r = import_csv(store.engine, tmp_path / "a.csv", chunk_size=3, dry_run=dry_run)
        assert (r.duplicates, r.added) == (3, 4), dry_run
        assert sorted(line for line, _ in r.duplicate_lines) == [5, 7, 9]
        if dry_run:  # nothing was written; the sign-up happened for real
            assert store.subscribers.count() == 2
            store.engine.dispose()
            with store.engine.begin() as conn:
                conn.execute(
                    sa.text("DELETE FROM subscribers WHERE email_key = 'late@example.com'")
                )
    assert store.subscribers.count() == 6  # old, late, a, b, c, d
    with store.engine.connect() as conn:
        names = dict(conn.execute(sa.text("SELECT email_key, name FROM subscribers")).all())
    assert names["a@example.com"] == "A" and names["b@example.com"] == "B"
    assert names["late@example.com"] == "Late"  # the file's name: it updated the sign-up


def test_a_sign_up_between_the_lookup_and_the_insert_is_kept_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL someone may sign up with an address of the file after the import
    looked for existing subscribers and before it inserts the new ones: they keep their
    sign-up, counted as already there, and the rest goes in. (SQLite holds the write lock
    from the lookup on: nobody can sign up in between.)"""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write lock makes this race impossible")
    from mailer.store import import_pg

    write(tmp_path / "a.csv", "email,name\na@example.com,A\nb@example.com,B\nc@example.com,C\n")
    real = import_pg._insert

    def sign_up_first(*args, **kw):  # type: ignore[no-untyped-def]
        store.subscribers.add("b@example.com", "Signed up")  # its own connection, committed
        return real(*args, **kw)

    monkeypatch.setattr(import_pg, "_insert", sign_up_first)
    r = import_csv(store.engine, tmp_path / "a.csv")
    assert (r.added, r.unchanged, r.duplicates) == (2, 1, 0)
    with store.engine.connect() as conn:
        names = dict(conn.execute(sa.text("SELECT email_key, name FROM subscribers")).all())
    assert names == {"a@example.com": "A", "b@example.com": "Signed up", "c@example.com": "C"}


def power_cut_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """An import's status changes fail after the first `calls` of them."""
    from mailer.store import import_pg, import_sqlite

    made = {"n": 0}
    real = import_sqlite.change_status

    def change_status(*args, **kw):  # type: ignore[no-untyped-def]
        made["n"] += 1
        if made["n"] > calls:
            raise RuntimeError("power cut")
        return real(*args, **kw)

    monkeypatch.setattr(import_sqlite, "change_status", change_status)
    monkeypatch.setattr(import_pg, "change_status", change_status)


def test_a_failed_chunk_is_wholly_out(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite commits a chunk at a time: a failure leaves the chunks before it in and its
    own wholly out. PostgreSQL merges the file in one transaction: nothing of it is in."""
    rows = "".join(
        f"u{i}@example.com,{'unsubscribed' if i == 7 else 'active'}\n" for i in range(10)
    )
    write(tmp_path / "a.csv", "email,status\n" + rows)
    write(
        tmp_path / "b.csv",
        "email,status\n"
        + "".join(f"u{i}@example.com,unsubscribed\n" for i in range(5))
        + "".join(f"n{i}@example.com,active\n" for i in range(5)),
    )
    import_csv(store.engine, tmp_path / "a.csv", chunk_size=5)
    power_cut_after(monkeypatch, 5)  # in the second chunk
    write(
        tmp_path / "c.csv",
        "email,status\n"
        + "".join(f"n{i}@example.com,active\n" for i in range(3))
        + "".join(f"u{i}@example.com,unsubscribed\n" for i in range(6)),
    )
    with pytest.raises(RuntimeError):
        import_csv(store.engine, tmp_path / "c.csv", chunk_size=5)
    assert gc.get_freeze_count() == 0  # a failed import leaves nothing out of the collector's reach
    if store.engine.dialect.name == "sqlite":
        # chunk 1 (n0..n2, u0, u1) committed; chunk 2 (u2..u5) rolled back as a whole
        assert store.subscribers.count("unsubscribed") == 3  # u0, u1; u7 from the first
        assert store.subscribers.count() == 13
    else:  # one transaction for the file: as before it
        assert store.subscribers.count("unsubscribed") == 1  # u7 from the first import
        assert store.subscribers.count() == 10


def test_a_chunk_read_in_pieces_is_one_transaction(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite reads a chunk a piece at a time but commits it once: a failure in a later
    piece takes the chunk's earlier pieces out with it."""
    if store.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL merges the whole file in one transaction (the test above)")
    from mailer.store import import_sqlite

    import_csv(
        store.engine,
        write(tmp_path / "a.csv", "email\n" + "".join(f"u{i}@example.com\n" for i in range(4))),
    )
    monkeypatch.setattr(import_sqlite, "PIECE", 2)
    power_cut_after(monkeypatch, 2)  # u0 and u1 (the chunk's first piece) were applied
    write(
        tmp_path / "b.csv",
        "email,status\n"
        + "".join(f"n{i}@example.com,active\n" for i in range(4))
        + "".join(f"u{i}@example.com,unsubscribed\n" for i in range(4)),
    )
    with pytest.raises(RuntimeError):
        import_csv(store.engine, tmp_path / "b.csv", chunk_size=4)
    assert store.subscribers.count() == 8  # the first chunk (n0..n3, two pieces) is in
    assert store.subscribers.count("unsubscribed") == 0  # the second is wholly out


def test_import_errors_name_the_fix(store: Store, tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match="no 'email' column in the header \\(mail, name\\); add a header"
    ):
        import_csv(store.engine, write(tmp_path / "h.csv", "mail,name\nx@example.com,X\n"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,name\nzoe@example.com,Zoë\n".encode("cp1252"))
    with pytest.raises(
        InputError,
        match=r"not UTF-8 \(byte 0xeb at offset 29\); it looks like CP1252: convert it with iconv -f CP1252",
    ):
        import_csv(store.engine, latin)
    with pytest.raises(InputError, match="no such file"):
        import_csv(store.engine, tmp_path / "nope.csv")
    with pytest.raises(InputError, match="the file is empty"):
        import_csv(store.engine, write(tmp_path / "e.csv", ""))
    assert store.subscribers.count() == 0


def test_huge_field_is_refused_and_the_rest_imported(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write(
            "email,name\nann@example.com,Ann\nbob@example.com,"
            + "x" * (10 << 20)
            + "\ncat@example.com,Cat\n"
        )
    r = import_csv(store.engine, path)
    assert r.added == 2 and r.invalid == 1
    assert r.invalid_lines[0][1] == "a field is over 1 MiB"
    assert store.subscribers.get("cat@example.com") is not None


def test_export_streams_and_round_trips(store: Store, tmp_path: Path, run_store_cli: Cli) -> None:
    write(
        tmp_path / "a.csv",
        'email,name,city\nann@example.com,"Doe, Ann",Berlin\nli@example.cn,李雷,\n',
    )
    import_csv(store.engine, tmp_path / "a.csv")
    out = tmp_path / "out.csv"
    result = run_store_cli("subscribers", "export", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["email"] for r in rows] == ["ann@example.com", "li@example.cn"]
    assert rows[0]["name"] == "Doe, Ann" and rows[0]["status"] == "active" and rows[0]["created_at"]
    assert json.loads(rows[0]["attributes"]) == {"city": "Berlin"}
    r = import_csv(store.engine, out)  # an export imports cleanly, changing nothing
    assert (r.unchanged, r.added, r.updated, r.invalid) == (2, 0, 0, 0)


def test_import_keeps_backslashes_tabs_and_newlines_exactly(store: Store, tmp_path: Path) -> None:
    """PostgreSQL gets each chunk as COPY text written by hand: \\, \\N, tabs and line
    breaks in names and attributes must arrive as they were (names lose control
    characters by design; attributes keep everything)."""
    city = 'a\\b \\N "q"\ttab\nline \\\\ 你好'
    path = tmp_path / "a.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(
            [["email", "name", "city"], ["ann@example.com", "Ann \\N \\ O\\'Neil", city]]
        )
    assert import_csv(store.engine, path).added == 1
    with store.engine.connect() as conn:
        name, attributes = conn.execute(sa.text("SELECT name, attributes FROM subscribers")).one()
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    assert name == "Ann \\N \\ O\\'Neil"
    assert attributes == {"city": city}


def test_erase_forgets_and_blocks_re_import(store: Store, tmp_path: Path) -> None:
    store.subscribers.add("ann@example.com", "Ann")
    store.subscribers.erase("ANN@example.com")
    assert store.subscribers.get("ann@example.com") is None
    with store.engine.connect() as conn:
        dump = " ".join(
            str(r)
            for t in ("subscribers", "status_changes")
            for r in conn.execute(sa.text(f"SELECT * FROM {t}"))
        )
    assert "ann@" not in dump.lower()
    r = import_csv(store.engine, write(tmp_path / "a.csv", "email\nann@example.com\n"))
    assert r.erased == 1 and store.subscribers.count() == 0
    with pytest.raises(InputError, match="asked to be forgotten"):
        store.subscribers.add("ann@example.com")
    r = import_csv(store.engine, tmp_path / "a.csv", allow_erased=True)
    assert r.added == 1


def test_many_changes_to_existing_subscribers_are_written_as_the_import_reads_them(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL streams the existing subscribers an import touches and writes their
    changes a thousand at a time (here two) while it reads on: every change lands."""
    from mailer.store import import_pg

    monkeypatch.setattr(import_pg, "UPDATES", 2)
    people = [f"u{i}@example.com" for i in range(7)]
    write(tmp_path / "a.csv", "email,name\n" + "".join(f"{p},Old\n" for p in people))
    import_csv(store.engine, tmp_path / "a.csv")
    rows = [f"{p},New{i},{'unsubscribed' if i % 3 == 0 else ''}\n" for i, p in enumerate(people)]
    write(tmp_path / "b.csv", "email,name,status\n" + "".join(rows))
    r = import_csv(store.engine, tmp_path / "b.csv")
    assert (r.updated, r.unchanged, r.added) == (7, 0, 0)
    got = {s.email: (s.name, s.status) for s in store.subscribers.iter()}
    assert got == {
        p: (f"New{i}", "unsubscribed" if i % 3 == 0 else "active") for i, p in enumerate(people)
    }


def test_an_erased_person_who_signed_up_again_is_a_subscriber_to_imports(
    store: Store, tmp_path: Path
) -> None:
    """The fingerprint an erasure keeps blocks imports of someone who is not subscribed; once
    they signed up again themselves, an import treats them as any subscriber."""
    store.subscribers.add("ann@example.com", "Ann")
    store.subscribers.erase("ann@example.com")
    store.subscribers.add("ann@example.com", "Ann", source="web:subscribe", allow_erased=True)
    r = import_csv(store.engine, write(tmp_path / "a.csv", "email,name\nann@example.com,Annie\n"))
    assert (r.erased, r.added, r.updated) == (0, 0, 1)
    assert store.subscribers.require("ann@example.com").name == "Annie"


@given(st.lists(st.lists(st.text(max_size=30), min_size=0, max_size=5), max_size=20))
@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_arbitrary_csv_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    with open_url(f"sqlite:///{tmp / 'db.sqlite'}") as store:
        _check_import(store, tmp, rows)


def _check_import(store: Store, tmp: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["email", "name"])
    for row in rows:
        w.writerow(row)
    path = tmp / "x.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    try:
        r = import_csv(store.engine, path)
    except InputError:
        return  # e.g. no rows at all: a clean, named error
    assert (
        r.added + r.updated + r.unchanged + r.invalid + r.duplicates + r.left_alone + r.erased
        == r.rows
    )
    assert store.subscribers.count() == r.added


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot open the database: .*"):
        open_url("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match="not a valid SQLAlchemy URL"):
        open_url("nonsense")


def test_newer_schema_is_refused(db_url: str) -> None:
    with open_url(db_url) as store, store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(
        StoreError, match=r"schema \(9999\) is newer than this mailer knows; upgrade mailer"
    ):
        open_url(db_url)


def test_migration_head_matches_the_versions_folder() -> None:
    from mailer.store import db

    assert max(db._known_revisions()) == db.HEAD


@pytest.fixture
def run_store_cli(project: Path) -> Cli:
    return Cli(project)


def test_cli_subscribers_commands(run_store_cli: Cli, project: Path) -> None:
    run = run_store_cli
    r = run("subscribers", "import", str(project / "subscribers.csv.example"))
    assert r.exit_code == 0 and r.output.startswith(
        "5 rows: added 5, updated 0, unchanged 0, invalid 0, duplicates 0"
    )
    assert (
        run("subscribers", "add", "new@example.com", "--name", "New").output
        == "added new@example.com\n"
    )
    assert run("subscribers", "count").stdout == "6\n"
    assert (
        run("subscribers", "unsubscribe", "ada@example.com").output
        == "unsubscribed ada@example.com\n"
    )
    assert run("subscribers", "count", "--status", "active").stdout == "5\n"
    listed = json.loads(
        run("subscribers", "list", "--status", "unsubscribed", "--format", "json").output
    )
    assert [s["email"] for s in listed] == ["ada@example.com"]
    assert "li.wei@example.cn" in run("subscribers", "list").output
    shown = run("subscribers", "show", "ada@example.com").output
    assert "status:   unsubscribed" in shown and "active -> unsubscribed  (owner: cli)" in shown
    bad = run("subscribers", "add", "not an address")
    assert bad.exit_code == 1 and bad.output.startswith(
        "Error: invalid email address 'not an address':"
    )
    assert (
        run("subscribers", "erase", "new@example.com", "--yes").output == "erased new@example.com\n"
    )
    assert (
        run("subscribers", "show", "new@example.com").output
        == "Error: no subscriber new@example.com; see 'mailer subscribers list'\n"
    )


def test_cli_import_of_only_invalid_rows_exits_1(run_store_cli: Cli, tmp_path: Path) -> None:
    r = run_store_cli(
        "subscribers", "import", str(write(tmp_path / "bad.csv", "email\nnope\nalso bad\n"))
    )
    assert r.exit_code == 1
    assert "line 2: invalid: nope" in r.output and "no valid rows; nothing imported" in r.output


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=12)),
            st.one_of(st.none(), st.integers(), st.text(alphabet="ab\\\t\n\r\x00N你", max_size=8)),
        ),
        max_size=8,
    )
)
@hsettings(deadline=None)
def test_copy_text_is_copy_format_whatever_the_values(rows: list[tuple[object, object]]) -> None:
    """The fast path (no escaping needed) and the escaping path agree with the format:
    NULL as \\N, backslash, tab, CR and LF escaped, one line a row."""
    from mailer.store.import_pg import copy_text

    def field(v: object) -> str:
        if v is None:
            return "\\N"
        text = str(v)
        for a, b in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            text = text.replace(a, b)
        return text

    expected = "".join("\t".join(field(v) for v in row) + "\n" for row in rows)
    assert copy_text(list(rows)) == expected


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=20)),
            st.sampled_from([None, "active", "unsubscribed"]),
            st.one_of(st.just({}), st.dictionaries(st.text(max_size=5), st.text(max_size=5))),
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
@hsettings(deadline=None)  # no timing in tests: a busy CI machine may be slow on one example
def test_staged_rows_are_copy_format_whatever_the_names(
    people: list[tuple[str | None, str | None, dict[str, str]]], hashes: bool
) -> None:
    """PostgreSQL's staging writes most chunks one format a row; whatever the (cleaned)
    names, statuses and attributes, the text is what the general COPY escaping gives."""
    from mailer.store import import_pg
    from mailer.store.import_rows import Row
    from mailer.store.subscribers import clean_name

    chunk = [
        Row(i + 2, f"p{i}@example.com", f"p{i}@example.com", clean_name(n) if n else n, s, a)
        for i, (n, s, a) in enumerate(people)
    ]
    nonces = list(range(1, len(chunk) + 1))
    got = import_pg._staged_text(chunk, hashes, nonces)
    rows = import_pg._staged_rows(chunk, hashes, nonces)  # the general path's values
    assert got == import_pg.copy_text(rows)

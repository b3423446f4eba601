"""Statements over many rows (store/batch.py) store and find exactly what SQLAlchemy's own
statements would, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailer.store import Store, open_url
from mailer.store.batch import insert_many, one_of
from mailer.store.events import COLUMNS
from mailer.store.schema import events


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_url(db_url) as store:
        yield store


text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)
times = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
rows = st.lists(
    st.tuples(
        st.one_of(st.none(), text),
        st.one_of(st.none(), st.integers(1, 2**31 - 1)),
        st.one_of(st.none(), st.integers(1, 2**31 - 1)),
        st.sampled_from(["opened", "bounced", "x"]),
        times,
        st.one_of(st.none(), text),
        st.one_of(st.none(), st.dictionaries(text, st.one_of(text, st.integers()), max_size=3)),
    ),
    max_size=20,
    unique_by=lambda r: r[0] if r[0] is not None else object(),
)


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=rows)
def test_insert_many_stores_what_sqlalchemy_would(store: Store, batch: list[tuple]) -> None:  # type: ignore[type-arg]
    read = sa.select(*(events.c[c] for c in COLUMNS)).order_by(events.c.id)
    with store.engine.begin() as conn:
        conn.execute(events.delete())
        assert insert_many(conn, events, COLUMNS, batch) == len(batch)
        mine = conn.execute(read).all()
        conn.execute(events.delete())
        if batch:
            conn.execute(events.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in batch])
        theirs = conn.execute(read).all()
        conn.execute(events.delete())
    assert mine == theirs


def test_insert_many_skips_conflicts_and_counts(store: Store) -> None:
    at = dt.datetime(2026, 12, 4, 9, 30, 1, 123456, tzinfo=dt.UTC)
    row = ("e1", 1, 2, "opened", at, None, None)
    with store.engine.begin() as conn:
        assert insert_many(conn, events, COLUMNS, [row], events.c.provider_event_id) == 1
        again = [row, ("e2", 1, 3, "opened", at, None, None)]
        assert insert_many(conn, events, COLUMNS, again, events.c.provider_event_id) == 1
        stored = conn.execute(sa.select(events.c.at).where(events.c.provider_event_id == "e1"))
        value = stored.scalar_one()
    assert value.replace(tzinfo=dt.UTC) == at


@pytest.mark.parametrize("n", [0, 1, 16, 17, 2000])
def test_one_of_finds_exactly_the_values_given(store: Store, n: int) -> None:
    at = dt.datetime.now(dt.UTC)
    with store.engine.begin() as conn:
        insert_many(
            conn, events, COLUMNS, [(f"k{i}", i, i, "x", at, None, None) for i in range(1, 5000)]
        )
        wanted = set(range(2, 2 + 2 * n, 2))
        by_id = conn.execute(
            sa.select(events.c.issue_id).where(one_of(conn, events.c.issue_id, wanted))
        )
        keys = {f"k{i}" for i in wanted} | {"absent", "k'; --"}
        by_key = conn.execute(
            sa.select(events.c.provider_event_id).where(
                one_of(conn, events.c.provider_event_id, keys)
            )
        )
        assert set(by_id.scalars()) == wanted
        assert set(by_key.scalars()) == {f"k{i}" for i in wanted}


def test_shared_and_stored_values_land_as_sqlalchemy_would_write_them(store: Store) -> None:
    from mailer.store.schema import subscribers

    at = dt.datetime(2026, 12, 4, 9, 30, 1, 5, tzinfo=dt.UTC)
    shared = {"consent_source": "import", "consent_at": at, "created_at": at, "updated_at": at}
    columns = ("email", "email_key", "name", "status", "attributes", "nonce")
    read = sa.select(subscribers).order_by(subscribers.c.email)
    with store.engine.begin() as conn:
        rows = [
            ("a@x.org", "a@x.org", "A", "active", '{"k": "v"}', 1),
            ("b@x.org", "b@x.org", "", "active", "{}", 2),
        ]
        assert (
            insert_many(conn, subscribers, columns, rows, shared=shared, as_stored={"attributes"})
            == 2
        )
        mine = [r._asdict() | {"id": 0} for r in conn.execute(read)]
        conn.execute(subscribers.delete())
        for email, key, name, status, attributes, nonce in rows:
            conn.execute(
                subscribers.insert().values(
                    email=email,
                    email_key=key,
                    name=name,
                    status=status,
                    attributes=json.loads(attributes),
                    nonce=nonce,
                    **shared,
                )
            )
        theirs = [r._asdict() | {"id": 0} for r in conn.execute(read)]
    assert mine == theirs and mine[0]["attributes"] == {"k": "v"}

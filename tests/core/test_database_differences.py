"""Behaviours that belong to the database and differ between SQLite and PostgreSQL, as
docs/postgresql.md ("Differences you will notice") describes them, and the ways to get the
same result on both."""

from __future__ import annotations

import datetime as dt

import pytest

from orm import (
    DriverException,
    PrimaryKey,
    Property,
    QueryOrder,
    UniqueConstraintViolationException,
    entity,
)


@entity()
class Entry:
    id: int = PrimaryKey()
    name: str = Property(unique=True)
    nick: str | None = None
    plain: dt.datetime | None = None
    stamped: dt.datetime | None = Property(column_type="timestamptz", nullable=True, default=None)


def names(o) -> list[str]:
    return sorted(e.name for e in o.em.fork().find(Entry, {}))


def test_nulls_sort_first_ascending_on_sqlite_last_on_postgresql_unless_pinned(
    connect, database
):
    o = connect([Entry])
    o.em.fork().persist([Entry(name="a", nick="m"), Entry(name="b"), Entry(name="c", nick="z")]).flush()

    def order(direction):
        return [e.name for e in o.em.fork().find(Entry, {}, order_by={"nick": direction,
                                                                     "name": "asc"})]

    nulls_first = database == "sqlite"
    assert order("asc") == (["b", "a", "c"] if nulls_first else ["a", "c", "b"])
    assert order("desc") == (["c", "a", "b"] if nulls_first else ["b", "c", "a"])
    # the same answer on both databases
    assert order(QueryOrder.ASC_NULLS_LAST) == ["a", "c", "b"]
    assert order(QueryOrder.ASC_NULLS_FIRST) == ["b", "a", "c"]
    assert order(QueryOrder.DESC_NULLS_LAST) == ["c", "a", "b"]
    assert order(QueryOrder.DESC_NULLS_FIRST) == ["b", "c", "a"]
    assert order("asc nulls last") == ["a", "c", "b"]


def test_a_failed_statement_aborts_a_postgresql_transaction_unless_in_a_savepoint(
    connect, database
):
    o = connect([Entry])
    o.em.fork().persist(Entry(name="base")).flush()

    def carry_on(em):
        with em.transaction() as tx:
            tx.persist(Entry(name="a"))
            tx.flush()
            with pytest.raises(UniqueConstraintViolationException):
                tx.native_insert(Entry, {"name": "base"})
            tx.persist(Entry(name="b"))

    if database == "sqlite":
        carry_on(o.em.fork())
        assert names(o) == ["a", "b", "base"]
    else:
        with pytest.raises(DriverException) as info:
            carry_on(o.em.fork())
        assert "roll back" in str(info.value).lower()
        assert names(o) == ["base"]  # nothing of the transaction was committed
    for n in ("a", "b"):
        o.em.fork().native_delete(Entry, {"name": n})

    # a nested transaction (a savepoint) around the statement that may fail keeps the rest
    em = o.em.fork()
    with em.transaction() as tx:
        tx.persist(Entry(name="a"))
        tx.flush()
        try:
            with tx.transaction() as inner:
                inner.native_insert(Entry, {"name": "base"})
        except UniqueConstraintViolationException:
            pass
        tx.persist(Entry(name="b"))
    assert names(o) == ["a", "b", "base"]


def test_aware_datetimes_keep_their_instant_and_timestamptz_keeps_them_aware(connect, database):
    o = connect([Entry])
    aware = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    naive = dt.datetime(2024, 1, 1, 12, 0)
    em = o.em.fork()
    em.persist([Entry(name="aware", plain=aware, stamped=aware),
                Entry(name="naive", plain=naive, stamped=naive)]).flush()
    loaded = {e.name: e for e in o.em.fork().find(Entry, {})}
    utc = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)
    # timestamptz: aware, in UTC, on both
    assert loaded["aware"].stamped == aware and loaded["aware"].stamped.tzinfo == dt.UTC
    if database == "postgresql":
        assert loaded["aware"].plain == utc.replace(tzinfo=None)  # naive UTC wall-clock time
        assert loaded["naive"].stamped == naive.replace(tzinfo=dt.UTC)  # taken as UTC
    else:
        assert loaded["aware"].plain == aware and loaded["aware"].plain.tzinfo == dt.UTC
        assert loaded["naive"].stamped == naive and loaded["naive"].stamped.tzinfo is None
    assert loaded["naive"].plain == naive
    # the instant is found by the value written, on both
    assert [e.name for e in o.em.fork().find(Entry, {"plain": aware})] == ["aware"]
    assert [e.name for e in o.em.fork().find(Entry, {"stamped": aware})] == ["aware"]

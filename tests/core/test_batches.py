"""Batch boundaries of the flush: multi-row INSERTs of INSERT_CHUNK rows (fewer when SQLite's
variable limit binds first), `update ... from (values ...)` of UPDATE_CHUNK rows, deletes of
DELETE_CHUNK keys. One row short of a batch, a full batch, one row more and two batches and
one: every row must be right afterwards, generated keys included.

PostgreSQL batches otherwise: from `copy_threshold` rows an INSERT is one COPY (keys reserved
first), updates are one pipelined executemany (logged a row at a time), deletes bind every key
as one array. The same sizes run there, with those statements expected."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import date, datetime, time
from decimal import Decimal

import pytest

from orm import wrap
from orm.unit_of_work.unit_of_work import DELETE_CHUNK, INSERT_CHUNK, UPDATE_CHUNK
from tests.core.models import Color, Everything, Size, Tag, User
from tests.databases import rows, sql


def sizes(chunk: int) -> list[int]:
    return [chunk - 1, chunk, chunk + 1, 2 * chunk + 1]


def statements(log, prefix: str) -> list[str]:
    return [s for s in log.writes() if s.startswith(prefix)]


def user_rows(orm) -> list[tuple]:
    return rows(orm, "select id, full_name, email, age, nickname from `user` order by id")


def new_users(n: int, start: int = 0) -> list[User]:
    return [
        User(full_name=f"User {i}", email=f"u{i}@x.io", password="pw", age=i,
             nickname=None if i % 3 else f"nick{i}")
        for i in range(start, start + n)
    ]


def expected_rows(users: list[User]) -> list[tuple]:
    return sorted((u.id, u.full_name, u.email, u.age, u.nickname) for u in users)


def limit_variables(orm, n: int) -> None:
    """Lower SQLite's real limit on `?` per statement (and tell the connection); PostgreSQL's
    (65535, in the protocol) cannot be lowered, so there only the connection is told, and a
    statement binding more than `n` would still run: the statements' sizes are what show."""
    if orm.platform.name == "sqlite":
        orm.connection.raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, n)
    orm.connection.max_variables = n


def test_the_user_table_is_bound_by_the_chunk_constants(orm):
    """The tests below on User exercise the constants, not the variable limit."""
    width = 7  # User's columns without the generated key
    assert orm.connection.max_variables // width > INSERT_CHUNK
    assert orm.connection.max_variables // 3 > UPDATE_CHUNK
    assert orm.connection.max_variables > DELETE_CHUNK


@pytest.mark.parametrize("n", sizes(INSERT_CHUNK))
def test_insert_chunks_with_generated_keys(em, orm, log, n, database):
    em.persist(new_users(2)).flush()
    em.native_delete(User, 2)  # a gap at the end: keys continue after it (autoincrement)
    users = new_users(n, start=10)
    log.clear()
    em.persist(users).flush()
    if database == "sqlite":
        inserts = statements(log, "insert into `user`")
        assert len(inserts) == -(-n // INSERT_CHUNK)
        assert [s.count("), (") + 1 for s in inserts] == [
            min(INSERT_CHUNK, n - k) for k in range(0, n, INSERT_CHUNK)
        ]
    else:  # n keys reserved in one statement, then every row in one COPY
        assert log.sql()[1] == (
            """select nextval(pg_get_serial_sequence('"user"', 'id')) """
            f"from generate_series(1, {n})"
        )
        assert log.writes() == [
            "begin",
            'copy "user" ("id", "full_name", "email", "password", "bio", "age", "nickname", '
            '"created_at") from stdin',
            "commit",
        ]
    assert [u.id for u in users] == list(range(3, 3 + n)), "keys in persist order, no gap"
    assert user_rows(orm) == [(1, "User 0", "u0@x.io", 0, "nick0")] + expected_rows(users)
    assert all(em.find_one(User, u.id) is u for u in users), "each in the identity map"


@pytest.mark.parametrize("n", [INSERT_CHUNK + 1, 2 * INSERT_CHUNK + 1])
def test_insert_chunks_with_given_and_generated_keys(em, orm, n):
    given = new_users(n)
    for k, u in enumerate(given):
        u.id = 10_000 + 2 * k
    generated = new_users(n, start=n)
    mixed = [u for pair in zip(given, generated, strict=True) for u in pair]
    em.persist(mixed).flush()
    assert [u.id for u in given] == [10_000 + 2 * k for k in range(n)]
    assert [u.id for u in generated] == list(range(1, n + 1))
    assert user_rows(orm) == expected_rows(mixed)


@pytest.mark.parametrize("n", sizes(INSERT_CHUNK))
def test_insert_chunks_of_string_keys(em, orm, n):
    tags = [Tag(name=f"t{k:05}", label=f"label {k}") for k in range(n)]
    em.persist(tags).flush()
    stored = rows(orm, "select name, label from tag order by name")
    assert stored == [(t.name, t.label) for t in tags]


@pytest.mark.parametrize("n", sizes(UPDATE_CHUNK))
def test_update_chunks(em, orm, log, n, database):
    em.persist(new_users(n + 2)).flush()
    users = em.find(User, {}, order_by={"id": "asc"})
    changed = users[1 : n + 1]  # the first and the last row stay as they are
    for u in changed:
        u.age = 1000 + u.id
        u.nickname = f"changed {u.id}"
    log.clear()
    em.flush()
    updates = statements(log, sql(orm, "update `user`"))
    # PostgreSQL: one pipelined executemany, its rows logged one by one
    assert len(updates) == (-(-n // UPDATE_CHUNK) if database == "sqlite" else n)
    assert log.writes().count("begin") == 1
    assert user_rows(orm) == expected_rows(users)
    assert [r[3] for r in user_rows(orm)] == [0] + [1000 + u.id for u in changed] + [n + 1]
    log.clear()
    em.flush()
    assert log == [], "the snapshots of every chunk were taken"


@pytest.mark.parametrize("n", sizes(DELETE_CHUNK))
def test_delete_chunks(em, orm, log, n, database):
    em.persist(new_users(n + 3)).flush()
    users = em.find(User, {}, order_by={"id": "asc"})
    kept = [users[0], users[n // 2], users[-1]]
    doomed = [u for u in users if u not in kept]
    assert len(doomed) == n
    em.remove(doomed)
    log.clear()
    em.flush()
    deletes = statements(log, sql(orm, "delete from `user`"))
    # PostgreSQL binds every key as one array: `where "id" = any(array[...])`
    assert len(deletes) == (-(-n // DELETE_CHUNK) if database == "sqlite" else 1)
    assert user_rows(orm) == expected_rows(kept)
    assert not any(wrap(u).is_managed() for u in doomed)
    assert all(em.find_one(User, u.id) is None for u in doomed[:: max(1, n // 50)])
    assert em.fork().count(User) == 3


# -- the variable limit binds first -------------------------------------------------------

EVERYTHING_WIDTH = 15  # Everything's columns without the generated key


def everything(k: int) -> Everything:
    """A row with a distinct value in every column."""
    return Everything(
        i=k, s=f"s{k}", f=k / 4, b=bool(k % 2), raw=bytes([k % 256]),
        dec=Decimal(k) / 4, dt=datetime(2024, 1, 1, 0, 0, k % 60), d=date(2024, 1, 1 + k % 28),
        tm=time(0, k % 60), u=uuid.UUID(int=k), doc={"k": k}, items=[k],
        color=Color.GREEN if k % 2 else Color.RED, size=Size.L if k % 2 else Size.S,
        note=None if k % 3 else f"note {k}",
    )


def everything_state(e: Everything) -> tuple:
    return (e.id, e.i, e.s, e.f, e.b, e.raw, e.dec, e.dt, e.d, e.tm, e.u, e.doc, e.items,
            e.color, e.size, e.note)


def stored_everything(orm) -> list[tuple]:
    fresh = orm.em.fork()
    return [everything_state(e) for e in fresh.find(Everything, {}, order_by={"id": "asc"})]


@pytest.mark.parametrize("n", [3, 4, 5, 9])
def test_insert_chunks_bound_by_the_variable_limit(em, orm, log, n, database):
    # on PostgreSQL the reserved key is bound with the row: one more value a row
    width = EVERYTHING_WIDTH if database == "sqlite" else EVERYTHING_WIDTH + 1
    limit_variables(orm, 4 * width + 2)  # room for 4 rows a statement
    written = [everything(k) for k in range(1, n + 1)]
    em.persist(written).flush()
    inserts = statements(log, sql(orm, "insert into `everything`"))
    assert [s.count("), (") + 1 for s in inserts] == [min(4, n - k) for k in range(0, n, 4)]
    assert [e.id for e in written] == list(range(1, n + 1))
    assert stored_everything(orm) == [everything_state(e) for e in written]


@pytest.mark.parametrize("n", [9, 10, 11, 21])
def test_update_chunks_bound_by_the_variable_limit(em, orm, log, n, database):
    em.persist([everything(k) for k in range(1, n + 2)]).flush()
    limit_variables(orm, 10 * 3 + 2)  # two changed columns and the key: 10 rows a statement
    loaded = em.find(Everything, {}, order_by={"id": "asc"})
    for e in loaded[:n]:
        e.s = f"changed {e.id}"
        e.doc["changed"] = True
    log.clear()
    em.flush()
    # PostgreSQL: one pipelined executemany, its rows logged one by one
    expected = -(-n // 10) if database == "sqlite" else n
    assert len(statements(log, sql(orm, "update `everything`"))) == expected
    assert stored_everything(orm) == [everything_state(e) for e in loaded]
    assert [r[2] for r in stored_everything(orm)][-1] == f"s{n + 1}"


@pytest.mark.parametrize("n", [29, 30, 31, 61])
def test_delete_chunks_bound_by_the_variable_limit(em, orm, log, n, database):
    em.persist([everything(k) for k in range(1, n + 3)]).flush()
    limit_variables(orm, 30)
    loaded = em.find(Everything, {}, order_by={"id": "asc"})
    kept = [loaded[0], loaded[-1]]
    em.remove(loaded[1:-1])
    log.clear()
    em.flush()
    # PostgreSQL binds every key as one array, one parameter whatever their number
    expected = -(-n // 30) if database == "sqlite" else 1
    assert len(statements(log, sql(orm, "delete from `everything`"))) == expected
    assert stored_everything(orm) == [everything_state(e) for e in kept]

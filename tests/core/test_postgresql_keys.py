"""Generated keys and batched inserts as PostgreSQL does them, checked on both databases.

SQLite derives a batch's keys from `last_insert_rowid()` (one writer at a time, consecutive
rowids). PostgreSQL never guesses: one row is inserted `returning` its key; more rows first
reserve their keys from the identity column's sequence (`nextval` over `generate_series`),
then go in with them, as one multi-row VALUES below `copy_threshold` rows and one COPY from
there on. Keys a user gives an identity column move its sequence past them. What a user relies
on is the same on both: each entity's key is its own row's, a key is never handed to two rows,
values come back exactly, and a rolled-back insert takes its keys back.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, time
from decimal import Decimal

import pytest

from orm import wrap
from tests.core.models import Color, Everything, Size, User
from tests.databases import execute, rows, sql

#: one row (`returning`), a multi-row VALUES, and a COPY on PostgreSQL
SIZES = [1, 2, 20, 150]


class Boom(Exception):
    pass


def new_users(n: int, tag: str = "u") -> list[User]:
    return [
        User(full_name=f"{tag} {k}", email=f"{tag}{k}@x.io", password="pw", age=k,
             nickname=None if k % 2 else f"nick {tag}{k}")
        for k in range(n)
    ]


def stored_users(orm) -> dict[int, tuple]:
    """Every row of `user` by its key."""
    found = rows(orm, "select id, full_name, email, age, nickname from `user`")
    return {r[0]: r[1:] for r in found}


def state(u: User) -> tuple:
    return (u.full_name, u.email, u.age, u.nickname)


def assert_each_key_is_its_rows(orm, users: list[User]) -> None:
    """Every entity's key finds the row holding that entity's values, read back by key."""
    keys = [u.id for u in users]
    assert all(type(k) is int for k in keys)
    assert len(set(keys)) == len(keys), "no key given to two entities"
    stored = stored_users(orm)
    assert {k: stored.get(k) for k in keys} == {u.id: state(u) for u in users}
    fresh = orm.em.fork()
    for u in users[:: max(1, len(users) // 10)]:
        assert state(fresh.find_one_or_fail(User, u.id)) == state(u)


# -- the keys of a batch ------------------------------------------------------------------

@pytest.mark.parametrize("n", SIZES)
def test_keys_of_an_insert_are_the_reserved_ones_and_match_their_rows(orm, em, log, database,
                                                                      n):
    if database == "postgresql":
        # a sequence stepping by 3 (as one shared with other writers is, in effect): keys
        # counted on from the first one would be wrong from the second row on
        execute(orm, "alter table `user` alter column `id` set increment by 3")
    step = 1 if database == "sqlite" else 3
    users = new_users(n)
    log.clear()
    em.persist(users).flush()
    assert [u.id for u in users] == [1 + step * k for k in range(n)], "in persist order"
    assert_each_key_is_its_rows(orm, users)
    assert all(em.find_one(User, u.id) is u for u in users), "each in the identity map"
    writes = log.writes()
    assert (writes[0], writes[-1], len(writes)) == ("begin", "commit", 3), "one statement"
    if database == "postgresql":
        if n == 1:
            assert writes[1].startswith('insert into "user" ("full_name", ')
            assert writes[1].endswith(' returning "id"')
        else:
            assert log.sql()[1] == (
                """select nextval(pg_get_serial_sequence('"user"', 'id')) """
                f"from generate_series(1, {n})"
            )
            if n < 100:
                assert writes[1].startswith(
                    'insert into "user" ("id", "full_name", "email", "password", '
                )
                assert "values (1, 'u 0', " in writes[1] and "(4, 'u 1', " in writes[1]
            else:
                assert writes[1] == (
                    'copy "user" ("id", "full_name", "email", "password", "bio", "age", '
                    '"nickname", "created_at") from stdin'
                )


def test_batches_flushed_at_once_on_two_threads_keep_their_own_keys(orm):
    """Two forks flushing at the same time (on PostgreSQL each on its own pooled connection,
    their `nextval`s free to interleave): every entity gets its own row's key."""
    barrier = threading.Barrier(2)
    flushed: dict[str, list[User]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def flush(thread: str) -> None:
        try:
            em = orm.em.fork()
            barrier.wait(timeout=10)
            for size in (150, 20, 1, 5, 120):  # COPY, VALUES and `returning` sizes
                batch = new_users(size, f"{thread}{size}-")
                em.persist(batch).flush()
                flushed[thread] += batch
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=flush, args=(name,)) for name in flushed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everyone = flushed["a"] + flushed["b"]
    assert_each_key_is_its_rows(orm, everyone)
    assert len(stored_users(orm)) == len(everyone) == 2 * 296


# -- every type through the batch paths -------------------------------------------------

def varied(k: int) -> Everything:
    """A row whose every column holds a value chosen to trip a text or binary encoding:
    COPY's escapes (tab, newline, backslash), quotes, non-ASCII, NUL and high bytes,
    64-bit integers, floats needing all 17 digits, extremes and infinities, microseconds."""
    texts = ["", "tab\there", "line\nbreak\r\n", "back\\slash \\N \\.", "quote ' \" `",
             "unicode é ✓ 𝄞", "   spaces   ", "null"]
    floats = [0.0, 0.1, 1 / 3, -2.5e-300, 1.7976931348623157e308, 5e-324, float("inf"),
              float("-inf")]
    ints = [0, -1, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 7, 123456789012]
    return Everything(
        i=ints[k % len(ints)],
        s=texts[k % len(texts)] + f" {k}",
        f=floats[k % len(floats)] if k % 3 else k / 7,
        b=bool(k % 2),
        raw=bytes([0, k % 256, 255, 92, 9, 10]) if k % 4 else b"",
        dec=Decimal(f"{'-' if k % 2 else ''}{k * 1234567 % 100000000}.{k % 100:02}"),
        dt=None if k % 5 == 0 else datetime(2024, 2, 29, 23, 59, k % 60, k * 7919 % 1000000),
        d=None if k % 6 == 0 else date(1 + k, 1 + k % 12, 1 + k % 28),
        tm=None if k % 7 == 0 else time(k % 24, k % 60, 59, k * 31 % 1000000),
        u=None if k % 8 == 0 else uuid.UUID(int=k * 2**100 + k),
        doc={"k": k, "text": texts[k % len(texts)], "nested": {"list": [1, 2.5, None, True]},
             "big": 2**70, "float": 0.1 * k, "order": {"z": 1, "a": 2}},
        items=[k, str(k), {"tab": "\t", "quote": '"'}] if k % 2 else [],
        color=Color.GREEN if k % 3 else Color.RED,
        size=Size.L if k % 2 else Size.S,
        note=None if k % 2 else texts[(k + 3) % len(texts)],
    )


def values_of(e: Everything) -> tuple:
    """The entity's values, each with its type (1 == 1.0 == True must not pass)."""
    return tuple(
        (type(v), v)
        for v in (e.id, e.i, e.s, e.f, e.b, e.raw, e.dec, e.dt, e.d, e.tm, e.u, e.doc, e.items,
                  e.color, e.size, e.note)
    )


def test_a_copy_sized_batch_round_trips_every_type_exactly(orm, em, log, database):
    written = [varied(k) for k in range(150)]
    log.clear()
    em.persist(written).flush()
    if database == "postgresql":
        assert [s for s in log.writes() if s.startswith("copy")] == [
            'copy "everything" ("id", "i", "s", "f", "b", "raw", "dec", "dt", "d", "tm", "u", '
            '"doc", "items", "color", "size", "note") from stdin'
        ]
    assert [e.id for e in written] == list(range(1, 151))
    fresh = orm.em.fork()
    loaded = fresh.find(Everything, {}, order_by={"id": "asc"})
    assert [values_of(e) for e in loaded] == [values_of(e) for e in written]
    log.clear()
    fresh.flush()
    em.flush()
    assert log == [], "a flush right after loading them runs no SQL: nothing looks changed"
    loaded[3].s += " changed"  # and a real change is still seen, and only it
    fresh.flush()
    assert len(log.writes()) == 3 and log.writes()[1].startswith(
        sql(orm, "update `everything` set `s` = ")
    )
    assert rows(orm, "select s from everything where id = 4") == [(loaded[3].s,)]


# -- keys given by the user ---------------------------------------------------------------

def test_explicit_keys_then_generated_ones_never_collide(orm, em):
    """Keys given to an autoincrement key, whichever way they are written (persist, in
    the same flush as generated ones, a COPY, upsert, native_insert, a changed key), move
    the next generated key past them (on PostgreSQL the sequence is advanced)."""
    given = new_users(2, "given")
    given[0].id, given[1].id = 10, 11
    em.persist(given).flush()
    after_persist = new_users(3, "after persist")
    em.persist(after_persist).flush()
    assert [u.id for u in after_persist] == [12, 13, 14]

    mixed_given, mixed_generated = new_users(1, "mixed given"), new_users(2, "mixed gen")
    mixed_given[0].id = 100
    em.persist(mixed_generated + mixed_given).flush()  # both kinds in one flush
    assert mixed_given[0].id == 100
    later = new_users(1, "later")
    em.persist(later).flush()
    assert later[0].id == 101

    copied = new_users(120, "copied")  # a COPY on PostgreSQL
    for k, u in enumerate(copied):
        u.id = 1000 + k
    em.persist(copied).flush()
    after_copy = new_users(2, "after copy")
    em.persist(after_copy).flush()
    assert [u.id for u in after_copy] == [1120, 1121]

    # the very keys the next generated ones would be
    upserted = em.upsert(User, {"id": 1122, "full_name": "upserted", "email": "up@x.io",
                                "password": "pw"})
    after_upsert = new_users(1, "after upsert")
    em.persist(after_upsert).flush()
    assert (upserted.id, after_upsert[0].id) == (1122, 1123)

    native = em.native_insert(User, {"id": 1124, "full_name": "native", "email": "n@x.io",
                                     "password": "pw"})
    after_native = new_users(1, "after native")
    em.persist(after_native).flush()
    assert (native, after_native[0].id) == (1124, 1125)

    moved = after_native[0]
    moved.id = 1126  # a stored row's key changed to the very next generated one
    em.flush()
    after_move = new_users(1, "after move")
    em.persist(after_move).flush()
    assert (moved.id, after_move[0].id) == (1126, 1127)

    everyone = (given + after_persist + mixed_given + mixed_generated + later + copied
                + after_copy + [upserted] + after_upsert + after_native + after_move)
    assert_each_key_is_its_rows(orm, everyone)
    assert stored_users(orm)[1124] == ("native", "n@x.io", 0, None)


def test_native_insert_returns_the_generated_key(orm, em):
    em.persist(new_users(2)).flush()
    key = em.native_insert(User, {"full_name": "native", "email": "n@x.io", "password": "pw"})
    assert key == 3
    assert stored_users(orm)[key] == ("native", "n@x.io", 0, None)
    later = new_users(1, "later")
    em.persist(later).flush()
    assert later[0].id == 4


# -- a rollback takes generated keys back ---------------------------------------------------

@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("scope", ["transaction", "savepoint"])
def test_a_rolled_back_insert_takes_its_generated_keys_back(orm, database, n, scope):
    em = orm.em.fork()
    kept = new_users(1, "kept")
    em.persist(kept).flush()
    users = new_users(n)
    first_keys: list[int] = []

    def flush_then_fail() -> None:
        em.persist(users).flush()
        first_keys.extend(u.id for u in users)
        assert all(type(k) is int for k in first_keys)
        assert_each_key_is_its_rows(orm, users)
        raise Boom

    if scope == "transaction":
        with pytest.raises(Boom):
            with em.transaction():
                flush_then_fail()
    else:  # a savepoint rolled back, the transaction around it committed
        with em.transaction():
            kept += new_users(1, "outer")
            em.persist(kept[1]).flush()
            with pytest.raises(Boom):
                with em.transaction():
                    flush_then_fail()
    assert all(u.id is None for u in users), "no entity keeps the key of a row that is gone"
    assert not any(wrap(u).is_managed() for u in users)
    assert all(em.get_unit_of_work().is_new(u) for u in users), "pending again"
    assert sorted(em.get_unit_of_work().get_identity_map()[User]) == [u.id for u in kept]
    assert sorted(stored_users(orm)) == [u.id for u in kept]
    em.flush()  # written again, under keys of their own
    assert_each_key_is_its_rows(orm, users + kept)
    again = [u.id for u in users]
    if database == "sqlite":  # the rowids are handed out again
        assert again == first_keys
    else:  # a sequence never goes back: the rolled-back keys stay unused
        assert min(again) > max(first_keys)


def test_a_row_at_the_largest_key_does_not_block_later_given_keys(connect):
    """Moving the sequence past a given key never calls nextval, which would overflow once
    a row holds 2**63-1."""
    orm = connect([User])
    em = orm.em.fork()
    em.persist(User(id=2**63 - 1, full_name="Max", email="max@x.io", password="pw")).flush()
    em.persist(User(id=5, full_name="Five", email="five@x.io", password="pw")).flush()
    assert sorted(r[0] for r in rows(orm, "select id from `user`")) == [5, 2**63 - 1]

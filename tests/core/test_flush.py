"""Flush: one transaction, minimal UPDATEs, batched INSERT/DELETE, failure and retry."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orm import (
    NotNullConstraintViolationException,
    OptimisticLockError,
    UniqueConstraintViolationException,
    ValidationError,
    wrap,
)
from tests.core.models import Article, Everything, Stamped, Tag, User
from tests.databases import execute, rows, sql


def new_users(n, start=0):
    return [
        User(full_name=f"User {i}", email=f"u{i}@x.io", password="pw", age=i)
        for i in range(start, start + n)
    ]


def test_insert_batch_is_one_statement_in_one_transaction(em, log, orm, database):
    users = new_users(3)
    em.persist(users).flush()
    writes = log.writes()
    assert writes[0] == "begin" and writes[-1] == "commit" and len(writes) == 3
    if database == "sqlite":  # the keys follow from last_insert_rowid()
        assert writes[1].startswith("insert into `user` (`full_name`, `email`, `password`, ")
    else:  # the keys were reserved first (nextval), and are written with the rows
        assert log.sql()[1] == (
            """select nextval(pg_get_serial_sequence('"user"', 'id')) """
            "from generate_series(1, 3)"
        )
        assert writes[1].startswith(
            'insert into "user" ("id", "full_name", "email", "password", "bio", '
        )
        assert "values (1, 'User 0', " in writes[1] and "(3, 'User 2', " in writes[1]
    assert writes[1].count("), (") == 2, "three rows in one multi-row statement"
    assert [u.id for u in users] == [1, 2, 3]
    assert rows(orm, "select id, email from `user` order by id") == [
        (1, "u0@x.io"), (2, "u1@x.io"), (3, "u2@x.io")
    ]


def test_generated_ids_follow_existing_rows(em, orm):
    em.persist(new_users(2)).flush()
    em.native_delete(User, 2)
    later = new_users(3, start=10)
    em.persist(later).flush()
    stored = rows(orm, "select id, email from `user` where id > 1 order by id")
    assert stored == [(u.id, u.email) for u in later]


def test_mixed_given_and_generated_keys(em, orm):
    a, b = new_users(2)
    b.id = 100
    em.persist([a, b]).flush()
    assert (a.id, b.id) == (1, 100)
    assert em.fork().find_one(User, 100).email == b.email


def test_update_writes_only_changed_columns(em, log, orm):
    em.persist(new_users(1)).flush()
    u = em.find_one(User, 1)
    u.full_name = "Renamed"
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin",
        sql(orm, "update `user` set `full_name` = 'Renamed' where `id` = 1"),
        "commit",
    ]


def test_updates_with_same_changed_columns_are_batched(em, log, orm):
    em.persist(new_users(4)).flush()
    users = em.find(User, {})
    for u in users[:3]:
        u.age += 100
    users[3].bio = "other shape"
    log.clear()
    em.flush()
    writes = log.writes()
    assert writes.count("begin") == 1 and writes.count("commit") == 1
    assert rows(orm, "select age from `user` order by id") == [(100,), (101,), (102,), (3,)]


@pytest.mark.parametrize("update_from", [True, False])
def test_many_rows_with_the_same_changes_share_statements(em, log, orm, monkeypatch,
                                                         update_from, database):
    from orm.unit_of_work import unit_of_work

    monkeypatch.setattr(orm.platform, "supports_update_from", update_from)
    monkeypatch.setattr(unit_of_work, "UPDATE_CHUNK", 2)
    em.persist(new_users(5)).flush()
    for u in em.find(User, {}):
        u.age += 10
        u.nickname = f"n{u.id}"
    log.clear()
    em.flush()
    writes = log.writes()[1:-1]
    if update_from and database == "sqlite":
        assert len(writes) == 3, "5 rows in statements of 2"
        assert writes[0] == (
            "update `user` set `age` = `v`.column1, `nickname` = `v`.column2 from "
            "(values (10, 'n1', 1), (11, 'n2', 2)) as `v` where `user`.`id` = `v`.column3"
        )
    elif update_from:  # the VALUES list's columns are named, so no column can clash
        assert len(writes) == 3, "5 rows in statements of 2"
        assert writes[0] == (
            'update "user" set "age" = "v"."c1", "nickname" = "v"."c2" from '
            '(values (10, \'n1\', 1), (11, \'n2\', 2)) as "v"("c1", "c2", "key") '
            'where "user"."id" = "v"."key"'
        )
    else:  # executemany: one statement a row (logged each)
        assert len(writes) == 5
        assert writes[0] == sql(
            orm, "update `user` set `age` = 10, `nickname` = 'n1' where `id` = 1"
        )
    assert rows(orm, "select id, age, nickname from `user` order by id") == [
        (i, i + 9, f"n{i}") for i in range(1, 6)
    ]


def test_no_change_flush_runs_no_sql(em, log):
    em.persist(new_users(3)).flush()
    em.find(User, {})
    log.clear()
    em.flush()
    assert log == [], "not even begin/commit"


def test_setting_the_original_value_back_is_no_change(em, log):
    em.persist(new_users(1)).flush()
    u = em.find_one(User, 1)
    u.full_name = "temporary"
    u.full_name = "User 0"
    log.clear()
    em.flush()
    assert log == []


def test_json_mutated_in_place_is_detected(em, log, orm):
    e = Everything(doc={"tags": ["a"]})
    em.persist(e).flush()
    e.doc["tags"].append("b")
    log.clear()
    em.flush()
    assert log.writes()[1] == sql(
        orm, """update `everything` set `doc` = '{"tags": ["a", "b"]}' where `id` = 1"""
    )
    fresh = em.fork()
    loaded = fresh.find_one(Everything, 1)
    loaded.items.append(3)
    fresh.flush()
    assert rows(orm, "select items from everything") == [("[3]",)]


def test_removes_are_batched_with_in(em, log, orm, database):
    em.persist(new_users(5)).flush()
    users = em.find(User, {})
    em.remove(users[1]).remove(users[3])
    log.clear()
    em.flush()
    delete = {
        "sqlite": "delete from `user` where `id` in (2, 4)",
        "postgresql": 'delete from "user" where "id" = any(array[2, 4])',
    }[database]
    assert log.writes() == ["begin", delete, "commit"]
    assert rows(orm, "select id from `user` order by id") == [(1,), (3,), (5,)]
    assert not wrap(users[1]).is_managed()
    assert em.find_one(User, 2) is None


def test_remove_of_a_new_entity_cancels_its_insert(em, log):
    u = new_users(1)[0]
    em.persist(u)
    em.remove(u)
    em.flush()
    assert log == []


def test_persist_after_remove_cancels_the_removal(em, orm):
    em.persist(new_users(1)).flush()
    u = em.find_one(User, 1)
    em.remove(u)
    em.persist(u)
    em.flush()
    assert rows(orm, "select count(*) from `user`") == [(1,)]


def test_removing_an_unmanaged_entity_is_refused(em):
    with pytest.raises(ValidationError, match="not managed by this EntityManager"):
        em.remove(User(full_name="a", email="b", password="c", id=5))


def test_entity_managed_elsewhere_cannot_be_persisted(em, orm):
    em.persist(new_users(1)).flush()
    u = em.find_one(User, 1)
    with pytest.raises(ValidationError, match=r"managed by another EntityManager \(id \d+\)"):
        orm.em.fork().persist(u)


def test_wrong_value_type_on_flush_names_entity_and_property(em, log):
    u = new_users(1)[0]
    u.age = "forty"
    em.persist(u)
    with pytest.raises(ValidationError) as info:
        em.flush()
    assert str(info.value).startswith(
        "Invalid value for User.age: expected int, got str 'forty'. Fix the value and flush"
    )
    assert info.value.entity is u and info.value.property == "age"
    assert log == [], "nothing ran"
    u.age = 40
    em.flush()
    assert u.id == 1


def test_wrong_value_type_on_update_and_none_for_not_nullable(em):
    em.persist(new_users(1)).flush()
    u = em.find_one(User, 1)
    u.full_name = None
    with pytest.raises(ValidationError, match="User.full_name: expected str, got None, but"):
        em.flush()
    u.full_name = "ok"
    u.created_at = "yesterday"
    with pytest.raises(ValidationError, match="User.created_at: expected datetime, got str"):
        em.flush()


def test_constraint_violation_in_the_middle_of_a_batch_writes_nothing(em, orm, database):
    em.persist(new_users(1)).flush()
    batch = new_users(5, start=1)
    batch[2].email = "u0@x.io"  # duplicate of the row already stored
    em.persist(batch)
    existing = em.find_one(User, 1)
    existing.age = 99
    with pytest.raises(UniqueConstraintViolationException) as info:
        em.flush()
    message = str(info.value)
    if database == "sqlite":
        assert "UNIQUE constraint failed: user.email" in message
        assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    else:
        import psycopg

        assert (
            'duplicate key value violates unique constraint "user_email_unique": '
            "Key (email)=(u0@x.io) already exists." in message
        )
        assert isinstance(info.value.__cause__, psycopg.errors.UniqueViolation)
    assert "User.email must be unique" in message and "Nothing of this flush was written" in message
    assert info.value.sql.startswith(sql(orm, "insert into `user`"))
    assert (info.value.entity, info.value.property) == ("User", "email")
    assert rows(orm, "select count(*), max(age) from `user`") == [(1, 0)]
    assert all(u.id is None for u in batch), "no key handed out by a rolled-back flush"
    batch[2].email = "fixed@x.io"
    em.flush()
    keys = [u.id for u in batch]
    if database == "sqlite":
        assert keys == [2, 3, 4, 5, 6]
    else:  # the failed flush used up the keys it reserved: a sequence never goes back
        assert keys == sorted(set(keys)) and keys[0] > 6
    assert rows(orm, "select count(*), max(age) from `user`") == [(6, 99)]
    assert rows(orm, "select id, email from `user` where id > 1 order by id") == [
        (u.id, u.email) for u in batch
    ]


def test_not_null_violation_is_mapped(orm):
    em = orm.em.fork()
    execute(orm, "insert into `tag` (`name`, `label`) values ('a', 'x')")
    with pytest.raises(NotNullConstraintViolationException, match="Tag.label may not be null"):
        em.native_update(Tag, "a", {"label": None})


def test_string_primary_keys_must_be_given(em):
    em.persist(Tag(name="x"))
    em.flush()
    t = Tag(name=None)
    em.persist(t)
    with pytest.raises(ValidationError, match=r"Tag\.name has no value and the database"):
        em.flush()


def test_optimistic_lock(em, orm):
    a = Article(title="v1")
    em.persist(a).flush()
    assert a.version == 1
    a.title = "v2"
    em.flush()
    assert a.version == 2 and rows(orm, "select version from article") == [(2,)]
    other = orm.em.fork()
    stale = other.find_one(Article, 1)
    a.title = "v3"
    em.flush()
    stale.title = "conflicting"
    with pytest.raises(OptimisticLockError, match=r"optimistic lock on Article 1 failed"):
        other.flush()
    assert rows(orm, "select title, version from article") == [("v3", 3)]



def test_native_update_counts_the_version_up_so_a_stale_entity_cannot_overwrite_it(em, orm):
    """Another writer's native_update is a change of the row: an entity loaded before it
    fails its flush instead of overwriting it (the change was lost without a word)."""
    a = Article(title="v1")
    em.persist(a).flush()
    assert orm.em.fork().native_update(Article, {"id": a.id}, {"title": "native"}) == 1
    assert rows(orm, "select title, version from article") == [("native", 2)]
    a.title = "stale"
    with pytest.raises(OptimisticLockError, match=r"optimistic lock on Article 1 failed"):
        em.flush()
    assert rows(orm, "select title, version from article") == [("native", 2)]
    # a version given in the data is the caller's choice, as it is in a flush's row
    orm.em.fork().native_update(Article, {"id": a.id}, {"title": "set", "version": 7})
    assert rows(orm, "select title, version from article") == [("set", 7)]
    fresh = orm.em.fork()
    current = fresh.find_one(Article, 1)
    current.title = "after"
    fresh.flush()
    assert rows(orm, "select title, version from article") == [("after", 8)]

def test_on_create_and_on_update_hooks(em, orm):
    s = Stamped(name="n")
    em.persist(s).flush()
    assert (s.created, s.updated) == ("created:n", None)
    s.name = "m"
    em.flush()
    assert rows(orm, "select created, updated from stamped") == [("created:n", "updated:m")]


def test_flush_inside_request_context_and_change_sets(em):
    em.persist(new_users(2)).flush()
    u = em.find_one(User, 1)
    u.age = 50
    em.remove(em.find_one(User, 2))
    em.persist(new_users(1, start=9))
    sets = em.get_unit_of_work().compute_change_sets()
    kinds = sorted((c.type, c.name) for c in sets)
    assert kinds == [("create", "User"), ("delete", "User"), ("update", "User")]
    update = next(c for c in sets if c.type == "update")
    assert update.payload == {"age": 50}


# -- a model-based check of change detection ----------------------------------------------

_names = st.sampled_from(["a", "b", "c", "d"])
_ops = st.lists(
    st.tuples(
        st.sampled_from(["set_name", "set_age", "set_nick", "flush", "remove", "add"]),
        st.integers(0, 4),
        _names,
    ),
    max_size=25,
)


def test_database_always_matches_the_entities_after_flush(connect):
    """Whatever the user does, after a flush the rows equal the entities' state."""
    o = connect([User])

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=_ops)
    def check(ops):
        execute(o, "delete from `user`")  # each example starts from an empty table
        em = o.em.fork()
        live = new_users(3)
        em.persist(live).flush()
        counter = 100
        for op, idx, text in ops:
            if op == "flush":
                em.flush()
                continue
            if not live:
                continue
            u = live[idx % len(live)]
            if op == "set_name":
                u.full_name = text
            elif op == "set_age":
                u.age = len(text) + idx
            elif op == "set_nick":
                u.nickname = None if text == "a" else text
            elif op == "remove":
                em.remove(u)
                live.remove(u)
            elif op == "add":
                counter += 1
                nu = User(full_name=text, email=f"n{counter}@x", password="p")
                em.persist(nu)
                live.append(nu)
        em.flush()
        stored = rows(o, "select id, full_name, age, nickname from `user` order by id")
        expected = sorted((u.id, u.full_name, u.age, u.nickname) for u in live)
        assert stored == expected
        other = o.em.fork()
        other.find(User, {})
        assert other.get_unit_of_work().compute_change_sets() == []

    check()

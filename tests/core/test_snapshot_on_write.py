"""An entity only read keeps no snapshot tuple: its attributes are its snapshot until the
first write, which takes the tuple from them before it changes them (orm._diff_py, "taken
on write"). Every test here checks what a flush writes, which is what the snapshot is for:
a snapshot taken too late (after a write) would lose that write."""

from __future__ import annotations

from datetime import datetime

import pytest

from orm import PrimaryKey, Property, Type, entity
from orm._backend import core
from tests.core.models import Article, Everything, User
from tests.core.relation_models import RELATED
from tests.core.relation_models import Article as RelArticle
from tests.databases import execute, rows, sql


@entity(table_name="noted")
class Noted:
    """An entity whose own `__setattr__` writes before the ORM is told."""

    id: int = PrimaryKey()
    name: str
    seen: int = 0

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)


class Boom(Exception):
    pass


def _stored(em, name: str = "ann", age: int = 30) -> int:
    user = User(full_name=name, email=f"{name}@x", password="p", age=age)
    em.persist(user).flush()
    return user.id


def test_an_entity_only_read_holds_no_tuple_until_its_first_write(orm, log):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key)
    plan = orm.metadata.get(User).plan
    assert plan.lazy_snapshot and user._orm_snap is plan, "no tuple for an entity only read"
    assert core.snapshot(user)[plan.names.index("age")] == 30
    user.age = 31
    snap = user._orm_snap
    assert type(snap) is tuple and snap[plan.names.index("age")] == 30, (
        "the first write keeps the loaded value as the snapshot"
    )
    user.age = 32
    assert user._orm_snap is snap, "taken once, at the first write"
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, f"update `user` set `age` = 32 where `id` = {key}"), "commit"
    ]


def test_a_flush_with_nothing_written_writes_nothing(orm, log):
    _stored(orm.em.fork())
    em = orm.em.fork()
    users = em.find(User, {})
    for user in users:
        user.age = user.age  # the same value: dirty, unchanged
    log.clear()
    em.flush()
    assert log.writes() == []


def test_a_key_changed_on_an_entity_only_read_updates_its_old_row(orm, log):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key)
    user.id = 50
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, f"update `user` set `id` = 50 where `id` = {key}"), "commit"
    ]
    assert orm.em.fork().find_one(User, 50).full_name == "ann"


def test_a_deleted_attribute_reads_and_is_written_as_its_default(orm):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key)
    del user.age
    assert user.age == 0, "the declared default"
    user.nickname = "n"
    em.flush()
    stored = orm.em.fork().find_one(User, key)
    assert (stored.age, stored.nickname) == (0, "n"), "the database holds what the entity shows"


@pytest.mark.parametrize("fields", [None, ["age", "bio"]], ids=["loaded", "partial"])
def test_a_deleted_attribute_alone_is_written(orm, log, fields):
    """`del` is a write: with nothing else written, the flush still writes the default the
    attribute now reads as (it used to run no SQL at all, and the stored value stayed)."""
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key, fields=fields) if fields else em.find_one(User, key)
    del user.age
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, f"update `user` set `age` = 0 where `id` = {key}"), "commit"
    ]
    assert orm.em.fork().find_one(User, key).age == 0


def test_a_deleted_attribute_is_noted_in_the_journal_of_a_flushs_handlers(orm):
    """A flush with event handlers notes what they assign, and a failed flush puts it back;
    a `del` is noted the same way, with the value it removed."""
    key = _stored(orm.em.fork())
    user = orm.em.fork().find_one(User, key)
    journal: list = []
    previous = core.track_assignments(journal)
    try:
        del user.age
    finally:
        core.track_assignments(previous)
    assert journal == [(user, "age", 30)]


def test_a_deleted_attribute_written_again_is_written(orm, log):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key)
    del user.bio
    user.bio = "back"
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, f"update `user` set `bio` = 'back' where `id` = {key}"), "commit"
    ]


def test_a_refresh_leaves_an_entity_only_read_again(orm, log):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key)
    user.age = 99  # discarded by the refresh
    execute(orm, "update `user` set `full_name` = 'bea' where `id` = ?", [key])
    em.refresh(user)
    assert user.full_name == "bea" and user.age == 30
    assert user._orm_snap is orm.metadata.get(User).plan
    user.nickname = "b"
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, f"update `user` set `nickname` = 'b' where `id` = {key}"), "commit"
    ]


def test_a_removal_of_an_entity_only_read_deletes_its_row(orm):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    em.remove(em.find_one(User, key)).flush()
    assert orm.em.fork().find_one(User, key) is None


def test_a_partial_refresh_keeps_the_loaded_values_of_the_other_columns(orm, log):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key)
    em.find(User, {"id": key}, fields=["age"], refresh=True)
    user.nickname = "n"
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, f"update `user` set `nickname` = 'n' where `id` = {key}"), "commit"
    ], "the columns the refresh did not read are not written as if unknown"


def test_a_write_while_a_refresh_had_detached_it_is_flushed_after_the_rollback(orm, log):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key)
    with pytest.raises(Boom):
        with em.transaction() as tx:
            tx.native_delete(User, {"id": key})
            assert em.refresh(user) is None  # no row: detached
            user.age = 5  # written while detached
            raise Boom
    assert em.find_one(User, key) is user, "managed again: the row is back"
    user.nickname = "n"
    log.clear()
    em.flush()
    assert orm.em.fork().find_one(User, key).age == 5, "the write made while detached"


def test_a_write_to_a_removed_entity_is_flushed_once_the_removal_is_undone(orm):
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key)
    with pytest.raises(Boom):
        with em.transaction():
            em.remove(user).flush()
            user.age = 5  # written while its row is deleted
            raise Boom
    em.persist(user)  # the removal is cancelled: it stays
    user.nickname = "n"
    em.flush()
    stored = orm.em.fork().find_one(User, key)
    assert (stored.age, stored.nickname) == (5, "n")


def test_a_partial_load_keeps_python_values_in_its_snapshot(orm, log):
    """A partial row keeps a tuple: its value-typed columns hold the Python values, so the
    columns nobody changed are not written (here: over another writer's change)."""
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    user = em.find_one(User, key, fields=["created_at", "age"])
    other = orm.em.fork()
    theirs = other.find_one(User, key)
    theirs.created_at = datetime(2030, 1, 1)
    other.flush()
    user.nickname = "n"
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, f"update `user` set `nickname` = 'n' where `id` = {key}"), "commit"
    ]
    assert orm.em.fork().find_one(User, key).created_at == datetime(2030, 1, 1)


def test_a_versioned_update_refreshed_then_rolled_back_is_written_later(orm):
    em = orm.em.fork()
    em.persist(Article(title="t")).flush()
    em = orm.em.fork()
    article = em.find_one(Article, 1)
    with pytest.raises(Boom):
        with em.transaction():
            article.title = "t2"
            em.flush()
            em.refresh(article)
            raise Boom
    assert article.title == "t2", "the user's write stays pending"
    em.flush()
    assert rows(orm, "select `title`, `version` from `article`") == [("t2", 2)]


@pytest.mark.parametrize("held", ["loaded", "reference", "partial"])
def test_a_write_refreshed_then_rolled_back_leaves_the_rolled_back_values(orm, log, held):
    """Flush, another statement changes the row, refresh, roll back: the write flushed is
    pending again, the value the refresh read goes with the transaction."""
    key = _stored(orm.em.fork())
    em = orm.em.fork()
    if held == "partial":
        user = em.find_one(User, key, fields=["full_name"])
    elif held == "reference":
        user = em.get_reference(User, key)
    else:
        user = em.find_one(User, key)
    with pytest.raises(Boom):
        with em.transaction() as tx:
            user.full_name = "bea"
            em.flush()
            tx.native_update(User, {"id": key}, {"bio": "rolled back"})
            em.refresh(user)
            raise Boom
    if held == "loaded":
        assert (user.full_name, user.bio) == ("bea", "")
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, f"update `user` set `full_name` = 'bea' where `id` = {key}"),
        "commit",
    ]
    assert rows(orm, "select `full_name`, `bio` from `user`") == [("bea", "")]


@pytest.mark.parametrize(
    "cls, why",
    [
        (Everything, "a JSON document changes in place, unseen by __setattr__"),
        (RelArticle, "a foreign key's snapshot is the target's key, not the attribute"),
        (Noted, "its own __setattr__ writes before the ORM is told"),
    ],
)
def test_entities_whose_attributes_may_not_be_their_snapshot_keep_the_row(connect, cls, why):
    orm = connect([Everything, *RELATED, Noted])
    assert not orm.metadata.get(cls).plan.lazy_snapshot, why


def test_an_entity_with_its_own_setattr_keeps_the_loaded_snapshot(connect, log):
    orm = connect([Noted], debug=["query"], logger=log.append)
    em = orm.em.fork()
    em.persist(Noted(name="a")).flush()
    em = orm.em.fork()
    noted = em.find_one(Noted, 1)
    assert type(noted._orm_snap) is tuple
    noted.name = "b"
    log.clear()
    em.flush()
    assert log.writes() == [
        "begin", sql(orm, "update `noted` set `name` = 'b' where `id` = 1"), "commit"
    ]


def test_a_plan_refuses_a_snapshot_taken_on_write_it_could_not_take(orm):
    plan = orm.metadata.get(Everything).plan
    args = (plan.cls, plan.names, plan.pk_index, plan.to_python, plan.to_db, plan.compare,
            plan.accepts, plan.nullable, False, plan.on_invalid, plan.kinds)
    with pytest.raises(ValueError, match=r"Plan of Everything: lazy_snapshot needs column "
                                         r"\w+ to hold its snapshot value"):
        core.Plan(*args, lazy_snapshot=True)
    with pytest.raises(ValueError, match=r"Plan of Everything: lazy_snapshot needs an entity "
                                         r"without relations, mutable columns"):
        core.Plan(*args[:8], True, *args[9:], lazy_snapshot=True)


class Slug(Type):
    """A key stored lower-cased: what the INSERT binds is not what the attribute holds."""

    name = "slug"
    python_types = (str,)
    mutable = False

    def to_db(self, value: str) -> str:
        return value.lower()

    def compare(self, a: str, b: str) -> bool:
        return a.lower() == b.lower()


@entity(table_name="page")
class Page:
    slug: str = PrimaryKey(type=Slug())
    title: str


@entity(table_name="task")
class Task:
    id: int = PrimaryKey()
    title: str
    status: str = "open"

    def __init__(self, title: str) -> None:  # leaves `status` to its declared default
        self.title = title


def test_an_inserted_entity_keeps_what_its_insert_bound(connect):
    orm = connect([Page, Task])
    em = orm.em.fork()
    page, task = Page(slug="Hello", title="t"), Task("write")
    em.persist(page).persist(task).flush()
    assert type(page._orm_snap) is tuple and page._orm_snap[0] == "hello", "the key as stored"
    page.title = "t2"
    task.title = "write it"
    em.flush()
    assert task.status == "open", "the default the insert wrote, still readable"
    assert rows(orm, "select `slug`, `title` from `page`") == [("hello", "t2")]
    em.remove(page).flush()
    assert rows(orm, "select count(*) from `page`") == [(0,)]
    assert rows(orm, "select `title`, `status` from `task`") == [("write it", "open")]


@entity(table_name="memo")
class Memo:
    id: int = PrimaryKey()
    title: str
    body: str = ""
    version: int = Property(version=True, default=None)


def test_a_partial_versioned_entity_flushed_in_a_rolled_back_transaction(connect):
    orm = connect([Memo])
    orm.em.fork().persist(Memo(title="t", body="b")).flush()
    em = orm.em.fork()
    memo = em.find_one(Memo, 1, fields=["title"])
    with pytest.raises(Boom):
        with em.transaction():
            memo.title = "t2"
            em.flush()
            em.find(Memo, {"id": 1})  # fills in `body`
            raise Boom
    assert memo.version == 1, "the version the row holds again"
    em.flush()
    assert rows(orm, "select `title`, `body`, `version` from `memo`") == [("t2", "b", 2)]

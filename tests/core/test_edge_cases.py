"""Edge cases of loading, flushing and upserting, each once a bug."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import datetime

import pytest

from orm import (
    DriverException,
    EntitySchema,
    FlushMode,
    LockWaitTimeoutException,
    MetadataError,
    PrimaryKey,
    Property,
    UniqueConstraintViolationException,
    ValidationError,
    entity,
    t,
    wrap,
)
from orm._backend import core
from tests import databases
from tests.core.models import Article, Book, Stamped, Tag, User
from tests.core.test_diff_core import _kept
from tests.databases import execute, rows


def only(*names: str, reason: str) -> pytest.MarkDecorator:
    """Run a test on these databases only (`reason`: why it cannot apply to the others)."""
    return pytest.mark.parametrize(
        "database", [d for d in databases.DATABASES if d in names], indirect=True
    )


def add_user(em, **kw):
    u = User(full_name=kw.pop("full_name", "A"), email=kw.pop("email", "a@x"), password="p",
             **kw)
    em.persist(u).flush()
    return u


# -- partial loads --------------------------------------------------------------------------


def test_writing_a_column_a_partial_load_left_out_is_flushed(em, orm):
    add_user(em)
    fresh = orm.em.fork()
    u = fresh.find_one(User, {"email": "a@x"}, fields=["email"])
    u.full_name = "written"
    fresh.flush()
    assert rows(orm, "select full_name from `user`") == [("written",)]


def test_a_full_load_completes_a_partial_entity_keeping_user_writes(em, orm):
    add_user(em, age=5)
    fresh = orm.em.fork()
    u = fresh.find(User, {}, fields=["email"])[0]
    u.bio = "mine"
    again = fresh.find(User, {}, flush_mode=FlushMode.COMMIT)[0]
    assert again is u and u.age == 5 and u.full_name == "A"
    assert u.bio == "mine", "an unflushed write is not overwritten by the load"
    fresh.flush()
    assert rows(orm, "select bio, age from `user`") == [("mine", 5)]


def test_a_partial_refresh_keeps_the_rest_of_the_snapshot(em, orm):
    add_user(em)
    fresh = orm.em.fork()
    u = fresh.find_one(User, 1)
    fresh.find(User, {}, fields=["full_name"], refresh=True)
    u.email = "b@x"
    fresh.flush()
    assert rows(orm, "select email from `user`") == [("b@x",)]


# -- references -----------------------------------------------------------------------------


def test_writes_to_a_reference_survive_its_loading(orm):
    fresh = orm.em.fork(flush_mode="commit")
    add_user(orm.em.fork())
    ref = fresh.get_reference(User, 1)
    ref.full_name = "changed"
    wrap(ref).init()
    assert ref.full_name == "changed" and ref.email == "a@x"
    fresh.flush()
    assert rows(orm, "select full_name from `user`") == [("changed",)]


def test_versioned_entity_cannot_be_updated_through_a_reference(orm):
    em = orm.em.fork()
    em.persist(Article(title="v1")).flush()
    fresh = orm.em.fork()
    fresh.get_reference(Article, 1).title = "via ref"
    with pytest.raises(ValidationError, match="Article is versioned.*init"):
        fresh.flush()
    assert rows(orm, "select title, version from article") == [("v1", 1)]


def test_get_reference_normalises_the_key_type(em):
    key = uuid.uuid4()
    by_text = em.get_reference(Book, str(key))
    assert by_text.uuid == key and em.get_reference(Book, key) is by_text
    with pytest.raises(ValidationError, match="not a valid primary key for Book.uuid"):
        em.get_reference(Book, "not-a-uuid")


# -- failures leave everything as it was ------------------------------------------------------


@only("sqlite", reason="a reader's lock on the database file blocks COMMIT")
def test_a_failed_commit_can_be_retried(connect, db_path):
    with connect([User], timeout=0.1) as o:
        reader = sqlite3.connect(db_path, isolation_level=None)
        reader.execute("begin")
        reader.execute("select * from user").fetchall()  # a shared lock blocks COMMIT
        em = o.em.fork()
        em.persist(User(full_name="a", email="a@x", password="p"))
        with pytest.raises(LockWaitTimeoutException):
            em.flush()
        assert not o.connection.raw.in_transaction
        reader.execute("commit")
        em.flush()
        assert rows(o, "select count(*) from `user`") == [(1,)]


def refuse_duplicate_nicknames_at_commit(o) -> None:
    """A unique constraint PostgreSQL checks at COMMIT (SQLite has no deferred ones)."""
    execute(o, "alter table `user` add constraint `user_nickname_key` unique (`nickname`) "
               "deferrable initially deferred")


@only("postgresql", reason="SQLite has no deferred unique constraint")
def test_a_commit_refused_by_a_deferred_constraint_can_be_retried(connect):
    """The PostgreSQL counterpart of a COMMIT that fails: the server rolls back, nothing is
    written, and the same flush succeeds once the value is fixed."""
    with connect([User]) as o:
        refuse_duplicate_nicknames_at_commit(o)
        em = o.em.fork()
        em.persist(User(full_name="a", email="a@x", password="p", nickname="n")).flush()
        second = User(full_name="b", email="b@x", password="p", nickname="n")
        em.persist(second)
        with pytest.raises(UniqueConstraintViolationException) as info:
            em.flush()
        assert (info.value.entity, info.value.property) == ("User", "nickname")
        assert str(info.value).startswith("commit - duplicate key value")
        assert not o.connection.in_transaction and second.id is None
        assert rows(o, "select count(*) from `user`") == [(1,)]
        second.nickname = "m"
        em.flush()
        assert rows(o, "select nickname from `user` order by id") == [("n",), ("m",)]


def test_a_failed_flush_reverts_hook_values(em, orm):
    a = Stamped(name="a")
    em.persist(a).flush()
    other = Stamped(name="b")
    em.persist(other).flush()
    a.name = "b-dup"
    execute(orm, "create unique index `stamped_updated` on `stamped` (`updated`)")
    execute(orm, "update `stamped` set `updated` = 'updated:b-dup' where `id` = 2")
    with pytest.raises(UniqueConstraintViolationException):
        em.flush()
    assert a.updated is None, "the on_update value of a failed flush is taken back"


def test_compute_change_sets_runs_no_hooks(em):
    s = Stamped(name="x")
    em.persist(s)
    sets = em.get_unit_of_work().compute_change_sets()
    assert [c.type for c in sets] == ["create"]
    assert s.created is None
    em.flush()
    assert s.created == "created:x"


# -- upsert / native ------------------------------------------------------------------------


def test_upsert_never_changes_the_primary_key(em, orm):
    first = em.upsert(User, {"id": None, "full_name": "A", "email": "a@x", "password": "p"})
    again = em.upsert(User, {"id": None, "full_name": "B", "email": "a@x", "password": "p"})
    assert again is first and first.id == 1 and first.full_name == "B"
    assert rows(orm, "select id, full_name from `user`") == [(1, "B")]


def test_upsert_of_a_persisted_unflushed_entity_inserts_once(em, orm):
    u = User(full_name="A", email="a@x", password="p")
    em.persist(u)
    assert em.upsert(u) is u and wrap(u).is_managed()
    em.flush()
    assert rows(orm, "select count(*) from `user`") == [(1,)]


def test_upsert_applies_on_create_and_the_first_version(em, orm):
    stamped = em.upsert(Stamped, {"id": 7, "name": "n"})
    assert stamped.created == "created:n"
    article = em.upsert(Article, {"id": 3, "title": "t"})
    assert article.version == 1
    em.upsert(Article, {"id": 3, "title": "t2"})
    assert rows(orm, "select title, version from article") == [("t2", 2)]


def test_native_insert_returns_a_generated_non_integer_key(em):
    key = em.native_insert(Book, {"title": "Dune"})
    assert isinstance(key, uuid.UUID)
    assert em.find_one(Book, key).title == "Dune"


# -- flush modes, transactions across ORMs --------------------------------------------------


def test_flush_modes_by_name(orm):
    em = orm.em.fork(flush_mode="always")
    assert em.flush_mode is FlushMode.ALWAYS
    em.persist(User(full_name="a", email="a@x", password="p"))
    assert em.count(User, flush_mode="commit") == 0
    assert em.count(User, flush_mode="auto") == 1
    with pytest.raises(ValidationError, match="Unknown flush mode 'sometimes'"):
        orm.em.fork(flush_mode="sometimes")


def test_a_flush_mode_set_on_an_entity_manager_is_checked_and_used(orm):
    """`em.flush_mode` takes a FlushMode or its name, reads back as a FlushMode, and the
    queries follow it; an unknown mode (or None) is refused when set, not at the next
    query."""
    em = orm.em.fork()
    assert em.flush_mode is FlushMode.AUTO
    em.flush_mode = "commit"
    assert em.flush_mode is FlushMode.COMMIT
    em.persist(User(full_name="a", email="a@x", password="p"))
    assert em.count(User) == 0, "COMMIT: a query does not flush"
    em.flush_mode = FlushMode.ALWAYS
    assert em.count(User) == 1
    for bad in ("sometimes", None, 2):
        with pytest.raises(ValidationError, match="flush"):
            em.flush_mode = bad
    assert em.flush_mode is FlushMode.ALWAYS
    assert orm.em.fork(flush_mode=FlushMode.COMMIT).flush_mode is FlushMode.COMMIT


def test_transaction_of_one_orm_inside_another_orms_request_context(connect, database):
    # two databases: SQLite files, or PostgreSQL schemas (b's dropped at the end)
    other = {"name": "b.db"} if database == "sqlite" else {"schema": databases.PG_SCHEMA + "_b"}
    with connect([User], name="a.db") as a, connect([User], **other) as b:
        try:
            with a.request_context():
                with b.em.transaction() as tx:
                    tx.persist(User(full_name="b", email="b@x", password="p"))
            assert b.em.fork().count(User) == 1 and a.em.fork().count(User) == 0
            # inside one ORM's transaction block, the other's `em` still goes to its own
            # request context's fork (it was hidden: a ValidationError, or with
            # allow_global_context the global EntityManager)
            with a.request_context() as request_a:
                with b.em.transaction() as tx:
                    assert b.em._ctx() is tx and a.em._ctx() is request_a
                    a.em.persist(User(full_name="a", email="a@x", password="p"))
                assert a.em._ctx() is request_a
                request_a.flush()
            assert b.em.fork().count(User) == 1 and a.em.fork().count(User) == 1
        finally:
            if database == "postgresql":
                execute(b, f"drop schema `{other['schema']}` cascade")


# -- definitions ----------------------------------------------------------------------------


def test_mutable_defaults_are_deep_copied(connect):
    @entity()
    class Doc:
        id: int = PrimaryKey()
        meta: dict = Property(default={"tags": []})

    class Plain:
        def __init__(self):
            pass

    schema = EntitySchema(
        name="Plain",
        class_=Plain,
        properties={"id": PrimaryKey(type=int), "tags": Property(type=t.json, default=[])},
    )
    a, b = Doc(), Doc()
    a.meta["tags"].append("x")
    assert b.meta == {"tags": []}
    with connect([Doc, schema]) as o:
        em = o.em.fork()
        p, q = Plain(), Plain()
        em.persist([p, q])
        p.tags.append(1)
        assert q.tags == [] and o.metadata.get(Plain).properties["tags"].default == []


def test_entity_with_only_a_generated_key(connect):
    @entity()
    class Ticket:
        id: int = PrimaryKey()

    with connect([Ticket]) as o:
        em = o.em.fork()
        tickets = [Ticket(), Ticket(), Ticket()]
        em.persist(tickets).flush()
        assert [x.id for x in tickets] == [1, 2, 3]
        one = Ticket()
        em.persist(one).flush()
        assert one.id == 4 and em.native_insert(Ticket, {}) == 5
        assert rows(o, "select id from `ticket` order by id") == [(1,), (2,), (3,), (4,), (5,)]


def test_property_declared_without_annotation(connect):
    @entity()
    class Loose:
        id: int = PrimaryKey()
        nick = Property(type=t.string, nullable=True)
        bare = Property()

    with pytest.raises(MetadataError, match=r"Loose\.bare has no resolvable type"):
        connect([Loose])


def test_invalid_property_names_and_integer_key_column_types(connect, database):
    with pytest.raises(MetadataError, match="property name 'from' is not a valid Python"):
        EntitySchema(name="Bad", properties={"id": PrimaryKey(type=int), "from": str})

    @entity()
    class Big:
        id: int = PrimaryKey(column_type="bigint")

    with connect([Big]) as o:
        expected = {
            "sqlite": "`id` integer not null primary key autoincrement",
            "postgresql": '"id" bigint generated by default as identity not null primary key',
        }[database]
        assert expected in o.schema.get_create_schema_sql()
        em = o.em.fork()
        big = Big()
        em.persist(big).flush()
        assert big.id == 1


def test_table_rebuild_keeps_the_autoincrement_sequence(connect):
    """update_schema (a table rebuild on SQLite, `alter table` on PostgreSQL) keeps the
    generated keys' sequence."""
    @entity(table_name="seq")
    class V1:
        id: int = PrimaryKey()
        name: str
        old: str | None = None

    with connect([V1]) as o:
        em = o.em.fork()
        items = [V1(name=str(i)) for i in range(5)]
        em.persist(items).flush()
        em.remove(items[-1]).flush()  # key 5 was handed out, then deleted

    @entity(table_name="seq")
    class V2:
        id: int = PrimaryKey()
        name: str

    with connect([V2], create=False) as o:
        o.schema.update_schema()
        em = o.em.fork()
        fresh = V2(name="new")
        em.persist(fresh).flush()
        assert fresh.id == 6, "a deleted key is never handed out again"


@pytest.mark.skipif(core.BACKEND != "cython", reason="the compiled core's optimisation")
def test_compiled_hydration_reuses_fresh_row_tuples(orm, database):
    plan = orm.metadata.get(User).plan

    class UoW:
        dirty: dict = {}

    # created_at as each database's driver gives it
    created = "2024-01-02 03:04:05" if database == "sqlite" else datetime(2024, 1, 2, 3, 4, 5)
    fresh_rows = [tuple([1, "A", "a@x", "pw", "", 3, None, created])]
    (u,) = core.hydrate(plan, fresh_rows, {}, UoW(), False)
    assert plan.lazy_snapshot and u._orm_snap is plan, "an entity only read keeps no tuple"
    # a plan whose snapshot is kept from the load keeps the row tuple itself
    kept = _kept(plan)
    fresh_rows = [tuple([1, "A", "a@x", "pw", "", 3, None, created])]
    row_id = id(fresh_rows[0])
    (u,) = core.hydrate(kept, fresh_rows, {}, UoW(), False)
    assert id(u._orm_snap) == row_id


# -- second round ---------------------------------------------------------------------------


@only("sqlite", reason="a reader's lock on the database file blocks COMMIT")
def test_a_commit_failing_at_the_end_of_a_transaction_block_is_rolled_back(connect, db_path):
    with connect([User], timeout=0.1) as o:
        reader = sqlite3.connect(db_path, isolation_level=None)
        reader.execute("begin")
        reader.execute("select * from user").fetchall()
        with pytest.raises(LockWaitTimeoutException):
            with o.em.transaction() as tx:
                tx.persist(User(full_name="a", email="a@x", password="p"))
        reader.execute("commit")
        assert not o.connection.raw.in_transaction and not o.connection.in_transaction
        outcome: list[int] = []
        worker = threading.Thread(target=lambda: outcome.append(o.em.fork().count(User)))
        worker.start()
        worker.join(5)
        assert outcome == [0], "another thread can use the connection again"


@only("postgresql", reason="SQLite has no deferred unique constraint")
def test_a_transaction_block_whose_commit_is_refused_is_rolled_back(connect):
    with connect([User]) as o:
        refuse_duplicate_nicknames_at_commit(o)
        o.em.fork().persist(User(full_name="a", email="a@x", password="p", nickname="n")).flush()
        late = User(full_name="b", email="b@x", password="p", nickname="n")
        with pytest.raises(UniqueConstraintViolationException, match="User.nickname"):
            with o.em.transaction() as tx:
                tx.persist(late)
        assert not o.connection.in_transaction
        assert late.id is None and not wrap(late).is_managed()
        outcome: list[int] = []
        worker = threading.Thread(target=lambda: outcome.append(o.em.fork().count(User)))
        worker.start()
        worker.join(5)
        assert outcome == [1]


@only("sqlite", reason="one connection, which the transaction's thread holds")
def test_a_transaction_continued_on_another_thread_times_out(connect):
    with connect([User], timeout=0.2) as o:
        errors: list[BaseException] = []
        with o.em.transaction() as tx:
            tx.persist(User(full_name="a", email="a@x", password="p"))
            tx.flush()

            def elsewhere():
                try:
                    tx.count(User)
                except BaseException as exc:
                    errors.append(exc)

            worker = threading.Thread(target=elsewhere)
            worker.start()
            worker.join(5)
        assert len(errors) == 1 and isinstance(errors[0], LockWaitTimeoutException)
        assert "thread that began it" in str(errors[0])


@only("postgresql", reason="a connection per thread, from the pool")
def test_another_thread_works_outside_the_transaction(connect):
    """The PostgreSQL counterpart: a transaction belongs to the thread that began it;
    another thread's statements run on another pooled connection, outside it, and do not
    see what it has not committed."""
    with connect([User]) as o:
        seen: list[int] = []
        with o.em.transaction() as tx:
            tx.persist(User(full_name="a", email="a@x", password="p"))
            tx.flush()
            assert tx.count(User) == 1

            worker = threading.Thread(target=lambda: seen.append(tx.count(User)))
            worker.start()
            worker.join(5)
        assert seen == [0], "the other thread does not see the uncommitted row"
        assert o.em.fork().count(User) == 1


def test_a_transaction_the_database_rolled_back_itself(orm, database):
    """SQLite's RAISE(ROLLBACK) ends the transaction itself; PostgreSQL's failed statement
    aborts it (every later statement refused): either way the flush is taken back."""
    if database == "sqlite":
        execute(orm, "create trigger no_bob before insert on `user` when new.full_name = 'bob' "
                     "begin select raise(rollback, 'no bob'); end")
    else:
        execute(orm, "create or replace function no_bob() returns trigger language plpgsql as "
                     "$$ begin if new.full_name = 'bob' then raise exception 'no bob'; end if; "
                     "return new; end $$")
        execute(orm, "create trigger no_bob before insert on `user` for each row "
                     "execute function no_bob()")
    s = Stamped(name="s")
    with pytest.raises(DriverException, match="no bob"):
        with orm.em.transaction() as tx:
            tx.persist(s)
            tx.persist(User(full_name="bob", email="b@x", password="p"))
    assert s.created is None, "the hook value of the failed flush is taken back"
    assert not orm.connection.in_transaction
    assert orm.em.fork().count(Stamped) == 0


def test_an_untouched_reference_of_a_versioned_type_with_json_is_no_change(connect):
    @entity()
    class VersionedDoc:
        id: int = PrimaryKey()
        data: dict = Property(default_factory=dict)
        version: int = Property(version=True)

    with connect([VersionedDoc, Tag]) as o:
        em = o.em.fork()
        em.persist(VersionedDoc()).flush()
        fresh = o.em.fork()
        fresh.get_reference(VersionedDoc, 1)
        fresh.persist(Tag(name="t"))
        fresh.flush()
        assert fresh.count(Tag) == 1


def test_a_partially_loaded_versioned_entity_can_be_updated(orm):
    em = orm.em.fork()
    em.persist(Article(title="a")).flush()
    fresh = orm.em.fork()
    art = fresh.find_one(Article, {"id": 1}, fields=["title"])
    art.title = "b"
    fresh.flush()
    assert rows(orm, "select title, version from article") == [("b", 2)]


def test_a_lookup_by_key_completes_a_partial_entity(em, orm):
    add_user(em, age=7)
    fresh = orm.em.fork()
    partial = fresh.find(User, {}, fields=["email"])[0]
    assert fresh.find_one(User, 1) is partial and partial.age == 7
    assert fresh.find_one(User, {"id": 1}) is partial


def test_upsert_of_a_second_instance_of_a_managed_row(em, orm):
    add_user(em)
    managed = em.find_one(User, 1)
    dup = User(id=1, full_name="dup", email="a@x", password="p")
    em.persist(dup)
    with pytest.raises(ValidationError, match="already manages for key 1 was refreshed"):
        em.upsert(dup)
    # its data is in the row (and the managed entity); the instance itself leaves, else the
    # next flush would insert key 1 a second time, and every flush after it fail
    assert managed.full_name == "dup" and not em.get_unit_of_work().is_new(dup)
    em.flush()
    assert rows(orm, "select `id`, `full_name` from `user`") == [(1, "dup")]


def test_upsert_of_an_instance_leaves_columns_it_does_not_hold(connect):
    @entity()
    class Plan:
        id: int = PrimaryKey()
        email: str = Property(unique=True)
        tier: str = "free"

        def __init__(self, email: str) -> None:
            self.email = email

    with connect([Plan]) as o:
        em = o.em.fork()
        em.native_insert(Plan, {"email": "a@x", "tier": "pro"})
        em.upsert(Plan("a@x"))
        assert rows(o, "select tier from `plan`") == [("pro",)]
        em.upsert(Plan("b@x"))
        assert rows(o, "select tier from `plan` where email = 'b@x'") == [("free",)]


def test_an_explicit_none_is_not_replaced_by_a_default_factory(connect):
    @entity()
    class Tagged:
        id: int = PrimaryKey()
        tag: str | None = Property(default_factory=lambda: "generated")

    with connect([Tagged]) as o:
        em = o.em.fork()
        em.native_insert(Tagged, {"tag": None})
        em.native_insert(Tagged, {})
        assert rows(o, "select tag from `tagged` order by id") == [(None,), ("generated",)]

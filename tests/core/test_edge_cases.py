"""Edge cases of loading, flushing and upserting, each once a bug."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import pytest

from orm import (
    ORM,
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
from tests.core.models import Article, Book, Stamped, Tag, User


def rows(orm, sql):
    return orm.connection.raw.execute(sql).fetchall()


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
    assert rows(orm, "select full_name from user") == [("written",)]


def test_a_full_load_completes_a_partial_entity_keeping_user_writes(em, orm):
    add_user(em, age=5)
    fresh = orm.em.fork()
    u = fresh.find(User, {}, fields=["email"])[0]
    u.bio = "mine"
    again = fresh.find(User, {}, flush_mode=FlushMode.COMMIT)[0]
    assert again is u and u.age == 5 and u.full_name == "A"
    assert u.bio == "mine", "an unflushed write is not overwritten by the load"
    fresh.flush()
    assert rows(orm, "select bio, age from user") == [("mine", 5)]


def test_a_partial_refresh_keeps_the_rest_of_the_snapshot(em, orm):
    add_user(em)
    fresh = orm.em.fork()
    u = fresh.find_one(User, 1)
    fresh.find(User, {}, fields=["full_name"], refresh=True)
    u.email = "b@x"
    fresh.flush()
    assert rows(orm, "select email from user") == [("b@x",)]


# -- references -----------------------------------------------------------------------------


def test_writes_to_a_reference_survive_its_loading(orm):
    fresh = orm.em.fork(flush_mode="commit")
    add_user(orm.em.fork())
    ref = fresh.get_reference(User, 1)
    ref.full_name = "changed"
    wrap(ref).init()
    assert ref.full_name == "changed" and ref.email == "a@x"
    fresh.flush()
    assert rows(orm, "select full_name from user") == [("changed",)]


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


def test_a_failed_commit_can_be_retried(db_path):
    with ORM.init(db_name=db_path, entities=[User], timeout=0.1) as o:
        o.schema.create_schema()
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
        assert rows(o, "select count(*) from user") == [(1,)]


def test_a_failed_flush_reverts_hook_values(em, orm):
    a = Stamped(name="a")
    em.persist(a).flush()
    other = Stamped(name="b")
    em.persist(other).flush()
    a.name = "b-dup"
    orm.connection.raw.execute("create unique index stamped_updated on stamped (updated)")
    orm.connection.raw.execute("update stamped set updated = 'updated:b-dup' where id = 2")
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
    assert rows(orm, "select id, full_name from user") == [(1, "B")]


def test_upsert_of_a_persisted_unflushed_entity_inserts_once(em, orm):
    u = User(full_name="A", email="a@x", password="p")
    em.persist(u)
    assert em.upsert(u) is u and wrap(u).is_managed()
    em.flush()
    assert rows(orm, "select count(*) from user") == [(1,)]


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


def test_transaction_of_one_orm_inside_another_orms_request_context(tmp_path):
    with ORM.init(db_name=str(tmp_path / "a.db"), entities=[User]) as a, ORM.init(
        db_name=str(tmp_path / "b.db"), entities=[User]
    ) as b:
        a.schema.create_schema()
        b.schema.create_schema()
        with a.request_context():
            with b.em.transaction() as tx:
                tx.persist(User(full_name="b", email="b@x", password="p"))
        assert b.em.fork().count(User) == 1 and a.em.fork().count(User) == 0


# -- definitions ----------------------------------------------------------------------------


def test_mutable_defaults_are_deep_copied():
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
    with ORM.init(db_name=":memory:", entities=[Doc, schema]) as o:
        o.schema.create_schema()
        em = o.em.fork()
        p, q = Plain(), Plain()
        em.persist([p, q])
        p.tags.append(1)
        assert q.tags == [] and o.metadata.get(Plain).properties["tags"].default == []


def test_entity_with_only_a_generated_key(tmp_path):
    @entity()
    class Ticket:
        id: int = PrimaryKey()

    with ORM.init(db_name=":memory:", entities=[Ticket]) as o:
        o.schema.create_schema()
        em = o.em.fork()
        tickets = [Ticket(), Ticket(), Ticket()]
        em.persist(tickets).flush()
        assert [x.id for x in tickets] == [1, 2, 3]


def test_property_declared_without_annotation():
    @entity()
    class Loose:
        id: int = PrimaryKey()
        nick = Property(type=t.string, nullable=True)
        bare = Property()

    with pytest.raises(MetadataError, match=r"Loose\.bare has no resolvable type"):
        ORM.init(db_name=":memory:", entities=[Loose])


def test_invalid_property_names_and_integer_key_column_types():
    with pytest.raises(MetadataError, match="property name 'from' is not a valid Python"):
        EntitySchema(name="Bad", properties={"id": PrimaryKey(type=int), "from": str})

    @entity()
    class Big:
        id: int = PrimaryKey(column_type="bigint")

    with ORM.init(db_name=":memory:", entities=[Big]) as o:
        o.schema.create_schema()
        assert "`id` integer not null primary key autoincrement" in (
            o.schema.get_create_schema_sql()
        )


def test_table_rebuild_keeps_the_autoincrement_sequence(db_path):
    @entity(table_name="seq")
    class V1:
        id: int = PrimaryKey()
        name: str
        old: str | None = None

    with ORM.init(db_name=db_path, entities=[V1]) as o:
        o.schema.create_schema()
        em = o.em.fork()
        items = [V1(name=str(i)) for i in range(5)]
        em.persist(items).flush()
        em.remove(items[-1]).flush()  # key 5 was handed out, then deleted

    @entity(table_name="seq")
    class V2:
        id: int = PrimaryKey()
        name: str

    with ORM.init(db_name=db_path, entities=[V2]) as o:
        o.schema.update_schema()
        em = o.em.fork()
        fresh = V2(name="new")
        em.persist(fresh).flush()
        assert fresh.id == 6, "a deleted key is never handed out again"


@pytest.mark.skipif(core.BACKEND != "cython", reason="the compiled core's optimisation")
def test_compiled_hydration_reuses_fresh_row_tuples(orm):
    plan = orm.metadata.get(User).plan

    class UoW:
        dirty: dict = {}

    fresh_rows = [tuple([1, "A", "a@x", "pw", "", 3, None, "2024-01-02 03:04:05"])]
    row_id = id(fresh_rows[0])
    (u,) = core.hydrate(plan, fresh_rows, {}, UoW(), False)
    assert id(u._orm_snap) == row_id


# -- second round ---------------------------------------------------------------------------


def test_a_commit_failing_at_the_end_of_a_transaction_block_is_rolled_back(db_path):
    with ORM.init(db_name=db_path, entities=[User], timeout=0.1) as o:
        o.schema.create_schema()
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


def test_a_transaction_continued_on_another_thread_times_out(db_path):
    with ORM.init(db_name=db_path, entities=[User], timeout=0.2) as o:
        o.schema.create_schema()
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


def test_a_transaction_the_database_rolled_back_itself(orm):
    orm.connection.raw.execute(
        "create trigger no_bob before insert on user when new.full_name = 'bob' "
        "begin select raise(rollback, 'no bob'); end"
    )
    s = Stamped(name="s")
    with pytest.raises(DriverException):
        with orm.em.transaction() as tx:
            tx.persist(s)
            tx.persist(User(full_name="bob", email="b@x", password="p"))
    assert s.created is None, "the hook value of the failed flush is taken back"
    assert not orm.connection.in_transaction
    assert orm.em.fork().count(Stamped) == 0


def test_an_untouched_reference_of_a_versioned_type_with_json_is_no_change(orm):
    @entity()
    class VersionedDoc:
        id: int = PrimaryKey()
        data: dict = Property(default_factory=dict)
        version: int = Property(version=True)

    with ORM.init(db_name=":memory:", entities=[VersionedDoc, Tag]) as o:
        o.schema.create_schema()
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
    assert managed.full_name == "dup" and em.get_unit_of_work().is_new(dup)


def test_upsert_of_an_instance_leaves_columns_it_does_not_hold(orm):
    @entity()
    class Plan:
        id: int = PrimaryKey()
        email: str = Property(unique=True)
        tier: str = "free"

        def __init__(self, email: str) -> None:
            self.email = email

    with ORM.init(db_name=":memory:", entities=[Plan]) as o:
        o.schema.create_schema()
        em = o.em.fork()
        em.native_insert(Plan, {"email": "a@x", "tier": "pro"})
        em.upsert(Plan("a@x"))
        assert rows(o, "select tier from plan") == [("pro",)]
        em.upsert(Plan("b@x"))
        assert rows(o, "select tier from plan where email = 'b@x'") == [("free",)]


def test_an_explicit_none_is_not_replaced_by_a_default_factory(orm):
    @entity()
    class Tagged:
        id: int = PrimaryKey()
        tag: str | None = Property(default_factory=lambda: "generated")

    with ORM.init(db_name=":memory:", entities=[Tagged]) as o:
        o.schema.create_schema()
        em = o.em.fork()
        em.native_insert(Tagged, {"tag": None})
        em.native_insert(Tagged, {})
        assert rows(o, "select tag from tagged order by id") == [(None,), ("generated",)]

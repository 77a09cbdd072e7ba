"""EntityManager: contexts, identity map, queries, references, native queries, transactions."""

from __future__ import annotations

import threading

import pytest

from orm import (
    FlushMode,
    MetadataError,
    NotFoundError,
    QueryOrder,
    RequestContext,
    UniqueConstraintViolationException,
    ValidationError,
    wrap,
)
from tests.core.models import Article, Stamped, Tag, User
from tests.databases import rows, sql


def add_users(em, n=5):
    users = [
        User(full_name=f"User {i}", email=f"u{i}@x.io", password="pw", age=20 + i)
        for i in range(n)
    ]
    em.persist(users).flush()
    return users


# -- global context, forks, request contexts ---------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda em: em.find(User, {}),
        lambda em: em.find_one(User, 1),
        lambda em: em.persist(User(full_name="a", email="b", password="c")),
        lambda em: em.flush(),
        lambda em: em.count(User),
    ],
)
def test_global_entity_manager_refuses_context_specific_work(orm, call, log):
    with pytest.raises(ValidationError, match=r"fork\(\).*allow_global_context"):
        call(orm.em)
    assert log == [], "nothing may run"


def test_allow_global_context(connect):
    with connect([User], allow_global_context=True) as o:
        o.em.persist(User(full_name="a", email="b", password="c")).flush()
        assert o.em.count(User) == 1


def test_forks_have_increasing_ids_and_own_identity_maps(orm):
    a, b = orm.em.fork(), orm.em.fork()
    assert orm.em.id < a.id < b.id
    add_users(a, 1)
    ua, ub = a.find_one(User, 1), b.find_one(User, 1)
    assert ua is not ub and ua.email == ub.email


def test_request_context_routes_global_em_to_a_fork(orm):
    with orm.request_context() as em:
        orm.em.persist(User(full_name="a", email="a@x", password="p")).flush()
        assert orm.em.find_one(User, 1) is em.find_one(User, 1)
        assert RequestContext.get_entity_manager() is em
    assert RequestContext.get_entity_manager() is None
    with pytest.raises(ValidationError):
        orm.em.find_one(User, 1)


@pytest.mark.parametrize("where", ["request context", "no context"])
def test_global_em_inside_a_transaction_block_is_the_transaction_s_fork(orm, where):
    """`orm.em` used inside `with orm.em.transaction() as tx:` (or `transactional`) works
    through `tx`: its work commits with the block, or rolls back with it. It went to the
    request's fork, whose pending work survived the rollback and was written by its next
    flush (and outside a request context it was refused)."""

    def body(tx, name):
        assert RequestContext.get_entity_manager() is tx
        user = User(full_name=name, email=f"{name}@x", password="p")
        orm.em.persist(user)
        assert wrap(user).get_entity_manager() is tx
        return user

    def run():
        with pytest.raises(RuntimeError, match="undo"):
            with orm.em.transaction() as tx:
                body(tx, "rolled")
                raise RuntimeError("undo")
        kept = orm.em.transactional(lambda tx: body(tx, "kept"))
        assert kept.id is not None
        with orm.em.transaction() as tx:
            with tx.transaction() as inner:  # a savepoint: its own fork, routed too
                body(inner, "nested")
                assert RequestContext.get_entity_manager() is inner
            assert RequestContext.get_entity_manager() is tx

    if where == "request context":
        with orm.request_context() as em:
            run()
            assert RequestContext.get_entity_manager() is em
            em.flush()
    else:
        run()
        assert RequestContext.get_entity_manager() is None
    assert sorted(r[0] for r in rows(orm, "select `full_name` from `user`")) == ["kept", "nested"]


def test_request_context_create_and_isolation_between_threads(orm):
    seen = {}

    def work(name):
        ctx_em = RequestContext.get_entity_manager()
        seen[name] = ctx_em.id
        return orm.em.count(User)

    assert RequestContext.create(orm.em, work, "main") == 0
    t = threading.Thread(target=lambda: RequestContext.create(orm.em, work, "thread"))
    t.start()
    t.join()
    assert seen["main"] != seen["thread"]


# -- identity map -------------------------------------------------------------------------


def test_lookup_by_pk_returns_same_instance_without_query(em, log):
    add_users(em, 2)
    fresh = em.fork()
    u = fresh.find_one(User, 1)
    log.clear()
    assert fresh.find_one(User, 1) is u
    assert fresh.find_one(User, {"id": 1}) is u
    assert log == []


def test_query_by_other_criteria_goes_to_db_but_returns_managed_instance(em, log):
    add_users(em, 2)
    fresh = em.fork()
    u = fresh.find_one(User, 1)
    u.full_name = "changed locally"
    log.clear()
    again = fresh.find_one(User, {"email": "u0@x.io"}, flush_mode=FlushMode.COMMIT)
    assert again is u and again.full_name == "changed locally"
    assert len(log) == 1 and log[0].startswith("[query] select")


def test_disable_identity_map_returns_new_unmanaged_instances(em):
    add_users(em, 1)
    fresh = em.fork()
    managed = fresh.find_one(User, 1)
    loose = fresh.find(User, {}, disable_identity_map=True)[0]
    assert loose is not managed and not wrap(loose).is_managed()
    loose.full_name = "x"
    fresh.flush()
    assert fresh.fork().find_one(User, 1).full_name == "User 0"


def test_refresh_discards_unflushed_changes(em):
    add_users(em, 1)
    u = em.find_one(User, 1)
    u.full_name = "unsaved"
    em.native_update(User, {"id": 1}, {"age": 99})
    assert em.refresh(u) is u
    assert (u.full_name, u.age) == ("User 0", 99)
    em.flush()
    assert em.fork().find_one(User, 1).full_name == "User 0"


def test_refresh_of_a_deleted_row_detaches(em):
    add_users(em, 1)
    u = em.find_one(User, 1)
    em.native_delete(User, 1)
    assert em.refresh(u) is None
    assert not wrap(u).is_managed()


def test_find_refresh_option_overwrites_loaded_state(em):
    add_users(em, 1)
    u = em.find_one(User, 1)
    em.native_update(User, 1, {"full_name": "from db"})
    assert em.find(User, {}, flush_mode=FlushMode.COMMIT)[0].full_name == "User 0"
    assert em.find(User, {}, refresh=True)[0].full_name == "from db"
    assert u.full_name == "from db"


def test_clear_detaches_everything(em):
    add_users(em, 2)
    u = em.find_one(User, 1)
    em.clear()
    assert not wrap(u).is_managed()
    assert em.find_one(User, 1) is not u


# -- filters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"age": 22}, [2]),
        ({"age": {"$eq": 22}}, [2]),
        ({"age": {"$ne": 22}}, [0, 1, 3, 4]),
        ({"age": {"$gt": 22}}, [3, 4]),
        ({"age": {"$gte": 22}}, [2, 3, 4]),
        ({"age": {"$lt": 22}}, [0, 1]),
        ({"age": {"$lte": 22}}, [0, 1, 2]),
        ({"age": {"$in": [20, 24]}}, [0, 4]),
        ({"age": [20, 24]}, [0, 4]),
        ({"age": {"$nin": [20, 24]}}, [1, 2, 3]),
        ({"age": {"$in": []}}, []),
        ({"email": {"$like": "u1%"}}, [1]),
        ({"email": {"$re": r"^u[34]@"}}, [3, 4]),
        ({"nickname": None}, [0, 1, 2, 3, 4]),
        ({"nickname": {"$exists": True}}, []),
        ({"nickname": {"$exists": False}}, [0, 1, 2, 3, 4]),
        ({"$or": [{"age": 20}, {"age": 21}]}, [0, 1]),
        ({"$and": [{"age": {"$gt": 20}}, {"age": {"$lt": 23}}]}, [1, 2]),
        ({"$not": {"age": {"$gt": 20}}}, [0]),
        ({"age": {"$not": {"$gt": 20}}}, [0]),
        ({"age": {"$gt": 20, "$lt": 23}}, [1, 2]),
        ({"$or": [{"age": 20}, {"$and": [{"age": 24}, {"email": "u4@x.io"}]}]}, [0, 4]),
        (3, [2]),
        ([1, 2], [0, 1]),
        (None, [0, 1, 2, 3, 4]),
    ],
)
def test_filter_operators(em, where, expected):
    users = add_users(em)
    found = em.find(User, where, order_by={"id": "asc"})
    assert found == [users[i] for i in expected]


def test_like_is_case_sensitive_on_postgresql_and_not_on_sqlite(em, database):
    """`$like` is the database's LIKE: PostgreSQL's compares case-sensitively, SQLite's
    folds ASCII letters (not others). Both match the exact case."""
    users = add_users(em, 2)
    em.persist(User(full_name="Élise", email="e@x.io", password="p")).flush()
    assert em.find(User, {"email": {"$like": "u1%"}}) == [users[1]]
    assert em.find(User, {"full_name": {"$like": "Él%"}})[0].email == "e@x.io"
    upper = em.find(User, {"email": {"$like": "U1%"}})
    folded = em.find(User, {"full_name": {"$like": "él%"}})
    if database == "sqlite":
        assert upper == [users[1]], "SQLite's LIKE ignores the case of ASCII letters"
        assert folded == [], "but not of other letters"
    else:
        assert upper == [] and folded == [], "PostgreSQL's LIKE is case-sensitive"


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"agee": 1}, r"User has no property 'agee'; known properties: id, full_name"),
        ({"age": {"$gtt": 1}}, r"Unknown operator '\$gtt' on User\.age; supported operators"),
        ({"$xor": []}, r"Unknown operator '\$xor' in a filter on User"),
        ({"$or": {"age": 1}}, r"\$or in a filter on User takes a list"),
        ({"age": {"$in": 5}}, r"\$in on User\.age takes a list"),
    ],
)
def test_bad_filters_raise_before_any_sql(em, log, where, message):
    with pytest.raises(ValidationError, match=message):
        em.find(User, where)
    assert log == []


def test_filter_values_are_converted_by_type(em):
    from datetime import datetime

    add_users(em, 2)
    em.native_update(User, 2, {"created_at": datetime(2030, 1, 1)})
    found = em.find(User, {"created_at": {"$gt": datetime(2025, 1, 1)}})
    assert [u.id for u in found] == [2]


def test_order_by_limit_offset_and_find_and_count(em):
    add_users(em)
    page, total = em.find_and_count(
        User, {"age": {"$gte": 21}}, order_by={"age": QueryOrder.DESC}, limit=2, offset=1
    )
    assert [u.age for u in page] == [23, 22] and total == 4
    assert [u.age for u in em.find(User, order_by=[{"age": "desc"}], limit=2)] == [24, 23]
    assert [u.age for u in em.find(User, order_by={"age": "asc"}, offset=3)] == [23, 24]
    with pytest.raises(ValidationError, match="Invalid order direction"):
        em.find(User, order_by={"age": "sideways"})
    with pytest.raises(ValidationError, match="limit must be a non-negative integer"):
        em.find(User, limit=-1)
    with pytest.raises(ValidationError, match="limit must be a non-negative integer below"):
        em.find(User, limit=2**70)
    with pytest.raises(ValidationError, match="offset must be a non-negative integer below"):
        em.find(User, offset=2**63)


def test_count_and_find_all(em):
    add_users(em, 3)
    assert em.count(User) == 3 and em.count(User, {"age": 20}) == 1
    assert len(em.find_all(User)) == 3


def test_fields_loads_partial_entities(em, orm):
    add_users(em, 1)
    fresh = em.fork()
    u = fresh.find(User, {}, fields=["email"])[0]
    assert u.email == "u0@x.io" and u.id == 1
    with pytest.raises(ValidationError, match=r"User\.full_name was not loaded"):
        _ = u.full_name
    u.email = "new@x.io"
    fresh.flush()
    assert rows(orm, "select email, full_name from `user`") == [("new@x.io", "User 0")]


def test_populate_validates_names(em):
    with pytest.raises(ValidationError, match="Cannot populate User.author"):
        em.find(User, {}, populate=["author"])
    assert em.find(User, {}, populate=["*"]) == []


def test_find_one_or_fail(em):
    add_users(em, 1)
    assert em.find_one_or_fail(User, {"email": "u0@x.io"}).id == 1
    with pytest.raises(NotFoundError, match=r"User not found \(\{'email': 'nobody'\}\)") as info:
        em.find_one_or_fail(User, {"email": "nobody"})
    assert info.value.entity == "User"


def test_unregistered_entity_class(em):
    from orm import PrimaryKey, entity

    @entity()
    class Stranger:
        id: int = PrimaryKey()

    with pytest.raises(MetadataError, match="Entity Stranger is not registered.*entities"):
        em.find(Stranger, {})
    with pytest.raises(MetadataError, match="Stranger is not registered"):
        em.persist(Stranger())


def test_persisting_something_that_is_not_an_entity(em):
    with pytest.raises(ValidationError, match="Trying to use dict .* not one"):
        em.persist({"full_name": "x"})
    with pytest.raises(ValidationError, match="not one"):
        em.remove("text")


# -- references --------------------------------------------------------------------------


def test_get_reference_makes_no_query_and_guards_reads(em, log):
    add_users(em, 1)
    fresh = em.fork()
    log.clear()
    ref = fresh.get_reference(User, 1)
    assert log == [] and ref.id == 1 and not wrap(ref).is_initialized()
    with pytest.raises(ValidationError, match=r"User\.email cannot be read.*init\(\)"):
        _ = ref.email
    assert fresh.get_reference(User, 1) is ref
    assert wrap(ref).to_object() == {"id": 1}
    assert wrap(ref).init() is ref and ref.email == "u0@x.io"
    assert wrap(ref).is_initialized()


def test_find_initializes_a_reference_in_place(em):
    add_users(em, 1)
    fresh = em.fork()
    ref = fresh.get_reference(User, 1)
    assert fresh.find_one(User, {"email": "u0@x.io"}) is ref
    assert ref.full_name == "User 0"


def test_reference_returns_loaded_entity(em):
    add_users(em, 1)
    u = em.find_one(User, 1)
    assert em.get_reference(User, 1) is u


def test_writing_to_a_reference_updates_only_what_was_set(em, orm, log):
    add_users(em, 1)
    fresh = em.fork()
    ref = fresh.get_reference(User, 1)
    ref.nickname = "nick"
    log.clear()
    fresh.flush()
    assert log.writes() == [
        "begin", sql(orm, "update `user` set `nickname` = 'nick' where `id` = 1"), "commit"
    ]


def test_init_of_missing_reference_raises_not_found(em):
    ref = em.get_reference(User, 42)
    with pytest.raises(NotFoundError, match=r"User not found \(42\)"):
        wrap(ref).init()


def test_remove_a_reference(em):
    add_users(em, 2)
    fresh = em.fork()
    fresh.remove(fresh.get_reference(User, 2)).flush()
    assert em.count(User) == 1


# -- create / assign / upsert / native -----------------------------------------------------


def test_create_persists_by_default(em):
    u = em.create(User, {"full_name": "C", "email": "c@x", "password": "p"})
    em.flush()
    assert u.id == 1 and em.fork().find_one(User, 1).full_name == "C"
    with pytest.raises(ValidationError, match="User has no property 'mail'"):
        em.create(User, {"mail": "x"})


def test_assign_sets_properties_and_rejects_unknown(em):
    add_users(em, 1)
    u = em.find_one(User, 1)
    assert em.assign(u, {"full_name": "Assigned", "age": 1}) is u
    em.flush()
    assert em.fork().find_one(User, 1).full_name == "Assigned"
    with pytest.raises(ValidationError, match="no property 'nope'"):
        em.assign(u, {"nope": 1})
    with pytest.raises(ValidationError, match="no property 'nope'"):
        wrap(u).assign({"nope": 1})


def test_upsert_inserts_then_updates_by_unique_property(em):
    first = em.upsert(User, {"full_name": "Up", "email": "up@x", "password": "p", "age": 1})
    assert first.id == 1 and wrap(first).is_managed()
    second = em.upsert(User, {"full_name": "Up 2", "email": "up@x", "password": "p", "age": 2})
    assert second is first and first.full_name == "Up 2" and first.age == 2
    assert em.count(User) == 1
    with pytest.raises(ValidationError, match="needs the primary key or a unique property"):
        em.upsert(User, {"full_name": "x"})


def test_upsert_of_an_entity_instance_by_primary_key(em):
    tag = Tag(name="py", label="Python")
    assert em.upsert(tag) is tag and wrap(tag).is_managed()
    other = em.fork()
    again = other.upsert(Tag(name="py", label="Python 3"))
    assert again.label == "Python 3" and other.count(Tag) == 1


def test_native_queries_bypass_the_unit_of_work(em):
    new_id = em.native_insert(User, {"full_name": "N", "email": "n@x", "password": "p"})
    assert new_id == 1
    assert em.native_update(User, {"id": new_id}, {"age": 5}) == 1
    assert em.fork().find_one(User, 1).age == 5
    assert em.native_delete(User, {"age": 5}) == 1
    assert em.count(User) == 0
    with pytest.raises(ValidationError, match="no property 'agee'"):
        em.native_update(User, {}, {"agee": 1})


def test_a_key_given_to_native_insert_or_upsert_is_never_generated_again(em, orm):
    """On PostgreSQL keys come from a sequence that a row inserted with its own key does
    not move: native_insert and upsert move it past that key, as a flush does."""
    assert em.native_insert(User, {"id": 5, "full_name": "N", "email": "n@x", "password": "p"}) == 5
    assert em.upsert(Stamped, {"id": 7, "name": "s"}).id == 7
    assert em.upsert(User, {"id": 7, "full_name": "U", "email": "u@x", "password": "p"}).id == 7
    users = [User(full_name="g", email=f"g{i}@x", password="p") for i in range(3)]
    em.persist(users).flush()
    assert [u.id for u in users] == [8, 9, 10]
    later = Stamped(name="t")
    em.persist(later).flush()
    assert later.id == 8
    assert em.native_insert(User, {"full_name": "M", "email": "m@x", "password": "p"}) == 11
    assert rows(orm, "select id from `user` order by id") == [(5,), (7,), (8,), (9,), (10,), (11,)]


# -- flush modes --------------------------------------------------------------------------


def test_auto_flush_before_query_of_changed_type_only(em, log):
    add_users(em, 1)
    u = em.find_one(User, 1)
    u.age = 77
    log.clear()
    em.find(Tag, {})
    assert not any(line.startswith("[query] update") for line in log)
    assert em.find(User, {"age": 77}) == [u]
    assert any(line.startswith("[query] update") for line in log)


def test_a_failing_auto_flush_says_it_ran_before_the_query(em):
    """The flush a query runs first fails: its error says so, and how to read without it
    (the user called find(), and the message sent them looking for a flush() of theirs).
    The pending change stays pending, and a query told not to flush reads."""
    a, b = add_users(em, 2)
    b.email = a.email  # unique: the flush before the query fails
    with pytest.raises(UniqueConstraintViolationException) as raised:
        em.find(User, {})
    assert str(raised.value).endswith(
        "Nothing of this flush was written; fix the cause and call flush() again. (This was "
        "the flush FlushMode.AUTO runs before a query, for the query to see the pending "
        "changes; pass flush_mode=FlushMode.COMMIT to the query to read without it.)"
    )
    assert {u.email for u in em.find(User, {}, flush_mode=FlushMode.COMMIT)} == {a.email}
    b.email = "other@x"
    assert len(em.find(User, {"email": "other@x"})) == 1


def test_auto_flush_includes_new_entities(em):
    em.persist(User(full_name="N", email="n@x", password="p"))
    assert em.count(User) == 1


def test_commit_flush_mode_never_flushes_on_query(orm):
    em = orm.em.fork(flush_mode=FlushMode.COMMIT)
    em.persist(User(full_name="N", email="n@x", password="p"))
    assert em.count(User) == 0
    em.flush()
    assert em.count(User) == 1


def test_always_flush_mode_and_per_query_mode(orm):
    em = orm.em.fork(flush_mode=FlushMode.ALWAYS)
    em.persist(User(full_name="N", email="n@x", password="p"))
    assert em.count(Tag) == 0 and em.fork().count(User) == 1
    auto = orm.em.fork()
    auto.persist(User(full_name="M", email="m@x", password="p"))
    assert auto.count(User, flush_mode=FlushMode.COMMIT) == 1


def test_identity_map_lookup_never_flushes(em, log):
    add_users(em, 1)
    u = em.find_one(User, 1)
    u.age = 1
    log.clear()
    assert em.find_one(User, 1) is u
    assert log == []


# -- transactions -------------------------------------------------------------------------


def test_transactional_commits_and_returns(orm, log):
    def work(tx):
        tx.persist(User(full_name="T", email="t@x", password="p"))
        return "done"

    assert orm.em.transactional(work) == "done"
    assert orm.em.fork().count(User) == 1
    assert log.writes()[0] == "begin" and log.writes()[-1] == "commit"


def test_transaction_rolls_back_on_exception(orm):
    with pytest.raises(RuntimeError):
        with orm.em.transaction() as tx:
            tx.persist(User(full_name="T", email="t@x", password="p"))
            tx.flush()
            raise RuntimeError("boom")
    assert orm.em.fork().count(User) == 0


def test_nested_transactions_use_savepoints(orm, log):
    with orm.em.transaction() as outer:
        outer.persist(User(full_name="O", email="o@x", password="p"))
        with pytest.raises(ValueError):
            with outer.transaction() as inner:
                inner.persist(User(full_name="I", email="i@x", password="p"))
                inner.flush()
                raise ValueError
        outer.flush()
    emails = [u.email for u in orm.em.fork().find(User, {})]
    assert emails == ["o@x"]
    assert any(s.startswith("savepoint trx") for s in log.sql())
    assert any(s.startswith("rollback to savepoint trx") for s in log.sql())


# -- closed ORM ---------------------------------------------------------------------------


def test_using_a_closed_orm(connect):
    o = connect([User, Article], create=False)
    em = o.em.fork()
    o.close()
    with pytest.raises(ValidationError, match=r"ORM is closed.*ORM\.init\(\)"):
        em.find(User, {})
    with pytest.raises(ValidationError, match="ORM is closed"):
        _ = o.em
    with pytest.raises(ValidationError, match="ORM is closed"):
        o.schema.create_schema()


def test_forks_in_several_threads_take_turns_on_the_connection(orm):
    """Each thread works in its own fork; their transactions must not interleave on the
    ORM's single connection."""
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for batch in range(20):
                with orm.request_context():
                    users = [
                        User(full_name="t", email=f"w{worker}-{batch}-{i}@x", password="p")
                        for i in range(5)
                    ]
                    orm.em.persist(users).flush()
                    users[0].age = 1
                    orm.em.flush()
                    assert orm.em.count(User, {"email": {"$like": f"w{worker}-{batch}-%"}}) == 5
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert orm.em.fork().count(User) == 4 * 20 * 5


def test_upsert_keeps_the_managed_entitys_unflushed_changes_it_does_not_set(em, orm):
    user = User(full_name="a", email="a@x", password="p")
    em.persist(user).flush()
    user.bio = "mine"
    assert em.upsert(User, {"email": "a@x", "full_name": "b", "password": "p", "age": 5}) is user
    assert (user.full_name, user.age, user.bio) == ("b", 5, "mine")
    em.flush()
    assert rows(orm, "select full_name, age, bio from `user`") == [("b", 5, "mine")]

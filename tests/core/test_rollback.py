"""A rolled-back transaction (or savepoint) rolls the Unit of Work back with the database
(SPEC section 3, "Rollback"): what a flush inside it wrote is pending again, nothing looks
stored that the database does not hold, and the next flush writes it."""

from __future__ import annotations

import sqlite3

import pytest

from orm import ValidationError, wrap
from orm.errors import (
    LockWaitTimeoutException,
    OptimisticLockError,
    UniqueConstraintViolationException,
)
from tests.core.models import Article, Everything, Stamped, User
from tests.databases import execute, rows


class Boom(Exception):
    pass


def _user(name: str) -> User:
    return User(full_name=name, email=f"{name}@x", password="p")


def test_an_insert_flushed_in_a_rolled_back_transaction_is_new_again(orm, database):
    em = orm.em.fork()
    ghost = _user("ghost")
    with pytest.raises(Boom):
        with em.transaction() as tx:
            tx.persist(ghost)
            tx.flush()
            assert ghost.id == 1
            raise Boom
    assert ghost.id is None, "the key the database generated is taken back"
    assert not wrap(ghost).is_managed() and ghost._orm_uow is None, "the block's fork let go"
    assert tx.get_unit_of_work().get_identity_map().get(User, {}) == {}
    # SQLite hands the key out again, to another row; the ghost must not claim it (a
    # PostgreSQL sequence never goes back: the rolled-back key 1 stays unused)
    other = orm.em.fork()
    bob = _user("bob")
    other.persist(bob).flush()
    first = 1 if database == "sqlite" else 2
    assert bob.id == first
    em.persist(ghost).flush()  # a retry writes it, under a key of its own
    assert ghost.id == first + 1
    assert rows(orm, "select id, full_name from `user` order by id") == [
        (first, "bob"), (first + 1, "ghost")
    ]


def test_editing_a_rolled_back_insert_never_touches_another_row(orm):
    em = orm.em.fork()
    ghost = _user("ghost")
    with pytest.raises(Boom):
        with em.transaction():
            em.persist(ghost).flush()  # the outer EntityManager's flush, in the block
            raise Boom
    bob = _user("bob")
    orm.em.fork().persist(bob).flush()  # takes key 1 on SQLite (2 on PostgreSQL)
    ghost.full_name = "renamed"
    em.remove(ghost)  # new again, so never written: simply forgotten
    em.flush()
    assert rows(orm, "select id, full_name from `user`") == [(bob.id, "bob")]


def test_an_auto_flush_inside_a_rolled_back_transaction_is_undone(orm):
    em = orm.em.fork()
    with pytest.raises(Boom):
        with em.transaction():
            pending = _user("a")
            em.persist(pending)
            assert em.count(User) == 1  # FlushMode.AUTO wrote it first
            raise Boom
    assert pending.id is None and em.get_unit_of_work().is_new(pending)
    assert orm.em.fork().count(User) == 0
    em.flush()
    assert orm.em.fork().count(User) == 1


def test_an_update_flushed_in_a_rolled_back_transaction_is_dirty_again(orm):
    setup = orm.em.fork()
    user = _user("a")
    setup.persist(user).flush()
    em = orm.em.fork()
    loaded = em.find_one_or_fail(User, user.id)
    with pytest.raises(Boom):
        with em.transaction():
            loaded.age = 41
            em.flush()
            raise Boom
    assert rows(orm, "select age from `user`") == [(0,)]
    assert [c.type for c in em.get_unit_of_work().compute_change_sets()] == ["update"]
    em.flush()
    assert rows(orm, "select age from `user`") == [(41,)]


def test_a_removal_flushed_in_a_rolled_back_transaction_is_scheduled_again(orm):
    setup = orm.em.fork()
    setup.persist(_user("a")).flush()
    em = orm.em.fork()
    user = em.find_one_or_fail(User, {"full_name": "a"})
    with pytest.raises(Boom):
        with em.transaction():
            em.remove(user).flush()
            raise Boom
    assert wrap(user).is_managed(), "the row still exists, so the entity is managed"
    assert em.find_one(User, user.id) is user
    assert em.get_unit_of_work().get_removal_stack() == [user]
    em.flush()
    assert rows(orm, "select count(*) from `user`") == [(0,)]


def test_a_rolled_back_savepoint_keeps_the_outer_transactions_work_pending(orm):
    setup = orm.em.fork()
    setup.persist(_user("a")).flush()
    em = orm.em.fork()
    with em.transaction() as tx:
        user = tx.find_one_or_fail(User, {"full_name": "a"})
        user.bio = "outer change"
        with pytest.raises(Boom):
            with tx.transaction():
                tx.flush()  # the outer change is written inside the savepoint ...
                raise Boom  # ... and rolled back with it
        assert rows(orm, "select bio from `user`") == [("",)]
    # the outer transaction's own flush at commit writes it again
    assert rows(orm, "select bio from `user`") == [("outer change",)]


def test_a_savepoint_released_and_then_the_outer_transaction_rolled_back(orm):
    em = orm.em.fork()
    user = _user("a")
    with pytest.raises(Boom):
        with em.transaction() as outer:
            with outer.transaction() as inner:
                inner.persist(user)
            assert user.id == 1  # the savepoint's work committed to the outer transaction
            raise Boom
    assert user.id is None and inner.get_unit_of_work().is_new(user)
    inner.flush()
    assert rows(orm, "select full_name from `user`") == [("a",)]


def test_several_flushes_in_one_rolled_back_transaction_are_all_undone(orm):
    em = orm.em.fork()
    first, second = _user("a"), _user("b")
    with pytest.raises(Boom):
        with em.transaction():
            em.persist(first).flush()
            first.age = 1
            em.persist(second).flush()
            em.remove(first).flush()
            raise Boom
    uow = em.get_unit_of_work()
    # `first` was inserted and removed: as a removed new entity, it is simply forgotten
    assert first.id is None and not uow.is_new(first) and uow.get_removal_stack() == []
    assert not wrap(first).is_managed() and first._orm_uow is None
    assert second.id is None and uow.is_new(second)
    assert uow.get_identity_map().get(User, {}) == {}
    em.flush()
    assert rows(orm, "select full_name from `user`") == [("b",)]


def test_a_versioned_update_rolled_back_restores_the_version(orm):
    setup = orm.em.fork()
    setup.persist(Article(title="t")).flush()
    em = orm.em.fork()
    article = em.find_one_or_fail(Article, {"title": "t"})
    assert article.version == 1
    with pytest.raises(Boom):
        with em.transaction():
            article.title = "t2"
            em.flush()
            assert article.version == 2
            raise Boom
    assert article.version == 1, "the database still holds version 1"
    em.flush()  # no OptimisticLockError: the check is against the version the row holds
    assert rows(orm, "select title, version from article") == [("t2", 2)]


def test_values_generated_by_a_rolled_back_flush_are_taken_back(orm):
    em = orm.em.fork()
    stamped = Stamped(name="s")
    with pytest.raises(Boom):
        with em.transaction():
            em.persist(stamped).flush()
            assert stamped.created == "created:s"
            raise Boom
    assert stamped.created is None
    stamped.name = "t"
    em.flush()
    assert rows(orm, "select name, created from stamped") == [("t", "created:t")]


def test_clear_drops_what_a_rollback_made_pending(orm):
    em = orm.em.fork()
    user = _user("a")
    with pytest.raises(Boom):
        with em.transaction():
            em.persist(user).flush()
            em.clear()
            raise Boom
    uow = em.get_unit_of_work()
    assert not uow.is_new(user) and user._orm_uow is None
    em.flush()
    assert rows(orm, "select count(*) from `user`") == [(0,)]


def test_a_primary_key_change_rolled_back_is_pending_again(orm):
    setup = orm.em.fork()
    setup.persist(_user("a")).flush()
    em = orm.em.fork()
    user = em.find_one_or_fail(User, 1)
    with pytest.raises(Boom):
        with em.transaction():
            user.id = 99
            em.flush()
            assert em.find_one(User, 99) is user
            raise Boom
    im = em.get_unit_of_work().get_identity_map()[User]
    assert im == {1: user}, "back under the key the database holds"
    em.flush()
    assert rows(orm, "select id from `user`") == [(99,)]
    assert em.get_unit_of_work().get_identity_map()[User] == {99: user}


def test_an_upsert_rolled_back_makes_the_instance_new_again(orm):
    em = orm.em.fork()
    user = _user("a")
    em.persist(user)
    with pytest.raises(Boom):
        with em.transaction():
            em.upsert(user)
            assert wrap(user).is_managed()
            raise Boom
    assert em.get_unit_of_work().is_new(user) and not wrap(user).is_managed()
    em.flush()
    assert rows(orm, "select full_name from `user`") == [("a",)]


def test_an_upsert_of_a_managed_row_rolled_back_is_dirty_again(orm):
    setup = orm.em.fork()
    setup.persist(_user("a")).flush()
    em = orm.em.fork()
    user = em.find_one_or_fail(User, 1)
    with pytest.raises(Boom):
        with em.transaction():
            em.upsert(User, {"id": 1, "full_name": "b", "email": "a@x", "password": "p"})
            assert user.full_name == "b"
            raise Boom
    assert rows(orm, "select full_name from `user`") == [("a",)]
    em.flush()
    assert rows(orm, "select full_name from `user`") == [("b",)]


def test_transactional_rolls_back_the_unit_of_work_too(orm, database):
    user = _user("a")
    seen = []

    def work(tx):
        seen.append(tx)
        tx.persist(user).flush()
        raise Boom

    em = orm.em.fork()
    with pytest.raises(Boom):
        em.transactional(work)
    assert user.id is None and not seen[0].get_unit_of_work().is_new(user)
    # the fork of the failed call let go: running the work again succeeds
    em.transactional(lambda tx: tx.persist(user))
    assert rows(orm, "select id, full_name from `user`") == [(user.id, "a")]
    # SQLite gives the rolled-back key out again; a PostgreSQL sequence never goes back
    assert user.id == (1 if database == "sqlite" else 2)


def test_close_with_an_open_transaction_rolls_back_and_unwinds(connect):
    orm = connect([User])
    em = orm.em.fork()
    user = _user("a")
    orm.connection.begin()
    em.persist(user).flush()
    assert user.id == 1
    orm.close()
    assert user.id is None and em.get_unit_of_work().is_new(user)
    fresh = connect([User], create=False)  # another connection: nothing was committed
    assert rows(fresh, "select count(*) from `user`") == [(0,)]


def test_a_failing_commit_at_the_end_of_a_block_makes_the_work_pending(
    connect, database, tmp_path
):
    o = connect([User], timeout=0.1)
    user = _user("a")
    if database == "sqlite":  # a reader's shared lock lets the insert run, not the COMMIT
        reader = sqlite3.connect(str(tmp_path / "test.db"), isolation_level=None)
        reader.execute("begin")
        reader.execute("select * from user").fetchall()
        with pytest.raises(LockWaitTimeoutException):
            with o.em.transaction() as tx:
                tx.persist(user)
        reader.execute("commit")
        reader.close()
    else:  # a deferred unique constraint lets the insert run and fails the COMMIT
        execute(o, 'drop index "user_email_unique"')
        execute(o, 'alter table "user" add constraint "user_email_unique" unique ("email") '
                   "deferrable initially deferred")
        o.em.fork().persist(_user("taken")).flush()
        user.email = "taken@x"
        with pytest.raises(UniqueConstraintViolationException, match="commit"):
            with o.em.transaction() as tx:
                tx.persist(user)
        user.email = "a@x"
    assert user.id is None and user._orm_uow is None
    o.em.fork().persist(user).flush()  # retry once the cause is gone
    assert o.em.fork().count(User, {"full_name": "a"}) == 1
    assert rows(o, "select id from `user` where full_name = 'a'") == [(user.id,)]


def test_a_reference_update_rolled_back_is_written_again(orm):
    orm.em.fork().persist(_user("a")).flush()
    em = orm.em.fork()
    ref = em.get_reference(User, 1)
    with pytest.raises(Boom):
        with em.transaction():
            ref.age = 9
            em.flush()
            assert wrap(ref).is_initialized()  # its written column is known now
            raise Boom
    assert not wrap(ref).is_initialized(), "an uninitialized reference with a pending write"
    assert rows(orm, "select age from `user`") == [(0,)]
    em.flush()
    assert rows(orm, "select age from `user`") == [(9,)]


def test_an_update_of_a_row_deleted_since_it_was_loaded_fails(orm):
    """An UPDATE that matches no row must fail loudly, never write nothing in silence."""
    orm.em.fork().persist(_user("a")).flush()
    reader = orm.em.fork()
    seen = reader.find_one_or_fail(User, 1)
    orm.em.fork().native_delete(User, {"id": 1})
    seen.full_name = "changed by the reader"
    with pytest.raises(OptimisticLockError) as err:
        reader.flush()
    assert "Updating 1 User row(s) matched only 0" in str(err.value)
    assert "Nothing of this flush was written" in str(err.value)
    assert rows(orm, "select count(*) from `user`") == [(0,)]
    assert reader.refresh(seen) is None  # the way out the message names
    reader.flush()


def test_a_write_through_a_reference_to_a_missing_row_fails(orm):
    em = orm.em.fork()
    ref = em.get_reference(User, 42)
    ref.age = 1
    with pytest.raises(OptimisticLockError, match="User 42, written through a reference, has no row"):
        em.flush()


def test_remove_and_persist_again_rolled_back_leaves_the_entity_managed(orm):
    em = orm.em.fork()
    user = _user("a")
    em.persist(user).flush()
    orm.connection.begin()
    em.remove(user).flush()
    em.persist(user).flush()
    orm.connection.rollback()
    assert wrap(user).is_managed() and em.find_one(User, 1) is user
    uow = em.get_unit_of_work()
    assert uow.get_persist_stack() == [] and uow.get_removal_stack() == []
    user.full_name = "b"
    em.flush()
    assert rows(orm, "select id, full_name from `user`") == [(1, "b")]


def test_transactional_retries_a_serialization_failure_on_a_fresh_fork(orm):
    from orm.errors import SerializationFailureException

    em = orm.em.fork()
    forks = []

    def work(tx):
        forks.append(tx)
        tx.persist(_user(f"try{len(forks)}")).flush()
        if len(forks) < 3:
            raise SerializationFailureException("could not serialize access (40001)")
        return len(forks)

    assert em.transactional(work, retries=2) == 3
    assert len({id(f) for f in forks}) == 3, "each attempt on a fresh fork"
    assert rows(orm, "select full_name from `user`") == [("try3",)], "failed attempts left nothing"


def test_transactional_gives_up_after_its_retries_and_never_retries_other_errors(orm):
    from orm.errors import DeadlockException, UniqueConstraintViolationException

    calls = []

    def deadlocked(tx):
        calls.append(1)
        raise DeadlockException("deadlock detected (40P01)")

    with pytest.raises(DeadlockException):
        orm.em.fork().transactional(deadlocked, retries=1)
    assert len(calls) == 2

    def duplicate(tx):
        calls.append(2)
        raise UniqueConstraintViolationException("duplicate")

    with pytest.raises(UniqueConstraintViolationException):
        orm.em.fork().transactional(duplicate, retries=3)
    assert calls.count(2) == 1
    with pytest.raises(ValidationError, match="retries must be a non-negative integer"):
        orm.em.fork().transactional(duplicate, retries=-1)


def test_a_conflict_inside_a_transaction_the_caller_drives_is_not_retried(orm):
    from orm.errors import SerializationFailureException

    calls = []

    def work(tx):
        calls.append(1)
        raise SerializationFailureException("could not serialize access (40001)")

    em = orm.em.fork()
    with pytest.raises(SerializationFailureException):
        with em.transaction() as outer:
            outer.transactional(work, retries=5)
    assert calls == [1]


def test_an_entity_read_from_a_rolled_back_insert_is_detached(orm):
    """Another fork reads a row the transaction inserted; after the rollback SQLite hands
    its key to a new row (PostgreSQL does not). Writing to or removing the stale entity must
    never reach it."""
    em = orm.em.fork()
    with pytest.raises(Boom):
        with em.transaction() as tx:
            tx.persist(_user("draft")).flush()
            ghost = em.find_one_or_fail(User, {"full_name": "draft"})
            raise Boom
    assert not wrap(ghost).is_managed() and em.find_one(User, 1) is None
    alice = _user("alice")
    orm.em.fork().persist(alice).flush()  # gets key 1 again on SQLite
    ghost.full_name = "ghost write"
    em.flush()
    with pytest.raises(ValidationError, match="not managed by this EntityManager"):
        em.remove(ghost)
    assert rows(orm, "select id, full_name from `user`") == [(alice.id, "alice")]


def test_an_entity_read_in_a_rolled_back_transaction_is_merged_with_its_row(orm):
    """The row existed before, and another fork's update of it was rolled back: the entity
    takes the row's values back, except what its user changed since, which is written."""
    orm.em.fork().persist(_user("a")).flush()
    writer, reader = orm.em.fork(), orm.em.fork()
    orm.connection.begin()
    written = writer.find_one_or_fail(User, 1)
    written.full_name, written.age = "b", 7
    writer.flush()
    seen = reader.find_one_or_fail(User, 1)
    assert (seen.full_name, seen.age) == ("b", 7)
    seen.bio = "the reader's own change"
    orm.connection.rollback()
    assert wrap(seen).is_managed() and reader.find_one(User, 1) is seen
    assert (seen.full_name, seen.age, seen.bio) == ("a", 0, "the reader's own change")
    seen.nickname = "n"
    reader.flush()
    assert rows(orm, "select full_name, age, bio, nickname from `user`") == [
        ("a", 0, "the reader's own change", "n")
    ], "the rolled-back update is not written back"
    log_free = orm.em.fork()
    assert log_free.find_one_or_fail(User, 1).full_name == "a"


def test_an_unchanged_entity_read_in_a_rolled_back_transaction_writes_nothing(orm, log):
    orm.em.fork().persist(Everything(s="a")).flush()  # a JSON type: compared at every flush
    writer, reader = orm.em.fork(), orm.em.fork()
    orm.connection.begin()
    writer.find_one_or_fail(Everything, 1).s = "b"
    writer.flush()
    seen = reader.find_one_or_fail(Everything, 1)
    orm.connection.rollback()
    assert seen.s == "a"
    log.clear()
    reader.flush()
    assert log == [], "nothing to write: the entity holds what the row holds"


def test_a_query_outside_any_transaction_records_nothing(orm, log):
    orm.em.fork().persist(_user("a")).flush()
    em = orm.em.fork()
    em.find(User, {})
    assert orm.connection._state().undo == []


def test_a_versioned_entity_read_in_a_rolled_back_transaction_can_be_updated(orm):
    orm.em.fork().persist(Article(title="t")).flush()
    em = orm.em.fork()
    orm.connection.begin()
    article = em.find_one_or_fail(Article, 1)
    orm.connection.rollback()
    article.title = "t2"
    em.flush()
    assert rows(orm, "select title, version from article") == [("t2", 2)]
    assert article.version == 2


def test_a_refresh_inside_a_rolled_back_transaction_is_taken_back(orm):
    orm.em.fork().persist(_user("a")).flush()
    em = orm.em.fork()
    user = em.find_one_or_fail(User, 1)
    with pytest.raises(Boom):
        with em.transaction() as tx:
            tx.native_update(User, {"id": 1}, {"full_name": "b"})
            em.refresh(user)
            assert user.full_name == "b"
            raise Boom
    assert user.full_name == "a", "the row's value again"
    user.full_name = "b"  # now a real change, to be written
    em.flush()
    assert rows(orm, "select full_name from `user`") == [("b",)]


def test_a_reference_initialized_from_a_rolled_back_insert_is_detached(orm):
    em = orm.em.fork()
    ref = em.get_reference(User, 1)
    with pytest.raises(Boom):
        with em.transaction() as tx:
            tx.persist(_user("ghost")).flush()
            assert em.find_one_or_fail(User, {"full_name": "ghost"}) is ref
            assert wrap(ref).is_initialized()
            raise Boom
    assert not wrap(ref).is_managed()
    orm.em.fork().persist(_user("alice")).flush()
    ref.full_name = "ghost write"
    em.flush()
    assert rows(orm, "select full_name from `user`") == [("alice",)]


def test_a_write_auto_flushed_by_a_query_in_a_rolled_back_transaction_stays_pending(orm):
    orm.em.fork().persist(_user("a")).flush()
    em = orm.em.fork()
    user = em.find_one_or_fail(User, 1)
    user.full_name = "the user's write"
    with pytest.raises(Boom):
        with em.transaction():
            em.find(User, {})  # FlushMode.AUTO writes it, and the query returns the entity
            raise Boom
    assert user.full_name == "the user's write"
    em.flush()
    assert rows(orm, "select full_name from `user`") == [("the user's write",)]


def test_an_insert_auto_flushed_by_a_query_in_a_rolled_back_transaction_is_new_again(orm):
    em = orm.em.fork()
    user = _user("pending")
    em.persist(user)
    with pytest.raises(Boom):
        with em.transaction():
            em.find(User, {})
            raise Boom
    assert user.id is None and em.get_unit_of_work().is_new(user)
    em.flush()
    assert rows(orm, "select full_name from `user`") == [("pending",)]


def test_key_changes_and_removals_undone_before_the_rows_are_read_again(orm):
    orm.em.fork().persist([Everything(s="one"), Everything(s="two")]).flush()
    em = orm.em.fork()
    one = em.find_one_or_fail(Everything, 1)
    two = em.find_one_or_fail(Everything, 2)
    with pytest.raises(Boom):
        with em.transaction():
            em.remove(two).flush()
            one.id = 2
            em.flush()
            em.find(Everything, {})
            raise Boom
    # the new key is the user's pending change again; the entity is still row 1's
    assert (one.id, one.s) == (2, "one") and one._orm_snap[0] == 1
    assert em.get_unit_of_work().get_identity_map()[Everything] == {1: one, 2: two}
    assert em.get_unit_of_work().get_removal_stack() == [two]


def test_an_invalid_value_keeps_only_its_own_column_at_the_merge(orm):
    orm.em.fork().persist(_user("a")).flush()
    writer, reader = orm.em.fork(), orm.em.fork()
    orm.connection.begin()
    written = writer.find_one_or_fail(User, 1)
    written.full_name = "uncommitted"
    writer.flush()
    seen = reader.find_one_or_fail(User, 1)
    seen.age = "not an int"
    orm.connection.rollback()
    assert seen.full_name == "a", "the rolled-back value is not kept"
    seen.age = 3
    reader.flush()
    assert rows(orm, "select full_name, age from `user`") == [("a", 3)]


def test_a_partial_entity_with_an_invalid_value_is_completed_at_the_merge(orm):
    orm.em.fork().persist(_user("a")).flush()
    em = orm.em.fork()
    orm.connection.begin()
    user = em.find_one_or_fail(User, 1, fields=["full_name"])
    user.age = "bad"
    orm.connection.rollback()
    assert user.email == "a@x", "the columns the partial load left out are filled"
    user.age = 4
    em.flush()
    assert rows(orm, "select age from `user`") == [(4,)]


def test_a_load_in_a_rolled_back_savepoint_is_read_again_when_everything_rolls_back(orm):
    em, conn = orm.em.fork(), orm.connection
    conn.begin()
    orm.em.fork().persist(_user("ghost")).flush()  # another fork's insert, in the outer one
    conn.begin()
    ghost = em.find_one_or_fail(User, {"full_name": "ghost"})
    conn.rollback()  # the savepoint: the row is still there
    assert wrap(ghost).is_managed()
    conn.rollback()  # everything: the row is gone
    assert not wrap(ghost).is_managed()
    orm.em.fork().persist(_user("bob")).flush()
    ghost.age = 99
    em.flush()
    assert rows(orm, "select full_name, age from `user`") == [("bob", 0)]


def test_a_rolled_back_upsert_takes_back_the_generated_key(orm):
    em = orm.em.fork()
    persisted, loose = _user("a"), _user("b")
    em.persist(persisted)
    with pytest.raises(Boom):
        with em.transaction():
            em.upsert(persisted)
            em.upsert(loose)
            assert persisted.id is not None and loose.id is not None
            raise Boom
    assert persisted.id is None and em.get_unit_of_work().is_new(persisted)
    assert loose.id is None and not wrap(loose).is_managed()
    orm.em.fork().persist(_user("bob")).flush()  # takes key 1
    em.flush()
    em.upsert(loose)
    assert rows(orm, "select full_name from `user` order by id") == [("bob",), ("a",), ("b",)]


def test_clear_in_a_rolled_back_transaction_still_takes_back_generated_keys(orm):
    em = orm.em.fork()
    user = _user("a")
    with pytest.raises(Boom):
        with em.transaction():
            em.persist(user).flush()
            em.clear()
            raise Boom
    assert user.id is None and not wrap(user).is_managed()
    orm.em.fork().persist(_user("bob")).flush()
    em.upsert(user)
    assert rows(orm, "select full_name from `user` order by id") == [("bob",), ("a",)]


def test_an_unreadable_row_at_the_re_read_leaves_the_other_entities_and_their_changes(
    orm, database
):
    if database == "sqlite":  # a datetime column holding text that is no datetime
        orm.connection.execute(
            "insert into everything (id, i, s, f, b, raw, dec, dt, doc, items, color, size) "
            "values (1, 0, 'ok', 0, 0, x'', 0, NULL, '{}', '[]', 'red', 1), "
            "(2, 0, 'bad', 0, 0, x'', 0, 'not a date', '{}', '[]', 'red', 1)"
        )
        readable = "update everything set dt = NULL where id = 2"
    else:  # a timestamp column holds timestamps only: an enum value Color does not know
        orm.connection.execute(
            "insert into everything (id, i, s, f, b, raw, dec, dt, doc, items, color, size) "
            "values (1, 0, 'ok', 0, false, '', 0, NULL, '{}', '[]', 'red', 1), "
            "(2, 0, 'bad', 0, false, '', 0, NULL, '{}', '[]', 'purple', 1)"
        )
        readable = "update everything set color = 'red' where id = 2"
    em = orm.em.fork()
    orm.connection.begin()
    orm.connection.execute(readable)  # readable, for now
    good, bad = em.find(Everything, {}, order_by={"id": "asc"})
    good.s = "my change to row 1"
    orm.connection.rollback()  # row 2 is unreadable again
    assert wrap(good).is_managed() and wrap(bad).is_managed()
    em.flush()
    assert rows(orm, "select id, s from everything order by id") == [
        (1, "my change to row 1"), (2, "bad")
    ]


def test_a_refresh_that_found_no_row_in_a_rolled_back_transaction_is_taken_back(orm):
    orm.em.fork().persist(_user("a")).flush()
    em = orm.em.fork()
    user = em.find_one_or_fail(User, 1)
    orm.connection.begin()
    orm.em.fork().native_delete(User, {"id": 1})
    assert em.refresh(user) is None and not wrap(user).is_managed()
    orm.connection.rollback()
    assert wrap(user).is_managed() and em.find_one(User, 1) is user
    user.age = 3
    em.flush()
    assert rows(orm, "select full_name, age from `user`") == [("a", 3)]


def test_a_partial_entity_filled_after_its_rolled_back_update_keeps_only_its_own_change(orm):
    """A partial entity written and flushed in a transaction, then filled by a query that
    sees another fork's uncommitted write: after the rollback the filled columns are read
    again, and only the user's own change is pending (never the rolled-back value)."""
    orm.em.fork().persist(Everything(s="committed", i=1)).flush()
    em = orm.em.fork()
    (partial,) = em.find(Everything, {}, fields=["i"])
    with pytest.raises(Boom):
        with em.transaction():
            partial.i = 9
            em.flush()
            other = orm.em.fork()
            other.find_one_or_fail(Everything, 1).s = "rolled back"
            other.flush()
            em.find(Everything, {})  # fills the partial entity from what the block sees
            assert partial.s == "rolled back"
            raise Boom
    assert (partial.i, partial.s) == (9, "committed")
    assert [c.payload for c in em.get_unit_of_work().compute_change_sets()] == [{"i": 9}]
    em.flush()
    assert rows(orm, "select i, s from everything") == [(9, "committed")]


def test_a_reference_filled_after_its_rolled_back_write_keeps_only_its_own_change(orm):
    orm.em.fork().persist(Everything(s="committed", i=1)).flush()
    em = orm.em.fork()
    ref = em.get_reference(Everything, 1)
    with pytest.raises(Boom):
        with em.transaction():
            ref.i = 9
            em.flush()
            other = orm.em.fork()
            other.find_one_or_fail(Everything, 1).s = "rolled back"
            other.flush()
            assert em.find(Everything, {}) == [ref]  # fills the reference
            raise Boom
    assert (ref.i, ref.s) == (9, "committed")
    assert [c.payload for c in em.get_unit_of_work().compute_change_sets()] == [{"i": 9}]
    em.flush()
    assert rows(orm, "select i, s from everything") == [(9, "committed")]


def test_a_written_reference_to_a_rolled_back_row_never_writes_to_the_row_taking_its_key(
    orm, database
):
    """A reference to a row another fork inserted in a block that is rolled back: SQLite
    hands the key to the next row, here one this EntityManager inserts. The reference's
    write must fail the flush (nothing written), never land on that new row."""
    orm.em.fork().persist(Everything(s="committed")).flush()
    em = orm.em.fork()
    new = Everything(s="new")
    with pytest.raises(Boom):
        with em.transaction():
            em.persist(new)  # not flushed: inserted after the rollback
            ghost = Everything(s="rolled back")
            orm.em.fork().persist(ghost).flush()
            ref = em.get_reference(Everything, ghost.id)
            ref.s = "through the reference"
            raise Boom
    with pytest.raises(OptimisticLockError, match="has no row"):
        em.flush()
    assert rows(orm, "select s from everything order by id") == [("committed",)]
    assert em.refresh(ref) is None  # the way out the message names
    em.flush()
    assert rows(orm, "select s from everything order by id") == [("committed",), ("new",)]


def test_an_unwritten_reference_to_a_rolled_back_row_lets_go_when_its_key_is_reused(
    orm, database
):
    orm.em.fork().persist(Everything(s="committed")).flush()
    em = orm.em.fork()
    with pytest.raises(Boom):
        with em.transaction():
            ghost = Everything(s="rolled back")
            orm.em.fork().persist(ghost).flush()
            ref = em.get_reference(Everything, ghost.id)
            raise Boom
    new = Everything(s="new")
    em.persist(new).flush()
    if database == "sqlite":  # the key was given out again: the reference stands for no row
        assert new.id == ref.id and not wrap(ref).is_managed()
        assert em.find_one(Everything, new.id) is new
        with pytest.raises(ValidationError, match="not managed by this EntityManager"):
            em.remove(ref)
    else:  # a PostgreSQL sequence never goes back: the reference's write finds no row
        ref.s = "through the stale reference"
        with pytest.raises(OptimisticLockError, match="has no row"):
            em.flush()
    assert rows(orm, "select s from everything order by id") == [("committed",), ("new",)]

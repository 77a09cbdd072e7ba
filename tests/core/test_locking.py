"""Locks (SPEC section 3, the `lock` rows): `em.lock(entity, LockMode.OPTIMISTIC, version)`,
`find_one(..., lock_mode=..., lock_version=...)`, and pessimistic locks that make a second
transaction wait (PostgreSQL: `for update` / `for share`; SQLite: the database write lock).
Also the SQLite options `busy_timeout` and `journal_mode` (WAL: readers never wait for the
writer)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from orm import (
    ORM,
    FlushMode,
    LockMode,
    LockWaitTimeoutException,
    NotFoundError,
    OptimisticLockError,
    PrimaryKey,
    SerializationFailureException,
    ValidationError,
    define_config,
    entity,
)
from tests import databases
from tests.core.models import Article, User
from tests.databases import rows

PW, PR = LockMode.PESSIMISTIC_WRITE, LockMode.PESSIMISTIC_READ
needs_pg = pytest.mark.skipif(
    not databases.PG_URL, reason="PostgreSQL tests run when ORM_TEST_PG_URL is set"
)
postgresql_only = pytest.mark.parametrize("database", ["postgresql"], indirect=True)
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@entity()
class Tally:
    id: int = PrimaryKey(autoincrement=False)
    value: int = 0


def _article(orm: ORM, title: str = "first") -> int:
    article = Article(title=title)
    orm.em.fork().persist(article).flush()
    return article.id


def _user(orm: ORM) -> User:
    em = orm.em.fork()
    user = User(full_name="u", email="u@x", password="p")
    em.persist(user).flush()
    return user


def _thread(target, *args) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread, failures


# -- optimistic ---------------------------------------------------------------------------------


def test_an_optimistic_lock_passes_for_the_expected_version_and_names_both_when_not(connect):
    orm = connect([Article])
    key = _article(orm)
    em = orm.em.fork()
    article = em.find_one_or_fail(Article, key)
    em.lock(article, LockMode.OPTIMISTIC, 1)  # the version it holds: nothing raised
    with pytest.raises(OptimisticLockError) as info:
        em.lock(article, LockMode.OPTIMISTIC, 3)
    assert str(info.value) == (
        f"The optimistic lock on Article {key} failed: version 3 was expected, but the "
        f"entity holds version 1."
    )
    assert info.value.entity is article


def test_an_optimistic_lock_checks_the_database_row_too(connect):
    orm = connect([Article])
    key = _article(orm)
    em = orm.em.fork()
    article = em.find_one_or_fail(Article, key)
    other = orm.em.fork()
    other.find_one_or_fail(Article, key).title = "changed elsewhere"
    other.flush()  # the row is at version 2; `article` still holds version 1
    with pytest.raises(OptimisticLockError) as info:
        em.lock(article, LockMode.OPTIMISTIC, 1)
    assert str(info.value) == (
        f"The optimistic lock on Article {key} failed: version 1 was expected, but the "
        f"database row holds version 2 (it was changed since it was loaded)."
    )
    orm.em.fork().native_delete(Article, key)
    with pytest.raises(OptimisticLockError, match="its row was deleted since it was loaded"):
        em.lock(article, LockMode.OPTIMISTIC, 1)


def test_find_one_with_a_lock_version_checks_the_entity_it_returns(connect):
    orm = connect([Article])
    key = _article(orm)
    em = orm.em.fork()
    found = em.find_one(Article, key, lock_mode=LockMode.OPTIMISTIC, lock_version=1)
    assert found is not None and found.title == "first"
    with pytest.raises(OptimisticLockError, match="version 2 was expected, but the entity"):
        em.find_one(Article, key, lock_mode=LockMode.OPTIMISTIC, lock_version=2)
    with pytest.raises(OptimisticLockError, match="version 2 was expected"):
        orm.em.fork().find_one_or_fail(
            Article, {"title": "first"}, lock_mode=LockMode.OPTIMISTIC, lock_version=2
        )
    # the entity answered from the identity map is stale: its row is checked too
    other = orm.em.fork()
    other.find_one_or_fail(Article, key).title = "second"
    other.flush()
    with pytest.raises(OptimisticLockError, match="the database row holds version 2"):
        em.find_one(Article, key, lock_mode=LockMode.OPTIMISTIC, lock_version=1)
    fresh = orm.em.fork().find_one(Article, key, lock_mode="optimistic", lock_version=2)
    assert fresh is not None and fresh.title == "second"
    assert orm.em.fork().find_one(
        Article, {"title": "none"}, lock_mode=LockMode.OPTIMISTIC, lock_version=1
    ) is None


def test_an_optimistic_lock_on_an_entity_without_a_version_says_to_declare_one(connect, log):
    orm = connect([User, Article], debug=["query"], logger=log.append)
    user = _user(orm)
    em = orm.em.fork()
    managed = em.find_one_or_fail(User, user.id)
    log.clear()
    expected = (
        "Cannot take an optimistic lock on User: it has no version property to compare. "
        "Declare one, e.g. `version: int = Property(version=True)`."
    )
    with pytest.raises(ValidationError) as info:
        em.lock(managed, LockMode.OPTIMISTIC, 1)
    assert str(info.value) == expected
    with pytest.raises(ValidationError) as info:
        em.find_one(User, user.id, lock_mode=LockMode.OPTIMISTIC, lock_version=1)
    assert str(info.value) == expected
    with pytest.raises(ValidationError, match="no version property"):
        em.find(User, {}, lock_mode=LockMode.OPTIMISTIC)
    assert log.sql() == [], "refused before any SQL"


def test_lock_arguments_are_checked_before_any_sql(connect, log):
    orm = connect([Article], debug=["query"], logger=log.append)
    key = _article(orm)
    em = orm.em.fork()
    article = em.find_one_or_fail(Article, key)
    log.clear()
    with pytest.raises(ValidationError, match="LockMode.OPTIMISTIC needs the version"):
        em.lock(article, LockMode.OPTIMISTIC)
    with pytest.raises(ValidationError, match="LockMode.OPTIMISTIC needs the version"):
        em.find_one(Article, key, lock_mode=LockMode.OPTIMISTIC)
    with pytest.raises(ValidationError, match="pass it with lock_mode=LockMode.OPTIMISTIC"):
        em.find_one(Article, key, lock_version=1)
    with pytest.raises(ValidationError, match=r"must be the version \(an int\).*'1'"):
        em.lock(article, LockMode.OPTIMISTIC, "1")
    with pytest.raises(ValidationError, match="Unknown lock mode 'sideways'"):
        em.find_one(Article, key, lock_mode="sideways")
    with pytest.raises(ValidationError, match="Unknown lock mode None"):
        em.lock(article, None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"use find_one\(Article, \.\.\., lock_mode="):
        em.find(Article, {}, lock_mode=LockMode.OPTIMISTIC)
    with pytest.raises(ValidationError, match="not managed by this EntityManager"):
        orm.em.fork().lock(article, LockMode.OPTIMISTIC, 1)
    with pytest.raises(ValidationError, match="not managed by this EntityManager"):
        em.lock(Article(title="new"), LockMode.OPTIMISTIC, 1)
    assert log.sql() == []
    # LockMode.NONE is no lock: no transaction needed, no SQL of its own
    em.lock(article, LockMode.NONE)
    assert [a.id for a in em.find(Article, {}, lock_mode=LockMode.NONE)] == [key]
    assert log.sql() == [f"select {_columns(orm)} from {_q(orm, 'article')} as {_q(orm, 'u0')}"]


def _q(orm: ORM, name: str) -> str:
    return orm.platform.quote(name)


def _columns(orm: ORM) -> str:
    u0 = _q(orm, "u0")
    return ", ".join(f"{u0}.{_q(orm, c)}" for c in ("id", "title", "version"))


# -- pessimistic: the statements ----------------------------------------------------------------


def test_pessimistic_locks_need_a_transaction(connect, log):
    orm = connect([Article], debug=["query"], logger=log.append)
    key = _article(orm)
    em = orm.em.fork()
    article = em.find_one_or_fail(Article, key)
    log.clear()
    for call in (
        lambda: em.lock(article, PW),
        lambda: em.lock(article, PR),
        lambda: em.find_one(Article, key, lock_mode=PW),
        lambda: em.find_one_or_fail(Article, key, lock_mode=PR, lock_version=1),
        lambda: em.find(Article, {}, lock_mode=PW),
    ):
        with pytest.raises(ValidationError) as info:
            call()
        assert "needs a transaction" in str(info.value)
        assert "em.transaction()" in str(info.value)
    assert log.sql() == [], "refused before any SQL"


def test_the_statements_of_pessimistic_locks_on_each_database(connect, log, database):
    orm = connect([Article], debug=["query"], logger=log.append)
    key = _article(orm)
    em = orm.em.fork()
    log.clear()
    with em.transaction() as tx:
        article = tx.find_one(Article, key, lock_mode=PW)
        tx.lock(article, PR)
        tx.find(Article, {"title": "first"}, lock_mode=PR)
    select = f"select {_columns(orm)} from {_q(orm, 'article')} as {_q(orm, 'u0')}"
    by_key = f"where {_q(orm, 'u0')}.{_q(orm, 'id')} = {key}"
    version = f"select {_q(orm, 'u0')}.{_q(orm, 'version')} from {_q(orm, 'article')} as " \
              f"{_q(orm, 'u0')} {by_key}"
    by_title = f"where {_q(orm, 'u0')}.{_q(orm, 'title')} = 'first'"
    if database == "postgresql":
        assert log.sql() == [
            "begin",
            f"{select} {by_key} limit 1 for update",
            f"{version} for share",
            f"{select} {by_title} for share",
            "commit",
        ]
    else:  # no row locks: the transaction takes the database write lock first
        write_lock = "update `article` set `id` = `id` where 0"
        assert log.sql() == [
            "begin",
            write_lock, f"{select} {by_key} limit 1",
            write_lock, version,
            write_lock, f"{select} {by_title}",
            "commit",
        ]


def test_a_locked_read_returns_the_row_as_it_is_now(connect):
    orm = connect([Article])
    key = _article(orm)
    em = orm.em.fork()
    with em.transaction() as tx:
        article = tx.find_one_or_fail(Article, key)
        tx.native_update(Article, key, {"title": "changed by SQL"})  # behind the Unit of Work
        assert tx.find_one(Article, key) is article and article.title == "first"
        locked = tx.find_one(Article, key, lock_mode=PW)
        assert locked is article and article.title == "changed by SQL"
        assert tx.find(Article, {}, lock_mode=PR) == [article]
    em2 = orm.em.fork()
    with em2.transaction() as tx:
        mine = tx.find_one_or_fail(Article, key)
        mine.title = "unflushed"
        # FlushMode.AUTO writes the change before the locked read: it is kept
        assert tx.find_one(Article, key, lock_mode=PW) is mine and mine.title == "unflushed"
    assert rows(orm, "select title from article") == [("unflushed",)]


def test_a_locked_read_never_discards_unflushed_changes(connect):
    orm = connect([Article])
    key = _article(orm)
    em = orm.em.fork(flush_mode=FlushMode.COMMIT)
    with em.transaction() as tx:
        article = tx.find_one_or_fail(Article, key)
        article.title = "pending"
        with pytest.raises(ValidationError, match=r"unflushed changes to Article.*flush\(\)"):
            tx.find_one(Article, key, lock_mode=PW)
        assert article.title == "pending"
        tx.flush()
        assert tx.find_one(Article, key, lock_mode=PW) is article
        assert article.title == "pending" and article.version == 2
    assert rows(orm, "select title, version from article") == [("pending", 2)]


def test_a_pessimistic_lock_checks_the_version_and_the_row(connect):
    orm = connect([Article])
    key = _article(orm)
    em = orm.em.fork()
    article = em.find_one_or_fail(Article, key)
    other = orm.em.fork()
    other.find_one_or_fail(Article, key).title = "changed elsewhere"
    other.flush()
    with em.transaction() as tx:
        with pytest.raises(OptimisticLockError) as info:
            em.lock(article, PW)  # the row is locked, but `article` is stale
        assert str(info.value) == (
            f"Article {key} is stale: it holds version 1, its row version 2 (changed since "
            f"it was loaded). Read it again under the lock: em.refresh(entity), or "
            f"find_one(..., lock_mode=...)."
        )
        em.refresh(article)
        em.lock(article, PW, 2)
        with pytest.raises(OptimisticLockError, match="version 1 was expected, but the "
                           "database row holds version 2"):
            tx.find_one(Article, key, lock_mode=PR, lock_version=1)
        assert tx.find_one(Article, key, lock_mode=PR, lock_version=2).title == (
            "changed elsewhere"
        )
    orm.em.fork().native_delete(Article, key)
    with em.transaction():
        with pytest.raises(NotFoundError, match=f"Cannot lock Article {key}: its row was "
                           "deleted"):
            em.lock(article, PW)


# -- pessimistic: a second transaction waits ----------------------------------------------------


def _hold(orm: ORM, key: int, mode: LockMode, locked: threading.Event,
          release: threading.Event, pid: list[int] | None = None) -> None:
    """A transaction that locks the article, writes to it, and commits when released."""
    with orm.em.fork().transaction() as tx:
        article = tx.find_one_or_fail(Article, key, lock_mode=mode)
        if pid is not None:
            pid.append(rows(orm, "select pg_backend_pid()")[0][0])
        if mode is PW:
            article.title = "by holder"
            tx.flush()
        locked.set()
        assert release.wait(20)


def _blocked_by(pid: int) -> int:
    """How many server sessions wait for a lock `pid` holds (a psycopg connection of the
    test's own: the ORM's would queue behind the lock)."""
    import psycopg

    with psycopg.connect(databases.PG_URL, autocommit=True) as conn:
        return conn.execute(
            "select count(*) from pg_stat_activity where %s = any(pg_blocking_pids(pid))",
            (pid,),
        ).fetchone()[0]


@needs_pg
@postgresql_only
def test_postgresql_a_second_for_update_waits_for_the_first(connect):
    orm = connect([Article], pool_size=3)
    key = _article(orm)
    locked, release, pid = threading.Event(), threading.Event(), []
    holder, failures = _thread(_hold, orm, key, PW, locked, release, pid)
    assert locked.wait(20)
    # a plain read does not wait: it sees the last committed row
    assert orm.em.fork().find_one_or_fail(Article, key).title == "first"

    def release_when_blocked() -> None:
        deadline = time.monotonic() + 20
        while _blocked_by(pid[0]) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        seen.append(_blocked_by(pid[0]))
        release.set()

    seen: list[int] = []
    releaser, releaser_failures = _thread(release_when_blocked)
    with orm.em.fork().transaction() as tx:
        article = tx.find_one_or_fail(Article, key, lock_mode=PW)
        # it waited for the holder's commit, and read its write
        assert (article.title, article.version) == ("by holder", 2)
    releaser.join(20)
    holder.join(20)
    assert failures == [] and releaser_failures == []
    assert seen == [1], "the locking read was seen waiting on the holder's lock"


@needs_pg
@postgresql_only
@pytest.mark.parametrize("held", [PW, PR])
def test_postgresql_a_lock_timeout_ends_the_wait_with_lock_wait_timeout(connect, held):
    orm = connect([Article], pool_size=3)
    key = _article(orm)
    url = databases.pg_url() + "%20-c%20lock_timeout%3D200"  # milliseconds
    impatient = connect([Article], create=False, client_url=url)
    locked, release = threading.Event(), threading.Event()
    holder, failures = _thread(_hold, orm, key, held, locked, release)
    assert locked.wait(20)
    try:
        started = time.monotonic()
        with pytest.raises(LockWaitTimeoutException) as info:
            with impatient.em.fork().transaction() as tx:
                tx.find_one(Article, key, lock_mode=PW)
        assert time.monotonic() - started < 10
        assert "for update" in info.value.sql
        if held is PR:  # shared locks do not exclude each other
            with impatient.em.fork().transaction() as tx:
                assert tx.find_one_or_fail(Article, key, lock_mode=PR).title == "first"
        else:
            with pytest.raises(LockWaitTimeoutException):
                with impatient.em.fork().transaction() as tx:
                    tx.find_one(Article, key, lock_mode=PR)
    finally:
        release.set()
        holder.join(20)
    assert failures == []
    with impatient.em.fork().transaction() as tx:  # released: no wait now
        assert tx.find_one_or_fail(Article, key, lock_mode=PW).version == (
            2 if held is PW else 1
        )


@sqlite_only
def test_sqlite_wal_a_write_on_a_stale_read_is_a_serialization_failure_and_retried(connect):
    """WAL: a transaction read the tally, another connection then committed a change of it,
    and the transaction's write is refused by SQLite (SQLITE_BUSY_SNAPSHOT: no lock to wait
    for, the busy timeout is not consulted). It was a LockWaitTimeoutException telling to
    retry the flush or raise the timeout, which cannot help; it is a retryable
    SerializationFailureException, and `transactional(retries=1)` runs the work again on
    what is committed, losing neither increment."""
    owner = connect([Tally], journal_mode="wal")
    owner.em.fork().persist(Tally(id=1)).flush()
    other = connect([Tally], create=False, journal_mode="wal")
    runs: list[int] = []

    def add_one(tx):
        tally = tx.find_one_or_fail(Tally, 1)
        runs.append(tally.value)
        if len(runs) == 1:  # the other connection's increment, committed meanwhile
            em = other.em.fork()
            em.find_one_or_fail(Tally, 1).value += 10
            em.flush()
        tally.value += 1

    with pytest.raises(SerializationFailureException) as raised:
        owner.em.transactional(add_one)
    assert raised.value.retryable
    assert "another connection committed since this transaction began reading (WAL mode)" in (
        str(raised.value)
    )
    assert "busy_timeout" not in str(raised.value)
    assert rows(owner, "select value from tally") == [(10,)]
    runs.clear()
    owner.em.transactional(add_one, retries=1)
    assert runs == [10, 20]
    assert rows(owner, "select value from tally") == [(21,)]


@sqlite_only
def test_sqlite_a_pessimistic_lock_keeps_other_connections_from_writing(connect):
    owner = connect([Article], journal_mode="wal")
    key = _article(owner)
    other = connect([Article], create=False, busy_timeout=100)
    em = other.em.fork()
    article = em.find_one_or_fail(Article, key)
    # a plain read in a transaction (WAL) leaves the others free to write ...
    with owner.em.fork().transaction() as tx:
        tx.find_one_or_fail(Article, key)
        assert em.native_update(Article, key, {"title": "while read"}) == 1
    em.refresh(article)  # native_update counted the version up: the loaded one is stale
    # ... a pessimistic lock does not, until its transaction ends
    with owner.em.fork().transaction() as tx:
        tx.find_one_or_fail(Article, key, lock_mode=PR)
        with pytest.raises(LockWaitTimeoutException, match="database is locked"):
            em.native_update(Article, key, {"title": "while locked"})
        article.title = "flushed while locked"
        with pytest.raises(LockWaitTimeoutException):
            em.flush()
        assert other.em.fork().find_one_or_fail(Article, key).title == "while read", (
            "others still read"
        )
    em.flush()  # the failed flush is retried once the lock is gone
    assert rows(owner, "select title, version from article") == [("flushed while locked", 3)]


@sqlite_only
def test_sqlite_a_second_pessimistic_lock_waits_for_the_first(connect):
    first = connect([Article])
    key = _article(first)
    second = connect([Article], create=False, busy_timeout=20_000)
    locked, release = threading.Event(), threading.Event()
    holder, failures = _thread(_hold, first, key, PW, locked, release)
    assert locked.wait(20)
    asking = threading.Event()

    def release_soon() -> None:
        assert asking.wait(20)
        time.sleep(0.3)  # the second transaction is waiting for the lock by now
        release.set()

    _thread(release_soon)
    with second.em.fork().transaction() as tx:
        asking.set()
        article = tx.find_one_or_fail(Article, key, lock_mode=PW)
        # it waited for the holder's commit (a read without the lock sees "first")
        assert (article.title, article.version) == ("by holder", 2)
    holder.join(20)
    assert failures == []


@sqlite_only
def test_sqlite_a_lock_asked_for_after_reading_fails_at_once_and_says_why(connect):
    first = connect([Article])
    key = _article(first)
    second = connect([Article], create=False, busy_timeout=20_000)
    locked, release = threading.Event(), threading.Event()
    holder, failures = _thread(_hold, first, key, PW, locked, release)
    assert locked.wait(20)
    try:
        with second.em.fork().transaction() as tx:
            tx.find_one_or_fail(Article, key)  # the transaction has read ...
            started = time.monotonic()
            with pytest.raises(LockWaitTimeoutException) as info:
                tx.find_one(Article, key, lock_mode=PW)  # ... so SQLite will not wait
            assert time.monotonic() - started < 5, "refused at once, not after busy_timeout"
    finally:
        release.set()
        holder.join(20)
    assert failures == []
    message = str(info.value)
    assert message.startswith(
        "LockMode.PESSIMISTIC_WRITE on Article could not take the database write lock"
    )
    assert "Lock before the transaction's first query" in message
    assert info.value.sql == "update `article` set `id` = `id` where 0"


def test_concurrent_increments_under_a_pessimistic_lock_lose_nothing(connect, database):
    if database == "sqlite":  # one connection per thread: two ORMs on one file
        orms = [connect([Tally], busy_timeout=20_000)]
        orms.append(connect([Tally], create=False, busy_timeout=20_000))
    else:
        orms = [connect([Tally], pool_size=3)] * 2
    orms[0].em.fork().persist(Tally(id=1)).flush()
    rounds = 15
    start = threading.Barrier(2)

    def increment(orm: ORM) -> None:
        em = orm.em.fork()
        start.wait(20)
        for _ in range(rounds):
            with em.transaction() as tx:
                tally = tx.find_one_or_fail(Tally, 1, lock_mode=PW)
                value = tally.value
                time.sleep(0.002)  # widen the window between the read and the write
                tally.value = value + 1

    workers = [_thread(increment, orm) for orm in orms]
    for thread, _ in workers:
        thread.join(60)
    assert [f for _, fs in workers for f in fs] == []
    assert rows(orms[0], "select value from tally") == [(2 * rounds,)]


# -- SQLite options -----------------------------------------------------------------------------


def _pragma(orm: ORM, name: str):
    return orm.connection.raw.execute(f"pragma {name}").fetchone()[0]


def test_busy_timeout_sets_how_long_sqlite_waits_for_another_connections_lock(tmp_path):
    path = str(tmp_path / "busy.db")
    with ORM.init(db_name=path, entities=[Article], timeout=2.5) as default:
        assert _pragma(default, "busy_timeout") == 2500, "by default: `timeout` seconds"
    holder = ORM.init(db_name=path, entities=[Article])
    holder.schema.create_schema()
    quick = ORM.init(db_name=path, entities=[Article], busy_timeout=150)
    try:
        assert quick.config.busy_timeout == 150 and _pragma(quick, "busy_timeout") == 150
        with holder.em.fork().transaction() as tx:
            tx.persist(Article(title="held")).flush()
            started = time.monotonic()
            with pytest.raises(LockWaitTimeoutException) as info:
                quick.em.fork().native_insert(Article, {"title": "blocked"})
            waited = time.monotonic() - started
        assert 0.1 <= waited < 2.5, "waited busy_timeout, not `timeout`"
        assert "raise the `busy_timeout` option" in str(info.value)
    finally:
        quick.close()
        holder.close()


@pytest.mark.parametrize("value", [-1, 1.5, "100", True])
def test_busy_timeout_must_be_whole_milliseconds(value):
    with pytest.raises(ValidationError, match=r"busy_timeout is how many milliseconds.*"
                       r"a whole number, 0 or more"):
        define_config(db_name=":memory:", busy_timeout=value)


def test_journal_mode_is_set_on_connect_and_checked(tmp_path):
    assert define_config(journal_mode="WAL").journal_mode == "wal"
    with pytest.raises(ValidationError, match="Unknown journal_mode 'sideways'; known: "
                       "delete, truncate, persist, wal"):
        define_config(journal_mode="sideways")
    with pytest.raises(ValidationError, match="journal_mode 'off' is refused: without a "
                       "journal SQLite cannot roll a transaction back"):
        define_config(journal_mode="OFF")
    with pytest.raises(ValidationError, match="journal_mode 'memory' is refused: with the "
                       "journal in memory, a crash in the middle of a flush would very likely "
                       "corrupt the database file"):
        define_config(journal_mode="memory")
    with pytest.raises(ValidationError, match=r"journal_mode 'wal' could not be set on "
                       r"database ':memory:': SQLite kept 'memory' \(an in-memory database"):
        ORM.init(db_name=":memory:", entities=[Article], journal_mode="wal")
    path = tmp_path / "journal.db"
    with ORM.init(db_name=str(path), entities=[Article], journal_mode="truncate") as orm:
        assert _pragma(orm, "journal_mode") == "truncate"
    with ORM.init(db_name=str(path), entities=[Article], journal_mode="wal") as orm:
        assert _pragma(orm, "journal_mode") == "wal"
        orm.schema.create_schema()
        assert os.path.exists(f"{path}-wal")


@pytest.mark.parametrize("journal_mode", ["delete", "truncate"])
def test_opening_while_another_connection_commits_is_a_lock_wait_not_a_broken_file(
    tmp_path, journal_mode
):
    """Setting the journal mode waits for another process's exclusive lock (held while it
    commits). Running out of busy_timeout there used to raise ConnectionException ("Cannot
    open database"), which a program retrying lock waits would not catch."""
    path = str(tmp_path / "open.db")
    with ORM.init(db_name=path, entities=[Article], journal_mode=journal_mode) as orm:
        orm.schema.create_schema()
    committing = sqlite3.connect(path, isolation_level=None)
    try:
        committing.execute("begin exclusive")  # the lock a commit holds while it writes
        with pytest.raises(LockWaitTimeoutException) as info:
            ORM.init(db_name=path, entities=[Article], journal_mode=journal_mode,
                     busy_timeout=50)
        assert info.value.sql == f"pragma journal_mode = {journal_mode}"
        assert "raise the `busy_timeout` option" in str(info.value)
        committing.execute("rollback")
        with ORM.init(db_name=path, entities=[Article], journal_mode=journal_mode,
                      busy_timeout=50) as orm:  # the lock is gone: it opens
            assert _pragma(orm, "journal_mode") == journal_mode
    finally:
        committing.close()


def test_sqlite_options_are_refused_on_postgresql():
    url = "postgresql://app@localhost:5432/app"
    with pytest.raises(ValidationError, match="busy_timeout is an SQLite option; PostgreSQL "
                       "bounds lock waits with its lock_timeout"):
        define_config(client_url=url, busy_timeout=100)
    with pytest.raises(ValidationError, match="journal_mode is an SQLite option"):
        define_config(client_url=url, journal_mode="wal")


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_with_wal_readers_see_the_last_commit_and_never_block_the_writer(
    tmp_path, journal_mode
):
    path = str(tmp_path / "wal.db")
    writer = ORM.init(db_name=path, entities=[Article], journal_mode=journal_mode,
                      busy_timeout=150)
    writer.schema.create_schema()
    reader = ORM.init(db_name=path, entities=[Article], journal_mode=journal_mode)
    try:
        key = _article(writer, "v1")
        with writer.em.fork().transaction() as tx:
            tx.find_one_or_fail(Article, key).title = "v2"
            tx.flush()  # the writer holds the write lock and an uncommitted change
            # either journal: another connection reads the last committed row
            assert reader.em.fork().find_one_or_fail(Article, key).title == "v1"
        with reader.em.fork().transaction() as read:  # a long read ...
            assert read.find_one_or_fail(Article, key).title == "v2"
            change = writer.em.fork()
            change.find_one_or_fail(Article, key).title = "v3"
            if journal_mode == "wal":
                change.flush()  # ... does not keep the writer from committing
                assert read.find_one_or_fail(Article, key, refresh=True).title == "v2", (
                    "the reader keeps its snapshot to the end of its transaction"
                )
            else:
                with pytest.raises(LockWaitTimeoutException):
                    change.flush()  # the rollback journal's writer waits for readers
        if journal_mode == "wal":
            assert reader.em.fork().find_one_or_fail(Article, key).title == "v3"
            assert os.path.exists(f"{path}-wal")
    finally:
        reader.close()
        writer.close()


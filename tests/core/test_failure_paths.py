"""Failure paths: a failed statement, a failed BEGIN and a close in the middle of a
transaction leave no transaction open, nothing half-written, and entities and Unit of Work as
they were, so that the work can be retried."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from orm import (
    CheckConstraintViolationException,
    LockWaitTimeoutException,
    NotNullConstraintViolationException,
    PrimaryKey,
    Property,
    UniqueConstraintViolationException,
    entity,
    wrap,
)
from tests import databases
from tests.core.models import ALL, Article, Stamped, User
from tests.databases import execute, rows, sql


@entity()
class Stock:
    id: int = PrimaryKey()
    code: str = Property(unique=True)
    qty: int = Property(column_type="integer check (qty >= 0)", default=0)


@pytest.fixture
def orm(connect, database, log):
    """The shared entities plus Stock (a CHECK constraint); a short lock timeout (SQLite's
    busy timeout; on PostgreSQL the session's lock_timeout)."""
    options = {}
    if database == "postgresql":
        options["client_url"] = databases.pg_url() + "%20-c%20lock_timeout%3D200"
    instance = connect([*ALL, Stock], debug=["query"], logger=log.append, timeout=0.2,
                       **options)
    log.clear()
    return instance


@pytest.fixture
def outside(connect, orm):
    """Another connection to the test's database (another ORM, the tables left as they are)."""
    return connect([*ALL, Stock], create=False, timeout=0.2)


def users(n: int) -> list[User]:
    return [User(full_name=f"User {i}", email=f"u{i}@x.io", password="pw") for i in range(n)]


def other_connection(db_path: str) -> sqlite3.Connection:
    return sqlite3.connect(db_path, timeout=0, isolation_level=None)


def assert_not_locked(outside, db_path: str) -> None:
    """Another connection can take the strongest lock at once: SQLite's write lock on the
    file, or on PostgreSQL an access exclusive lock on the table (which waits for any
    transaction that read or wrote it)."""
    if outside.platform.name == "sqlite":
        other = other_connection(db_path)
        try:
            other.execute("begin immediate")
            other.execute("rollback")
        finally:
            other.close()
        return
    with outside.connection.transaction():
        execute(outside, "lock table `user` in access exclusive mode nowait")


def assert_released(orm, outside, db_path: str) -> None:
    """No transaction open on the ORM's connection and the database not locked: another
    connection can take the write lock at once, and a fork can flush."""
    assert not orm.connection.in_transaction
    if orm.platform.name == "sqlite":
        assert not orm.connection.raw.in_transaction
    assert_not_locked(outside, db_path)
    errors: list[BaseException] = []

    def flush_on_another_thread() -> None:
        try:
            em = orm.em.fork()
            em.persist(User(full_name="later", email="later@x.io", password="pw")).flush()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=flush_on_another_thread)
    thread.start()
    thread.join()
    assert errors == [], "the connection was left held by the failed transaction"
    assert orm.em.fork().find_one(User, {"email": "later@x.io"}) is not None


def user_rows(outside) -> list[tuple]:
    return rows(outside, "select id, full_name, email from `user` order by id")


# -- a failing upsert ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"email": "u0@x.io", "full_name": None, "password": "pw"},
         NotNullConstraintViolationException, "User.full_name may not be null"),
        ({"id": 1, "email": "u1@x.io", "full_name": "x", "password": "pw"},
         UniqueConstraintViolationException, "User.email must be unique"),
    ],
    ids=["not-null", "unique-on-another-column"],
)
def test_a_failing_upsert_releases_its_transaction(orm, em, outside, db_path, data, error,
                                                  message):
    em.persist(users(2)).flush()
    before = user_rows(outside)
    with pytest.raises(error, match=message):
        em.upsert(User, data)
    assert user_rows(outside) == before
    assert_released(orm, outside, db_path)


def test_a_failing_upsert_on_a_check_constraint_releases_its_transaction(orm, em, outside,
                                                                         db_path):
    em.upsert(Stock, {"code": "a", "qty": 1})
    with pytest.raises(CheckConstraintViolationException, match="CHECK constraint"):
        em.upsert(Stock, {"code": "a", "qty": -1})
    assert rows(orm, "select code, qty from stock") == [("a", 1)]
    assert_released(orm, outside, db_path)


def test_a_failing_upsert_of_an_instance_leaves_it_new(orm, em, outside, db_path):
    em.persist(users(1)).flush()
    clash = User(full_name="clash", email="u0@x.io", password="pw", id=7)  # key 7 is free
    em.persist(clash)
    with pytest.raises(UniqueConstraintViolationException):
        em.upsert(clash)
    assert not wrap(clash).is_managed()
    assert_released(orm, outside, db_path)
    clash.email = "fixed@x.io"
    em.flush()
    assert em.fork().find_one(User, 7).email == "fixed@x.io"


# -- a failing BEGIN ----------------------------------------------------------------------

def hooked_work(em):
    """Stored rows with hooks and versions, then pending work that runs them again."""
    stamped, article = Stamped(name="old"), Article(title="v1")
    em.persist([stamped, article]).flush()
    stamped.name = "renamed"  # on_update
    article.title = "v2"      # version 1 -> 2
    fresh_stamped, fresh_article = Stamped(name="new"), Article(title="new")  # on_create, v1
    em.persist([fresh_stamped, fresh_article])
    return stamped, article, fresh_stamped, fresh_article


def assert_as_before_the_flush(stamped, article, fresh_stamped, fresh_article):
    assert (stamped.updated, article.version) == (None, 1)
    assert (fresh_stamped.created, fresh_stamped.id) == (None, None)
    assert (fresh_article.version, fresh_article.id) == (None, None)


def assert_flushed(orm, stamped, article, fresh_stamped, fresh_article):
    assert stamped.updated == "updated:renamed" and article.version == 2
    assert fresh_stamped.created == "created:new" and fresh_article.version == 1
    assert rows(orm, "select name, created, updated from stamped order by id") == [
        ("renamed", "created:old", "updated:renamed"), ("new", "created:new", None)
    ]
    assert rows(orm, "select title, version from article order by id") == [
        ("v2", 2), ("new", 1)
    ]


def driver_error(database: str) -> type[Exception]:
    if database == "sqlite":
        return sqlite3.OperationalError
    import psycopg

    return psycopg.OperationalError


def test_a_failing_begin_reverts_hooks_and_versions(orm, em, outside, db_path, monkeypatch,
                                                    log, database):
    work = hooked_work(em)
    error = driver_error(database)

    def refuse() -> None:
        raise error("disk I/O error" if database == "sqlite" else "server closed the connection")

    monkeypatch.setattr(orm.connection, "begin", refuse)
    log.clear()
    with pytest.raises(error):
        em.flush()
    assert log == []
    assert_as_before_the_flush(*work)
    monkeypatch.undo()
    assert_released(orm, outside, db_path)
    em.flush()
    assert_flushed(orm, *work)


def test_a_database_locked_by_another_connection_fails_the_flush_retryably(
    orm, em, outside, db_path, database
):
    work = hooked_work(em)
    if database == "sqlite":
        locker = other_connection(db_path)
        locker.execute("begin exclusive")
        release = locker.execute
    else:  # the flush's insert waits for the lock until lock_timeout (200 ms) runs out
        outside.connection.begin()
        execute(outside, "lock table stamped in access exclusive mode")
        release = lambda _: outside.connection.rollback()  # noqa: E731
    try:
        with pytest.raises(LockWaitTimeoutException) as info:
            em.flush()
        assert "Nothing of this flush was written" in str(info.value)
        assert not orm.connection.in_transaction
        assert_as_before_the_flush(*work)
    finally:
        release("rollback")
        if database == "sqlite":
            locker.close()
    em.flush()
    assert_flushed(orm, *work)
    assert_released(orm, outside, db_path)


# -- close with an open transaction ---------------------------------------------------------

def test_close_with_an_open_transaction_rolls_it_back(orm, outside, db_path):
    em = orm.em.fork()
    em.persist(users(1)).flush()
    orm.connection.begin()
    em.persist(users(3)[1:]).flush()  # a savepoint inside the open transaction
    em.native_insert(User, {"full_name": "native", "email": "n@x.io", "password": "pw"})
    first = em.find_one(User, 1)
    first.full_name = "changed"
    em.flush()
    orm.close()
    assert not orm.connection.in_transaction
    assert user_rows(outside) == [(1, "User 0", "u0@x.io")]
    assert_not_locked(outside, db_path)


def test_a_failing_commit_fails_the_flush_retryably(orm, em, outside, db_path, log, database):
    """The statements run but the COMMIT fails (on SQLite a reader holding its shared lock
    blocks it; on PostgreSQL a deferred unique constraint is checked then): the flush is
    rolled back and leaves everything as it was."""
    work = hooked_work(em)
    if database == "sqlite":
        reader = other_connection(db_path)
        reader.execute("begin")
        reader.execute("select count(*) from user").fetchall()  # takes the shared lock
        error: type[Exception] = LockWaitTimeoutException
    else:
        execute(outside, "alter table stamped add constraint stamped_name_unique unique (name) "
                         "deferrable initially deferred")
        execute(outside, "insert into stamped (name, created) values ('new', 'elsewhere')")
        error = UniqueConstraintViolationException
    log.clear()
    try:
        with pytest.raises(error, match="commit"):
            em.flush()
        assert any(s.startswith(sql(orm, "insert into `stamped`")) for s in log.sql())
        if database == "sqlite":
            assert log.sql()[-1] == "rollback"
        else:  # the server ended the transaction at the failed COMMIT: nothing to roll back
            assert log.sql()[-1].startswith('update "article"')
            assert "commit" not in log.sql() and "rollback" not in log.sql()
        assert not orm.connection.in_transaction
        assert_as_before_the_flush(*work)
    finally:
        if database == "sqlite":
            reader.execute("rollback")
            reader.close()
        else:
            execute(outside, "delete from stamped where created = 'elsewhere'")
    assert_released(orm, outside, db_path)
    em.flush()
    assert_flushed(orm, *work)

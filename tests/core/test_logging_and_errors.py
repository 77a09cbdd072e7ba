"""The query log in MikroORM's format, and the drivers' errors (sqlite3, psycopg) mapped to
ours: the same exception types on both databases, naming entity and property."""

from __future__ import annotations

import logging
import re
import sqlite3

import pytest

from orm import (
    CheckConstraintViolationException,
    ConnectionException,
    DriverException,
    InvalidFieldNameException,
    NotNullConstraintViolationException,
    PrimaryKey,
    Property,
    ReadOnlyException,
    SyntaxErrorException,
    TableNotFoundException,
    UniqueConstraintViolationException,
    entity,
)
from tests import databases
from tests.core.models import User
from tests.databases import execute, rows, sql


def only(*names: str, reason: str) -> pytest.MarkDecorator:
    """Run a test on these databases only (`reason`: why it cannot apply to the others)."""
    return pytest.mark.parametrize(
        "database", [d for d in databases.DATABASES if d in names], indirect=True
    )

TIMING = re.compile(r" \[took \d+ ms, (\d+ (result|results|row affected|rows affected))\]$")


def test_insert_log_line_has_mikro_orm_format(em, orm, log, database):
    em.persist(User(full_name="Foo Bar", email="foo@bar.com", password="123456")).flush()
    assert log[0] == "[query] begin" and log[-1] == "[query] commit"
    line = log[1]
    insert = sql(
        orm,
        "[query] insert into `user` (`full_name`, `email`, `password`, `bio`, `age`, "
        "`nickname`, `created_at`) values ('Foo Bar', 'foo@bar.com', '123456', '', 0, null, "
        "'2024-01-02 03:04:05')",
    )
    if database == "sqlite":  # the key is the last row id
        assert line.startswith(insert + " [took ")
        assert TIMING.search(line).group(1) == "1 row affected"
    else:  # the key comes back with the row
        assert line.startswith(insert + ' returning "id" [took ')
        assert TIMING.search(line).group(1) == "1 result"


def test_select_log_counts_results_and_quotes_safely(em, orm, log):
    em.persist(User(full_name="O'Brien", email="o@x", password="p")).flush()
    log.clear()
    em.fork().find(User, {"full_name": "O'Brien"})
    (line,) = log
    assert sql(orm, "where `u0`.`full_name` = 'O''Brien'") in line
    assert TIMING.search(line).group(1) == "1 result"
    log.clear()
    em.fork().find(User, {"age": {"$gt": 100}})
    assert TIMING.search(log[0]).group(1) == "0 results"


def test_queries_always_bind_parameters(em, orm):
    """The inlined values are for the log only: the statement itself binds them."""
    seen = []

    class Recorder:
        """The driver connection, recording what it is asked to run."""

        def __init__(self, raw):
            self.raw = raw

        def execute(self, statement, params=()):
            seen.append((statement, tuple(params)))
            return self.raw.execute(statement, params)

    conn = orm.connection
    take, give = conn._take, conn._give
    conn._take = lambda: Recorder(take())
    conn._give = lambda raw: give(raw.raw)
    try:
        assert em.find(User, {"full_name": "x' or '1'='1"}) == []
    finally:
        del conn._take, conn._give
    (statement, params), = seen
    assert sql(orm, "`u0`.`full_name` = ?") in statement and "1'='1" not in statement
    assert params == ("x' or '1'='1",)


def test_rollback_is_logged(em, log):
    em.persist(User(full_name="a", email="dup@x", password="p")).flush()
    em.persist(User(full_name="b", email="dup@x", password="p"))
    log.clear()
    with pytest.raises(DriverException):
        em.flush()
    assert log[0] == "[query] begin" and log[-1] == "[query] rollback"


def test_debug_off_logs_nothing(caplog, connect):
    caplog.set_level(logging.DEBUG, logger="orm")
    with connect([User]) as o:
        o.em.fork().persist(User(full_name="a", email="a@x", password="p")).flush()
    assert [r for r in caplog.records if r.name.startswith("orm")] == []


def test_debug_goes_through_the_logging_module(caplog, connect):
    caplog.set_level(logging.INFO, logger="orm")
    with connect([User], debug=True):  # creating the tables is logged
        pass
    names = {r.name for r in caplog.records}
    assert {"orm.query", "orm.discovery", "orm.info"} <= names
    assert any(r.getMessage() == "[query] begin" for r in caplog.records)


def test_debug_namespaces_select_what_is_logged(caplog, connect):
    caplog.set_level(logging.INFO, logger="orm")
    with connect([User], debug=["discovery"]):
        pass
    assert {r.name for r in caplog.records if r.name.startswith("orm")} == {"orm.discovery"}


# -- error mapping ---------------------------------------------------------------------------


def test_missing_table_is_table_not_found_with_a_hint(connect, database):
    with connect([User], create=False) as o:
        o.schema.drop_schema()  # on PostgreSQL an earlier test may have left it
        with pytest.raises(TableNotFoundException) as info:
            o.em.fork().find_one(User, {"email": "x"})
    err = info.value
    missing = {"sqlite": "no such table: user",
               "postgresql": 'relation "user" does not exist'}[database]
    assert missing in str(err) and "create_schema()" in str(err)
    assert err.sql.startswith(sql(o, "select `u0`.`id`"))
    cause = {"sqlite": "OperationalError", "postgresql": "UndefinedTable"}[database]
    assert type(err.__cause__).__name__ == cause


def test_missing_column_is_invalid_field_name(connect, database):
    with connect([User], create=False) as o:
        o.schema.drop_schema()
        execute(o, "create table `user` (id integer primary key, email text)")
        with pytest.raises(InvalidFieldNameException, match="update_schema") as info:
            o.em.fork().find(User, {})
    missing = {"sqlite": "no such column: u0.full_name",
               "postgresql": 'column u0.full_name does not exist'}[database]
    assert missing in str(info.value)


def test_syntax_error_through_the_driver(orm, database):
    with pytest.raises(SyntaxErrorException) as info:
        orm.connection.query("selec 1")
    assert info.value.sql == "selec 1"
    assert {"sqlite": 'near "selec": syntax error',
            "postgresql": 'syntax error at or near "selec"'}[database] in str(info.value)


def test_syntax_error_mapping():
    from orm.platforms.sqlite import SqlitePlatform

    exc = sqlite3.OperationalError('near "selec": syntax error')
    mapped = SqlitePlatform().map_error(exc, "selec 1", ())
    assert isinstance(mapped, SyntaxErrorException) and mapped.sql == "selec 1"


@only("sqlite", reason="file paths")
def test_database_that_cannot_be_opened(connect, tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "x.db"
    with pytest.raises(ConnectionException, match="does not exist"):
        connect([User], db_name=str(missing))
    folder = tmp_path / "adir.db"
    folder.mkdir()
    with pytest.raises(ConnectionException, match="unable to open database file"):
        connect([User], db_name=str(folder))


@only("postgresql", reason="a server-side setting; SQLite's missing database is a file")
def test_database_that_does_not_exist(connect):
    with pytest.raises(ConnectionException) as info:
        connect([User], db_name="orm_no_such_database")
    assert 'database "orm_no_such_database" does not exist' in str(info.value)
    assert "createdb" in str(info.value)


def test_read_only_database(connect, database, db_path):
    """SQLite: a file opened read-only; PostgreSQL: a session whose transactions are
    read-only (as on a standby)."""
    with connect([User]):
        pass
    if database == "sqlite":
        read_only = {"db_name": f"file:{db_path}?mode=ro"}
        message = "not writable"
    else:
        url = f"{databases.PG_URL}?options=-c%20default_transaction_read_only%3Don"
        read_only = {"client_url": url}
        message = "read-only"
    with connect([User], create=False, **read_only) as o:
        em = o.em.fork()
        em.persist(User(full_name="a", email="a@x", password="p"))
        with pytest.raises(ReadOnlyException, match=message):
            em.flush()
        assert o.em.fork().count(User) == 0


# -- constraint violations: the same typed errors on both databases, naming the property -----


@entity()
class Account:
    id: int = PrimaryKey()
    email: str = Property(unique=True)
    # verbatim in the DDL of both databases
    balance: int = Property(column_type="integer check (balance >= 0)", default=0)


@pytest.fixture
def accounts(connect):
    return connect([Account])


def named(info, entity_name, prop):
    assert (info.value.entity, info.value.property) == (entity_name, prop)


def test_unique_violation_is_typed_and_names_the_property(accounts, database):
    em = accounts.em.fork()
    em.persist(Account(email="a@x")).flush()
    second = Account(email="a@x")
    em.persist(second)
    with pytest.raises(UniqueConstraintViolationException) as info:
        em.flush()
    named(info, "Account", "email")
    assert "(Account.email must be unique and another row already holds this value)" in str(
        info.value
    )
    assert {"sqlite": "UNIQUE constraint failed: account.email",
            "postgresql": "Key (email)=(a@x) already exists"}[database] in str(info.value)
    assert second.id is None and rows(accounts, "select count(*) from account") == [(1,)]
    with pytest.raises(UniqueConstraintViolationException) as info:
        em.fork().native_insert(Account, {"email": "a@x"})
    named(info, "Account", "email")


def test_not_null_violation_is_typed_and_names_the_property(accounts, database):
    """The ORM refuses None for a required property itself; the database's NOT NULL is what
    other writers (here a statement of the user's own) run into."""
    with pytest.raises(NotNullConstraintViolationException) as info:
        execute(accounts, "insert into `account` (`balance`) values (1)")
    named(info, "Account", "email")
    assert str(info.value).endswith("(Account.email may not be null)")
    assert {"sqlite": "NOT NULL constraint failed: account.email",
            "postgresql": 'null value in column "email"'}[database] in str(info.value)


def test_check_violation_is_typed_and_names_the_property(accounts, database):
    em = accounts.em.fork()
    account = Account(email="a@x", balance=-1)
    em.persist(account)
    with pytest.raises(CheckConstraintViolationException) as info:
        em.flush()
    named(info, "Account", "balance")
    assert "refused the value of Account.balance)" in str(info.value)
    assert {"sqlite": "CHECK constraint failed: balance >= 0",
            "postgresql": 'violates check constraint "account_balance_check"'}[database] in str(
        info.value
    )
    account.balance = 0
    em.flush()
    account.balance = -5
    with pytest.raises(CheckConstraintViolationException) as info:
        em.flush()
    named(info, "Account", "balance")
    with pytest.raises(CheckConstraintViolationException) as info:
        em.native_update(Account, {"id": account.id}, {"balance": -2})
    named(info, "Account", "balance")
    assert rows(accounts, "select balance from account") == [(0,)]


def test_a_named_table_check_names_the_entity(connect, database):
    """A CHECK over two columns belongs to no one property: the entity is named."""

    @entity()
    class Span:
        id: int = PrimaryKey()
        low: int = 0
        # a named check (on both databases a column's check may read other columns)
        high: int = Property(
            default=0, column_type="integer constraint span_ordered check (low <= high)"
        )

    with connect([Span]) as o:
        with pytest.raises(CheckConstraintViolationException) as info:
            o.em.fork().persist(Span(low=2, high=1)).flush()
    assert (info.value.entity, info.value.property) == ("Span", None)
    assert "refused the value of a Span)" in str(info.value)
    assert "span_ordered" in str(info.value)

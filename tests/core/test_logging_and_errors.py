"""The query log in MikroORM's format, and sqlite3 errors mapped to ours."""

from __future__ import annotations

import logging
import re
import sqlite3

import pytest

from orm import (
    ORM,
    ConnectionException,
    DriverException,
    InvalidFieldNameException,
    ReadOnlyException,
    SyntaxErrorException,
    TableNotFoundException,
)
from tests.core.models import User

TIMING = re.compile(r" \[took \d+ ms, (\d+ (result|results|row affected|rows affected))\]$")


def test_insert_log_line_has_mikro_orm_format(em, log):
    em.persist(User(full_name="Foo Bar", email="foo@bar.com", password="123456")).flush()
    assert log[0] == "[query] begin" and log[-1] == "[query] commit"
    line = log[1]
    assert line.startswith(
        "[query] insert into `user` (`full_name`, `email`, `password`, `bio`, `age`, "
        "`nickname`, `created_at`) values ('Foo Bar', 'foo@bar.com', '123456', '', 0, null, "
        "'2024-01-02 03:04:05')"
    )
    assert TIMING.search(line).group(1) == "1 row affected"


def test_select_log_counts_results_and_quotes_safely(em, log):
    em.persist(User(full_name="O'Brien", email="o@x", password="p")).flush()
    log.clear()
    em.fork().find(User, {"full_name": "O'Brien"})
    (line,) = log
    assert "where `u0`.`full_name` = 'O''Brien'" in line
    assert TIMING.search(line).group(1) == "1 result"
    log.clear()
    em.fork().find(User, {"age": {"$gt": 100}})
    assert TIMING.search(log[0]).group(1) == "0 results"


def test_queries_always_bind_parameters(em, orm):
    """The inlined values are for the log only: the statement itself binds them."""
    seen = []

    class Recorder:
        def __init__(self, raw):
            self.raw = raw

        def execute(self, sql, params=()):
            seen.append((sql, tuple(params)))
            return self.raw.execute(sql, params)

    orm.connection._raw = Recorder(orm.connection._raw)
    try:
        assert em.find(User, {"full_name": "x' or '1'='1"}) == []
    finally:
        orm.connection._raw = orm.connection._raw.raw
    (sql, params), = seen
    assert "`u0`.`full_name` = ?" in sql and "1'='1" not in sql
    assert params == ("x' or '1'='1",)


def test_rollback_is_logged(em, log):
    em.persist(User(full_name="a", email="dup@x", password="p")).flush()
    em.persist(User(full_name="b", email="dup@x", password="p"))
    log.clear()
    with pytest.raises(DriverException):
        em.flush()
    assert log[0] == "[query] begin" and log[-1] == "[query] rollback"


def test_debug_off_logs_nothing(caplog, db_path):
    caplog.set_level(logging.DEBUG, logger="orm")
    with ORM.init(db_name=db_path, entities=[User]) as o:
        o.schema.create_schema()
        o.em.fork().persist(User(full_name="a", email="a@x", password="p")).flush()
    assert caplog.records == []


def test_debug_goes_through_the_logging_module(caplog, db_path):
    caplog.set_level(logging.INFO, logger="orm")
    with ORM.init(db_name=db_path, entities=[User], debug=True) as o:
        o.schema.create_schema()
    names = {r.name for r in caplog.records}
    assert {"orm.query", "orm.discovery", "orm.info"} <= names
    assert any(r.getMessage() == "[query] begin" for r in caplog.records)


def test_debug_namespaces_select_what_is_logged(caplog, db_path):
    caplog.set_level(logging.INFO, logger="orm")
    with ORM.init(db_name=db_path, entities=[User], debug=["discovery"]) as o:
        o.schema.create_schema()
    assert {r.name for r in caplog.records} == {"orm.discovery"}


# -- error mapping ---------------------------------------------------------------------------


def test_missing_table_is_table_not_found_with_a_hint(db_path):
    with ORM.init(db_name=db_path, entities=[User]) as o:
        with pytest.raises(TableNotFoundException) as info:
            o.em.fork().find_one(User, {"email": "x"})
    err = info.value
    assert "no such table: user" in str(err) and "create_schema()" in str(err)
    assert err.sql.startswith("select `u0`.`id`")
    assert isinstance(err.__cause__, sqlite3.OperationalError)


def test_missing_column_is_invalid_field_name(db_path):
    with ORM.init(db_name=db_path, entities=[User]) as o:
        o.connection.raw.execute("create table user (id integer primary key, email text)")
        with pytest.raises(InvalidFieldNameException, match="update_schema"):
            o.em.fork().find(User, {})


def test_syntax_error_mapping():
    from orm.platforms.sqlite import SqlitePlatform

    exc = sqlite3.OperationalError('near "selec": syntax error')
    mapped = SqlitePlatform().map_error(exc, "selec 1", ())
    assert isinstance(mapped, SyntaxErrorException) and mapped.sql == "selec 1"


def test_database_that_cannot_be_opened(tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "x.db"
    with pytest.raises(ConnectionException, match="does not exist"):
        ORM.init(db_name=str(missing), entities=[User])
    folder = tmp_path / "adir.db"
    folder.mkdir()
    with pytest.raises(ConnectionException, match="unable to open database file"):
        ORM.init(db_name=str(folder), entities=[User])


def test_read_only_database(db_path):
    with ORM.init(db_name=db_path, entities=[User]) as o:
        o.schema.create_schema()
    with ORM.init(db_name=f"file:{db_path}?mode=ro", entities=[User]) as o:
        em = o.em.fork()
        em.persist(User(full_name="a", email="a@x", password="p"))
        with pytest.raises(ReadOnlyException, match="not writable"):
            em.flush()

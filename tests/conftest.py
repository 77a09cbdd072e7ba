"""Fixtures: an ORM on a real database (an SQLite file in tmp_path; and, when
ORM_TEST_PG_URL is set, PostgreSQL in a schema of this session's: see tests/databases.py)
with the query log captured, and a forked EntityManager."""

from __future__ import annotations

import pytest

from orm import ORM
from tests import databases
from tests.core.models import ALL


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ORM_TEST_PG_URL set, an unreachable server fails the run at once (no silent
    skip of half the suite)."""
    if databases.PG_URL:
        problem = databases.check_server()
        if problem is not None:
            pytest.exit(
                f"ORM_TEST_PG_URL={databases.PG_URL} is set but the server cannot be used: "
                f"{problem}. Start it, or unset ORM_TEST_PG_URL to run on SQLite only.",
                returncode=3,
            )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if databases.PG_URL and databases.check_server() is None:
        databases.drop_session_schema()


class QueryLog(list):
    """The log lines of one ORM; `.sql()` gives them without the timing suffix."""

    def sql(self) -> list[str]:
        out = []
        for line in self:
            text = line.removeprefix("[query] ")
            if " [took " in text:
                text = text[: text.rindex(" [took ")]
            out.append(text)
        return out

    def writes(self) -> list[str]:
        return [s for s in self.sql() if not s.startswith("select")]


@pytest.fixture
def log() -> QueryLog:
    return QueryLog()


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "test.db")


@pytest.fixture(params=databases.DATABASES)
def database(request) -> str:
    """"sqlite" or "postgresql": the tests using it run once per database."""
    return request.param


@pytest.fixture
def connect(database, tmp_path):
    """`connect(entities, create=True, **options)`: an ORM on this test's database, its
    tables created (on PostgreSQL dropped first, if an earlier test left them), closed at
    the end of the test. `name` picks another SQLite file."""
    opened: list[ORM] = []

    def make(entities, *, create: bool = True, name: str = "test.db", **options) -> ORM:
        if database == "sqlite":
            options.setdefault("db_name", str(tmp_path / name))
        else:
            for key, value in databases.pg_options().items():
                options.setdefault(key, value)
        instance = ORM.init(entities=entities, **options)
        opened.append(instance)
        if create:
            if database == "sqlite":
                instance.schema.create_schema()
            else:
                instance.schema.refresh_database()
        return instance

    yield make
    for instance in reversed(opened):
        instance.close()


@pytest.fixture
def orm(connect, log):
    instance = connect(ALL, debug=["query"], logger=log.append)
    log.clear()
    return instance


@pytest.fixture
def em(orm):
    return orm.em.fork()

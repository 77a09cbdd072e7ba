"""Fixtures: an ORM on a real SQLite database (a file in tmp_path, or :memory:) with the
query log captured, and a forked EntityManager."""

from __future__ import annotations

import pytest

from orm import ORM
from tests.core.models import ALL


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


@pytest.fixture
def orm(db_path, log):
    instance = ORM.init(
        db_name=db_path, entities=ALL, debug=["query"], logger=log.append
    )
    instance.schema.create_schema()
    log.clear()
    yield instance
    instance.close()


@pytest.fixture
def em(orm):
    return orm.em.fork()

"""The pool after the server closed its connections (a restart, a failover, an idle
timeout): the next reads and flushes run on fresh connections instead of failing once per
pooled connection."""

from __future__ import annotations

import threading

import psycopg
import pytest

from orm import PrimaryKey, entity
from tests import databases

pytestmark = pytest.mark.skipif(
    not databases.PG_URL, reason="PostgreSQL tests run when ORM_TEST_PG_URL is set"
)


@pytest.fixture
def database() -> str:
    return "postgresql"


@entity()
class Ping:
    id: int = PrimaryKey()


def test_work_goes_on_after_the_server_closed_every_pooled_connection(connect):
    name = f"orm_pool_{databases.PG_SCHEMA}"[:60]
    orm = connect([Ping], client_url=f"{databases.pg_url()}&application_name={name}",
                  pool_size=3)
    start = threading.Barrier(3)

    def hold() -> None:  # three transactions at once: the pool opens all three connections
        with orm.em.fork().transaction() as tx:
            start.wait(10)
            tx.persist(Ping())

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    with psycopg.connect(databases.PG_URL, autocommit=True) as admin:
        killed = admin.execute(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity "
            "where application_name = %s", (name,)
        ).fetchone()[0]
    assert killed >= 2
    em = orm.em.fork()
    assert em.count(Ping, {}) == 3  # a read
    em.persist(Ping()).flush()  # begin
    assert orm.em.fork().count(Ping, {}) == 4

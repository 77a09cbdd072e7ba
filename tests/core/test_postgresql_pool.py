"""The pool after the server closed its connections (a restart, a failover, an idle
timeout): the next reads and flushes run on fresh connections instead of failing once per
pooled connection."""

from __future__ import annotations

import threading

import psycopg
import pytest

from orm import ConnectionException, PrimaryKey, entity
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


def terminate(name: str) -> int:
    """pg_terminate_backend of every session of the ORM's pool (found by application_name),
    as a server restart, a failover or an idle timeout would close them."""
    with psycopg.connect(databases.PG_URL, autocommit=True) as admin:
        return admin.execute(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity "
            "where application_name = %s", (name,)
        ).fetchone()[0]


def open_pool(connect, size: int):
    """An ORM whose pool holds `size` open connections, and the application_name that finds
    them."""
    name = f"orm_pool_{databases.PG_SCHEMA}"[:60]
    orm = connect([Ping], client_url=f"{databases.pg_url()}&application_name={name}",
                  pool_size=size)
    start = threading.Barrier(size)

    def hold() -> None:  # `size` transactions at once: the pool opens every connection
        with orm.em.fork().transaction() as tx:
            start.wait(10)
            tx.persist(Ping())

    threads = [threading.Thread(target=hold) for _ in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return orm, name


def test_every_kind_of_read_runs_again_on_a_live_connection(connect, caplog):
    orm, name = open_pool(connect, 3)
    assert terminate(name) == 3
    em = orm.em.fork()
    # find (rows read a chunk at a time), then the other reads, each meeting dead connections
    assert len(em.find(Ping, {})) == 3
    assert terminate(name) >= 1
    assert orm.em.fork().find_one(Ping, {"id": {"$gt": 0}}, order_by={"id": "asc"}) is not None
    assert terminate(name) >= 1
    assert orm.em.fork().count(Ping, {}) == 3
    assert terminate(name) >= 1
    assert [p.id for p in orm.em.fork().find(Ping, {}, order_by={"id": "asc"})] == [1, 2, 3]
    # psycopg_pool's warning about the connections given back closed is not printed
    assert not [r for r in caplog.records if "discarding closed" in r.getMessage()]


def test_a_connection_lost_inside_a_transaction_fails_it_and_commits_nothing(connect):
    orm, name = open_pool(connect, 2)
    em = orm.em.fork()
    with pytest.raises(ConnectionException) as lost:
        with em.transaction() as tx:
            tx.persist(Ping())
            tx.flush()
            terminate(name)
            with pytest.raises(ConnectionException) as info:
                tx.find(Ping, {})  # never run again on another connection: the flush is lost
            assert "terminating connection" in str(info.value)
    assert "lost inside the transaction: nothing of it was committed" in str(lost.value)
    assert orm.em.fork().count(Ping, {}) == 2
    terminate(name)
    with pytest.raises(ConnectionException):
        with orm.em.fork().transaction() as tx:
            tx.persist(Ping())
            tx.flush()
            terminate(name)
            # the commit itself meets the closed connection
    assert orm.em.fork().count(Ping, {}) == 2
    orm.em.fork().persist(Ping()).flush()  # a begin outside a transaction runs again
    assert orm.em.fork().count(Ping, {}) == 3


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


def test_a_failed_pipelined_update_prints_no_psycopg_warning(connect, caplog):
    """When a statement of a pipelined `executemany` fails, psycopg logs "error ignored
    terminating <Pipeline>: pipeline aborted" beside the error the ORM raises: the ORM's
    filter drops that record (only that one), so nothing reaches stderr."""
    import logging

    connect([Ping])
    logger = logging.getLogger("psycopg")
    with caplog.at_level(logging.WARNING, logger="psycopg"):
        logger.warning("error ignored terminating %r: %s", object(),
                       psycopg.errors.PipelineAborted("pipeline aborted"))
        logger.warning("error ignored terminating %r: %s", object(), ValueError("other"))
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "pipeline aborted" in m]
    assert [m for m in messages if "other" in m], "other warnings of psycopg still pass"

"""PostgreSQL under concurrency: forks on several threads commit at once through the pool and
lose nothing; serialization failures are retried where that is safe (`transactional(fn,
retries=N)`, a flush that is its own transaction) and raised where it is not (a transaction
the caller drives)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from orm import PrimaryKey, SerializationFailureException, entity
from tests import databases
from tests.core.models import User

pytestmark = pytest.mark.skipif(
    not databases.PG_URL, reason="PostgreSQL tests run when ORM_TEST_PG_URL is set"
)


@pytest.fixture
def database() -> str:
    return "postgresql"


@entity()
class Counter:
    id: int = PrimaryKey(autoincrement=False)
    value: int = 0


def _run_threads(target, count: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            target(k)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_four_threads_with_their_own_forks_commit_at_once_and_lose_nothing(connect):
    orm = connect([User], pool_size=4)
    start = threading.Barrier(4)
    made: dict[int, list[User]] = {}

    def work(k: int) -> None:
        em = orm.em.fork()
        start.wait(10)
        made[k] = []
        for batch in range(5):
            with em.transaction() as tx:
                users = [
                    User(full_name=f"T{k}", email=f"t{k}-{batch}-{i}@x.io", password="pw", age=k)
                    for i in range(1 if batch == 0 else 40)  # one row, then COPY-less batches
                ]
                tx.persist(users)
            made[k].extend(users)
        big = [
            User(full_name=f"T{k}", email=f"t{k}-big-{i}@x.io", password="pw", age=k)
            for i in range(150)  # reserved keys and COPY
        ]
        em.persist(big).flush()
        made[k].extend(big)

    assert _run_threads(work, 4) == []
    everyone = [u for users in made.values() for u in users]
    assert len(everyone) == 4 * (1 + 4 * 40 + 150)
    assert len({u.id for u in everyone}) == len(everyone), "every entity got its own key"
    stored = dict(databases.rows(orm, "select id, email from `user`"))
    assert stored == {u.id: u.email for u in everyone}, "each key names its own entity's row"


def test_serializable_increments_through_transactional_retries_end_exact(connect):
    orm = connect([Counter], isolation_level="serializable", pool_size=4)
    orm.em.fork().persist(Counter(id=1)).flush()
    calls = []
    start = threading.Barrier(4)

    def increment(tx) -> None:
        calls.append(1)
        counter = tx.find_one_or_fail(Counter, 1)
        counter.value += 1

    def work(k: int) -> None:
        start.wait(10)
        for _ in range(10):
            orm.em.transactional(increment, retries=100)

    assert _run_threads(work, 4) == []
    assert databases.rows(orm, "select value from `counter` where id = 1") == [(40,)]
    assert len(calls) >= 40


def _wait_until_blocked(pattern: str, timeout: float = 10.0) -> None:
    """Wait until a server session runs a statement like `pattern` and waits on a lock."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(databases.PG_URL, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            blocked = watcher.execute(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                "and query like %s",
                (pattern,),
            ).fetchone()[0]
            if blocked:
                return
            time.sleep(0.02)
    raise AssertionError(f"no session blocked on {pattern!r} within {timeout} s")


def _hold_row_lock(orm, value: int, release: threading.Event, done: threading.Event) -> None:
    """In another thread: update counter 1 inside a transaction, wait, then commit."""
    em = orm.em.fork()
    with em.transaction() as tx:
        tx.find_one_or_fail(Counter, 1).value = value
        tx.flush()
        done.set()
        release.wait(20)


def test_a_flush_that_is_its_own_transaction_is_retried_after_a_serialization_failure(
    connect, log
):
    orm = connect([Counter], isolation_level="repeatable read", debug=["query"],
                  logger=log.append)
    orm.em.fork().persist(Counter(id=1)).flush()
    mine = orm.em.fork()
    counter = mine.find_one_or_fail(Counter, 1)
    release, locked = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_row_lock, args=(orm, 10, release, locked))
    holder.start()
    assert locked.wait(10)
    outcome: list[BaseException | None] = []

    def flush() -> None:
        counter.value = 20
        try:
            mine.flush()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    log.clear()
    flusher = threading.Thread(target=flush)
    flusher.start()
    _wait_until_blocked('update "counter"%')
    release.set()  # the holder commits: the blocked update fails with 40001, then reruns
    holder.join(20)
    flusher.join(20)
    assert outcome == [None]
    assert databases.rows(orm, "select value from `counter` where id = 1") == [(20,)]
    lines = log.sql()
    # the first attempt's update failed (failed statements are raised, not logged as run),
    # its transaction was rolled back, and the flush ran again in a new one
    assert lines.count("rollback") == 1
    assert lines[lines.index("rollback") + 1 :][:3] == [
        "begin", 'update "counter" set "value" = 20 where "id" = 1', "commit"
    ]
    assert mine.find_one(Counter, 1).value == 20


def test_a_serialization_failure_inside_the_callers_transaction_is_raised(connect):
    orm = connect([Counter], isolation_level="repeatable read")
    orm.em.fork().persist(Counter(id=1)).flush()
    mine = orm.em.fork()
    release, locked = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def in_transaction() -> None:
        try:
            with mine.transaction() as tx:
                counter = tx.find_one_or_fail(Counter, 1)  # the snapshot starts here
                locked.wait(10)
                counter.value = 30
                tx.flush()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    worker = threading.Thread(target=in_transaction)
    worker.start()
    holder = threading.Thread(target=_hold_row_lock, args=(orm, 10, release, locked))
    holder.start()
    _wait_until_blocked('update "counter"%')
    release.set()
    holder.join(20)
    worker.join(20)
    assert len(outcome) == 1 and isinstance(outcome[0], SerializationFailureException)
    assert outcome[0].retryable
    message = str(outcome[0])
    assert "run the whole transaction again" in message
    assert "Nothing of this flush was written." in message
    assert "call flush() again" not in message  # a flush alone would fail the same way
    assert databases.rows(orm, "select value from `counter` where id = 1") == [(10,)]

"""A crash never leaves part of a flush behind, and a flush that returned survives it (README,
"What a crash can and cannot lose").

A writer process (tests/proof/workloads.py, `crash`) flushes large recognisable batches in a
loop on one database: inserts, updates of the previous batch, removals of older ones. It is
killed with SIGKILL at a random moment, most often while a flush runs, then started again on
the same database, many times. After every kill the database must hold exactly the rows of
the flushes that committed, every one of them whole: with K the last flush in the ledger,
the rows equal `expected_items(K)` (a row of a later flush, or a missing update or removal of
flush K, is a partial flush), every flush the writer reported as returned is among the K, and
SQLite's `pragma integrity_check` says `ok`.

SQLite runs with the rollback journal and with WAL, at the default `synchronous`; PostgreSQL
(with ORM_TEST_PG_URL) in a schema of the test's own, at the default `synchronous_commit`.
`ORM_PROOF_SCALE` multiplies the number of kills.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orm import ORM
from tests import databases
from tests.proof import SCALE, child_env, pg_schema
from tests.proof.workloads import CRASH_ENTITIES, expected_items, row_checksum

KILLS = 20 * SCALE
#: rows per flush: large enough that a flush takes tens of milliseconds, so that kills land
#: inside it (measured on this box: ~30 ms on SQLite, ~50 ms on PostgreSQL)
SIZE = {"sqlite": 4000, "postgresql": 2000}

needs_pg = pytest.mark.skipif(
    not databases.PG_URL, reason="PostgreSQL tests run when ORM_TEST_PG_URL is set"
)


class Writer:
    """A crash writer process and the lines it printed, read as they come."""

    def __init__(self, args: list[str], stderr: Path) -> None:
        self._stderr_path = stderr
        self._stderr = stderr.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.proof.workloads", "crash", *args],
            stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
            text=True, env=child_env(),
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.strip())
        self._queue.put(None)

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 30) -> None:
        """Until the `count`-th line starting with `prefix` (from now on) was printed."""
        deadline = time.monotonic() + timeout
        seen = 0
        while seen < count:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail(f"the writer printed no {prefix!r} within {timeout} s: "
                            f"{self.lines[-5:]}\n{self.stderr()}")
            if line is None:
                pytest.fail(f"the writer ended by itself: {self.lines[-5:]}\n{self.stderr()}")
            self.lines.append(line)
            seen += line.startswith(prefix)

    def kill(self) -> None:
        """SIGKILL; then every line it printed before it died."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(30)
        while True:
            line = self._queue.get()
            if line is None:
                break
            self.lines.append(line)
        self._stderr.close()
        assert self.proc.returncode == -signal.SIGKILL, self.stderr()

    def stderr(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text()[-3000:]

    def report(self) -> tuple[int, int | None, int | None, bool]:
        """The last flush committed before it started, the last begun, the last returned,
        and whether it died inside a flush (`begin k` last, without `done k`)."""
        ready = int(self.lines[0].split()[1])
        begun = [int(x.split()[1]) for x in self.lines if x.startswith("begin ")]
        done = [int(x.split()[1]) for x in self.lines if x.startswith("done ")]
        return (ready, begun[-1] if begun else None, done[-1] if done else None,
                self.lines[-1].startswith("begin "))


class Tally:
    def __init__(self, rollback_journal: bool = False) -> None:
        self.rollback_journal = rollback_journal
        self.kills = 0
        self.mid_flush = 0
        self.committed_unreported = 0
        self.hot_journal = 0
        self.flush_seconds: list[float] = []
        self.flushes = 0

    def typical_flush(self) -> float:
        if not self.flush_seconds:
            return 0.05
        ordered = sorted(self.flush_seconds)
        return ordered[len(ordered) // 2]

    def summary(self) -> str:
        hot = f"{self.hot_journal} left a hot journal, " if self.rollback_journal else ""
        return (f"{self.kills} kills, {self.mid_flush} inside a flush "
                f"({self.committed_unreported} of them after its commit), {hot}"
                f"{self.flushes} flushes committed, "
                f"median flush {self.typical_flush() * 1000:.0f} ms")


def _kill_at_random(writer: Writer, tally: Tally, rng: random.Random) -> None:
    """Most kills aim at a flush: after the first or second `begin`, within about one flush
    time; one in four comes at any moment of the first fifth of a second after start-up."""
    writer.wait_for("ready")
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0, 0.2))
    else:
        writer.wait_for("begin ", rng.choice([1, 2]))
        time.sleep(rng.uniform(0, 1.1 * tally.typical_flush()))
    writer.kill()
    tally.kills += 1
    tally.flush_seconds += [float(x.split()[2]) for x in writer.lines if x.startswith("done ")]


def _check(
    writer: Writer, committed: int, item_rows: list[tuple], ledger: list[int], size: int,
    tally: Tally,
) -> None:
    ready, begun, done, mid_flush = writer.report()
    context = f"after kill {tally.kills} ({writer.lines[-3:]})"
    assert ledger == list(range(1, committed + 1)), f"ledger has gaps {context}"
    # durable: every flush that returned (and every one before this writer started) is there
    assert committed >= (done if done is not None else ready), f"a reported flush is lost {context}"
    assert committed <= (begun if begun is not None else ready), f"a flush never begun {context}"
    torn = [r for r in item_rows if r[4] != row_checksum(r[0], r[1], r[2], r[3])]
    assert not torn, f"rows whose columns disagree {context}: {torn[:5]}"
    got = {r[:4] for r in item_rows}
    assert len(got) == len(item_rows), f"duplicated rows {context}"
    want = expected_items(committed, size)
    if got != want:
        extra, missing = sorted(got - want)[:5], sorted(want - got)[:5]
        pytest.fail(f"part of a flush {context}: flush {committed} is the last committed, "
                    f"but the database also holds {extra} and lacks {missing} "
                    f"({len(got - want)} rows too many, {len(want - got)} missing)")
    tally.mid_flush += mid_flush
    tally.committed_unreported += mid_flush and committed == begun
    tally.flushes = committed


def _run_kills(
    args: list[str], size: int, tmp_path: Path, read: Callable[[], tuple[int, list, list]],
    mid_flush: int, tally: Tally, after_kill: Callable[[Tally], None] = lambda tally: None,
) -> Tally:
    """KILLS kills, and more until `mid_flush` of them landed inside a flush."""
    rng = random.Random(os.environ.get("ORM_PROOF_SEED"))
    n = 0
    while n < KILLS or tally.mid_flush < mid_flush:
        assert n < 4 * KILLS, f"too few kills landed inside a flush: {tally.summary()}"
        writer = Writer([*args, "--size", str(size)], tmp_path / "writer.err")
        _kill_at_random(writer, tally, rng)
        after_kill(tally)
        committed, item_rows, ledger = read()
        _check(writer, committed, item_rows, ledger, size, tally)
        n += 1
    return tally


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_killed_sqlite_writer_leaves_only_whole_flushes_and_every_returned_one(
    tmp_path, journal, record_property
):
    path = tmp_path / "crash.db"
    size = SIZE["sqlite"]

    def look_for_hot_journal(tally: Tally) -> None:
        # a rollback journal with content left by the dead writer: killed inside a write
        # transaction, which the next connection rolls back
        journal_file = Path(f"{path}-journal")
        if journal_file.exists() and journal_file.stat().st_size > 0:
            tally.hot_journal += 1

    def read() -> tuple[int, list, list]:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            assert db.execute("pragma integrity_check").fetchall() == [("ok",)]
            assert db.execute("pragma journal_mode").fetchone()[0] == journal
            ledger = [r[0] for r in db.execute("select id from proof_ledger order by id")]
            item_rows = db.execute(
                "select batch, seq, value, updated_by, checksum from proof_item"
            ).fetchall()
        finally:
            db.close()
        return (ledger[-1] if ledger else 0), item_rows, ledger

    with ORM.init(db_name=str(path), entities=CRASH_ENTITIES, journal_mode=journal) as orm:
        orm.schema.create_schema()
    args = ["--path", str(path), "--journal", journal]
    tally = _run_kills(args, size, tmp_path, read, KILLS // 2,
                       Tally(journal == "delete"), look_for_hot_journal)
    print(f"\nSQLite ({journal}): {tally.summary()}")
    record_property("crash", tally.summary())
    if journal == "delete":
        assert tally.hot_journal >= 1, tally.summary()


@needs_pg
def test_a_killed_postgresql_client_leaves_only_whole_flushes_and_every_returned_one(
    tmp_path, record_property
):
    import psycopg

    assert databases.PG_URL is not None
    schema = pg_schema("crash")
    size = SIZE["postgresql"]

    # the writer's sessions carry the schema's name, so the test can tell when they ended
    sep = "&" if "?" in databases.PG_URL else "?"
    url = f"{databases.PG_URL}{sep}application_name={schema}"

    def sessions_ended(tally: Tally) -> None:
        """Wait until the server has ended the killed client's session. A client killed
        after sending COMMIT is committed by the server a moment later (the flush is whole,
        and was simply not reported); reading before that could see it half-way between
        two statements, and the next writer could start from the flush before it."""
        deadline = time.monotonic() + 30
        with psycopg.connect(databases.PG_URL, autocommit=True) as conn:
            while conn.execute("select count(*) from pg_stat_activity "
                               "where application_name = %s", (schema,)).fetchone()[0]:
                assert time.monotonic() < deadline, "the killed client's session lives on"
                time.sleep(0.01)

    def read() -> tuple[int, list, list]:
        with psycopg.connect(databases.PG_URL) as conn:
            # one snapshot for both tables
            conn.execute("set transaction isolation level repeatable read")
            ledger = [r[0] for r in conn.execute(
                f'select id from "{schema}".proof_ledger order by id')]
            item_rows = [tuple(r) for r in conn.execute(
                f'select batch, seq, value, updated_by, checksum from "{schema}".proof_item')]
        return (ledger[-1] if ledger else 0), item_rows, ledger

    # the server's defaults (synchronous_commit on): not the suite's faster session URL
    args = ["--url", url, "--schema", schema]
    try:
        with ORM.init(client_url=databases.PG_URL, schema=schema, entities=CRASH_ENTITIES) as orm:
            orm.schema.create_schema()
        tally = _run_kills(args, size, tmp_path, read, KILLS, Tally(), sessions_ended)
    finally:
        with psycopg.connect(databases.PG_URL, autocommit=True) as conn:
            conn.execute(f'drop schema if exists "{schema}" cascade')
    print(f"\nPostgreSQL: {tally.summary()}")
    record_property("crash", tally.summary())

"""What every benchmark cell shares: the schema, the data, which rows a workload touches, timing.

Everything an implementation module needs in order to do *the same* work as its peers lives here,
so that the columns of the comparison table differ only in the library under test:

- one DDL (``SCHEMA_DDL``) created with raw sqlite3 for every implementation, so no library's
  schema generator can pick different column types, indexes or pragmas;
- one deterministic data set: row ``i`` (0-based) has ``id = i + 1`` when seeded, full name
  ``"User {i}"``, e-mail ``"user{i}@example.com"``, password ``"secret"``, bio ``""``,
  age ``i % 90`` and ``created_at = BASE_TIME + i seconds`` stored as ``'YYYY-MM-DD HH:MM:SS'``;
- one rule for "every 10th entity" (positions 0, 10, 20, ... of the rows loaded in id order, i.e.
  ``id % 10 == 1``) and one list of primary keys for the lookup workload, so the parent process
  can verify the database afterwards without trusting the implementation;
- ``Context``: a workload times exactly one block (``ctx.timed()``) or measures the memory of
  exactly one block (``ctx.measure_memory()``); setup and teardown stay outside.

This module imports nothing but the standard library: it is loaded by the parent process (which
must not import the libraries under test) and by every cell subprocess.
"""

import gc
import os
import site
import sqlite3
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

T = TypeVar("T")

#: Shared schema. ``datetime`` is only a declared type: SQLite stores the ISO text we give it.
SCHEMA_DDL: tuple[str, ...] = (
    "create table user ("
    "id integer not null primary key autoincrement, "
    "full_name text not null, "
    "email text not null, "
    "password text not null, "
    "bio text not null default '', "
    "age integer not null, "
    "created_at datetime not null)",
    "create unique index user_email_unique on user (email)",
)

#: Column order used by raw inserts, seeding and verification.
COLUMNS: tuple[str, ...] = (
    "id",
    "full_name",
    "email",
    "password",
    "bio",
    "age",
    "created_at",
)
SELECT_ALL_SQL = f"select {', '.join(COLUMNS)} from user"
INSERT_SQL = (
    "insert into user (full_name, email, password, bio, age, created_at) values (?, ?, ?, ?, ?, ?)"
)

#: ``created_at`` of row ``i`` is ``BASE_TIME + i seconds``; no microseconds, so every library's
#: ISO formatting yields exactly ``'YYYY-MM-DD HH:MM:SS'``.
BASE_TIME = datetime(2024, 1, 1, 0, 0, 0)

#: W5 looks up this many primary keys (N of them when N is smaller: the smoke run at N = 1,000
#: need not spend seconds on 10,000 SELECTs per peer).
LOOKUPS = 10_000

#: Modified / removed rows are every ``STRIDE``-th row in id order.
STRIDE = 10

#: Rows per statement for chunked ``IN (...)`` deletes and multi-row inserts / updates.
CHUNK = 500

#: SQLite's default limit on bound variables per statement (SQLITE_MAX_VARIABLE_NUMBER).
MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


def batch_rows(variables_per_row: int) -> int:
    """Rows per multi-row statement: CHUNK, or fewer if that would exceed MAX_VARIABLES."""
    return max(1, min(CHUNK, MAX_VARIABLES // variables_per_row))


Observations = dict[str, int]


def row_values(i: int) -> tuple[object, ...]:
    """The expected database row (with ``id``) of seed row ``i`` (0-based), as sqlite3 reads it."""
    return (
        i + 1,
        f"User {i}",
        f"user{i}@example.com",
        "secret",
        "",
        i % 90,
        (BASE_TIME + timedelta(seconds=i)).isoformat(" "),
    )


def lookup_pks(n: int) -> list[int]:
    """Primary keys for W5: min(n, LOOKUPS) keys spread over 1..n, by a prime stride (7919).

    They are distinct unless n is a multiple of 7919 (then they repeat, which an identity map
    answers just the same).
    """
    return [1 + (k * 7919) % n for k in range(min(n, LOOKUPS))]


def every_tenth(items: Sequence[T]) -> Sequence[T]:
    """The entities W3 modifies and W6 removes: positions 0, 10, 20, ... of a list in id order."""
    return items[::STRIDE]


def is_touched(row_id: int) -> bool:
    """Whether the row with this id is one of ``every_tenth`` of the seeded rows (ids 1, 11, ...)."""
    return (row_id - 1) % STRIDE == 0


def touched_count(n: int) -> int:
    """How many of n seeded rows ``every_tenth`` selects."""
    return (n + STRIDE - 1) // STRIDE


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_observations(ages: Iterable[int]) -> Observations:
    """What a load reports back: how many entities it holds and the sum of their ages.

    Computed after the timed block; the parent compares it with the seed, so an implementation
    cannot return fewer (or lazily empty) entities and still pass.
    """
    count = 0
    total = 0
    for age in ages:
        count += 1
        total += age
    return {"loaded": count, "age_sum": total}


def committed_fingerprint(db_path: str) -> list[int]:
    """Row count and age total of ``user`` as a separate connection sees them.

    A second connection sees only committed data, so comparing this, taken right after the timed
    block, with the final database proves the timed block included the commit (and not, say, a
    session close that commits later, outside the measurement).
    """
    conn = sqlite3.connect(db_path, timeout=1.0)
    try:
        count, age_total = conn.execute(
            "select count(*), coalesce(sum(age), 0) from user"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        raise RuntimeError(
            f"the database is still locked after the timed block ({exc}): the workload did not "
            "commit inside it"
        ) from exc
    finally:
        conn.close()
    return [count, age_total]


@dataclass
class Context:
    """One cell's inputs (database path, N) and its single measurement.

    A workload wraps exactly the part being compared in ``timed()`` (or ``measure_memory()``);
    the connection, session or mapping setup and any untimed preparation (loading before a flush)
    happen outside, so what differs between columns is the library's own cost.
    """

    db_path: str
    n: int
    #: ``"sqlite"`` (``db_path`` is the file) or ``"postgresql"`` (the server and schema come
    #: from the environment, see ``_pg.cell_target``; ``db_path`` is empty)
    database: str = "sqlite"
    #: whole-process runs per START / IMPORT cell (the cell reports their median)
    startup_runs: int = 10
    seconds: float | None = None
    mem_current: int | None = None
    mem_peak: int | None = None
    committed: list[int] | None = None
    #: the workload being run: the relation workloads (``_relations``) fingerprint their tables
    workload: str = ""

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Time the block with ``perf_counter``, then record what is committed at its end.

        Garbage from setup is collected first so the timed block does not pay for it; the
        collector stays enabled inside, because real programs pay for the cycles they create.
        """
        if self.seconds is not None:
            raise RuntimeError("a workload must time exactly one block")
        gc.collect()
        start = time.perf_counter()
        yield
        self.seconds = time.perf_counter() - start
        if self.workload in ("W7", "W8", "W9", "W9N"):
            self.committed = _relation_fingerprint(self)
        elif self.database == "postgresql":
            from _pg import cell_target
            from _pg import committed_fingerprint as pg_fingerprint

            self.committed = pg_fingerprint(*cell_target())
        else:
            self.committed = committed_fingerprint(self.db_path)

    @contextmanager
    def measure_memory(self) -> Iterator[None]:
        """Trace Python allocations made inside the block.

        ``mem_current`` is what is still allocated after the block (and a full collection): the
        cost of *holding* the loaded result, including an identity map and snapshots, because
        the caller keeps the result alive. ``mem_peak`` is the high-water mark during the load.
        Tracing starts inside, so the library's import and setup are not counted.
        """
        gc.collect()
        tracemalloc.start()
        try:
            yield
            gc.collect()
            self.mem_current, self.mem_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()


def _relation_fingerprint(ctx: "Context") -> list[int]:
    import _relations

    if ctx.database == "postgresql":
        from _pg import cell_target, fetcher

        return _relations.fingerprint(fetcher(*cell_target()))
    return _relations.fingerprint(_relations.sqlite_fetch(ctx.db_path))


# ---- start-up: whole processes --------------------------------------------------------------

#: The tiny script of the START row, per library: import, open a file database, create the
#: schema, insert one row (persist + flush / add + commit), read it back by a filter, close.
#: ``DB`` is replaced by the database path. Every version creates table ``note`` (id, name, age)
#: and stores ("Ann", 30); the cell checks that with raw sqlite3 after every run.
STARTUP_NOTE = ("Ann", 30)


def _startup_env(paths: Sequence[str]) -> dict[str, str]:
    """A start-up run sees the standard library, site-packages and the library under test, with
    bytecode cached (as after an install) in the run's own folder: ``PYTHONDONTWRITEBYTECODE``
    would make every run compile the library from source."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(os.getcwd(), "pycache")
    env["PYTHONPATH"] = os.pathsep.join([*paths, *site.getsitepackages()])
    return env


def _python(code: str, env: dict[str, str], *args: str) -> float:
    """Wall-clock seconds of ``python -S -c code args``: a fresh interpreter, as a user's
    script is. ``-S`` (site-packages passed on ``PYTHONPATH`` instead) leaves out the
    environment's ``.pth`` start-up hooks, which differ between machines and would hide costs
    (one here imports certifi, pathlib and re into every process)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, *args], env=env, capture_output=True, text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"start-up run failed: {done.stderr.strip()[-800:]}")
    return seconds


#: whether this process already ran the library once (a ``--quick`` batch runs START and
#: IMPORT of one column in one process: the second needs no warm-up run)
_warmed = False


def _warm_up(code: str, env: dict[str, str], *args: str) -> None:
    """One untimed run that fills the bytecode cache (once per process)."""
    global _warmed
    if not _warmed:
        _python(code, env, *args)
        _warmed = True


def _note_in(db: str) -> bool:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("select name, age from note").fetchall() == [STARTUP_NOTE]
    finally:
        conn.close()


def time_startup_script(ctx: "Context", script: str, paths: Sequence[str] = ()) -> Observations:
    """START: median wall-clock time of ``ctx.startup_runs`` whole processes running
    ``script`` on a new database file each (after one untimed run that fills the bytecode
    cache); each run's database is checked for the one row it must hold."""
    env = _startup_env(paths)
    warm_db = f"{ctx.db_path}.start-warm.db"
    _warm_up(script, env, warm_db)
    if os.path.exists(warm_db):
        os.unlink(warm_db)
    times, ok = [], 0
    for k in range(ctx.startup_runs):
        db = f"{ctx.db_path}.start-{k}.db"
        times.append(_python(script, env, db))
        ok += _note_in(db)
        os.unlink(db)
    ctx.seconds = statistics.median(times)
    return {"scripts_ok": ok}


def time_import(ctx: "Context", statement: str, paths: Sequence[str] = ()) -> Observations:
    """IMPORT: median over ``ctx.startup_runs`` pairs of the wall-clock time of
    ``python -c statement`` minus that of ``python -c pass`` run just before it."""
    env = _startup_env(paths)
    _warm_up(statement, env)
    deltas = [_python(statement, env) - _python("pass", env) for _ in range(ctx.startup_runs)]
    ctx.seconds = max(statistics.median(deltas), 0.0)
    return {"imports_ok": ctx.startup_runs}

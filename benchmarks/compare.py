"""Side-by-side benchmark of ``orm`` against raw sqlite3 and peer Python ORMs.

Usage (from the repository root; Python 3.11+, peers optional)::

    python benchmarks/compare.py                      # N=50,000, median of 5, every column
    python benchmarks/compare.py --quick              # N=1,000, 1 run: CI smoke test (one
                                                      # process per column, not per cell)
    python benchmarks/compare.py --n 100000 --repeat 3
    python benchmarks/compare.py --only raw,orm,sqlalchemy_orm --workloads W2,W4
    python benchmarks/compare.py --scale              # orm (compiled) at N = 1k, 10k, 100k, 1M
    python benchmarks/compare.py --scale --scale-max 100000 --repeat 3
    python benchmarks/compare.py --json results.json  # also write every sample
    python benchmarks/compare.py --db postgresql --repeat 3      # W1-W9 on PostgreSQL
    python benchmarks/compare.py --db postgresql --pg-url postgresql://u@host:5432/db --quick
    python benchmarks/compare.py --workloads W7,W8,W9,W9N --only raw,orm,sqlalchemy_orm,pony

Columns (``--only``): raw, raw_values, orm, orm_pure, sqlalchemy_orm, sqlalchemy_core, peewee,
peewee_bulk, pony. ``raw_values`` is raw sqlite3 inserting with multi-row ``VALUES`` statements
(W1 only); every ratio is taken against the faster raw column of its workload, the real floor. ``orm`` is this project with its compiled ``_diff`` core (the column reads "unavailable"
if the extension is not built), ``orm_pure`` the same with ``ORM_PURE_PYTHON=1``. The project is
imported as installed, or else from ``src/`` next to this directory. A peer that is not installed
reads "not installed".

Workloads (``--workloads``), on one table ``user`` created from one DDL for every column:

====  ==========================================================================================
W1    build N entities, persist, flush (raw: build tuples, executemany, one transaction)
W2    load N as entities (raw: ``select ... from user`` + fetchall, no conversion: the floor)
W3    flush after changing ``age`` of every 10th of N loaded entities (only the flush is timed)
W4    flush with N loaded and nothing changed (raw, Core, Peewee: no Unit of Work, ``-``)
W5    10,000 lookups by primary key (N if N is smaller), all in the identity map (raw, Core,
      Peewee: SELECTs)
W6    flush after removing every 10th of N loaded entities (only the flush is timed)
MEM   Python memory still held after loading N (tracemalloc), and the peak during the load
START a tiny script as a whole process: import, open a file database, create the schema, insert
      one row, read it back by a filter, close (median of ``--startup-runs`` processes per cell)
IMPORT  ``import`` of the library in a fresh process minus the interpreter's own start, ms
====  ==========================================================================================

Relation workloads, on ``author``, ``article`` (``author_id``), ``tag`` and the pivot
``article_tags`` (see ``_relations.py``): N articles, 10 per author (N/10 authors), 3 tags
each out of a pool of 300. Columns: raw, orm, orm_pure, sqlalchemy_orm, pony (on both
databases). Each cell also reports the data statements it sent in the timed block (``q``:
select / insert / update / delete counted at the driver, an ``executemany`` of k rows as k) and,
for the writes, the rows they changed; the parent checks both and the tables by natural keys.
``--quick`` leaves them out unless ``--workloads`` names them.

====  ==========================================================================================
W7    load N articles with their author and tags populated (orm: ``populate=["author",
      "tags"]``; SQLAlchemy: ``selectinload``; Pony: ``prefetch``; raw: the same select-in
      queries by hand, the ``in`` lists chunked under SQLite's parameter limit, one array each
      on PostgreSQL, assembled into tuples)
W8    build and persist the graph of N articles (N/10 authors x 10 articles x 3 tags of the
      pool, which is pre-seeded and loaded before the timed block), one flush (raw: multi-row
      ``insert ... returning id`` for the keys, multi-row pivot inserts, one transaction)
W9    flush after replacing one tag of every 10th of N loaded articles (their tags populated):
      only those pivot rows may be written (raw: one delete and one insert of the pairs)
W9N   flush with the N articles and their tags loaded and nothing changed (ms; no raw column):
      the Unit of Work tracks changed collections, so it should not grow with N
====  ==========================================================================================

``--db postgresql`` runs W1-W6 and W7-W9N on a PostgreSQL server instead (``--pg-url``, else
``$ORM_TEST_PG_URL``, else postgresql://postgres@127.0.0.1:5432/test), in a schema of the run's
(``orm_bench_<pid>_<random>``) dropped at the end; see ``_pg.py``. Columns there: raw, raw_alt
(raw psycopg 3: W1 multi-row ``INSERT ... VALUES ... RETURNING id`` and nextval + ``COPY``; W3
pipelined ``executemany`` and ``UPDATE ... FROM (VALUES ...)``; the floor is the faster of each
pair), orm, orm_pure, sqlalchemy_orm (``postgresql+psycopg``), peewee, peewee_bulk and pony
(``PostgresqlDatabase`` and Pony's ``postgres`` provider, both on psycopg2: "unavailable
(psycopg2 not installed)" without it). Each cell runs in its own process on a new ``"user"``
table (seeded from a table of the run, vacuumed and analyzed), read back with raw psycopg and
checked by the same rules as on SQLite, including the committed-inside-the-timed-block check.

How it measures, and why:

- Every (column, workload, repetition) runs in its own subprocess on a fresh copy of a template
  database (schema only for W1, N seed rows otherwise), so no run inherits caches, mappers, global
  sqlite3 adapters or garbage from another. Default pragmas: no library may change
  ``synchronous`` or ``journal_mode``. Within a cell, only the block named above is timed;
  connecting, mapping and the loads that prepare W3-W6 are not. One-off costs of the first
  query inside the block (statement compilation, Pony's query translation) are included: they
  weigh at N=1,000, hardly at 50,000.
- Repetitions are interleaved across columns (W1 for every column, then again ...) so that drift
  in the machine affects all columns alike; the table shows the median and, in brackets, the
  spread: the lowest and highest of the repetitions (ratios: each repetition divided by the
  floor's repetition of the same round). On a small machine single ratios move by 30%.
- START and IMPORT start fresh interpreters (``python -S`` with site-packages on the path, so
  the environment's ``.pth`` hooks are not counted; bytecode cached as after an install, one
  untimed run first). The rows of every START run are checked with raw sqlite3.
- After every cell the parent reads the database back with raw sqlite3 and compares it row by
  row with what the workload must have produced, checks the loaded / found counts the cell
  reports, and checks that a second connection already saw the final state right after the timed
  block (so a commit deferred to a later ``close()`` cannot hide from the clock). A cell that
  fails this, crashes or times out is printed as FAILED with the reason below the table, and the
  exit status is 1. Nothing else makes it non-zero: a column that is not installed, does not
  import, or (``orm``) lacks its compiled core is reported as such, without failing the run.

The table: the raw columns in seconds (MiB for MEM); every other column as a ratio to the floor,
the faster raw column of the workload (lower is better), with the spread of the repetitions in
brackets; W4, IMPORT and START in milliseconds too, plus a row with W4 divided by raw's W2 (what
a no-op flush costs relative to merely reading the rows). ``--scale`` instead prints the project's cost per entity in
microseconds (W1, W2, W3, W4, W6; divided by N, the number of entities held, also for W3/W6); it
ignores ``--n``, and ``--only`` picks other columns for it.
"""

import argparse
import importlib
import importlib.util
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import _relations
from _common import Context
from _impls import IMPLEMENTATIONS, PG_IMPLEMENTATIONS, DriverMissing, ImplSpec, Unavailable
from _verify import create_template, verify, verify_committed

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_SRC = BENCH_DIR.parent / "src"

WORKLOADS: tuple[str, ...] = (
    "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W9N", "MEM", "START", "IMPORT"
)
#: the relation workloads (author, article, tag, article_tags: see ``_relations``); ``--quick``
#: leaves them out unless ``--workloads`` names them
RELATION_WORKLOADS: tuple[str, ...] = _relations.RELATION_WORKLOADS
STARTUP_WORKLOADS: tuple[str, ...] = ("START", "IMPORT")
#: the workloads ``--db postgresql`` runs (MEM, START and IMPORT do not depend on the database)
PG_WORKLOADS: tuple[str, ...] = ("W1", "W2", "W3", "W4", "W5", "W6", *RELATION_WORKLOADS)
#: the columns that measure the raw driver: a workload's floor is the fastest of them
#: (``raw``/``raw_values``: sqlite3; ``raw``/``raw_alt``: psycopg 3)
RAW_COLUMNS: tuple[str, ...] = ("raw", "raw_values", "raw_alt")
DATABASES: tuple[str, ...] = ("sqlite", "postgresql")
SCALE_WORKLOADS: tuple[str, ...] = ("W1", "W2", "W3", "W4", "W6")
SCALE_SIZES: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)

DEFAULT_N = 50_000
DEFAULT_REPEAT = 5
QUICK_N = 1_000
#: whole-process runs per START / IMPORT cell (quick mode: QUICK_STARTUP_RUNS)
DEFAULT_STARTUP_RUNS = 10
QUICK_STARTUP_RUNS = 1

#: Prefix of the one line a child process prints its result on (libraries may print too).
RESULT_MARKER = "@@compare-result@@ "

ROW_LABELS = {
    "W1": "W1 build + persist + flush N",
    "W2": "W2 load N",
    "W3": "W3 flush 10% modified",
    "W4": "W4 flush, nothing changed",
    "W4/W2": "W4 ÷ raw W2",
    "W5": "W5 10k lookups by PK",
    "W6": "W6 flush 10% removed",
    "W7": "W7 load N articles + author, tags",
    "W8": "W8 persist + flush graph of N articles",
    "W9": "W9 flush, 1 tag of 10% changed",
    "W9N": "W9N flush, graph loaded, unchanged",
    "MEM": "MEM held after load",
    "MEM_PEAK": "MEM peak during load",
    "START": "START tiny script (process)",
    "START_MS": "START tiny script, ms",
    "IMPORT": "IMPORT the library, ms",
}


# --------------------------------------------------------------------------------------------
# Child side: one subprocess runs one probe or one cell and prints one JSON result line.
# --------------------------------------------------------------------------------------------


def _make_project_importable() -> None:
    """Let the cells import ``orm`` from ``src/`` when it is not installed (no pip needed)."""
    if importlib.util.find_spec("orm") is None and (PROJECT_SRC / "orm").is_dir():
        sys.path.insert(0, str(PROJECT_SRC))


def _import_impl(spec: ImplSpec) -> tuple[ModuleType | None, dict[str, Any]]:
    """Import a column's module; on failure, the status to report instead of a traceback."""
    if spec.library == "orm":
        _make_project_importable()
    try:
        return importlib.import_module(f"_impls.{spec.module}"), {}
    except ModuleNotFoundError as exc:
        if exc.name == spec.library:  # not a missing submodule inside a broken package
            return None, {"status": "not_installed", "message": str(exc)}
        return None, {"status": "import_error", "message": _last_lines()}
    except Exception:
        return None, {"status": "import_error", "message": _last_lines()}


def _last_lines(limit: int = 6) -> str:
    return "".join(traceback.format_exc().strip().splitlines(keepends=True)[-limit:])


def _registry(database: str) -> dict[str, ImplSpec]:
    """The columns of the comparison on ``database``."""
    return PG_IMPLEMENTATIONS if database == "postgresql" else IMPLEMENTATIONS


def child_probe(name: str, database: str = "sqlite") -> dict[str, Any]:
    """Can this column run here? Its description and the workloads it implements."""
    spec = _registry(database)[name]
    module, failure = _import_impl(spec)
    if module is None:
        return failure
    try:
        description = module.describe()
    except DriverMissing as exc:
        return {"status": "no_driver", "message": str(exc)}
    except Unavailable as exc:
        return {"status": "unavailable", "message": str(exc)}
    except Exception:
        return {"status": "import_error", "message": _last_lines()}
    workloads = [w for w in WORKLOADS if w in getattr(module, spec.attr)]
    return {"status": "ok", "description": description, "workloads": workloads}


def child_cell(
    name: str,
    workload: str,
    db_path: str,
    n: int,
    startup_runs: int = DEFAULT_STARTUP_RUNS,
    database: str = "sqlite",
) -> dict[str, Any]:
    """Run one workload once and report its measurement and observations."""
    spec = _registry(database)[name]
    module, failure = _import_impl(spec)
    if module is None:
        return failure
    try:
        module.describe()
        function = getattr(module, spec.attr)[workload]
        if workload in RELATION_WORKLOADS:
            _relations.QueryCounter.install(database)
        ctx = Context(
            db_path=db_path, n=n, startup_runs=startup_runs, database=database, workload=workload
        )
        observations = function(ctx)
    except Exception:
        return {"status": "error", "message": _last_lines()}
    if ctx.seconds is None and ctx.mem_current is None:
        return {"status": "error", "message": "the workload measured nothing"}
    return {
        "status": "ok",
        "seconds": ctx.seconds,
        "mem_current": ctx.mem_current,
        "mem_peak": ctx.mem_peak,
        "committed": ctx.committed,
        "observations": observations,
    }


def child_batch(
    name: str, dbs: dict[str, str], n: int, startup_runs: int
) -> dict[str, Any]:
    """``--quick``: the probe, then every requested workload the column implements, each on its
    own fresh database, in this one process."""
    probe = child_probe(name)
    if probe["status"] != "ok":
        return {"probe": probe}
    results = {
        workload: child_cell(name, workload, db, n, startup_runs)
        for workload, db in dbs.items()
        if workload in probe["workloads"]
    }
    return {"probe": probe, "results": results}


# --------------------------------------------------------------------------------------------
# Parent side: probes, cells, verification, tables.
# --------------------------------------------------------------------------------------------


@dataclass
class Column:
    """One implementation as probed: whether it runs here, and what it implements."""

    spec: ImplSpec
    status: str
    description: str = ""
    message: str = ""
    workloads: list[str] = field(default_factory=list)

    @property
    def runnable(self) -> bool:
        return self.status == "ok"


@dataclass
class Cell:
    """All repetitions of one (column, workload) at one N."""

    seconds: list[float] = field(default_factory=list)
    mem_current: list[int] = field(default_factory=list)
    mem_peak: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: relation workloads: data statements sent and rows written in the timed block, per run
    queries: list[int] = field(default_factory=list)
    written_rows: list[int] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    def median(self, attribute: str) -> float | None:
        values = getattr(self, attribute)
        return statistics.median(values) if values and not self.failed else None


class Runner:
    """Spawns child processes and keeps the per-N database templates."""

    def __init__(
        self, workdir: Path, timeout: float, startup_runs: int = DEFAULT_STARTUP_RUNS
    ) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.startup_runs = startup_runs
        self._templates: dict[tuple[int, str], Path] = {}
        self._serial = 0
        #: the columns, and what every child process is told on top of its own arguments
        self.registry: dict[str, ImplSpec] = IMPLEMENTATIONS
        self.child_args: list[str] = []
        self.child_env: dict[str, str] = {}

    def _spawn(self, spec: ImplSpec, args: Sequence[str]) -> dict[str, Any]:
        env = dict(os.environ)
        env.update(self.child_env)
        for key, value in spec.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        command = [sys.executable, str(Path(__file__).resolve()), *args, *self.child_args]
        try:
            done = subprocess.run(
                command,
                env=env,
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"status": "error", "message": f"timed out after {self.timeout:g} s"}
        for line in reversed(done.stdout.splitlines()):
            if line.startswith(RESULT_MARKER):
                result: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
                return result
        tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
        return {
            "status": "error",
            "message": f"child exited {done.returncode} without a result: " + "\n".join(tail),
        }

    def probe(self, name: str) -> Column:
        spec = self.registry[name]
        result = self._spawn(spec, ["--probe", name])
        return Column(
            spec=spec,
            status=result["status"],
            description=result.get("description", ""),
            message=result.get("message", ""),
            workloads=result.get("workloads", []),
        )

    def template(self, n: int, seeded: bool, relations: bool = False) -> Path:
        """Schema-only (W1) or seeded database for N, created once and copied per cell;
        ``relations``: the relation tables, with the tag pool and (``seeded``) the graph."""
        kind = ("relations-" if relations else "") + ("seeded" if seeded else "empty")
        key = (n, kind)
        if key not in self._templates:
            path = self.workdir / f"template-{n}-{kind}.db"
            if relations:
                _relations.create_sqlite_template(str(path), n, seeded)
            else:
                create_template(str(path), n if seeded else 0)
            self._templates[key] = path
        return self._templates[key]

    def _fresh_db(self, name: str, workload: str, n: int) -> Path:
        """A fresh copy of the template a workload starts from."""
        self._serial += 1
        db_path = self.workdir / f"cell-{self._serial}-{name}-{workload}.db"
        startup = workload in STARTUP_WORKLOADS
        if workload in RELATION_WORKLOADS:
            template = self.template(n, _relations.seeds_articles(workload), relations=True)
        else:
            template = self.template(n, seeded=workload != "W1" and not startup)
        shutil.copyfile(template, db_path)
        return db_path

    def _record(
        self, workload: str, n: int, db_path: Path, result: dict[str, Any], cell: Cell
    ) -> str:
        """Verify one repetition's database and report, record it in ``cell``, delete the
        database; returns a progress note."""
        try:
            expected_n = self.startup_runs if workload in STARTUP_WORKLOADS else n
            if workload in RELATION_WORKLOADS:
                fetch = _relations.sqlite_fetch(str(db_path))
                problem = _judge_relations(workload, n, result, fetch)
            else:
                problem = _judge(
                    result,
                    lambda: verify(
                        workload, str(db_path), expected_n, result.get("observations", {})
                    ),
                    lambda: verify_committed(str(db_path), result.get("committed")),
                )
        finally:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        return self._note(problem, result, cell)

    @staticmethod
    def _note(problem: str | None, result: dict[str, Any], cell: Cell) -> str:
        """Record one verified repetition in ``cell``; returns a progress note."""
        if problem:
            cell.problems.append(problem)
            return "FAILED: " + problem.splitlines()[-1][:150]
        if result.get("seconds") is not None:
            cell.seconds.append(result["seconds"])
        observations = result.get("observations") or {}
        if observations.get("queries") is not None:
            cell.queries.append(observations["queries"])
        if observations.get("written_rows") is not None:
            cell.written_rows.append(observations["written_rows"])
        if result.get("mem_current") is not None:
            cell.mem_current.append(result["mem_current"])
            cell.mem_peak.append(result["mem_peak"])
            return f"{result['mem_current'] / 2**20:.1f} MiB held"
        return f"{result['seconds']:.4f} s"

    def run_cell(self, column: Column, workload: str, n: int, cell: Cell) -> str:
        """One repetition on a fresh database, in its own process."""
        db_path = self._fresh_db(column.spec.name, workload, n)
        try:
            result = self._spawn(
                column.spec,
                ["--cell", column.spec.name, workload, "--db-path", str(db_path), "--n", str(n),
                 "--startup-runs", str(self.startup_runs)],
            )
        except BaseException:
            db_path.unlink(missing_ok=True)
            raise
        return self._record(workload, n, db_path, result, cell)

    def run_column(
        self, name: str, workloads: Sequence[str], n: int, cells: dict[tuple[str, str], Cell]
    ) -> Column:
        """``--quick``: probe a column and run every workload of it once, all in one process
        (each still on a fresh database, verified as usual); the library is imported once
        instead of once per cell, which is most of a smoke run's time."""
        spec = self.registry[name]
        if spec.one_cell_per_process:
            column = self.probe(name)
            for workload in workloads:
                if column.runnable and workload in column.workloads:
                    cell = cells.setdefault((name, workload), Cell())
                    note = self.run_cell(column, workload, n, cell)
                    _progress(f"N={n:,} {workload} {name}: {note}")
            return column
        dbs = {w: self._fresh_db(name, w, n) for w in workloads}
        args = ["--batch", name, "--n", str(n), "--startup-runs", str(self.startup_runs)]
        try:
            result = self._spawn(spec, [*args, *(f"{w}={p}" for w, p in dbs.items())])
            probe = result.get("probe", result)
            column = Column(
                spec=spec,
                status=probe["status"],
                description=probe.get("description", ""),
                message=probe.get("message", ""),
                workloads=probe.get("workloads", []),
            )
            for workload, db_path in dbs.items():
                if not column.runnable or workload not in column.workloads:
                    continue
                outcome = result.get("results", {}).get(workload) or result
                cell = cells.setdefault((name, workload), Cell())
                note = self._record(workload, n, db_path, outcome, cell)
                _progress(f"N={n:,} {workload} {name}: {note}")
        finally:
            for db_path in dbs.values():
                db_path.unlink(missing_ok=True)
        return column


def _judge(
    result: dict[str, Any],
    check_database: Callable[[], str | None],
    check_committed: Callable[[], str | None],
) -> str | None:
    """What is wrong with one repetition: its database, the state seen right after its timed
    block, or (for a crashed cell) the crash, with the database's state."""
    problem = check_database()
    if problem is None and result["status"] == "ok":
        problem = check_committed()
    if result["status"] != "ok":
        # A crashed cell is a failed verification: the work was not done (the database check
        # says how much of it is missing).
        problem = f"{result['status']}: {result.get('message', '')}".strip() + (
            f" [database: {problem}]" if problem else ""
        )
    return problem


def _judge_relations(
    workload: str, n: int, result: dict[str, Any], fetch: Callable[[str], Any]
) -> str | None:
    """``_judge`` for a relation workload: its tables checked by natural keys, the committed
    state by the relation fingerprint."""
    return _judge(
        result,
        lambda: _relations.verify(workload, n, result.get("observations") or {}, fetch),
        lambda: verify_committed(
            "", result.get("committed"), fingerprint=lambda: _relations.fingerprint(fetch)
        ),
    )


class PgRunner(Runner):
    """``--db postgresql``: the cells run on the run's schema of a PostgreSQL server, each on a
    new ``"user"`` table laid out by the parent (see ``_pg``), read back with raw psycopg and
    checked by the same rules as on SQLite. Every cell is its own process, ``--quick`` too."""

    def __init__(self, workdir: Path, timeout: float, server: Any) -> None:
        from _pg import SCHEMA_VARIABLE, URL_VARIABLE

        super().__init__(workdir, timeout)
        self.server = server
        self.registry = PG_IMPLEMENTATIONS
        self.child_args = ["--db", "postgresql"]
        self.child_env = {URL_VARIABLE: server.url, SCHEMA_VARIABLE: server.schema}

    def _check(self, workload: str, n: int, result: dict[str, Any]) -> str | None:
        import psycopg

        try:
            return _judge(
                result,
                lambda: verify(
                    workload, "", n, result.get("observations", {}), rows=self.server.read_rows
                ),
                lambda: verify_committed(
                    "", result.get("committed"), fingerprint=self.server.fingerprint
                ),
            )
        except psycopg.Error as exc:
            return f"cannot read the table back: {exc}"

    def run_cell(self, column: Column, workload: str, n: int, cell: Cell) -> str:
        """One repetition on a new table, in its own process."""
        if workload in RELATION_WORKLOADS:
            return self._run_relation_cell(column, workload, n, cell)
        self.server.fresh_table(n, seeded=workload != "W1")
        try:
            result = self._spawn(column.spec, ["--cell", column.spec.name, workload, "--n", str(n)])
            problem = self._check(workload, n, result)
        finally:
            self.server.drop_table()
        return self._note(problem, result, cell)

    def _run_relation_cell(self, column: Column, workload: str, n: int, cell: Cell) -> str:
        import psycopg

        self.server.fresh_relations(n, workload)
        try:
            result = self._spawn(column.spec, ["--cell", column.spec.name, workload, "--n", str(n)])
            try:
                problem = _judge_relations(workload, n, result, self.server.fetch)
            except psycopg.Error as exc:
                problem = f"cannot read the tables back: {exc}"
        finally:
            self.server.drop_relations()
        return self._note(problem, result, cell)

    def run_column(
        self, name: str, workloads: Sequence[str], n: int, cells: dict[tuple[str, str], Cell]
    ) -> Column:
        """``--quick``: the probe, then each workload once, a process each."""
        column = self.probe(name)
        for workload in workloads:
            if column.runnable and workload in column.workloads:
                cell = cells.setdefault((name, workload), Cell())
                note = self.run_cell(column, workload, n, cell)
                _progress(f"N={n:,} {workload} {name}: {note}")
        return column


def run_matrix(
    runner: Runner, columns: list[Column], workloads: Sequence[str], n: int, repeat: int
) -> dict[tuple[str, str], Cell]:
    """Every runnable (column, workload), ``repeat`` times, interleaved across columns."""
    cells: dict[tuple[str, str], Cell] = {}
    for workload in workloads:
        todo = [c for c in columns if c.runnable and workload in c.workloads]
        for rep in range(repeat):
            for column in todo:
                cell = cells.setdefault((column.spec.name, workload), Cell())
                if cell.failed:
                    continue  # one failure decides the cell; do not repeat it
                note = runner.run_cell(column, workload, n, cell)
                _progress(f"N={n:,} {workload} {column.spec.name} run {rep + 1}/{repeat}: {note}")
    return cells


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- formatting ----------------------------------------------------------------------------

_COLUMN_STATUS_TEXT = {
    "not_installed": "not installed",
    "import_error": "import error",
    "unavailable": "unavailable",
    "no_driver": "unavailable (psycopg2 not installed)",
}


def _ratio(value: float, base: float | None) -> str | None:
    """``1.43x``; small ratios (a no-op flush against a full load) keep two significant digits."""
    if not base:
        return None
    ratio = value / base
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in rows)])


def _floor(cells: dict[tuple[str, str], Cell], workload: str) -> tuple[float | None, list[float]]:
    """The floor of a workload: the median of the fastest raw column, and per repetition the
    fastest raw sample of that round (for paired ratios)."""
    raws = [
        c for name in RAW_COLUMNS if (c := cells.get((name, workload))) and c.median("seconds")
    ]
    if not raws:
        return None, []
    best = min(raws, key=lambda c: c.median("seconds") or 0.0)
    rounds = min(len(c.seconds) for c in raws)
    return best.median("seconds"), [min(c.seconds[i] for c in raws) for i in range(rounds)]


def _spread(low: float, high: float, number: Callable[[float], str]) -> str:
    """`` (low-high)`` of the repetitions; nothing for a single repetition."""
    return "" if low == high else f" ({number(low)}-{number(high)})"


def render_comparison(
    columns: list[Column], workloads: Sequence[str], cells: dict[tuple[str, str], Cell]
) -> str:
    """The markdown table: raw absolute, the others as ratios to the floor (the fastest raw
    column of the workload), each with the spread of its repetitions in brackets."""
    floors = {w: _floor(cells, w) for w in workloads}
    raw_mem = cells.get(("raw", "MEM"))

    def ratio_text(value: float) -> str:
        return (_ratio(value, 1.0) or "-").rstrip("x")

    def ms_text(value: float) -> str:
        return _significant(value * 1e3)

    def fmt(column: Column, key: str) -> str:
        if not column.runnable:
            return _COLUMN_STATUS_TEXT.get(column.status, column.status)
        workload = {"W4/W2": "W4", "MEM_PEAK": "MEM", "START_MS": "START"}.get(key, key)
        cell = cells.get((column.spec.name, workload))
        if cell is None:
            return "-"
        if cell.failed:
            return "FAILED"
        is_raw = column.spec.name in RAW_COLUMNS
        if key in ("MEM", "MEM_PEAK"):
            attribute = "mem_current" if key == "MEM" else "mem_peak"
            value = cell.median(attribute) or 0.0
            base = raw_mem.median(attribute) if raw_mem and not is_raw else None
            return _ratio(value, base) or f"{value / 2**20:.1f} MiB"
        seconds = cell.median("seconds") or 0.0
        samples = cell.seconds
        if key in RELATION_WORKLOADS:
            return relation_text(column, key, cell)
        if key in ("W4", "IMPORT", "START_MS"):
            return f"{ms_text(seconds)} ms" + _spread(min(samples), max(samples), ms_text)
        if key == "W4/W2":
            return _ratio(seconds, floors["W2"][0] if "W2" in floors else None) or "-"
        base, base_rounds = floors.get(workload, (None, []))
        if is_raw or not base:
            spread = _spread(min(samples), max(samples), _significant)
            return f"{_significant(seconds)} s{spread}"
        paired = [a / b for a, b in zip(samples, base_rounds, strict=False) if b]
        text = _ratio(seconds, base) or "-"
        if paired:
            text += _spread(min(paired), max(paired), ratio_text)
        return text

    def relation_text(column: Column, key: str, cell: Cell) -> str:
        """The time (W9N in ms, the others as the other rows) and what the cell sent: data
        statements, and for the flushes the rows they wrote."""
        if key == "W9N":
            seconds, samples = cell.median("seconds") or 0.0, cell.seconds
            text = f"{ms_text(seconds)} ms" + _spread(min(samples), max(samples), ms_text)
        else:
            text = fmt_time(column, key, cell)
        if cell.queries:
            text += f"; {_count_text(cell.queries)} q"
        if key != "W7" and cell.written_rows:
            text += f", {_count_text(cell.written_rows)} rows"
        return text

    def fmt_time(column: Column, workload: str, cell: Cell) -> str:
        seconds, samples = cell.median("seconds") or 0.0, cell.seconds
        base, base_rounds = floors.get(workload, (None, []))
        if column.spec.name in RAW_COLUMNS or not base:
            return f"{_significant(seconds)} s" + _spread(min(samples), max(samples), _significant)
        paired = [a / b for a, b in zip(samples, base_rounds, strict=False) if b]
        text = _ratio(seconds, base) or "-"
        if paired:
            text += _spread(min(paired), max(paired), ratio_text)
        return text

    keys: list[str] = []
    for workload in workloads:
        keys.append(workload)
        if workload == "W4":
            keys.append("W4/W2")
        if workload == "MEM":
            keys.append("MEM_PEAK")
        if workload == "START":
            keys.append("START_MS")
    header = ["workload", *(c.spec.label for c in columns)]
    rows = [[ROW_LABELS[key], *(fmt(c, key) for c in columns)] for key in keys]
    return _markdown(header, rows)


def render_notes(columns: list[Column], cells: dict[tuple[str, str], Cell]) -> list[str]:
    """Why a column or cell shows no number, one line each."""
    notes = []
    for column in columns:
        if not column.runnable:
            first = column.message.strip().splitlines()[-1:] or [""]
            notes.append(f"- {column.spec.name}: {column.status.replace('_', ' ')}: {first[0]}")
    for (name, workload), cell in cells.items():
        for problem in dict.fromkeys(cell.problems):
            notes.append(f"- FAILED {name} {workload}: " + problem.strip().replace("\n", " | "))
    return notes


def _count_text(values: Sequence[int]) -> str:
    """A count that should not vary between repetitions; both ends if it did."""
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _significant(value: float) -> str:
    """Three significant digits in plain notation (``9,487``, ``1.42``, ``0.0000565``)."""
    if value >= 100:
        return f"{value:,.0f}"
    if value <= 0:
        return "0"
    decimals = 2 - math.floor(math.log10(value))
    return f"{value:.{decimals}f}"


def render_scale(
    column: Column,
    sizes: Sequence[int],
    workloads: Sequence[str],
    results: dict[int, dict[tuple[str, str], Cell]],
) -> str:
    """Cost per entity (µs) and the median seconds behind it, one row per N."""
    header = ["N", *(f"{w} µs/entity" for w in workloads), *(f"{w} ms" for w in workloads)]
    rows = []
    for n in sizes:
        per_entity, totals = [], []
        for workload in workloads:
            if workload not in column.workloads:
                per_entity.append("-")
                totals.append("-")
                continue
            cell = results[n].get((column.spec.name, workload))
            seconds = cell.median("seconds") if cell else None
            if cell is not None and cell.failed:
                per_entity.append("FAILED")
                totals.append("FAILED")
            elif seconds is None:
                per_entity.append("-")
                totals.append("-")
            else:
                per_entity.append(_significant(seconds / n * 1e6))
                totals.append(_significant(seconds * 1e3))
        rows.append([f"{n:,}", *per_entity, *totals])
    return _markdown(header, rows)


def render_scale_ratio(
    column: Column,
    raw: Column,
    sizes: Sequence[int],
    workloads: Sequence[str],
    results: dict[int, dict[tuple[str, str], Cell]],
) -> str:
    """The column's time divided by raw sqlite3's at each N: flat rows mean the ORM's own
    cost per entity stays flat (raw's grows with N too: page cache, index depth)."""
    shown = [w for w in workloads if w in raw.workloads and w in column.workloads]
    rows = []
    for n in sizes:
        ratios = []
        for workload in shown:
            mine = results[n].get((column.spec.name, workload))
            base = results[n].get((raw.spec.name, workload))
            a = mine.median("seconds") if mine and not mine.failed else None
            b = base.median("seconds") if base and not base.failed else None
            ratios.append(f"{a / b:.2f}x" if a and b else "-")
        rows.append([f"{n:,}", *ratios])
    return _markdown(["N", *shown], rows)


def _environment_line(n: int | None, repeat: int) -> str:
    size = f"N = {n:,}, " if n is not None else ""
    return (
        f"{size}median of {repeat} run(s), each a fresh process and database; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.machine()}"
    )


# ---- command line --------------------------------------------------------------------------


def _csv(value: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    lookup = {a.lower(): a for a in allowed}
    unknown = [v for v in items if v.lower() not in lookup]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}"
        )
    return [lookup[v.lower()] for v in items]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark orm against raw sqlite3, SQLAlchemy, Peewee and Pony.",
        epilog="See the module docstring of benchmarks/compare.py for what each workload does.",
    )
    parser.add_argument("--n", type=int, help=f"number of users (default {DEFAULT_N:,})")
    parser.add_argument("--repeat", type=int, help=f"runs per cell (default {DEFAULT_REPEAT})")
    parser.add_argument(
        "--only",
        type=lambda v: _csv(v, list({**IMPLEMENTATIONS, **PG_IMPLEMENTATIONS}), "implementation"),
        help="comma-separated columns: " + ", ".join(IMPLEMENTATIONS) + "; with --db postgresql: "
        + ", ".join(PG_IMPLEMENTATIONS),
    )
    parser.add_argument(
        "--workloads",
        type=lambda v: _csv(v, WORKLOADS, "workload"),
        help="comma-separated workloads: " + ", ".join(WORKLOADS),
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"N={QUICK_N:,}, 1 run: a CI smoke test"
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="orm (compiled) only, at N = 1k, 10k, 100k, 1M: cost per entity in µs",
    )
    parser.add_argument("--scale-max", type=int, help="largest N for --scale")
    parser.add_argument(
        "--startup-runs",
        type=int,
        help=f"whole-process runs per START / IMPORT cell (default {DEFAULT_STARTUP_RUNS}, "
        f"--quick {QUICK_STARTUP_RUNS})",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds before a cell counts as failed"
    )
    parser.add_argument("--json", type=Path, help="also write every sample to this JSON file")
    parser.add_argument(
        "--db",
        choices=DATABASES,
        default="sqlite",
        help="the database the workloads run on (default sqlite); postgresql runs W1-W9N in a "
        "schema of its own on the server of --pg-url",
    )
    parser.add_argument(
        "--pg-url",
        help="with --db postgresql: the server (default $ORM_TEST_PG_URL, else "
        "postgresql://postgres@127.0.0.1:5432/test)",
    )
    # Internal: the parent runs itself in these modes.
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--cell", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--batch", help=argparse.SUPPRESS)
    parser.add_argument("dbs", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--db-path", help=argparse.SUPPRESS)
    return parser


def _dump_json(
    path: Path,
    settings: dict[str, Any],
    columns: list[Column],
    results: dict[int, dict[tuple[str, str], Cell]],
) -> None:
    payload = {
        "settings": settings,
        "columns": {
            c.spec.name: {"status": c.status, "description": c.description, "message": c.message}
            for c in columns
        },
        "results": [
            {
                "n": n,
                "implementation": name,
                "workload": workload,
                "seconds": cell.seconds,
                "mem_current": cell.mem_current,
                "mem_peak": cell.mem_peak,
                "problems": cell.problems,
            }
            for n, cells in results.items()
            for (name, workload), cell in cells.items()
        ],
    }
    path.write_text(json.dumps(payload, indent=2))


def _default_workloads(
    workloads: Sequence[str], quick: bool, named: Sequence[str] | None = None
) -> list[str]:
    """``named`` (``--workloads``), else every workload, but ``--quick`` (the smoke test)
    leaves the relation ones out unless ``--workloads`` names them."""
    if named:
        return [w for w in workloads if w in named]
    return [w for w in workloads if not (quick and w in RELATION_WORKLOADS)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.probe:
        print(RESULT_MARKER + json.dumps(child_probe(args.probe, args.db)), flush=True)
        return 0
    if args.batch:
        dbs = dict(item.split("=", 1) for item in args.dbs)
        result = child_batch(
            args.batch, dbs, args.n, args.startup_runs or DEFAULT_STARTUP_RUNS
        )
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    if args.cell:
        name, workload = args.cell
        result = child_cell(
            name,
            workload,
            args.db_path or "",
            args.n,
            args.startup_runs or DEFAULT_STARTUP_RUNS,
            args.db,
        )
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0

    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    startup_runs = args.startup_runs or (QUICK_STARTUP_RUNS if args.quick else DEFAULT_STARTUP_RUNS)
    if repeat < 1 or startup_runs < 1 or (args.n is not None and args.n < 1):
        parser.error("--n, --repeat and --startup-runs must be positive")
    registry = _registry(args.db)
    unknown = [name for name in args.only or () if name not in registry]
    if unknown:
        parser.error(
            f"--only {', '.join(unknown)}: no such column with --db {args.db}; choose from "
            + ", ".join(registry)
        )
    if args.db == "postgresql":
        return main_postgresql(parser, args, repeat)
    if args.scale:
        names = args.only or ["raw", "orm"]
        workloads = [w for w in SCALE_WORKLOADS if not args.workloads or w in args.workloads]
        sizes = [s for s in SCALE_SIZES if args.scale_max is None or s <= args.scale_max]
        if not sizes:
            parser.error(f"--scale-max {args.scale_max} is below the smallest size")
    else:
        names = args.only or list(IMPLEMENTATIONS)
        workloads = _default_workloads(WORKLOADS, args.quick, args.workloads)
        sizes = [args.n or (QUICK_N if args.quick else DEFAULT_N)]
    workloads = [w for w in WORKLOADS if w in workloads]  # canonical order

    with tempfile.TemporaryDirectory(prefix="orm-compare-") as tmp:
        runner = Runner(Path(tmp), args.timeout, startup_runs)
        if args.quick and not args.scale and repeat == 1:
            (n,) = sizes
            quick_cells: dict[tuple[str, str], Cell] = {}
            columns = [runner.run_column(name, workloads, n, quick_cells) for name in names]
            results = {n: quick_cells}
        else:
            columns = [runner.probe(name) for name in names]
            for column in columns:
                _progress(f"{column.spec.name}: {column.description or column.status}")
            results = {n: run_matrix(runner, columns, workloads, n, repeat) for n in sizes}

    out: list[str] = []
    if args.scale:
        out.append(f"# Cost per entity ({_environment_line(None, repeat)})\n")
        for column in columns:
            out.append(f"## {column.spec.label}: {column.description or column.status}\n")
            if column.runnable:
                out.append(render_scale(column, sizes, workloads, results) + "\n")
        raw_column = next((c for c in columns if c.spec.name == "raw" and c.runnable), None)
        for column in columns:
            if raw_column is not None and column is not raw_column and column.runnable:
                out.append(f"## {column.spec.label} ÷ raw sqlite3, per N\n")
                out.append(render_scale_ratio(column, raw_column, sizes, workloads, results))
                out.append("")
        out.append(
            "µs/entity = median seconds / N, where N is the number of entities created (W1), "
            "loaded (W2) or held in the identity map (W3, W4, W6); W3 and W6 write 1 in 10 "
            "of them, so per written row their cost is 10x the figure shown."
        )
    else:
        (n,) = sizes
        out.append(f"# orm vs peers ({_environment_line(n, repeat)})\n")
        out.append(render_comparison(columns, workloads, results[n]) + "\n")
        out.append(
            "raw: seconds (MiB for MEM); others: ratio to the faster raw column of the workload "
            "(the floor), lower is better; in brackets the lowest and highest of the "
            "repetitions (ratios paired by round). W4, IMPORT and START in ms: milliseconds; "
            "the W4 ÷ raw W2 row relates W4 to reading the rows; W5 for raw, Core and Peewee is "
            "10,000 SELECTs (no identity map). START: one whole process running the tiny "
            f"script (median of {startup_runs} per repetition); IMPORT: `import` in a fresh "
            "process minus an empty one."
        )
        out.append("")
        for column in columns:
            if column.runnable:
                out.append(f"- {column.spec.label}: {column.description}")
    notes = [note for n in sizes for note in render_notes(columns, results[n])]
    if notes:
        out.append("\nProblems:\n" + "\n".join(dict.fromkeys(notes)))
    print("\n".join(out))

    if args.json:
        settings = {"sizes": sizes, "repeat": repeat, "workloads": workloads, "scale": args.scale}
        _dump_json(args.json, settings, columns, results)
    failed = any(cell.failed for cells in results.values() for cell in cells.values())
    return 1 if failed else 0


def main_postgresql(
    parser: argparse.ArgumentParser, args: argparse.Namespace, repeat: int
) -> int:
    """``--db postgresql``: W1-W9N for the PostgreSQL columns, in a schema of this run's on the
    server, dropped at the end; printed as the SQLite table is."""
    if args.scale:
        parser.error("--scale runs on SQLite only")
    if args.workloads:
        other = [w for w in args.workloads if w not in PG_WORKLOADS]
        if other:
            parser.error(
                f"--db postgresql runs {', '.join(PG_WORKLOADS)}, not {', '.join(other)}"
            )
    workloads = _default_workloads(PG_WORKLOADS, args.quick, args.workloads)
    names = args.only or list(PG_IMPLEMENTATIONS)
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    url = args.pg_url or os.environ.get("ORM_TEST_PG_URL") or None
    try:
        import psycopg

        import _pg
    except ImportError as exc:
        print(
            f"--db postgresql needs psycopg 3 ({exc}): pip install '.[postgresql]'",
            file=sys.stderr,
        )
        return 2
    url = url or _pg.DEFAULT_URL
    try:
        server = _pg.Server(url)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[:1]
        print(f"cannot use the PostgreSQL server: {first[0] if first else exc}", file=sys.stderr)
        return 2
    _progress(f"PostgreSQL: {server.version_text} at {server.where()}, schema {server.schema}")
    try:
        with tempfile.TemporaryDirectory(prefix="orm-compare-") as tmp:
            runner = PgRunner(Path(tmp), args.timeout, server)
            if args.quick and repeat == 1:
                cells: dict[tuple[str, str], Cell] = {}
                columns = [runner.run_column(name, workloads, n, cells) for name in names]
            else:
                columns = [runner.probe(name) for name in names]
                for column in columns:
                    _progress(f"{column.spec.name}: {column.description or column.status}")
                cells = run_matrix(runner, columns, workloads, n, repeat)
    finally:
        server.close()

    environment = (
        f"N = {n:,}, median of {repeat} run(s), each a fresh process and table; "
        f"Python {platform.python_version()}, {server.version_text} at {server.where()}, "
        f"psycopg {psycopg.__version__}, {platform.system()} {platform.machine()}"
    )
    out = [f"# orm vs peers on PostgreSQL ({environment})\n"]
    out.append(render_comparison(columns, workloads, cells) + "\n")
    out.append(
        "raw: seconds; others: ratio to the faster raw column of the workload (the floor: "
        "raw psycopg or raw psycopg (alt), whichever is faster in this run), lower is better; "
        "in brackets the lowest and highest of the repetitions (ratios paired by round). "
        "raw psycopg: W1 multi-row INSERT ... VALUES ... RETURNING id (1,000 rows a "
        "statement), W2 tuple rows with fetchmany(1000), W3 pipelined executemany, W5 10,000 "
        "SELECTs by key in one transaction, W6 one DELETE ... WHERE id = any(%s). raw psycopg "
        "(alt): W1 nextval over generate_series, then COPY; W3 UPDATE ... FROM (VALUES ...) of "
        "100 rows a statement, pipelined. W4 in ms: milliseconds; W5 for raw and Peewee is "
        "10,000 SELECTs (no identity map). Every cell starts on a new, vacuumed and analyzed "
        "table; server settings as they are."
    )
    out.append("")
    for column in columns:
        if column.runnable:
            out.append(f"- {column.spec.label}: {column.description}")
    notes = render_notes(columns, cells)
    if notes:
        out.append("\nProblems:\n" + "\n".join(dict.fromkeys(notes)))
    print("\n".join(out))

    if args.json:
        settings = {
            "database": "postgresql",
            "server": server.version_text,
            "sizes": [n],
            "repeat": repeat,
            "workloads": workloads,
            "scale": False,
        }
        _dump_json(args.json, settings, columns, {n: cells})
    return 1 if any(cell.failed for cell in cells.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""compare.py runs end to end in its quick mode: every column's cells pass the database
verification (a smoke test: no timing is asserted).

Quick mode keeps it cheap without skipping anything: N = 1,000, one repetition, one
whole-process run for START / IMPORT, and the cells of a column share one process (the library
is imported once per column, not once per cell); every column still runs every workload it
implements on a fresh database, checked row by row.

With ORM_TEST_PG_URL set, `--db postgresql` runs too, for the raw psycopg columns and this
project's (N = 200, a process per cell, a few seconds), and must leave no schema behind.

The relation workloads (W7-W9N, not in the quick run's default) run for raw and this
project at N = 200, on SQLite and (with ORM_TEST_PG_URL) PostgreSQL: verified, and their
query and written-row counts are the ones the select-in load and the pivot diff imply."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import databases

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
COMPARE = BENCH / "compare.py"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")[1:-1]]


def test_compare_quick_mode_verifies_every_cell():
    proc = subprocess.run(
        [sys.executable, str(COMPARE), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "FAILED" not in out
    lines = out.splitlines()
    header = _cells(next(line for line in lines if line.startswith("| workload")))
    table = [_cells(line) for line in lines if line.startswith("| ")]
    rows = {c[0]: c[1:] for c in table[1:]}
    labels = [label.split()[0] for label in rows]
    assert labels[:3] == ["W1", "W2", "W3"] and labels[-3:] == ["START", "START", "IMPORT"]
    columns = header[1:]
    assert columns[:4] == ["raw sqlite3", "raw VALUES", "orm (compiled)", "orm (pure Python)"]

    w1 = next(cells for label, cells in rows.items() if label.startswith("W1"))
    raw, raw_values, orm, orm_pure = w1[:4]
    assert raw.endswith(" s") and raw_values.endswith(" s"), w1
    assert orm.endswith("x") and orm_pure.endswith("x"), w1
    start_row, start_ms_row, import_row = (rows[label] for label in list(rows)[-3:])
    # every column that runs here (peers may be missing) has a start-up time and an import time
    for name, start, start_ms, imported in zip(
        columns, start_row, start_ms_row, import_row, strict=True
    ):
        if name == "raw VALUES" or name == "Peewee (bulk)":
            assert start == start_ms == imported == "-"
        elif start not in ("not installed", "import error", "unavailable"):
            assert start_ms.endswith(" ms") and imported.endswith(" ms"), (name, start_ms)
            assert start.endswith("x") or name == "raw sqlite3", (name, start)


def _pg_env() -> dict[str, str]:
    """The test's environment, with the `orm` this process imported first: the cells import
    `orm` and must get the same build (a clean checkout's `src` holds no compiled core; the
    installed package does, and the `orm (compiled)` column refuses the pure-Python twin)."""
    import orm

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(orm.__file__).resolve().parent.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


needs_pg = pytest.mark.skipif(not databases.PG_URL, reason="ORM_TEST_PG_URL is not set")


@needs_pg
def test_compare_on_postgresql_verifies_raw_and_orm_and_drops_its_schema():
    import psycopg

    proc = subprocess.run(
        [sys.executable, str(COMPARE), "--db", "postgresql", "--pg-url", databases.PG_URL,
         "--quick", "--n", "200", "--only", "raw,raw_alt,orm"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_pg_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "FAILED" not in out
    assert out.startswith("# orm vs peers on PostgreSQL (N = 200, ")
    lines = out.splitlines()
    header = _cells(next(line for line in lines if line.startswith("| workload")))
    assert header[1:] == ["raw psycopg", "raw psycopg (alt)", "orm (compiled)"]
    table = [_cells(x) for x in lines if x.startswith("| W")]
    assert [c[0].split()[0] for c in table] == ["W1", "W2", "W3", "W4", "W4", "W5", "W6"]
    rows = {c[0].split()[0]: c[1:] for c in table if "÷" not in c[0]}
    for workload in ("W1", "W3"):  # both raw methods measured; the ORM a ratio to the faster
        raw, alt, orm = rows[workload]
        assert raw.endswith(" s") and alt.endswith(" s") and orm.endswith("x"), rows[workload]
    for workload in ("W2", "W5", "W6"):
        raw, alt, orm = rows[workload]
        assert raw.endswith(" s") and alt == "-" and orm.endswith("x"), rows[workload]
    assert rows["W4"][2].endswith(" ms")
    # the run worked in a schema of its own (its name on the first progress line), now gone
    match = re.search(r", schema (orm_bench_\d+_[0-9a-f]+)\n", proc.stderr)
    assert match, proc.stderr[:500]
    with psycopg.connect(databases.PG_URL, autocommit=True) as conn:
        left = conn.execute(
            "select nspname from pg_namespace where nspname = %s", (match.group(1),)
        ).fetchall()
    assert left == []


@needs_pg
def test_postgresql_benchmark_table_is_the_one_the_orm_creates():
    """The table every PostgreSQL column maps onto is the one this project's create_schema()
    writes for the benchmark's User entity: the comparison measures the ORM on its own
    schema, not on one chosen to suit it."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from orm import ORM\n"
        "from _impls.orm_project import User\n"
        "import _pg\n"
        "orm = ORM.init(client_url=sys.argv[2], schema='orm_bench_never_created', "
        "entities=[User])\n"
        "print(orm.schema.get_create_schema_sql())\n"
        "print('@@' + '@@'.join(_pg.SCHEMA_DDL))\n"
        "orm.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(BENCH), databases.PG_URL],
        capture_output=True, text=True, timeout=60, env=_pg_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    orm_sql, bench = proc.stdout.split("@@", 1)
    statements = [s.strip() for s in orm_sql.split(";") if s.strip()]
    assert statements[0] == 'create schema if not exists "orm_bench_never_created"'
    assert [s.replace('"', "") for s in statements[1:]] == [
        s.replace('"', "") for s in bench.strip().split("@@")
    ]


def _relation_rows(args: list[str], env: dict[str, str] | None = None) -> tuple[list[str], dict]:
    proc = subprocess.run(
        [sys.executable, str(COMPARE), "--quick", "--n", "200", "--workloads", "W7,W8,W9,W9N",
         *args],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FAILED" not in proc.stdout
    lines = proc.stdout.splitlines()
    header = _cells(next(line for line in lines if line.startswith("| workload")))
    table = [_cells(x) for x in lines if x.startswith("| W")]
    return header[1:], {c[0].split()[0]: c[1:] for c in table}


def _check_relation_counts(rows: dict, raw_w8_queries: str) -> None:
    """raw and orm on 200 articles, 20 authors, 3 tags each: the select-in load is 3 queries
    for both; the graph's 20 + 200 + 600 rows; changing one tag of 20 articles writes 40
    pivot rows in 2 statements; a flush with nothing changed sends nothing."""
    assert list(rows) == ["W7", "W8", "W9", "W9N"]
    raw, orm = rows["W7"][:2]
    assert raw.endswith(" s; 3 q") and orm.endswith("x; 3 q"), rows["W7"]
    raw, orm = rows["W8"][:2]
    assert raw.endswith(f"; {raw_w8_queries} q, 820 rows") and orm.endswith(", 820 rows"), rows[
        "W8"
    ]
    raw, orm = rows["W9"][:2]
    assert raw.endswith("; 2 q, 40 rows") and orm.endswith("x; 2 q, 40 rows"), rows["W9"]
    raw, orm = rows["W9N"][:2]
    assert raw == "-" and orm.endswith(" ms; 0 q, 0 rows"), rows["W9N"]


def test_compare_relation_workloads_verify_and_count_queries():
    columns, rows = _relation_rows(["--only", "raw,orm"], _pg_env())
    assert columns == ["raw sqlite3", "orm (compiled)"]
    # authors, articles, then the 600 pairs in one statement (PAIR_ROWS: the variable limit)
    _check_relation_counts(rows, raw_w8_queries="3")


@needs_pg
def test_compare_relation_workloads_on_postgresql():
    columns, rows = _relation_rows(
        ["--db", "postgresql", "--pg-url", databases.PG_URL, "--only", "raw,orm"], _pg_env()
    )
    assert columns == ["raw psycopg", "orm (compiled)"]
    _check_relation_counts(rows, raw_w8_queries="3")


def test_every_sqlite_column_of_the_relation_workloads_enforces_foreign_keys(tmp_path):
    """The relation workloads compare the same work: each column's connection checks the
    schema's foreign keys, as this ORM's does (sqlite3 and SQLAlchemy leave them off unless
    told; W8's raw inserts were a fifth faster for skipping the checks)."""
    code = (
        "import sys, sqlite3; sys.path.insert(0, sys.argv[1])\n"
        "import _relations as rel\n"
        "from _common import Context\n"
        "from _impls import rel_raw, rel_sqlalchemy\n"
        "c = sqlite3.connect(sys.argv[2])\n"
        "[c.execute(s) for s in rel.SQLITE_DDL]\n"
        "c.commit(); c.close()\n"
        "ctx = Context(db_path=sys.argv[2], n=1)\n"
        "with rel_raw._connect(ctx) as conn:\n"
        "    print('raw', conn.execute('pragma foreign_keys').fetchone()[0])\n"
        "with rel_sqlalchemy._session(ctx) as session:\n"
        "    raw = session.connection().connection.dbapi_connection\n"
        "    print('sqlalchemy', raw.execute('pragma foreign_keys').fetchone()[0])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(BENCH), str(tmp_path / "fk.db")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["raw", "1", "sqlalchemy", "1"]

"""Memory held by N loaded entities against the same N raw ``sqlite3`` rows, per row.

Usage (from the repository root)::

    python benchmarks/memory.py               # N=50,000, one run per cell
    python benchmarks/memory.py --n 10000 --repeat 3

Two tables, because the ORM's cost per entity is mostly fixed (the instance, its attribute
storage, its identity-map entry) and so weighs more the narrower the row:

- 5 columns: ``person (id, name, email, age, created_at)``;
- 7 columns: compare.py's ``user`` table and entity (its MEM row).

Columns: raw (``fetchall``), orm with its compiled core, orm pure Python
(``ORM_PURE_PYTHON=1``). As in compare.py's MEM, each cell is a fresh subprocess on a fresh
copy of the seeded database; what is counted is what ``tracemalloc`` still sees allocated after
the load and a full collection, while the result is held (for the ORM: entities, their
snapshots and the identity map; an entity only read keeps no copy of its row, its snapshot is
taken from its attributes at the first write). The table shows
bytes per row / entity (the median of the runs), the ORM's extra bytes per entity over the raw
row, and the ratio to raw.
"""

import argparse
import gc
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_SRC = BENCH_DIR.parent / "src"
sys.path.insert(0, str(BENCH_DIR))

from _common import BASE_TIME, SELECT_ALL_SQL  # noqa: E402
from _verify import create_template  # noqa: E402

PERSON_DDL = (
    "create table person (id integer not null primary key autoincrement, name text not null, "
    "email text not null, age integer not null, created_at datetime not null)"
)
PERSON_SELECT = "select id, name, email, age, created_at from person"

#: table -> (label, raw SELECT)
TABLES: dict[str, tuple[str, str]] = {
    "person": ("5 columns", PERSON_SELECT),
    "user": ("7 columns", SELECT_ALL_SQL),
}
#: column -> (label, ORM_PURE_PYTHON value or None for raw)
COLUMNS: dict[str, tuple[str, str | None]] = {
    "raw": ("raw sqlite3", None),
    "orm": ("orm (compiled)", "0"),
    "orm_pure": ("orm (pure Python)", "1"),
}


def create_person_template(path: str, n: int) -> None:
    """The 5-column table, rows 0..n-1 shaped like compare.py's (ISO text timestamps)."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(PERSON_DDL)
            conn.executemany(
                "insert into person (name, email, age, created_at) values (?, ?, ?, ?)",
                (
                    (
                        f"Person {i}",
                        f"person{i}@example.com",
                        i % 90,
                        (BASE_TIME + timedelta(seconds=i)).isoformat(" "),
                    )
                    for i in range(n)
                ),
            )
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Child side: one subprocess loads one table one way and prints one JSON line.
# --------------------------------------------------------------------------------------------


def _held(load: Any) -> tuple[int, Any]:
    """What `load()` leaves allocated while its result is held (as compare.py's MEM)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = load()
        gc.collect()
        return tracemalloc.get_traced_memory()[0], result
    finally:
        tracemalloc.stop()


def _orm_entity(table: str) -> Any:
    if importlib.util.find_spec("orm") is None and (PROJECT_SRC / "orm").is_dir():
        sys.path.insert(0, str(PROJECT_SRC))
    if table == "user":
        from _impls.orm_project import User

        return User
    from orm import PrimaryKey, entity

    @entity(table_name="person")
    class Person:
        id: int = PrimaryKey()
        name: str
        email: str
        age: int
        created_at: datetime

    return Person


def run_cell(table: str, column: str, db_path: str) -> dict[str, Any]:
    if column == "raw":
        conn = sqlite3.connect(db_path)
        try:
            size, rows = _held(lambda: conn.execute(TABLES[table][1]).fetchall())
            return {"bytes": size, "count": len(rows)}
        finally:
            conn.close()
    cls = _orm_entity(table)
    import orm

    wanted = "python" if column == "orm_pure" else "cython"
    if orm.diff_backend() != wanted:
        return {"error": f"_diff backend is {orm.diff_backend()!r}, not {wanted!r}"}
    instance = orm.ORM.init(db_name=db_path, entities=[cls])
    try:
        em = instance.em.fork()
        size, entities = _held(lambda: em.find(cls, {}))
        return {"bytes": size, "count": len(entities)}
    finally:
        instance.close()


# --------------------------------------------------------------------------------------------
# Parent side.
# --------------------------------------------------------------------------------------------


def spawn(table: str, column: str, template: str, workdir: str) -> dict[str, Any]:
    db_path = os.path.join(workdir, f"cell-{table}-{column}.db")
    shutil.copyfile(template, db_path)
    env = dict(os.environ)
    pure = COLUMNS[column][1]
    if pure == "1":
        env["ORM_PURE_PYTHON"] = "1"
    else:
        env.pop("ORM_PURE_PYTHON", None)
    proc = subprocess.run(
        [sys.executable, __file__, "--cell", table, column, db_path],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    os.remove(db_path)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["crashed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="rows loaded (default 50,000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell (median)")
    parser.add_argument(
        "--cell", nargs=3, metavar=("TABLE", "COLUMN", "DB"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.cell:
        print(json.dumps(run_cell(*args.cell)))
        return 0
    n = args.n
    failed = False
    with tempfile.TemporaryDirectory(prefix="orm-memory-") as workdir:
        templates = {
            "person": os.path.join(workdir, "person.db"),
            "user": os.path.join(workdir, "user.db"),
        }
        create_person_template(templates["person"], n)
        create_template(templates["user"], n)
        per_row: dict[tuple[str, str], float | str] = {}
        for table in TABLES:
            for column in COLUMNS:
                samples = []
                for _ in range(args.repeat):
                    result = spawn(table, column, templates[table], workdir)
                    if "error" in result or result.get("count") != n:
                        per_row[table, column] = result.get("error", f"loaded {result['count']}")
                        failed = True
                        break
                    samples.append(result["bytes"] / n)
                else:
                    per_row[table, column] = statistics.median(samples)
    print(
        f"# Memory held after loading N = {n:,} (tracemalloc, bytes per row / entity; "
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version})"
    )
    print()
    header = ["table", *(COLUMNS[c][0] for c in COLUMNS)]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
    for table, (label, _sql) in TABLES.items():
        raw = per_row[table, "raw"]
        cells = [label, f"{raw:.0f} B" if isinstance(raw, float) else f"({raw})"]
        for column in ("orm", "orm_pure"):
            value = per_row[table, column]
            if isinstance(value, str):
                cells.append(f"({value})")
            elif isinstance(raw, float):
                cells.append(f"{value:.0f} B (+{value - raw:.0f} B) {value / raw:.2f}x")
            else:
                cells.append(f"{value:.0f} B")
        print("| " + " | ".join(cells) + " |")
    print()
    print("orm cells: bytes per entity (its extra over the raw row) and the ratio to raw.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

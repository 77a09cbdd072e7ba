"""Raw ``sqlite3``: the floor every other column is divided by.

It does the least work that still produces the same database: tuples instead of objects,
``executemany`` in one transaction (W1 also as multi-row ``VALUES`` statements, the
``raw_values`` column: the table divides by the faster of the two), rows as ``fetchall`` returns
them (``created_at`` stays the
ISO text it is stored as: no conversion is the floor). There is nothing to flush when nothing
changed, so W4 is not applicable.
"""

import sqlite3
from datetime import timedelta
from itertools import chain
from typing import Any

from _common import (
    BASE_TIME,
    INSERT_SQL,
    SELECT_ALL_SQL,
    Context,
    Observations,
    batch_rows,
    chunks,
    every_tenth,
    load_observations,
    lookup_pks,
    time_import,
    time_startup_script,
)

_AGE = 5  # index of ``age`` in SELECT_ALL_SQL rows


def describe() -> str:
    """Library line for the report header."""
    return f"sqlite3 (SQLite {sqlite3.sqlite_version})"


def _load(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(SELECT_ALL_SQL + " order by id").fetchall()


def _user_rows(n: int) -> list[tuple]:
    """The N rows W1 inserts, built (datetime converted by hand) inside the timed block."""
    return [
        (
            f"User {i}",
            f"user{i}@example.com",
            "secret",
            "",
            i % 90,
            (BASE_TIME + timedelta(seconds=i)).isoformat(" "),
        )
        for i in range(n)
    ]


def w1_insert(ctx: Context) -> Observations:
    """Build N tuples (converting the datetime ourselves) and insert them in one transaction."""
    conn = sqlite3.connect(ctx.db_path)
    n = ctx.n
    with ctx.timed():
        rows = _user_rows(n)
        with conn:
            conn.executemany(INSERT_SQL, rows)
    conn.close()
    return {}


def _values_sql(rows: int) -> str:
    head = INSERT_SQL[: INSERT_SQL.index(" values ")]
    return f"{head} values " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)


def w1_insert_values(ctx: Context) -> Observations:
    """Build N tuples as ``w1_insert`` does, insert them as multi-row ``VALUES`` statements of
    up to 500 rows (what this project's flush does) in one transaction."""
    conn = sqlite3.connect(ctx.db_path)
    n = ctx.n
    per = batch_rows(6)
    full = _values_sql(per)
    with ctx.timed():
        rows = _user_rows(n)
        with conn:
            for start in range(0, n, per):
                chunk = rows[start : start + per]
                sql = full if len(chunk) == per else _values_sql(len(chunk))
                conn.execute(sql, list(chain.from_iterable(chunk)))
    conn.close()
    return {}


def w2_load(ctx: Context) -> Observations:
    """``select ... from user`` + ``fetchall``."""
    conn = sqlite3.connect(ctx.db_path)
    with ctx.timed():
        rows = conn.execute(SELECT_ALL_SQL).fetchall()
    conn.close()
    return load_observations(row[_AGE] for row in rows)


def w3_update(ctx: Context) -> Observations:
    """UPDATE every 10th row's age with one ``executemany`` in one transaction."""
    conn = sqlite3.connect(ctx.db_path)
    rows = _load(conn)
    params = [(row[_AGE] + 1, row[0]) for row in every_tenth(rows)]
    with ctx.timed():
        with conn:
            conn.executemany("update user set age = ? where id = ?", params)
    conn.close()
    return {"updated": len(params)}


def w5_lookup(ctx: Context) -> Observations:
    """10,000 ``select ... where id = ?`` + ``fetchone`` (sqlite3 caches the prepared statement)."""
    conn = sqlite3.connect(ctx.db_path)
    rows = _load(conn)  # same untimed preparation as the ORMs, which fill their identity map
    pks = lookup_pks(ctx.n)
    sql = SELECT_ALL_SQL + " where id = ?"
    found = []
    with ctx.timed():
        for pk in pks:
            found.append(conn.execute(sql, (pk,)).fetchone())
    conn.close()
    del rows
    return {"found": sum(1 for row in found if row), "age_sum": sum(row[_AGE] for row in found)}


def w6_delete(ctx: Context) -> Observations:
    """DELETE every 10th row with chunked ``id in (...)`` statements in one transaction."""
    conn = sqlite3.connect(ctx.db_path)
    ids = [row[0] for row in every_tenth(_load(conn))]
    with ctx.timed():
        with conn:
            for chunk in chunks(ids):
                conn.execute(f"delete from user where id in ({', '.join('?' * len(chunk))})", chunk)
    conn.close()
    return {"removed": len(ids)}


def mem_load(ctx: Context) -> Observations:
    """Memory held by the ``fetchall`` result."""
    conn = sqlite3.connect(ctx.db_path)
    with ctx.measure_memory():
        rows = conn.execute(SELECT_ALL_SQL).fetchall()
    conn.close()
    return load_observations(row[_AGE] for row in rows)


STARTUP_SCRIPT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("create table note (id integer primary key, name text not null, age integer not null)")
with conn:
    conn.execute("insert into note (name, age) values (?, ?)", ("Ann", 30))
row = conn.execute("select id, name, age from note where name = ?", ("Ann",)).fetchone()
assert row[2] == 30
conn.close()
"""


def start_script(ctx: Context) -> Observations:
    """The tiny script as a whole process (see ``_common.time_startup_script``)."""
    return time_startup_script(ctx, STARTUP_SCRIPT)


def import_time(ctx: Context) -> Observations:
    """``import sqlite3`` in a fresh process, minus the interpreter's own start."""
    return time_import(ctx, "import sqlite3")


WORKLOADS = {
    "START": start_script,
    "IMPORT": import_time,
    "W1": w1_insert,
    "W2": w2_load,
    "W3": w3_update,
    "W5": w5_lookup,
    "W6": w6_delete,
    "MEM": mem_load,
}

#: the ``raw_values`` column: W1 as multi-row VALUES (the floor of W1 is the faster raw column)
VALUES_WORKLOADS = {"W1": w1_insert_values}

# the relation workloads W7-W9 (see rel_raw.py), here for the ``raw`` column
from _impls.rel_raw import WORKLOADS as _RELATION_WORKLOADS  # noqa: E402

WORKLOADS.update(_RELATION_WORKLOADS)

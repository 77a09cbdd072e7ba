"""Raw psycopg 3 on PostgreSQL: the floor of ``compare.py --db postgresql``.

The least work that produces the same table, by the fastest method psycopg offers for each
workload; where two methods compete, both are measured in the same run and the table divides by
the faster (the ``raw_alt`` column holds the second method):

- W1, ``raw``: N tuples, multi-row ``insert ... values ... returning id`` of 1,000 rows a
  statement, the keys read back (every ORM must learn its keys, so the floor does too);
  ``raw_alt``: the keys reserved first with ``select nextval(...) from generate_series(1, N)``,
  then the rows, keys included, sent with ``copy ... from stdin``.
- W2: ``select ... from "user"``, tuple rows fetched with ``fetchmany(1000)`` (no conversion
  beyond psycopg's own: ``created_at`` arrives as a ``datetime``).
- W3, ``raw``: ``executemany`` of ``update ... set age = %s where id = %s`` (psycopg pipelines
  it); ``raw_alt``: ``update ... from (values ...)`` of 100 rows a statement, cast on the first
  row, the statements sent in one pipeline.
- W5: 10,000 ``select ... where id = %s`` + ``fetchone`` in one transaction (psycopg prepares
  the statement from its fifth run on).
- W6: one ``delete from "user" where id = any(%s)`` with the keys as one array.

Writes run in one explicit transaction each, committed inside the timed block. W4 (nothing to
flush) does not apply.
"""

from datetime import timedelta
from typing import Any

import psycopg

from _common import (
    BASE_TIME,
    Context,
    Observations,
    every_tenth,
    load_observations,
    lookup_pks,
)
from _pg import INSERT_COLUMNS, SELECT_ALL_SQL, cell_target, connect

_AGE = 5  # index of ``age`` in SELECT_ALL_SQL rows
#: rows per multi-row INSERT (W1, raw) and per ``update ... from (values ...)`` (W3, raw_alt)
VALUES_ROWS = 1000
UPDATE_FROM_ROWS = 100
FETCH_ROWS = 1000

_INSERT_HEAD = f'insert into "user" ({", ".join(INSERT_COLUMNS)}) values '


def describe() -> str:
    """Library line for the report header."""
    return f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__} implementation, libpq " \
        f"{psycopg.pq.version()})"


def _connect(**kwargs: Any) -> psycopg.Connection[Any]:
    return connect(*cell_target(), **kwargs)


def _load(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(SELECT_ALL_SQL + " order by id").fetchall()


def _values_sql(rows: int) -> str:
    return _INSERT_HEAD + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * rows) + " returning id"


def w1_insert_values(ctx: Context) -> Observations:
    """Build N tuples, insert them as multi-row VALUES statements returning their keys, in one
    transaction."""
    n = ctx.n
    full = _values_sql(VALUES_ROWS)
    with _connect(autocommit=True) as conn:
        with ctx.timed():
            rows = [
                (
                    f"User {i}",
                    f"user{i}@example.com",
                    "secret",
                    "",
                    i % 90,
                    BASE_TIME + timedelta(seconds=i),
                )
                for i in range(n)
            ]
            keys: list[int] = []
            with conn.transaction():
                cursor = conn.cursor()
                for start in range(0, n, VALUES_ROWS):
                    chunk = rows[start : start + VALUES_ROWS]
                    sql = full if len(chunk) == VALUES_ROWS else _values_sql(len(chunk))
                    cursor.execute(sql, [value for row in chunk for value in row])
                    keys.extend(row[0] for row in cursor.fetchall())
    return {}


def w1_insert_copy(ctx: Context) -> Observations:
    """Reserve N keys from the identity sequence, build the N rows with them, COPY them in,
    all in one transaction."""
    n = ctx.n
    _, schema = cell_target()
    copy_sql = f'copy "user" (id, {", ".join(INSERT_COLUMNS)}) from stdin'
    with _connect(autocommit=True) as conn:
        with ctx.timed():
            with conn.transaction():
                keys = [
                    row[0]
                    for row in conn.execute(
                        "select nextval(pg_get_serial_sequence(%s, 'id')) "
                        "from generate_series(1, %s)",
                        (f'"{schema}"."user"', n),
                    )
                ]
                rows = [
                    (
                        keys[i],
                        f"User {i}",
                        f"user{i}@example.com",
                        "secret",
                        "",
                        i % 90,
                        BASE_TIME + timedelta(seconds=i),
                    )
                    for i in range(n)
                ]
                with conn.cursor().copy(copy_sql) as copy:
                    write = copy.write_row
                    for row in rows:
                        write(row)
    return {}


def w2_load(ctx: Context) -> Observations:
    """``select ... from "user"``, ``fetchmany(1000)`` until done."""
    with _connect(autocommit=True) as conn:
        with ctx.timed():
            cursor = conn.cursor()
            cursor.execute(SELECT_ALL_SQL)
            rows: list[tuple[Any, ...]] = []
            while batch := cursor.fetchmany(FETCH_ROWS):
                rows.extend(batch)
    return load_observations(row[_AGE] for row in rows)


def _changed(conn: psycopg.Connection[Any]) -> list[tuple[int, int]]:
    return [(row[_AGE] + 1, row[0]) for row in every_tenth(_load(conn))]


def w3_update_many(ctx: Context) -> Observations:
    """UPDATE every 10th row's age with one (pipelined) ``executemany``."""
    with _connect(autocommit=True) as conn:
        params = _changed(conn)
        with ctx.timed():
            with conn.transaction():
                conn.cursor().executemany('update "user" set age = %s where id = %s', params)
    return {"updated": len(params)}


def _update_from_sql(rows: int) -> str:
    values = ", ".join(["(%s::bigint, %s::bigint)", *["(%s, %s)"] * (rows - 1)])
    return (
        f'update "user" set age = v.age from (values {values}) as v(age, id) '
        f'where "user".id = v.id'
    )


def w3_update_from(ctx: Context) -> Observations:
    """UPDATE every 10th row's age with ``update ... from (values ...)`` statements of 100
    rows, sent in one pipeline."""
    with _connect(autocommit=True) as conn:
        params = _changed(conn)
        full = _update_from_sql(UPDATE_FROM_ROWS)
        with ctx.timed():
            with conn.transaction(), conn.pipeline():
                cursor = conn.cursor()
                for start in range(0, len(params), UPDATE_FROM_ROWS):
                    chunk = params[start : start + UPDATE_FROM_ROWS]
                    sql = full if len(chunk) == UPDATE_FROM_ROWS else _update_from_sql(len(chunk))
                    cursor.execute(sql, [value for row in chunk for value in row])
    return {"updated": len(params)}


def w5_lookup(ctx: Context) -> Observations:
    """10,000 ``select ... where id = %s`` + ``fetchone`` in one transaction."""
    pks = lookup_pks(ctx.n)
    sql = SELECT_ALL_SQL + " where id = %s"
    found = []
    with _connect() as conn:  # not autocommit: the load opens the transaction the selects use
        rows = _load(conn)  # same untimed preparation as the ORMs, which fill their identity map
        with ctx.timed():
            cursor = conn.cursor()
            for pk in pks:
                found.append(cursor.execute(sql, (pk,)).fetchone())
        conn.rollback()
    del rows
    return {"found": sum(1 for row in found if row), "age_sum": sum(row[_AGE] for row in found)}


def w6_delete(ctx: Context) -> Observations:
    """DELETE every 10th row with one ``where id = any(%s)`` statement."""
    with _connect(autocommit=True) as conn:
        ids = [row[0] for row in every_tenth(_load(conn))]
        with ctx.timed():
            with conn.transaction():
                conn.execute('delete from "user" where id = any(%s)', (ids,))
    return {"removed": len(ids)}


WORKLOADS = {
    "W1": w1_insert_values,
    "W2": w2_load,
    "W3": w3_update_many,
    "W5": w5_lookup,
    "W6": w6_delete,
}

#: the ``raw_alt`` column: the competing method where there is one
ALT_WORKLOADS = {"W1": w1_insert_copy, "W3": w3_update_from}

# the relation workloads W7-W9 (see rel_raw.py), here for the ``raw`` column
from _impls.rel_raw import WORKLOADS as _RELATION_WORKLOADS  # noqa: E402

WORKLOADS.update(_RELATION_WORKLOADS)

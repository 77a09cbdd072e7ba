"""SQLAlchemy Core: typed ``Table``, ``insert`` executemany, ``select`` to ``Row`` objects.

The middle ground between raw sqlite3 and an ORM: SQL construction, compilation caching and
type conversion (``created_at`` is parsed to ``datetime`` on load), but no identity map and no
change tracking, so W4 is not applicable and W5 runs 10,000 SELECTs like raw.

Statements are written the way Core users write them (``select(user).where(user.c.id == pk)``
per lookup), relying on SQLAlchemy's compiled-statement cache rather than hand-prepared ones.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import DATETIME

from _common import (
    BASE_TIME,
    Context,
    Observations,
    chunks,
    every_tenth,
    load_observations,
    lookup_pks,
    time_import,
    time_startup_script,
)

metadata = MetaData()
user = Table(
    "user",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("full_name", Text, nullable=False),
    Column("email", Text, nullable=False, unique=True),
    Column("password", Text, nullable=False),
    Column("bio", Text, nullable=False, default=""),
    Column("age", Integer, nullable=False),
    # ISO text without microseconds, like every other column (see sqlalchemy_orm).
    Column("created_at", DATETIME(truncate_microseconds=True), nullable=False),
)


def describe() -> str:
    """Library line for the report header."""
    return f"SQLAlchemy {sqlalchemy.__version__} (Core)"


@contextmanager
def _connection(ctx: Context) -> Iterator[Connection]:
    engine = create_engine(f"sqlite:///{ctx.db_path}")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _load_by_id(conn: Connection) -> list[Any]:
    rows = list(conn.execute(select(user).order_by(user.c.id)).all())
    conn.rollback()  # end the implicit read transaction; the timed block begins its own
    return rows


def w1_insert(ctx: Context) -> Observations:
    """Build N parameter dicts, one ``insert`` executemany, commit."""
    n = ctx.n
    with _connection(ctx) as conn:
        with ctx.timed():
            rows = [
                {
                    "full_name": f"User {i}",
                    "email": f"user{i}@example.com",
                    "password": "secret",
                    "age": i % 90,
                    "created_at": BASE_TIME + timedelta(seconds=i),
                }
                for i in range(n)
            ]
            conn.execute(insert(user), rows)
            conn.commit()
    return {}


def w2_load(ctx: Context) -> Observations:
    """``conn.execute(select(user)).all()``."""
    with _connection(ctx) as conn:
        with ctx.timed():
            rows = conn.execute(select(user)).all()
        return load_observations(row.age for row in rows)


def w3_update(ctx: Context) -> Observations:
    """``update`` executemany of every 10th row's age, commit (parameters built untimed, as raw)."""
    with _connection(ctx) as conn:
        rows = _load_by_id(conn)
        params = [{"b_id": row.id, "b_age": row.age + 1} for row in every_tenth(rows)]
        stmt = update(user).where(user.c.id == bindparam("b_id")).values(age=bindparam("b_age"))
        with ctx.timed():
            conn.execute(stmt, params)
            conn.commit()
        return {"updated": len(params)}


def w5_lookup(ctx: Context) -> Observations:
    """10,000 ``select(user).where(user.c.id == pk)`` + ``first()``."""
    with _connection(ctx) as conn:
        rows = _load_by_id(conn)
        pks = lookup_pks(ctx.n)
        found = []
        with ctx.timed():
            for pk in pks:
                found.append(conn.execute(select(user).where(user.c.id == pk)).first())
        del rows
        return {
            "found": sum(1 for row in found if row is not None),
            "age_sum": sum(row.age for row in found if row is not None),
        }


def w6_delete(ctx: Context) -> Observations:
    """Chunked ``delete(user).where(user.c.id.in_(...))``, one transaction."""
    with _connection(ctx) as conn:
        ids = [row.id for row in every_tenth(_load_by_id(conn))]
        with ctx.timed():
            for chunk in chunks(ids):
                conn.execute(delete(user).where(user.c.id.in_(chunk)))
            conn.commit()
        return {"removed": len(ids)}


def mem_load(ctx: Context) -> Observations:
    """Memory held by N ``Row`` objects."""
    with _connection(ctx) as conn:
        with ctx.measure_memory():
            rows = conn.execute(select(user)).all()
        return load_observations(row.age for row in rows)


STARTUP_SCRIPT = """
import sys
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, insert, select

metadata = MetaData()
note = Table(
    "note", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("age", Integer, nullable=False),
)
engine = create_engine(f"sqlite:///{sys.argv[1]}")
metadata.create_all(engine)
with engine.begin() as conn:
    conn.execute(insert(note), {"name": "Ann", "age": 30})
with engine.connect() as conn:
    row = conn.execute(select(note).where(note.c.name == "Ann")).first()
    assert row.age == 30
engine.dispose()
"""


def start_script(ctx: Context) -> Observations:
    """The tiny script as a whole process (see ``_common.time_startup_script``)."""
    return time_startup_script(ctx, STARTUP_SCRIPT)


def import_time(ctx: Context) -> Observations:
    """``import sqlalchemy`` in a fresh process, minus the interpreter's own start."""
    return time_import(ctx, "import sqlalchemy")


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

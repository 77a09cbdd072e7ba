"""Pony ORM: ``db_session`` (its identity map and unit of work), ``commit()`` as the flush.

Pony's SQLite provider always stores datetimes with ``.000000`` appended; a provider subclass
swaps in a converter that writes ``isoformat(" ")`` (``'YYYY-MM-DD HH:MM:SS'``), as every other
column does, so all columns write the same bytes. Reading is Pony's own converter, which accepts
both forms. ``bio`` is ``Optional(str)`` because Pony's ``Required(str)`` rejects the empty
string; Pony stores ``""`` for it, matching the schema's ``not null default ''``.

The timed block is the work inside the session; leaving ``db_session`` (which discards the
cache) is teardown and stays untimed, like closing the other libraries' sessions.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pony
from pony.orm import Database, Optional, PrimaryKey, Required, commit, db_session
from pony.orm.dbproviders.sqlite import SQLiteDatetimeConverter, SQLiteProvider

from _common import (
    BASE_TIME,
    Context,
    Observations,
    every_tenth,
    load_observations,
    lookup_pks,
    time_import,
    time_startup_script,
)


class _IsoSecondsDatetimeConverter(SQLiteDatetimeConverter):
    """Write datetimes as sqlite3's default adapter does, without Pony's ``.000000`` suffix."""

    def py2sql(self, val: datetime) -> str:
        return val.isoformat(" ")


class _Provider(SQLiteProvider):
    converter_classes = [
        (cls, _IsoSecondsDatetimeConverter if cls is datetime else converter)
        for cls, converter in SQLiteProvider.converter_classes
    ]


db = Database()


class User(db.Entity):  # type: ignore[name-defined]
    _table_ = "user"
    id = PrimaryKey(int, auto=True)
    full_name = Required(str)
    email = Required(str, unique=True)
    password = Required(str)
    bio = Optional(str, default="")
    age = Required(int)
    created_at = Required(datetime)


def describe() -> str:
    """Library line for the report header."""
    return f"Pony {pony.__version__}"


_bound_to: str | None = None


@contextmanager
def _session(ctx: Context) -> Iterator[None]:
    """Map onto the existing table (no DDL) once per process, then open a ``db_session``."""
    global _bound_to
    if _bound_to is None:
        db.bind(provider=_Provider, filename=ctx.db_path)
        db.generate_mapping(create_tables=False)
        _bound_to = ctx.db_path
    elif _bound_to != ctx.db_path:
        raise RuntimeError("one Pony cell per process")
    with db_session:
        yield


def _load_by_id() -> list[Any]:
    return list(User.select().order_by(User.id)[:])


def w1_insert(ctx: Context) -> Observations:
    """Create N entities in a ``db_session``, one ``commit()``."""
    n = ctx.n
    with _session(ctx):
        with ctx.timed():
            for i in range(n):
                User(
                    full_name=f"User {i}",
                    email=f"user{i}@example.com",
                    password="secret",
                    age=i % 90,
                    created_at=BASE_TIME + timedelta(seconds=i),
                )
            commit()
    return {}


def w2_load(ctx: Context) -> Observations:
    """``User.select()[:]``."""
    with _session(ctx):
        with ctx.timed():
            users = User.select()[:]
        return load_observations(u.age for u in users)


def w3_update(ctx: Context) -> Observations:
    """``commit()`` after changing ``age`` of every 10th loaded entity."""
    with _session(ctx):
        users = _load_by_id()
        changed = every_tenth(users)
        for user in changed:
            user.age += 1
        with ctx.timed():
            commit()
        return {"updated": len(changed)}


def w4_noop_flush(ctx: Context) -> Observations:
    """``commit()`` with N entities in the session cache and none changed."""
    with _session(ctx):
        users = _load_by_id()
        with ctx.timed():
            commit()
        return {"loaded": len(users)}


def w5_lookup(ctx: Context) -> Observations:
    """10,000 ``User[pk]`` answered from the session cache."""
    with _session(ctx):
        users = _load_by_id()
        pks = lookup_pks(ctx.n)
        found = []
        with ctx.timed():
            for pk in pks:
                found.append(User[pk])
        del users
        return {"found": len(found), "age_sum": sum(u.age for u in found)}


def w6_delete(ctx: Context) -> Observations:
    """``commit()`` after ``delete()`` of every 10th loaded entity (marking untimed)."""
    with _session(ctx):
        users = _load_by_id()
        removed = every_tenth(users)
        for user in removed:
            user.delete()
        with ctx.timed():
            commit()
        return {"removed": len(removed)}


def mem_load(ctx: Context) -> Observations:
    """Memory held by N entities in the session cache."""
    with _session(ctx):
        with ctx.measure_memory():
            users = User.select()[:]
        return load_observations(u.age for u in users)


STARTUP_SCRIPT = """
import sys
from pony.orm import Database, Required, commit, db_session

db = Database()

class Note(db.Entity):
    name = Required(str)
    age = Required(int)

db.bind(provider="sqlite", filename=sys.argv[1], create_db=True)
db.generate_mapping(create_tables=True)
with db_session:
    Note(name="Ann", age=30)
    commit()
    note = Note.get(name="Ann")
    assert note.age == 30
db.disconnect()
"""


def start_script(ctx: Context) -> Observations:
    """The tiny script as a whole process (see ``_common.time_startup_script``)."""
    return time_startup_script(ctx, STARTUP_SCRIPT)


def import_time(ctx: Context) -> Observations:
    """``import pony.orm`` in a fresh process, minus the interpreter's own start."""
    return time_import(ctx, "import pony.orm")


WORKLOADS = {
    "START": start_script,
    "IMPORT": import_time,
    "W1": w1_insert,
    "W2": w2_load,
    "W3": w3_update,
    "W4": w4_noop_flush,
    "W5": w5_lookup,
    "W6": w6_delete,
    "MEM": mem_load,
}

# the relation workloads W7-W9 (see rel_pony.py)
from _impls.rel_pony import WORKLOADS as _RELATION_WORKLOADS  # noqa: E402

WORKLOADS.update(_RELATION_WORKLOADS)

"""This project's ``orm``, written against the public API in SPEC.md.

The same module serves both columns: the cell runner sets ``ORM_PURE_PYTHON=1`` for the
pure-Python one and removes it for the compiled one; ``describe()`` refuses to run a column whose
backend is not the one its label promises (a missing compiled extension would otherwise silently
report pure-Python numbers as "compiled").

``ORM.init`` maps onto the table the harness created with the shared DDL (no schema generation),
so this column writes to exactly the same schema as its peers. Loads used as untimed preparation
are ordered by id so that ``every_tenth`` selects the same rows the verifier expects.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import orm
from orm import ORM, PrimaryKey, Property, entity, t

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
from _impls import Unavailable


@entity()
class User:
    id: int = PrimaryKey()
    full_name: str
    email: str = Property(unique=True)
    password: str
    bio: str = Property(type=t.text, default="")
    age: int
    created_at: datetime


def describe() -> str:
    """Version, active ``_diff`` backend and where the package was imported from."""
    backend = orm.diff_backend()
    wanted = "python" if os.environ.get("ORM_PURE_PYTHON") == "1" else "cython"
    if backend != wanted:
        raise Unavailable(
            f"orm.diff_backend() is {backend!r}, this column needs {wanted!r}"
            + (" (compiled _diff extension not built?)" if wanted == "cython" else "")
        )
    version = getattr(orm, "__version__", "?")
    return f"orm {version}, _diff backend {backend!r}, from {os.path.dirname(orm.__file__ or '')}"


@contextmanager
def _entity_manager(ctx: Context) -> Iterator[Any]:
    """A forked EntityManager on the cell's database; discovery and connection stay untimed.
    On PostgreSQL (``compare.py --db postgresql``) the ORM connects to the run's server and
    schema as a user configures it: ``client_url`` and ``schema``."""
    if ctx.database == "postgresql":
        from _pg import cell_target

        url, schema = cell_target()
        instance = ORM.init(client_url=url, schema=schema, entities=[User])
    else:
        instance = ORM.init(db_name=ctx.db_path, entities=[User])
    try:
        yield instance.em.fork()
    finally:
        instance.close()


def _load_by_id(em: Any) -> list[User]:
    return list(em.find(User, {}, order_by={"id": "asc"}))


def w1_insert(ctx: Context) -> Observations:
    """``persist`` N new entities, one ``flush``."""
    n = ctx.n
    with _entity_manager(ctx) as em:
        with ctx.timed():
            for i in range(n):
                em.persist(
                    User(
                        full_name=f"User {i}",
                        email=f"user{i}@example.com",
                        password="secret",
                        age=i % 90,
                        created_at=BASE_TIME + timedelta(seconds=i),
                    )
                )
            em.flush()
    return {}


def w2_load(ctx: Context) -> Observations:
    """``em.find(User, {})``: hydrate N entities, snapshot them into the identity map."""
    with _entity_manager(ctx) as em:
        with ctx.timed():
            users = em.find(User, {})
        return load_observations(u.age for u in users)


def w3_update(ctx: Context) -> Observations:
    """Flush after changing ``age`` of every 10th loaded entity (the load is untimed)."""
    with _entity_manager(ctx) as em:
        users = _load_by_id(em)
        changed = every_tenth(users)
        for user in changed:
            user.age += 1
        with ctx.timed():
            em.flush()
        return {"updated": len(changed)}


def w4_noop_flush(ctx: Context) -> Observations:
    """Flush with N entities managed and none changed: the pure cost of change detection."""
    with _entity_manager(ctx) as em:
        users = _load_by_id(em)
        with ctx.timed():
            em.flush()
        return {"loaded": len(users)}


def w5_lookup(ctx: Context) -> Observations:
    """10,000 ``em.find_one(User, pk)`` answered from the identity map."""
    with _entity_manager(ctx) as em:
        users = _load_by_id(em)
        pks = lookup_pks(ctx.n)
        found = []
        with ctx.timed():
            for pk in pks:
                found.append(em.find_one(User, pk))
        del users
        return {
            "found": sum(1 for u in found if u is not None),
            "age_sum": sum(u.age for u in found if u is not None),
        }


def w6_delete(ctx: Context) -> Observations:
    """Flush after ``em.remove`` of every 10th loaded entity (load and marking untimed)."""
    with _entity_manager(ctx) as em:
        users = _load_by_id(em)
        removed = every_tenth(users)
        for user in removed:
            em.remove(user)
        with ctx.timed():
            em.flush()
        return {"removed": len(removed)}


def mem_load(ctx: Context) -> Observations:
    """Memory held by N managed entities: instances, identity map and snapshots."""
    with _entity_manager(ctx) as em:
        with ctx.measure_memory():
            users = em.find(User, {})
        return load_observations(u.age for u in users)


STARTUP_SCRIPT = """
import sys
from orm import ORM, PrimaryKey, entity

@entity()
class Note:
    id: int = PrimaryKey()
    name: str
    age: int

orm = ORM.init(db_name=sys.argv[1], entities=[Note])
orm.schema.create_schema()
em = orm.em.fork()
em.persist(Note(name="Ann", age=30))
em.flush()
note = em.find_one(Note, {"name": "Ann"})
assert note.age == 30
orm.close()
"""


def _orm_path() -> list[str]:
    """The folder this column's ``orm`` was imported from, for the start-up processes."""
    return [os.path.dirname(os.path.dirname(orm.__file__ or ""))]


def start_script(ctx: Context) -> Observations:
    """The tiny script as a whole process (see ``_common.time_startup_script``)."""
    return time_startup_script(ctx, STARTUP_SCRIPT, _orm_path())


def import_time(ctx: Context) -> Observations:
    """``import orm`` in a fresh process, minus the interpreter's own start."""
    return time_import(ctx, "import orm", _orm_path())


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

# the relation workloads W7-W9 (see rel_orm.py)
from _impls.rel_orm import WORKLOADS as _RELATION_WORKLOADS  # noqa: E402

WORKLOADS.update(_RELATION_WORKLOADS)

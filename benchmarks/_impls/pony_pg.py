"""Pony ORM on PostgreSQL (its ``postgres`` provider, on psycopg2): ``db_session`` as its
identity map and unit of work, ``commit()`` as the flush, as in ``pony_impl``.

Pony's PostgreSQL provider needs psycopg2 (``pip install psycopg2-binary``, in the ``bench``
extra): without it the column reads "unavailable (psycopg2 not installed)". The run's schema
is the connection's ``search_path`` (a start-up option, which Pony's ``DISCARD ALL`` between
sessions keeps).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pony
from pony.orm import Database, Optional, PrimaryKey, Required, commit, db_session

from _common import (
    BASE_TIME,
    Context,
    Observations,
    every_tenth,
    load_observations,
    lookup_pks,
)
from _impls import DriverMissing
from _pg import cell_target

db = Database()


class User(db.Entity):  # type: ignore[name-defined]
    _table_ = "user"
    id = PrimaryKey(int, auto=True, size=64)
    full_name = Required(str)
    email = Required(str, unique=True)
    password = Required(str)
    bio = Optional(str, default="")
    age = Required(int)
    created_at = Required(datetime)


def describe() -> str:
    """Library line for the report header; refuses to run without psycopg2."""
    try:
        import psycopg2
    except ImportError as exc:
        raise DriverMissing(
            f"Pony's postgres provider needs psycopg2 ({exc}): pip install psycopg2-binary"
        ) from exc
    return f"Pony {pony.__version__} (postgres provider, psycopg2 {psycopg2.__version__.split()[0]})"


_bound = False


@contextmanager
def _session(ctx: Context) -> Iterator[None]:
    """Map onto the existing table (no DDL) once per process, then open a ``db_session``."""
    global _bound
    if not _bound:
        from psycopg.conninfo import conninfo_to_dict

        url, schema = cell_target()
        params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
        params["options"] = f"-c search_path={schema}"
        db.bind(provider="postgres", **params)
        db.generate_mapping(create_tables=False)
        _bound = True
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


WORKLOADS = {
    "W1": w1_insert,
    "W2": w2_load,
    "W3": w3_update,
    "W4": w4_noop_flush,
    "W5": w5_lookup,
    "W6": w6_delete,
}

# the relation workloads W7-W9 (see rel_pony.py)
from _impls.rel_pony import WORKLOADS as _RELATION_WORKLOADS  # noqa: E402

WORKLOADS.update(_RELATION_WORKLOADS)

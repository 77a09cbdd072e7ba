"""SQLAlchemy ORM: declarative mapping, ``Session``, ``commit()`` as the flush.

Choices that keep the comparison like-for-like, and why:

- ``expire_on_commit=False``: this project's ``flush()`` keeps loaded state; SQLAlchemy's
  default would additionally expire all N instances at commit, a cost (and later reloads) the
  other columns do not pay.
- ``DATETIME(truncate_microseconds=True)``: stores ``'YYYY-MM-DD HH:MM:SS'`` like every other
  column (SQLAlchemy's default format appends ``.000000``), and still parses with the fast default
  path, not a regular expression.
- ``configure_mappers()`` and opening the connection happen before the timed block: one-off
  start-up, like ``ORM.init``'s discovery for this project.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy
from sqlalchemy import Text, create_engine, event, select
from sqlalchemy.dialects.sqlite import DATETIME
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, configure_mappers, mapped_column

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


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str]
    email: Mapped[str] = mapped_column(unique=True)
    password: Mapped[str]
    bio: Mapped[str] = mapped_column(Text, default="")
    age: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(DATETIME(truncate_microseconds=True))


def describe() -> str:
    """Library line for the report header."""
    return f"SQLAlchemy {sqlalchemy.__version__} (ORM, Session)"


@contextmanager
def _session(ctx: Context, foreign_keys: bool = False) -> Iterator[Session]:
    """`foreign_keys`: SQLite enforcing the schema's foreign keys on each connection, with
    SQLAlchemy's documented connect-event recipe (the relation workloads)."""
    engine = create_engine(f"sqlite:///{ctx.db_path}")
    if foreign_keys:
        event.listen(
            engine, "connect", lambda dbapi, _record: dbapi.execute("pragma foreign_keys = on")
        )
    configure_mappers()
    try:
        with Session(engine, expire_on_commit=False) as session:
            session.connection()  # connect and begin now, not inside the timed block
            yield session
    finally:
        engine.dispose()


def _load_by_id(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)).all())


def w1_insert(ctx: Context) -> Observations:
    """``session.add`` N new instances, one ``commit``."""
    n = ctx.n
    with _session(ctx) as session:
        with ctx.timed():
            for i in range(n):
                session.add(
                    User(
                        full_name=f"User {i}",
                        email=f"user{i}@example.com",
                        password="secret",
                        age=i % 90,
                        created_at=BASE_TIME + timedelta(seconds=i),
                    )
                )
            session.commit()
    return {}


def w2_load(ctx: Context) -> Observations:
    """``session.scalars(select(User)).all()``."""
    with _session(ctx) as session:
        with ctx.timed():
            users = session.scalars(select(User)).all()
        return load_observations(u.age for u in users)


def w3_update(ctx: Context) -> Observations:
    """``commit`` after changing ``age`` of every 10th loaded instance."""
    with _session(ctx) as session:
        users = _load_by_id(session)
        changed = every_tenth(users)
        for user in changed:
            user.age += 1
        with ctx.timed():
            session.commit()
        return {"updated": len(changed)}


def w4_noop_flush(ctx: Context) -> Observations:
    """``commit`` with N instances loaded and none changed."""
    with _session(ctx) as session:
        users = _load_by_id(session)
        with ctx.timed():
            session.commit()
        return {"loaded": len(users)}


def w5_lookup(ctx: Context) -> Observations:
    """10,000 ``session.get(User, pk)`` answered from the identity map."""
    with _session(ctx) as session:
        users = _load_by_id(session)
        pks = lookup_pks(ctx.n)
        found = []
        with ctx.timed():
            for pk in pks:
                found.append(session.get(User, pk))
        del users
        return {
            "found": sum(1 for u in found if u is not None),
            "age_sum": sum(u.age for u in found if u is not None),
        }


def w6_delete(ctx: Context) -> Observations:
    """``commit`` after ``session.delete`` of every 10th loaded instance (marking untimed)."""
    with _session(ctx) as session:
        users = _load_by_id(session)
        removed = every_tenth(users)
        for user in removed:
            session.delete(user)
        with ctx.timed():
            session.commit()
        return {"removed": len(removed)}


def mem_load(ctx: Context) -> Observations:
    """Memory held by N instances in the session's identity map."""
    with _session(ctx) as session:
        with ctx.measure_memory():
            users = session.scalars(select(User)).all()
        return load_observations(u.age for u in users)


STARTUP_SCRIPT = """
import sys
from sqlalchemy import create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

class Base(DeclarativeBase):
    pass

class Note(Base):
    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    age: Mapped[int]

engine = create_engine(f"sqlite:///{sys.argv[1]}")
Base.metadata.create_all(engine)
with Session(engine) as session:
    session.add(Note(name="Ann", age=30))
    session.commit()
    note = session.scalars(select(Note).where(Note.name == "Ann")).first()
    assert note.age == 30
engine.dispose()
"""


def start_script(ctx: Context) -> Observations:
    """The tiny script as a whole process (see ``_common.time_startup_script``)."""
    return time_startup_script(ctx, STARTUP_SCRIPT)


def import_time(ctx: Context) -> Observations:
    """``import sqlalchemy.orm`` in a fresh process, minus the interpreter's own start."""
    return time_import(ctx, "import sqlalchemy.orm")


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

# the relation workloads W7-W9 (see rel_sqlalchemy.py)
from _impls.rel_sqlalchemy import WORKLOADS as _RELATION_WORKLOADS  # noqa: E402

WORKLOADS.update(_RELATION_WORKLOADS)

"""SQLAlchemy ORM on PostgreSQL through psycopg 3 (``postgresql+psycopg://``).

The same choices as on SQLite (``expire_on_commit=False``, mappers configured and the
connection opened before the timed block), with SQLAlchemy's PostgreSQL defaults otherwise: its
"insertmanyvalues" batches of ``insert ... values ... returning id`` for W1, ``executemany``
for the updates and deletes of a commit. The run's schema is the connection's ``search_path``,
as for every column.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy
from sqlalchemy import BigInteger, Identity, Text, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, configure_mappers, mapped_column

from _common import (
    BASE_TIME,
    Context,
    Observations,
    every_tenth,
    load_observations,
    lookup_pks,
)
from _pg import cell_target


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    full_name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text, unique=True)
    password: Mapped[str] = mapped_column(Text)
    bio: Mapped[str] = mapped_column(Text, default="")
    age: Mapped[int]
    created_at: Mapped[datetime]


def describe() -> str:
    """Library line for the report header."""
    return f"SQLAlchemy {sqlalchemy.__version__} (ORM, Session, postgresql+psycopg)"


def _engine_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// URL: {scheme}://")
    return f"postgresql+psycopg://{rest}"


@contextmanager
def _session(ctx: Context) -> Iterator[Session]:
    url, schema = cell_target()
    engine = create_engine(
        _engine_url(url), connect_args={"options": f"-c search_path={schema}"}
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


WORKLOADS = {
    "W1": w1_insert,
    "W2": w2_load,
    "W3": w3_update,
    "W4": w4_noop_flush,
    "W5": w5_lookup,
    "W6": w6_delete,
}

# the relation workloads W7-W9 (see rel_sqlalchemy.py)
from _impls.rel_sqlalchemy import WORKLOADS as _RELATION_WORKLOADS  # noqa: E402

WORKLOADS.update(_RELATION_WORKLOADS)

"""Peewee on PostgreSQL: ``PostgresqlDatabase`` (psycopg2), in the two styles of the SQLite
columns (see ``peewee_impl``): ``peewee`` per row (``save()``, ``get_by_id``,
``delete_instance()`` inside one ``atomic()``), ``peewee_bulk`` with ``insert_many`` (which
returns the keys with ``returning id`` on PostgreSQL), ``bulk_update`` and one
``delete().where(id.in_(...))`` per 500 keys.

Peewee's PostgreSQL driver is psycopg2 (``pip install psycopg2-binary``, in the ``bench``
extra): without it the column reads "unavailable (psycopg2 not installed)".
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import peewee
from peewee import (
    BigAutoField,
    DateTimeField,
    IntegerField,
    Model,
    PostgresqlDatabase,
    TextField,
    chunked,
)

from _common import (
    BASE_TIME,
    Context,
    Observations,
    chunks,
    every_tenth,
    load_observations,
    lookup_pks,
)
from _impls import DriverMissing
from _pg import cell_target

#: rows per insert_many / bulk_update statement (PostgreSQL has no SQLite variable limit)
BATCH = 1000

db = PostgresqlDatabase(None)  # bound per cell in _database()


class User(Model):
    id = BigAutoField()
    full_name = TextField()
    email = TextField(unique=True)
    password = TextField()
    bio = TextField(default="")
    age = IntegerField()
    created_at = DateTimeField()

    class Meta:
        database = db
        table_name = "user"
        only_save_dirty = True


def describe() -> str:
    """Library line for the report header; refuses to run without psycopg2."""
    try:
        import psycopg2
    except ImportError as exc:
        raise DriverMissing(
            f"Peewee's PostgresqlDatabase needs psycopg2 ({exc}): pip install psycopg2-binary"
        ) from exc
    return f"peewee {peewee.__version__} (PostgresqlDatabase, psycopg2 {psycopg2.__version__.split()[0]})"


def _connect_params(url: str, schema: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    params["options"] = f"-c search_path={schema}"
    return params


@contextmanager
def _database(ctx: Context) -> Iterator[PostgresqlDatabase]:
    """Bind the model to the run's server and schema and connect."""
    url, schema = cell_target()
    params = _connect_params(url, schema)
    db.init(params.pop("dbname", None), **params)
    db.connect()
    try:
        yield db
    finally:
        db.close()


def _load_by_id() -> list[User]:
    return list(User.select().order_by(User.id))


def w1_insert(ctx: Context) -> Observations:
    """``User(...).save()`` per row inside one ``atomic()``."""
    n = ctx.n
    with _database(ctx):
        with ctx.timed():
            with db.atomic():
                for i in range(n):
                    User(
                        full_name=f"User {i}",
                        email=f"user{i}@example.com",
                        password="secret",
                        age=i % 90,
                        created_at=BASE_TIME + timedelta(seconds=i),
                    ).save()
    return {}


def w1_insert_many(ctx: Context) -> Observations:
    """Build N tuples, ``insert_many`` of 1,000 rows a statement inside one ``atomic()``."""
    n = ctx.n
    fields = [User.full_name, User.email, User.password, User.bio, User.age, User.created_at]
    with _database(ctx):
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
            with db.atomic():
                for batch in chunked(rows, BATCH):
                    User.insert_many(batch, fields=fields).execute()
    return {}


def w2_load(ctx: Context) -> Observations:
    """``list(User.select())``: N model instances."""
    with _database(ctx):
        with ctx.timed():
            users = list(User.select())
        return load_observations(u.age for u in users)


def w3_update(ctx: Context) -> Observations:
    """``save()`` each modified instance (only the dirty ``age``) inside one ``atomic()``."""
    with _database(ctx):
        users = _load_by_id()
        changed = every_tenth(users)
        for user in changed:
            user.age += 1
        with ctx.timed():
            with db.atomic():
                for user in changed:
                    user.save()
        return {"updated": len(changed)}


def w3_bulk_update(ctx: Context) -> Observations:
    """``User.bulk_update(changed, fields=[User.age])`` inside one ``atomic()``."""
    with _database(ctx):
        users = _load_by_id()
        changed = list(every_tenth(users))
        for user in changed:
            user.age += 1
        with ctx.timed():
            with db.atomic():
                User.bulk_update(changed, fields=[User.age], batch_size=BATCH)
        return {"updated": len(changed)}


def w5_lookup(ctx: Context) -> Observations:
    """10,000 ``User.get_by_id(pk)`` (a query each: peewee has no identity map)."""
    with _database(ctx):
        users = _load_by_id()
        pks = lookup_pks(ctx.n)
        found = []
        with ctx.timed():
            for pk in pks:
                found.append(User.get_by_id(pk))
        del users
        return {"found": len(found), "age_sum": sum(u.age for u in found)}


def w6_delete(ctx: Context) -> Observations:
    """``delete_instance()`` of every 10th loaded instance inside one ``atomic()``."""
    with _database(ctx):
        users = _load_by_id()
        removed = every_tenth(users)
        with ctx.timed():
            with db.atomic():
                for user in removed:
                    user.delete_instance()
        return {"removed": len(removed)}


def w6_bulk_delete(ctx: Context) -> Observations:
    """``User.delete().where(User.id.in_(...))`` of 500 keys a statement inside one
    ``atomic()``."""
    with _database(ctx):
        ids = [user.id for user in every_tenth(_load_by_id())]
        with ctx.timed():
            with db.atomic():
                for chunk in chunks(ids):
                    User.delete().where(User.id.in_(chunk)).execute()
        return {"removed": len(ids)}


WORKLOADS = {
    "W1": w1_insert,
    "W2": w2_load,
    "W3": w3_update,
    "W5": w5_lookup,
    "W6": w6_delete,
}

BULK_WORKLOADS = {
    "W1": w1_insert_many,
    "W3": w3_bulk_update,
    "W6": w6_bulk_delete,
}

"""Peewee: an active-record ORM, measured in two styles.

Peewee has no Unit of Work and no identity map: a user saves or deletes the instances they
changed, and a lookup by primary key is a query. So:

- ``peewee`` (per row) is the idiomatic model style: ``User(...).save()`` per row for W1,
  ``save()`` of each modified instance (``only_save_dirty`` writes just ``age``) for W3,
  ``delete_instance()`` per row for W6, ``User.get_by_id`` for W5 — each batch inside one
  ``db.atomic()`` so that, like every column, it is one transaction and not N commits.
- ``peewee_bulk`` is the bulk API a performance-minded user reaches for: ``insert_many`` (W1),
  ``bulk_update`` (W3) and ``delete().where(id.in_(...))`` (W6); other workloads are the same as
  the per-row column and are not repeated.

W4 (flush with nothing changed) has no peewee equivalent: nothing tracks the loaded instances.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import peewee
from peewee import (
    AutoField,
    DateTimeField,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
    chunked,
)

from _common import (
    BASE_TIME,
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

db = SqliteDatabase(None)  # bound per cell in _database()


class User(Model):
    id = AutoField()
    full_name = TextField()
    email = TextField(unique=True)
    password = TextField()
    bio = TextField(default="")
    age = IntegerField()
    # sqlite3's default adapter (Python 3.11) stores a datetime as isoformat(" ").
    created_at = DateTimeField()

    class Meta:
        database = db
        table_name = "user"
        only_save_dirty = True


def describe() -> str:
    """Library line for the report header."""
    return f"peewee {peewee.__version__}"


@contextmanager
def _database(ctx: Context) -> Iterator[SqliteDatabase]:
    """Bind the model to the cell's file with peewee's defaults (no pragmas) and connect."""
    db.init(ctx.db_path)
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
    """Build N tuples, ``insert_many`` in chunks inside one ``atomic()``."""
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
                for batch in chunked(rows, batch_rows(len(fields))):
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
    """``User.bulk_update(changed, fields=[User.age])`` in batches inside one ``atomic()``."""
    with _database(ctx):
        users = _load_by_id()
        changed = list(every_tenth(users))
        for user in changed:
            user.age += 1
        with ctx.timed():
            with db.atomic():
                # CASE id WHEN ? THEN ? ... plus id IN (...): 3 variables per row
                User.bulk_update(changed, fields=[User.age], batch_size=batch_rows(3))
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
    """Chunked ``User.delete().where(User.id.in_(...))`` inside one ``atomic()``."""
    with _database(ctx):
        ids = [user.id for user in every_tenth(_load_by_id())]
        with ctx.timed():
            with db.atomic():
                for chunk in chunks(ids):
                    User.delete().where(User.id.in_(chunk)).execute()
        return {"removed": len(ids)}


def mem_load(ctx: Context) -> Observations:
    """Memory held by N model instances."""
    with _database(ctx):
        with ctx.measure_memory():
            users = list(User.select())
        return load_observations(u.age for u in users)


STARTUP_SCRIPT = """
import sys
from peewee import IntegerField, Model, SqliteDatabase, TextField

db = SqliteDatabase(sys.argv[1])

class Note(Model):
    name = TextField()
    age = IntegerField()

    class Meta:
        database = db

db.connect()
db.create_tables([Note])
with db.atomic():
    Note.create(name="Ann", age=30)
note = Note.get(Note.name == "Ann")
assert note.age == 30
db.close()
"""


def start_script(ctx: Context) -> Observations:
    """The tiny script as a whole process (see ``_common.time_startup_script``)."""
    return time_startup_script(ctx, STARTUP_SCRIPT)


def import_time(ctx: Context) -> Observations:
    """``import peewee`` in a fresh process, minus the interpreter's own start."""
    return time_import(ctx, "import peewee")


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

BULK_WORKLOADS = {
    "W1": w1_insert_many,
    "W3": w3_bulk_update,
    "W6": w6_bulk_delete,
}

"""MikroORM's "First Entity" guide (its `server.ts`), step by step, in Python.

Run it with `python examples/first_entity.py [path/to/sqlite.db] [--quiet]`. Every step prints
what the guide prints; the SQL the ORM runs is logged as MikroORM logs it (`--quiet` hides
the SQL). A database URL in place of the path runs it on that database instead, e.g.
`python examples/first_entity.py postgresql://postgres@localhost:5432/app` (PostgreSQL needs
`pip install '.[postgresql]'` from the checkout; the table `user` is dropped and created in a schema of the
example's own, `first_entity` (unless the URL's `options` set a `search_path`), so no table
of another application is touched).
"""

from __future__ import annotations

import sys
from pathlib import Path

from orm import (
    ORM,
    PrimaryKey,
    Property,
    TableNotFoundException,
    ValidationError,
    define_config,
    entity,
    t,
    wrap,
)


@entity()
class User:
    id: int = PrimaryKey()
    full_name: str
    email: str = Property(unique=True)
    password: str = Property(hidden=True)
    bio: str = Property(type=t.text, default="")


def step(title: str) -> None:
    print(f"\n== {title}")


def main(db_name: str, debug: bool = True) -> None:
    """`db_name` is an SQLite file, or a database URL (`postgresql://...`, `sqlite:///...`)."""
    if "://" not in db_name:
        where = {"db_name": db_name}
    elif "search_path" in db_name:  # the URL's options name the schema
        where = {"client_url": db_name}
    else:
        where = {"client_url": db_name, "schema": "first_entity"}
    config = define_config(**where, entities=[User], debug=debug)

    step("initialize the ORM")
    orm = ORM.init(config)

    step("the global EntityManager refuses context-specific work")
    user = User(full_name="Foo Bar", email="foo@bar.com", password="123456")
    try:
        orm.em.persist(user).flush()
    except ValidationError as exc:
        print(f"ValidationError: {exc}")

    step("before the schema exists, a query fails with TableNotFoundException")
    orm.schema.drop_schema()
    try:
        orm.em.fork().find_one(User, {"email": "foo@bar.com"})
    except TableNotFoundException as exc:
        print(f"TableNotFoundException: {exc}")

    step("recreate the database schema")
    orm.schema.refresh_database()

    step("fork first to have a separate context, then persist and flush")
    em = orm.em.fork()
    em.persist(user).flush()
    print("user id is:", user.id)

    step("the identity map: a lookup by PK returns the same instance, without a query")
    my_user = em.find_one(User, user.id)
    assert my_user is not None  # find_one may return None: type checkers want the check
    print("users are the same?", user is my_user)

    step("change the user and flush: only the changed column is updated")
    my_user.bio = "..."
    em.flush()

    step("a new fork has its own identity map")
    em2 = em.fork()
    my_user2 = em2.find_one_or_fail(User, user.id)
    print("users are the same?", user is my_user2)

    step("refresh discards unflushed changes")
    my_user2.bio = "changed but not flushed"
    em2.refresh(my_user2)
    print("bio after refresh:", repr(my_user2.bio))

    step("references: only the PK is known until initialized")
    em3 = orm.em.fork()
    user_ref = em3.get_reference(User, user.id)
    print("userRef is initialized:", wrap(user_ref).is_initialized())
    try:
        print(user_ref.email)
    except ValidationError as exc:
        print(f"ValidationError: {exc}")
    wrap(user_ref).init()
    print("userRef is initialized:", wrap(user_ref).is_initialized())
    print("userRef email:", user_ref.email)

    step("serialization leaves hidden properties out")
    print(wrap(user_ref).to_object())

    step("remove the user")
    em3.remove(user_ref).flush()
    print("users left:", orm.em.fork().count(User))

    orm.close()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    path = args[0] if args else str(Path.cwd() / "sqlite.db")
    main(path, debug="--quiet" not in sys.argv)

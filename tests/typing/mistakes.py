"""Deliberate mistakes that mypy --strict and pyright must report (tests/test_typing.py).

Each line marked `# expect: KIND ["NAME"]` must get an error of that kind (naming NAME, when
given) from both checkers, and no other line may get any. Not run by pytest (nor is it meant to run at all).
"""

from __future__ import annotations

import orm
from orm import EntityManager, PrimaryKey, Property, entity, wrap


@entity()
class User:
    id: int = PrimaryKey()
    full_name: str
    email: str = Property(unique=True)
    password: str = Property(hidden=True)
    bio: str = Property(default="")
    nickname: str | None = None


User(full_name=42, email="foo@bar.com", password="123456")  # expect: wrong-type "full_name"
User(email="foo@bar.com", password="123456")  # expect: missing-argument "full_name"
User(full_name="Foo Bar", password="123456")  # expect: missing-argument "email"
User(full_name="Foo Bar", email="foo@bar.com", password="x", age=3)  # expect: unknown-keyword "age"
User("Foo Bar", "foo@bar.com", "123456")  # expect: positional
User(full_name="Foo Bar", email="foo@bar.com", password="x", nickname=3)  # expect: wrong-type "nickname"
User(full_name="Foo Bar", email="foo@bar.com", password="x", bio=None)  # expect: wrong-type "bio"


def use(em: EntityManager, user: User) -> None:
    print(em.find_one(User, 1).email)  # expect: maybe-none "email"
    found = em.find_one(User, {"email": "foo@bar.com"})
    found.bio = "..."  # expect: maybe-none "bio"
    user.email = None  # expect: wrong-assignment
    name: int = em.find_one_or_fail(User, 1).full_name  # expect: wrong-assignment
    users = em.find(User)
    emails: list[str] = users  # expect: wrong-assignment
    em.get_reference(User, 1).nope  # expect: unknown-attribute "nope"
    em.create(User, {"full_name": "x"}).age  # expect: unknown-attribute "age"
    total: str = em.transactional(lambda tx: tx.count(User))  # expect: wrong-assignment
    wrap(user).init().missing  # expect: unknown-attribute "missing"
    # public names are imported on first use, but only the real ones exist for a checker
    orm.EntityManagr  # expect: unknown-name "EntityManagr"

"""Entities shared by the core tests (module level, so annotations resolve as in user code)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time
from decimal import Decimal

from orm import BaseEntity, PrimaryKey, Property, entity, t


@entity()
class User:
    id: int = PrimaryKey()
    full_name: str
    email: str = Property(unique=True)
    password: str = Property(hidden=True)
    bio: str = Property(type=t.text, default="")
    age: int = 0
    nickname: str | None = None
    created_at: datetime = Property(default_factory=lambda: datetime(2024, 1, 2, 3, 4, 5))


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    S = 1
    L = 3


@entity()
class Everything:
    """One property of every mapped type, to prove the round trip of each."""

    id: int = PrimaryKey()
    i: int = 0
    s: str = ""
    f: float = 0.0
    b: bool = False
    raw: bytes = b""
    dec: Decimal = Property(precision=10, scale=2, default=Decimal("0"))
    dt: datetime | None = None
    d: date | None = None
    tm: time | None = None
    u: uuid.UUID | None = None
    doc: dict = Property(default_factory=dict)
    items: list = Property(default_factory=list)
    color: Color = Color.RED
    size: Size = Size.S
    note: str | None = Property(type="text", default=None)


@entity()
class Book(BaseEntity):
    uuid: uuid.UUID = PrimaryKey(type=t.uuid, default_factory=uuid.uuid4)
    title: str
    price: Decimal = Property(column_type="decimal(10,2)", default=Decimal("0"))


@entity()
class Article:
    id: int = PrimaryKey()
    title: str
    version: int = Property(version=True)


@entity()
class Tag:
    name: str = PrimaryKey()
    label: str = ""


@entity()
class Stamped:
    id: int = PrimaryKey()
    name: str
    created: str = Property(on_create=lambda e: f"created:{e.name}")
    updated: str | None = Property(nullable=True, on_update=lambda e: f"updated:{e.name}")


ALL = [User, Everything, Book, Article, Tag, Stamped]

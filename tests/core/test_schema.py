"""SchemaGenerator on SQLite: create, drop, refresh, ensure, and update by diffing."""

from __future__ import annotations

import pytest

from orm import ORM, PrimaryKey, Property, TableExistsException, entity
from tests.core.models import User


def tables(o):
    rows = o.connection.raw.execute(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
    ).fetchall()
    return sorted(r[0] for r in rows)


def columns(o, table):
    return [
        (r[1], r[2].lower(), bool(r[3]))
        for r in o.connection.raw.execute(f"pragma table_info({table})").fetchall()
    ]


def indexes(o, table):
    return sorted(
        r[1]
        for r in o.connection.raw.execute(f"pragma index_list({table})").fetchall()
        if r[3] == "c"
    )


def test_create_sql_matches_mikro_orm_shape():
    with ORM.init(db_name=":memory:", entities=[User]) as o:
        assert o.schema.get_create_schema_sql() == (
            "create table `user` (`id` integer not null primary key autoincrement, "
            "`full_name` text not null, `email` text not null, `password` text not null, "
            "`bio` text not null default '', `age` integer not null default 0, "
            "`nickname` text null, `created_at` datetime not null);\n"
            "create unique index `user_email_unique` on `user` (`email`);\n"
        )


def test_create_drop_refresh_ensure(db_path):
    with ORM.init(db_name=db_path, entities=[User]) as o:
        assert o.schema.ensure_database() is True
        assert tables(o) == ["user"]
        assert o.schema.ensure_database() is False
        with pytest.raises(TableExistsException, match="already exists"):
            o.schema.create_schema()
        em = o.em.fork()
        em.persist(User(full_name="a", email="a@x", password="p")).flush()
        o.schema.refresh_database()
        assert em.fork().count(User) == 0
        o.schema.drop_schema()
        assert tables(o) == []
        o.schema.drop_schema()  # no error for what does not exist
        assert o.schema.get_drop_schema_sql() == "drop table if exists `user`;\n"


def test_update_schema_is_empty_when_up_to_date(db_path):
    with ORM.init(db_name=db_path, entities=[User]) as o:
        o.schema.create_schema()
        assert o.schema.get_update_schema_sql() == ""
        assert o.schema.update_schema() == []


def test_update_creates_missing_tables(db_path):
    with ORM.init(db_name=db_path, entities=[User]) as o:
        assert o.schema.update_schema()[0].startswith("create table `user`")
        assert tables(o) == ["user"]


def _v1():
    @entity(table_name="item")
    class Item:
        id: int = PrimaryKey()
        name: str
        legacy: str | None = None
        size: int = Property(index=True, default=0)

    return Item


def test_update_adds_columns_and_indexes(db_path):
    with ORM.init(db_name=db_path, entities=[_v1()]) as o:
        o.schema.create_schema()
        o.connection.raw.execute("insert into item (name, size) values ('kept', 3)")

    @entity(table_name="item")
    class Item:
        id: int = PrimaryKey()
        name: str = Property(index=True)
        legacy: str | None = None
        size: int = Property(index=True, default=0)
        note: str | None = None
        rank: int = 7

    with ORM.init(db_name=db_path, entities=[Item]) as o:
        sql = o.schema.get_update_schema_sql()
        assert sql == (
            "alter table `item` add column `note` text null;\n"
            "alter table `item` add column `rank` integer not null default 7;\n"
            "create index `item_name_index` on `item` (`name`);\n"
        )
        o.schema.update_schema()
        assert indexes(o, "item") == ["item_name_index", "item_size_index"]
        assert o.schema.get_update_schema_sql() == ""
        got = o.em.fork().find_one(Item, 1)
        assert (got.name, got.size, got.note, got.rank) == ("kept", 3, None, 7)


def test_update_drops_removed_index(db_path):
    with ORM.init(db_name=db_path, entities=[_v1()]) as o:
        o.schema.create_schema()

    @entity(table_name="item")
    class Item:
        id: int = PrimaryKey()
        name: str
        legacy: str | None = None
        size: int = 0

    with ORM.init(db_name=db_path, entities=[Item]) as o:
        assert o.schema.get_update_schema_sql() == "drop index `item_size_index`;\n"
        o.schema.update_schema()
        assert indexes(o, "item") == []


def test_update_rebuilds_table_for_changes_sqlite_cannot_alter(db_path):
    with ORM.init(db_name=db_path, entities=[_v1()]) as o:
        o.schema.create_schema()
        o.connection.raw.executemany(
            "insert into item (name, legacy, size) values (?, ?, ?)",
            [("a", "x", 1), ("b", None, 2)],
        )

    @entity(table_name="item")
    class Item:
        id: int = PrimaryKey()
        name: str | None = None  # NOT NULL -> nullable
        size: int = Property(index=True, default=0)
        code: str | None = Property(unique=True, default=None)  # unique: no ADD COLUMN
        # `legacy` dropped

    with ORM.init(db_name=db_path, entities=[Item]) as o:
        statements = o.schema.update_schema()
        assert statements[0].startswith("create table `_orm_new_item`")
        assert "insert into `_orm_new_item` (`id`, `name`, `size`) select" in statements[1]
        assert columns(o, "item") == [
            ("id", "integer", True), ("name", "text", False), ("size", "integer", True),
            ("code", "text", False),
        ]  # fmt: skip
        assert indexes(o, "item") == ["item_code_unique", "item_size_index"]
        data = o.connection.raw.execute("select id, name, size, code from item").fetchall()
        assert data == [(1, "a", 1, None), (2, "b", 2, None)]
        assert o.schema.get_update_schema_sql() == ""


def test_failed_rebuild_changes_nothing(db_path):
    with ORM.init(db_name=db_path, entities=[_v1()]) as o:
        o.schema.create_schema()
        o.connection.raw.execute("insert into item (name) values ('a')")

    @entity(table_name="item")
    class Item:
        id: int = PrimaryKey()
        name: str
        size: int = Property(index=True, default=0)
        required: str  # NOT NULL without default: existing rows cannot get a value

    with ORM.init(db_name=db_path, entities=[Item]) as o:
        from orm import NotNullConstraintViolationException

        with pytest.raises(NotNullConstraintViolationException):
            o.schema.update_schema()
        assert [c[0] for c in columns(o, "item")] == ["id", "name", "legacy", "size"]
        assert o.connection.raw.execute("select name from item").fetchall() == [("a",)]

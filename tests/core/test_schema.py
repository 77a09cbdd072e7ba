"""SchemaGenerator on SQLite: create, drop, refresh, ensure, and update by diffing."""

from __future__ import annotations

import sqlite3

import pytest

from orm import (
    ORM,
    ConnectionException,
    PrimaryKey,
    Property,
    TableExistsException,
    ValidationError,
    entity,
)
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
        with pytest.raises(ValidationError, match=r"Item: required becomes NOT NULL") as info:
            o.schema.update_schema()
        assert "'required' of table 'item' is new and has no value in them for 1 row" in str(
            info.value
        )
        assert "give required a literal default=" in str(info.value)
        assert (info.value.entity, info.value.property) == ("Item", "required")
        assert [c[0] for c in columns(o, "item")] == ["id", "name", "legacy", "size"]
        assert o.connection.raw.execute("select name from item").fetchall() == [("a",)]


# -- a file that is not a database -----------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    ["update_schema", "get_update_schema_sql", "ensure_database", "create_schema",
     "drop_schema", "refresh_database"],
)  # fmt: skip
def test_schema_on_a_file_that_is_not_a_database(tmp_path, monkeypatch, call):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.db").write_text("this is not a database, " * 20)
    with ORM.init(db_name="app.db", entities=[User]) as o:
        with pytest.raises(ConnectionException) as info:
            getattr(o.schema, call)()
    message = str(info.value)
    assert message.startswith(f"Cannot open database 'app.db' ({tmp_path / 'app.db'}): ")
    assert "file is not a database" in message
    assert "point `db_name` at an SQLite database file, or move this file away" in message
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert info.value.sql
    assert (tmp_path / "app.db").read_text() == "this is not a database, " * 20


def test_close_after_sqlite_ended_the_transaction_itself(db_path):
    """close() rolls back an open transaction; one SQLite already ended is no error, and the
    connection is closed either way."""
    o = ORM.init(db_name=db_path, entities=[User])
    o.connection.begin()
    o.connection.raw.execute("rollback")  # as a trigger's RAISE(ROLLBACK) would
    o.close()
    assert not o.connection.is_open


# -- update_schema: changes that rebuild the table, data preserved ----------------------------


def _note_v1():
    @entity(table_name="note")
    class Note:
        id: int = PrimaryKey()
        title: str
        body: str | None = None
        size: int = 0
        code: str | None = None

    return Note


def _seed_notes(db_path):
    with ORM.init(db_name=db_path, entities=[_note_v1()]) as o:
        o.schema.create_schema()
        o.connection.raw.executemany(
            "insert into note (title, body, size, code) values (?, ?, ?, ?)",
            [("a", None, 1, "A"), ("b", "kept", 2, "B"), ("c", None, 3, "C")],
        )


def _rows(o, sql="select id, title, body, size, code from note order by id"):
    return o.connection.raw.execute(sql).fetchall()


def test_update_makes_a_nullable_column_not_null_filling_its_default(db_path):
    _seed_notes(db_path)

    @entity(table_name="note")
    class Note:
        id: int = PrimaryKey()
        title: str
        body: str = "(empty)"  # nullable -> NOT NULL with a default
        size: int = 0
        code: str | None = None

    with ORM.init(db_name=db_path, entities=[Note]) as o:
        statements = o.schema.update_schema()
        assert "coalesce(`body`, '(empty)')" in statements[1]
        assert ("body", "text", True) in columns(o, "note")
        assert _rows(o) == [
            (1, "a", "(empty)", 1, "A"), (2, "b", "kept", 2, "B"), (3, "c", "(empty)", 3, "C"),
        ]  # fmt: skip
        assert o.schema.get_update_schema_sql() == ""
        assert [n.body for n in o.em.fork().find_all(Note, order_by={"id": "asc"})] == [
            "(empty)", "kept", "(empty)",
        ]  # fmt: skip


def test_update_refuses_not_null_when_only_a_default_factory_could_fill_nulls(db_path):
    _seed_notes(db_path)

    @entity(table_name="note")
    class Note:
        id: int = PrimaryKey()
        title: str
        body: str = Property(default_factory=lambda: "generated")
        size: int = 0
        code: str | None = None

    with ORM.init(db_name=db_path, entities=[Note]) as o:
        before = _rows(o)
        for call in (o.schema.update_schema, o.schema.get_update_schema_sql):
            with pytest.raises(ValidationError) as info:
                call()
            message = str(info.value)
            assert message.startswith("Cannot update the schema of Note: body becomes NOT NULL")
            assert "holds NULL in them for 2 rows" in message
            assert "its default_factory runs only for new entities" in message
            assert "Fill those rows first" in message and "nothing was changed" in message
            assert (info.value.entity, info.value.property) == ("Note", "body")
        assert ("body", "text", False) in columns(o, "note")
        assert _rows(o) == before
        # once the user fills them, the same update goes through
        o.connection.raw.execute("update note set body = 'filled' where body is null")
        o.schema.update_schema()
        assert ("body", "text", True) in columns(o, "note")
        assert [r[2] for r in _rows(o)] == ["filled", "kept", "filled"]


def test_update_changes_a_column_type(db_path):
    _seed_notes(db_path)

    @entity(table_name="note")
    class Note:
        id: int = PrimaryKey()
        title: str
        body: str | None = None
        size: float = 0.0  # integer -> real
        code: str | None = None

    with ORM.init(db_name=db_path, entities=[Note]) as o:
        assert o.schema.update_schema()[0].startswith("create table `_orm_new_note`")
        assert columns(o, "note") == [
            ("id", "integer", True), ("title", "text", True), ("body", "text", False),
            ("size", "real", True), ("code", "text", False),
        ]  # fmt: skip
        assert _rows(o, "select id, size, typeof(size) from note order by id") == [
            (1, 1.0, "real"), (2, 2.0, "real"), (3, 3.0, "real"),
        ]  # fmt: skip
        assert o.schema.get_update_schema_sql() == ""
        assert [n.size for n in o.em.fork().find_all(Note, order_by={"id": "asc"})] == [
            1.0, 2.0, 3.0,
        ]  # fmt: skip


def test_update_changes_a_default(db_path):
    _seed_notes(db_path)

    @entity(table_name="note")
    class Note:
        id: int = PrimaryKey()
        title: str
        body: str | None = None
        size: int = 5  # default 0 -> 5
        code: str | None = None

    with ORM.init(db_name=db_path, entities=[Note]) as o:
        before = _rows(o)
        o.schema.update_schema()
        live = o.connection.raw.execute("pragma table_info(note)").fetchall()
        assert [r[4] for r in live if r[1] == "size"] == ["5"]
        assert _rows(o) == before  # existing values are kept, not reset to the new default
        o.connection.raw.execute("insert into note (title) values ('d')")
        assert _rows(o, "select size from note where title = 'd'") == [(5,)]
        assert o.schema.get_update_schema_sql() == ""


def test_update_moves_the_primary_key_to_an_existing_column(db_path):
    _seed_notes(db_path)

    @entity(table_name="note")
    class Note:
        code: str = PrimaryKey()  # was a plain nullable column; `id` is dropped
        title: str
        body: str | None = None
        size: int = 0

    with ORM.init(db_name=db_path, entities=[Note]) as o:
        o.schema.update_schema()
        live = o.connection.raw.execute("pragma table_info(note)").fetchall()
        assert [(r[1], r[5]) for r in live] == [
            ("code", 1), ("title", 0), ("body", 0), ("size", 0),
        ]  # fmt: skip
        assert _rows(o, "select code, title, body, size from note order by code") == [
            ("A", "a", None, 1), ("B", "b", "kept", 2), ("C", "c", None, 3),
        ]  # fmt: skip
        assert o.schema.get_update_schema_sql() == ""
        assert o.em.fork().find_one_or_fail(Note, "B").body == "kept"


def test_update_refuses_a_primary_key_the_data_cannot_fill(db_path):
    _seed_notes(db_path)
    with ORM.init(db_name=db_path, entities=[_note_v1()]) as o:
        o.connection.raw.execute("update note set code = 'A' where id = 2")
        before = _rows(o)

    @entity(table_name="note")
    class Note:
        code: str = PrimaryKey()
        title: str

    with ORM.init(db_name=db_path, entities=[Note]) as o:
        with pytest.raises(ValidationError) as info:
            o.schema.update_schema()
        assert str(info.value).startswith(
            "Cannot update the schema of Note: code becomes the primary key of table 'note', "
            "but 1 row repeats a value another row holds in column 'code'"
        )
        assert "Make the values unique first; nothing was changed." in str(info.value)
        assert (info.value.entity, info.value.property) == ("Note", "code")
        assert _rows(o) == before

    @entity(table_name="note")
    class Note2:
        slug: str = PrimaryKey()  # a new column: the existing rows have no key
        title: str

    with ORM.init(db_name=db_path, entities=[Note2]) as o:
        with pytest.raises(ValidationError, match="Note2: slug becomes NOT NULL") as info:
            o.schema.update_schema()
        assert "'slug' of table 'note' is new and has no value in them for 3 rows" in str(
            info.value
        )
        assert _rows(o) == before

"""Defining entities: the decorator, types, generated __init__, EntitySchema, naming."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal

import pytest

from orm import (
    ORM,
    EntityCaseNamingStrategy,
    EntitySchema,
    MetadataError,
    PrimaryKey,
    Property,
    Type,
    entity,
    t,
    wrap,
)
from orm.types import (
    BooleanType,
    DateTimeType,
    EnumType,
    IntegerType,
    JsonType,
    StringType,
    TextType,
    UuidType,
)
from tests.core.models import Book, Color, Everything, Size, User


def test_generated_init_takes_keywords_and_fills_defaults():
    u = User(full_name="Foo", email="f@x", password="p")
    assert (u.full_name, u.email, u.bio, u.age, u.nickname) == ("Foo", "f@x", "", 0, None)
    assert u.created_at == datetime(2024, 1, 2, 3, 4, 5)
    assert u.id is None


def test_generated_init_names_missing_and_unknown_keywords():
    with pytest.raises(TypeError, match="email"):
        User(full_name="Foo", password="p")
    with pytest.raises(TypeError, match="colour"):
        User(full_name="Foo", email="e", password="p", colour="red")
    with pytest.raises(TypeError):
        User("Foo", "e", "p")  # keyword-only, as MikroORM's data objects


def test_mutable_defaults_are_not_shared():
    a, b = Everything(), Everything()
    a.doc["k"] = 1
    a.items.append(1)
    assert b.doc == {} and b.items == []


def test_default_factory_runs_only_for_new_entities(orm):
    calls = []

    @entity()
    class Counted:
        id: int = PrimaryKey()
        token: str = Property(default_factory=lambda: calls.append(1) or "tok")

    with ORM.init(db_name=":memory:", entities=[Counted]) as o:
        o.schema.create_schema()
        em = o.em.fork()
        em.persist(Counted()).flush()
        assert len(calls) == 1
        loaded = o.em.fork().find_one(Counted, 1)
        assert loaded.token == "tok"
        assert len(calls) == 1, "loading must not call __init__ or default factories"


def test_loading_never_calls_init(em):
    em.persist(User(full_name="A", email="a@x", password="p")).flush()

    class Boom(Exception):
        pass

    original = User.__init__

    def boom(self, **kw):
        raise Boom

    User.__init__ = boom
    try:
        loaded = em.fork().find_one(User, {"email": "a@x"})
        assert loaded.full_name == "A"
    finally:
        User.__init__ = original


def test_types_are_inferred_from_annotations(orm):
    meta = orm.metadata.get(Everything)
    expected = {
        "i": IntegerType, "s": StringType, "b": BooleanType, "dt": DateTimeType,
        "u": UuidType, "doc": JsonType, "items": JsonType, "color": EnumType, "note": TextType,
    }  # fmt: skip
    for name, cls in expected.items():
        assert type(meta.properties[name].type) is cls, name
    assert meta.properties["dt"].nullable and not meta.properties["i"].nullable
    assert meta.properties["color"].type.enum_class is Color


def test_every_type_round_trips(em):
    e = Everything(
        i=7, s="é'x", f=1.5, b=True, raw=b"\x00\xff", dec=Decimal("12.34"),
        dt=datetime(2020, 5, 6, 7, 8, 9, 123456), d=date(2020, 1, 31), tm=time(23, 59, 1),
        u=uuid.UUID("12345678-1234-5678-1234-567812345678"), doc={"a": [1, {"b": None}]},
        items=[1, "two"], color=Color.GREEN, size=Size.L, note=None,
    )  # fmt: skip
    em.persist(e).flush()
    got = em.fork().find_one(Everything, e.id)
    assert got is not e
    for name in ("i", "s", "f", "b", "raw", "dec", "dt", "d", "tm", "u", "doc", "items",
                 "color", "size", "note"):
        assert getattr(got, name) == getattr(e, name), name
    assert type(got.b) is bool and type(got.color) is Color and type(got.size) is Size
    assert isinstance(got.dec, Decimal) and isinstance(got.u, uuid.UUID)


def test_loaded_values_equal_to_snapshot_make_no_update(em, log):
    e = Everything(dec=Decimal("1.50"), dt=datetime(2020, 1, 1), doc={"x": 1})
    em.persist(e).flush()
    fresh = em.fork()
    got = fresh.find_one(Everything, e.id)
    got.dec = Decimal("1.5")  # same number
    got.doc = {"x": 1}  # equal document, new object
    log.clear()
    fresh.flush()
    assert log == []


def test_type_aliases_class_and_string(orm):
    @entity()
    class Aliased:
        id: int = PrimaryKey()
        a: str = Property(type="text")
        b: str = Property(type=TextType)
        c: str = Property(type=t.text)
        d: int = Property(type="bigint")

    with ORM.init(db_name=":memory:", entities=[Aliased]) as o:
        meta = o.metadata.get(Aliased)
        assert {type(meta.properties[n].type) for n in "abc"} == {TextType}
        assert isinstance(meta.properties["d"].type, IntegerType)


class Point(Type):
    """A custom type: stored as "x,y" text, compared as numbers."""

    python_types = (tuple,)

    def to_db(self, value):
        return f"{value[0]},{value[1]}"

    def to_python(self, value):
        x, y = value.split(",")
        return (float(x), float(y))

    def column_type(self, prop, dialect):
        return "varchar(64)"

    def compare(self, a, b):
        return tuple(map(float, a.split(","))) == tuple(map(float, b.split(",")))


def test_custom_type_converts_declares_column_and_compares(log):
    @entity()
    class Place:
        id: int = PrimaryKey()
        at: tuple = Property(type=Point)

    with ORM.init(db_name=":memory:", entities=[Place], debug=True, logger=log.append) as o:
        assert "`at` varchar(64) not null" in o.schema.get_create_schema_sql()
        o.schema.create_schema()
        em = o.em.fork()
        em.native_insert(Place, {"at": (1.0, 2.0)})
        o.connection.raw.execute("update place set at = '1.00,2.0'")
        p = em.find_one(Place, 1)
        assert p.at == (1.0, 2.0)
        p.at = (1.0, 2.0)
        log.clear()
        em.flush()
        assert log == [], "compare() says the values are equal: no UPDATE"
        p.at = (3.0, 4.0)
        em.flush()
        assert o.connection.raw.execute("select at from place").fetchone()[0] == "3.0,4.0"


def test_column_type_is_used_verbatim(orm):
    sql = orm.schema.get_create_schema_sql()
    assert "`price` decimal(10,2) not null" in sql


def test_entity_schema_without_decorators():
    class Plain:
        pass

    schema = EntitySchema(
        name="Plain",
        class_=Plain,
        properties={"id": PrimaryKey(type=int), "title": Property(type=str)},
    )
    bare = EntitySchema(
        name="Bare", properties={"code": PrimaryKey(type=str), "n": Property(type=int)}
    )
    with ORM.init(db_name=":memory:", entities=[schema, bare]) as o:
        o.schema.create_schema()
        em = o.em.fork()
        em.persist(Plain(title="x"))
        em.persist(bare.class_(code="a", n=1))
        em.flush()
        fresh = o.em.fork()
        assert fresh.find_one(Plain, 1).title == "x"
        assert fresh.find_one("Bare", "a").n == 1
        assert o.metadata.get(Plain).table == "plain"


def test_base_entity_exposes_wrap_api(em):
    b = Book(title="Dune", price=Decimal("9.99"))
    em.persist(b).flush()
    assert b.is_managed() and b.is_initialized()
    assert b.get_primary_key() == b.uuid
    assert b.to_object()["title"] == "Dune"
    assert b.to_json()["uuid"] == str(b.uuid)
    assert b.get_entity_manager() is em
    assert wrap(b).to_object() == b.to_object()


def test_underscore_naming_is_the_default(orm):
    @entity()
    class BlogPost:
        id: int = PrimaryKey()
        fullName: str  # noqa: N815 - the camelCase name under test

    with ORM.init(db_name=":memory:", entities=[BlogPost]) as o:
        meta = o.metadata.get(BlogPost)
        assert meta.table == "blog_post"
        assert meta.properties["fullName"].field_name == "full_name"
    assert orm.metadata.get(User).properties["full_name"].field_name == "full_name"


def test_entity_case_naming_strategy():
    @entity()
    class BlogPost:
        id: int = PrimaryKey()
        fullName: str  # noqa: N815

    with ORM.init(
        db_name=":memory:", entities=[BlogPost], naming_strategy=EntityCaseNamingStrategy
    ) as o:
        meta = o.metadata.get(BlogPost)
        assert (meta.table, meta.properties["fullName"].field_name) == ("BlogPost", "fullName")


def test_explicit_table_and_column_names():
    @entity(table_name="people")
    class Person:
        id: int = PrimaryKey()
        name: str = Property(field_name="display_name")

    with ORM.init(db_name=":memory:", entities=[Person]) as o:
        assert "create table `people` (`id` integer not null primary key autoincrement, " \
               "`display_name` text not null)" in o.schema.get_create_schema_sql()


def test_persist_false_is_not_stored():
    @entity()
    class Cached:
        id: int = PrimaryKey()
        name: str
        scratch: int = Property(persist=False, default=0)

    with ORM.init(db_name=":memory:", entities=[Cached]) as o:
        assert "scratch" not in o.schema.get_create_schema_sql()
        o.schema.create_schema()
        em = o.em.fork()
        c = Cached(name="a", scratch=5)
        em.persist(c).flush()
        assert o.em.fork().find_one(Cached, c.id).scratch == 0


# -- bad definitions: MetadataError at init, naming entity and property -------------------


def test_entity_without_primary_key():
    @entity()
    class NoKey:
        name: str

    with pytest.raises(MetadataError, match=r"NoKey has no primary key.*PrimaryKey\(\)"):
        ORM.init(db_name=":memory:", entities=[NoKey])


def test_unresolvable_annotation_names_class_and_property():
    @entity()
    class Broken:
        id: int = PrimaryKey()
        owner: NotDefinedAnywhere  # type: ignore[name-defined] # noqa: F821

    with pytest.raises(MetadataError) as info:
        ORM.init(db_name=":memory:", entities=[Broken])
    assert "Broken.owner" in str(info.value) and "NotDefinedAnywhere" in str(info.value)
    assert (info.value.entity, info.value.property) == ("Broken", "owner")


class Opaque:
    """A class the ORM has no mapping for."""


def test_annotation_without_mapped_type():
    @entity()
    class Holder:
        id: int = PrimaryKey()
        thing: Opaque

    with pytest.raises(MetadataError, match=r"Holder\.thing has no resolvable type"):
        ORM.init(db_name=":memory:", entities=[Holder])


def test_unknown_property_option():
    @entity()
    class Typo:
        id: int = PrimaryKey()
        name: str = Property(nulable=True)

    with pytest.raises(MetadataError, match=r"Typo\.name has unknown option\(s\) nulable"):
        ORM.init(db_name=":memory:", entities=[Typo])


def test_unknown_type_alias():
    @entity()
    class BadAlias:
        id: int = PrimaryKey()
        name: str = Property(type="strng")

    with pytest.raises(MetadataError, match=r"BadAlias\.name: unknown type alias 'strng'"):
        ORM.init(db_name=":memory:", entities=[BadAlias])


def test_not_an_entity_in_entities():
    class NotAnEntity:
        pass

    with pytest.raises(MetadataError, match="NotAnEntity.*not an entity"):
        ORM.init(db_name=":memory:", entities=[NotAnEntity])

"""Defining entities: the decorator, types, generated __init__, EntitySchema, naming."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from orm import (
    DriverException,
    EntityCaseNamingStrategy,
    EntitySchema,
    MetadataError,
    PrimaryKey,
    Property,
    Type,
    ValidationError,
    entity,
    t,
    wrap,
)
from orm.platforms.postgresql_types import (
    PgBooleanType,
    PgDateTimeType,
    PgJsonType,
    PgUuidType,
)
from orm.types import (
    BooleanType,
    CheckedStringType,
    DateTimeType,
    EnumType,
    IntegerType,
    JsonType,
    StringType,
    TextType,
    UuidType,
)
from tests.core.models import Book, Color, Everything, Size, User
from tests.databases import execute, rows, sql


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


def test_default_factory_runs_only_for_new_entities(connect):
    calls = []

    @entity()
    class Counted:
        id: int = PrimaryKey()
        token: str = Property(default_factory=lambda: calls.append(1) or "tok")

    with connect([Counted]) as o:
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


def test_types_are_inferred_from_annotations(orm, database):
    """The type each annotation maps to; on PostgreSQL the built-in types are replaced by
    their native forms at start-up, and strings by a type refusing the NUL character."""
    meta = orm.metadata.get(Everything)
    if database == "sqlite":
        expected = {
            "i": IntegerType, "s": StringType, "b": BooleanType, "dt": DateTimeType,
            "u": UuidType, "doc": JsonType, "items": JsonType, "color": EnumType,
            "note": TextType,
        }  # fmt: skip
    else:
        expected = {
            "i": IntegerType, "s": CheckedStringType, "b": PgBooleanType, "dt": PgDateTimeType,
            "u": PgUuidType, "doc": PgJsonType, "items": PgJsonType, "color": EnumType,
            "note": CheckedStringType,
        }  # fmt: skip
        for name, mapped in (("s", StringType), ("note", TextType)):
            checked = meta.properties[name].type
            assert type(checked.mapped) is mapped and checked.refuse_nul, name
            assert checked.max_length is None, name
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

def test_a_datetime_in_a_date_property_is_refused_not_cut_to_its_day(em, log):
    """A datetime is a date to isinstance; a date column would keep its day and drop its
    time while the entity (and the identity map) kept both."""
    e = Everything(d=datetime(2024, 3, 1, 17, 45))
    em.persist(e)
    with pytest.raises(ValidationError) as info:
        em.flush()
    assert str(info.value).startswith(
        "Invalid value for Everything.d: expected date, got datetime datetime.datetime(2024, "
        "3, 1, 17, 45), which it cannot convert (a date column would drop its time of day "
        "(17:45:00); give a date (value.date()))."
    )
    assert info.value.entity is e and info.value.property == "d"
    assert log == [], "nothing ran"
    e.d = date(2024, 3, 1)
    em.flush()
    assert em.fork().find_one(Everything, e.id).d == date(2024, 3, 1)
    e.d = datetime(2024, 3, 2, 8, 0)  # on update too
    with pytest.raises(ValidationError, match="Everything.d: expected date, got datetime"):
        em.flush()
    with pytest.raises(ValidationError, match=r"Everything.d in a filter: got datetime"):
        em.find(Everything, {"d": datetime(2024, 3, 1, 17, 45)})



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


def test_type_aliases_class_and_string(connect):
    @entity()
    class Aliased:
        id: int = PrimaryKey()
        a: str = Property(type="text")
        b: str = Property(type=TextType)
        c: str = Property(type=t.text)
        d: int = Property(type="bigint")

    with connect([Aliased], create=False) as o:
        meta = o.metadata.get(Aliased)
        types = [meta.properties[n].type for n in "abc"]
        # on PostgreSQL wrapped in the type refusing NUL characters
        assert {type(getattr(x, "mapped", x)) for x in types} == {TextType}
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


def test_custom_type_converts_declares_column_and_compares(connect, log):
    @entity()
    class Place:
        id: int = PrimaryKey()
        at: tuple = Property(type=Point)

    with connect([Place], debug=True, logger=log.append) as o:
        assert sql(o, "`at` varchar(64) not null") in o.schema.get_create_schema_sql()
        em = o.em.fork()
        em.native_insert(Place, {"at": (1.0, 2.0)})
        execute(o, "update `place` set `at` = '1.00,2.0'")
        p = em.find_one(Place, 1)
        assert p.at == (1.0, 2.0)
        p.at = (1.0, 2.0)
        log.clear()
        em.flush()
        assert log == [], "compare() says the values are equal: no UPDATE"
        p.at = (3.0, 4.0)
        em.flush()
        assert rows(o, "select `at` from `place`") == [("3.0,4.0",)]


class IntList(Type):
    """A custom type holding a list, stored as "1,2,3": nothing says it is mutable."""

    def to_db(self, value):
        return ",".join(map(str, value))

    def to_python(self, value):
        return [int(x) for x in value.split(",")] if value else []


class TextIntList(TextType):
    """A subclass of one of the package's types taking other values (lists)."""

    python_types = (list,)

    def to_db(self, value):
        return ",".join(map(str, value))

    def to_python(self, value):
        return [int(x) for x in value.split(",")] if value else []


class FrozenIntList(IntList):
    """The same, declared never changed in place."""

    mutable = False


def test_a_custom_type_value_changed_in_place_is_written(connect, log):
    """A custom type that does not say its values are immutable is compared at every flush,
    as a JSON document is: an in-place change of a new or a loaded entity's value is written
    (it was lost without a word). One that says `mutable = False`, or whose python_types are
    immutable built-ins (Point: tuples), is compared only when assigned."""

    @entity()
    class Bag:
        id: int = PrimaryKey()
        nums: list = Property(type=IntList())

    @entity()
    class Frozen:
        id: int = PrimaryKey()
        nums: list = Property(type=FrozenIntList())

    @entity()
    class Spot:
        id: int = PrimaryKey()
        at: tuple = Property(type=Point)

    @entity()
    class Sack:
        id: int = PrimaryKey()
        nums: list = Property(type=TextIntList())

    with connect([Bag, Frozen, Spot, Sack], debug=True, logger=log.append) as o:
        metas = {cls: o.em.metadata.get(cls) for cls in (Bag, Frozen, Spot, Sack)}
        assert [metas[c].presumed for c in (Bag, Frozen, Spot, Sack)] == [
            ("nums",), (), (), ("nums",),
        ]  # fmt: skip
        em = o.em.fork()
        bag = Bag(nums=[1, 2])
        em.persist(bag).flush()
        bag.nums.append(3)
        em.flush()
        assert rows(o, "select `nums` from `bag`") == [("1,2,3",)]
        fork = o.em.fork()
        loaded = fork.find_one(Bag, bag.id)
        loaded.nums.append(9)
        fork.flush()
        assert rows(o, "select `nums` from `bag`") == [("1,2,3,9",)]
        log.clear()
        fork.flush()
        assert log == [], "nothing changed since: no UPDATE"
        frozen = Frozen(nums=[1])
        em.persist(frozen).flush()
        frozen.nums = [1, 5]  # assigned: written as any column is
        em.flush()
        assert rows(o, "select `nums` from `frozen`") == [("1,5",)]


class Salted(Type):
    """A custom type whose to_db is not the same twice (a random salt), stored as
    "salt:text" and read back as the text: nothing says whether it is mutable."""

    def to_db(self, value):
        return f"{uuid.uuid4().hex[:8]}:{value}"

    def to_python(self, value):
        return value.split(":", 1)[1]


class FloatAsText(Type):
    """A custom type whose to_db gives a str for a column the driver reads as a float."""

    def to_db(self, value):
        return None if value is None else repr(float(value))

    def to_python(self, value):
        return None if value is None else float(value)

    def column_type(self, prop, dialect):
        return "double precision" if dialect == "postgresql" else "real"


class JsonText(Type):
    """A custom type keeping a document as JSON text."""

    def to_db(self, value):
        return None if value is None else json.dumps(value)

    def to_python(self, value):
        return None if value is None else json.loads(value)


class AwareText(Type):
    """A time zone-aware datetime kept as ISO text, its UTC offset with it."""

    def to_db(self, value):
        return None if value is None else value.isoformat()

    def to_python(self, value):
        return None if value is None else datetime.fromisoformat(value)


class MoneyText(Type):
    """A Decimal kept as text, its exponent significant."""

    def to_db(self, value):
        return None if value is None else str(value)

    def to_python(self, value):
        return None if value is None else Decimal(value)


class ListOrEmpty(Type):
    """A list kept as "a,b", NULL read as an empty list."""

    def to_db(self, value):
        return None if value is None else ",".join(value)

    def to_python(self, value):
        return value.split(",") if value else []


def test_an_assigned_value_equal_to_the_old_one_in_python_but_stored_apart_is_written(connect):
    """A difference in database form is settled by reading the snapshot back only when the
    value read back is the one held, not one `==` takes for it: 1 and True in a document,
    Decimal("1.5") and Decimal("1.50"), one instant at two UTC offsets, NULL and the empty
    list a to_python reads it as. Each of these assignments was dropped without a word."""

    @entity()
    class Rec:
        id: int = PrimaryKey()
        doc: dict = Property(type=JsonText())
        at: datetime = Property(type=AwareText())
        price: Decimal = Property(type=MoneyText())
        tags: list | None = Property(type=ListOrEmpty(), nullable=True)

    with connect([Rec]) as o:
        utc = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
        o.em.fork().persist(Rec(doc={"on": 1}, at=utc, price=Decimal("1.5"), tags=None)).flush()
        em = o.em.fork()
        rec = em.find_one_or_fail(Rec, 1)
        assert rec.tags is None  # NULL is not converted
        rec.doc = {"on": True}
        rec.at = utc.astimezone(timezone(timedelta(hours=2)))
        rec.price = Decimal("1.50")
        rec.tags = []
        em.flush()
        assert rows(o, "select `doc`, `at`, `price`, `tags` from `rec`") == [
            ('{"on": true}', "2024-01-01T14:00:00+02:00", "1.50", ""),
        ]  # fmt: skip


def test_a_custom_type_is_compared_unassigned_only_for_a_mutable_value(connect, log):
    """A custom type that never said whether its values change in place is compared at a
    flush nobody assigned it for only when the entity holds a mutable value (a list). A str
    or a float cannot have changed: comparing it through a to_db that is not the same twice
    (a salt) or does not give back what the driver reads (a str for a float) rewrote every
    loaded row at each flush, over another writer's change, and bumped its version."""

    @entity()
    class Secret:
        id: int = PrimaryKey()
        token: str = Property(type=Salted())
        note: str = ""
        version: int = Property(version=True, default=1)

    @entity()
    class Reading:
        id: int = PrimaryKey()
        value: float = Property(type=FloatAsText())
        nums: list = Property(type=IntList(), nullable=True)

    with connect([Secret, Reading], debug=True, logger=log.append) as o:
        em = o.em.fork()
        em.persist([Secret(token="abc"), Reading(value=1.5)]).flush()
        reader = o.em.fork()
        secret = reader.find_one(Secret, 1)
        reading = reader.find_one(Reading, 1)
        assert (secret.token, reading.value) == ("abc", 1.5)
        execute(o, "update `secret` set `note` = 'other writer'")
        execute(o, "update `reading` set `value` = 2.5")
        stored = rows(o, "select `token` from `secret`")
        log.clear()
        reader.flush()
        assert log == [], "nothing assigned, nothing mutable held: no UPDATE"
        assert rows(o, "select `note`, `version` from `secret`") == [("other writer", 1)]
        assert rows(o, "select `value` from `reading`") == [(2.5,)]
        reading.nums = [1]  # assigned: only it is written, not the float held as loaded
        reader.flush()
        reading.nums.append(2)  # held now: a mutable value, compared and written
        reader.flush()
        assert rows(o, "select `value`, `nums` from `reading`") == [(2.5, "1,2")]
        secret.note = "mine"  # assigned: written; the token reads as it is held: not
        reader.flush()
        assert rows(o, "select `note`, `version` from `secret`") == [("mine", 2)]
        assert rows(o, "select `token` from `secret`") == stored
        secret.token = "xyz"  # assigned another value: written
        reader.flush()
        assert rows(o, "select `token` from `secret`")[0][0].endswith(":xyz")


class SetOnBad(Type):
    """A custom type with a mistake: its to_db returns a set (which no driver binds) for
    one value."""

    def to_db(self, value):
        return set(value) if value == "bad" else value

    def to_python(self, value):
        return value


def test_a_to_db_result_the_driver_cannot_bind_names_the_property(connect, database):
    """The flush checks the value it is given; what a custom type's to_db makes of it
    reaches the driver, whose error named neither the entity nor the property."""

    @entity()
    class Post:
        id: int = PrimaryKey()
        title: str = ""
        tags: str = Property(type=SetOnBad(), default="")

    with connect([Post]) as o:
        em = o.em.fork()
        em.persist([Post(title="a", tags="ok"), Post(title="b", tags="bad")])
        with pytest.raises(DriverException) as info:
            em.flush()
        assert (info.value.entity, info.value.property) == ("Post", "tags")
        assert "(the type of Post.tags gave set {" in str(info.value)
        assert "which the database cannot take (" in str(info.value)
        assert "make its to_db return one of those)" in str(info.value)
        em.clear()
        post = Post(title="c", tags="fine")
        em.persist(post).flush()
        post.tags = "bad"
        with pytest.raises(DriverException, match=r"the type of Post\.tags gave set") as info:
            em.flush()
        assert info.value.property == "tags"
        assert rows(o, "select `title`, `tags` from `post`") == [("c", "fine")]
        # in a filter, the type is named as the one to fix (it said "got str 'bad';
        # expected custom", though a str is what the type takes)
        for where in ({"tags": "bad"}, {"tags": {"$in": ["x", "bad"]}}):
            with pytest.raises(ValidationError) as raised:
                em.find(Post, where)
            assert str(raised.value).startswith(
                "Invalid value for $"
            ) and "on Post.tags in a filter: SetOnBad.to_db made set {" in str(raised.value)
            assert str(raised.value).endswith(
                "of str 'bad', which the database driver cannot bind: make to_db return a "
                "value it takes (str, int, float, bytes, ...)"
            )
            assert raised.value.property == "tags"


def test_column_type_is_used_verbatim(orm):
    ddl = orm.schema.get_create_schema_sql()
    assert sql(orm, "`price` decimal(10,2) not null") in ddl


def test_entity_schema_without_decorators(connect):
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
    with connect([schema, bare]) as o:
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


def test_underscore_naming_is_the_default(orm, connect):
    @entity()
    class BlogPost:
        id: int = PrimaryKey()
        fullName: str  # noqa: N815 - the camelCase name under test

    with connect([BlogPost], create=False) as o:
        meta = o.metadata.get(BlogPost)
        assert meta.table == "blog_post"
        assert meta.properties["fullName"].field_name == "full_name"
    assert orm.metadata.get(User).properties["full_name"].field_name == "full_name"


def test_entity_case_naming_strategy(connect):
    @entity()
    class BlogPost:
        id: int = PrimaryKey()
        fullName: str  # noqa: N815

    with connect([BlogPost], create=False, naming_strategy=EntityCaseNamingStrategy) as o:
        meta = o.metadata.get(BlogPost)
        assert (meta.table, meta.properties["fullName"].field_name) == ("BlogPost", "fullName")


def test_explicit_table_and_column_names(connect, database):
    @entity(table_name="people")
    class Person:
        id: int = PrimaryKey()
        name: str = Property(field_name="display_name")

    with connect([Person]) as o:
        if database == "sqlite":
            ddl = ("create table `people` (`id` integer not null primary key autoincrement, "
                   "`display_name` text not null)")
        else:
            ddl = ('create table "people" ("id" bigint generated by default as identity not '
                   'null primary key, "display_name" text not null)')
        assert ddl in o.schema.get_create_schema_sql()
        o.em.fork().persist(Person(name="n")).flush()
        assert rows(o, "select `id`, `display_name` from `people`") == [(1, "n")]


def test_persist_false_is_not_stored(connect):
    @entity()
    class Cached:
        id: int = PrimaryKey()
        name: str
        scratch: int = Property(persist=False, default=0)

    with connect([Cached]) as o:
        assert "scratch" not in o.schema.get_create_schema_sql()
        em = o.em.fork()
        c = Cached(name="a", scratch=5)
        em.persist(c).flush()
        assert o.em.fork().find_one(Cached, c.id).scratch == 0


# -- bad definitions: MetadataError at init, naming entity and property -------------------


def test_entity_without_primary_key(connect):
    @entity()
    class NoKey:
        name: str

    with pytest.raises(MetadataError, match=r"NoKey has no primary key.*PrimaryKey\(\)"):
        connect([NoKey])


def test_unresolvable_annotation_names_class_and_property(connect):
    @entity()
    class Broken:
        id: int = PrimaryKey()
        owner: NotDefinedAnywhere  # type: ignore[name-defined] # noqa: F821

    with pytest.raises(MetadataError) as info:
        connect([Broken])
    assert "Broken.owner" in str(info.value) and "NotDefinedAnywhere" in str(info.value)
    assert (info.value.entity, info.value.property) == ("Broken", "owner")


class Opaque:
    """A class the ORM has no mapping for."""


def test_annotation_without_mapped_type(connect):
    @entity()
    class Holder:
        id: int = PrimaryKey()
        thing: Opaque

    with pytest.raises(MetadataError, match=r"Holder\.thing has no resolvable type"):
        connect([Holder])


def test_unknown_property_option(connect):
    @entity()
    class Typo:
        id: int = PrimaryKey()
        name: str = Property(nulable=True)

    with pytest.raises(MetadataError, match=r"Typo\.name has unknown option\(s\) nulable"):
        connect([Typo])


def test_unknown_type_alias(connect):
    @entity()
    class BadAlias:
        id: int = PrimaryKey()
        name: str = Property(type="strng")

    with pytest.raises(MetadataError, match=r"BadAlias\.name: unknown type alias 'strng'"):
        connect([BadAlias])


def test_not_an_entity_in_entities(connect):
    class NotAnEntity:
        pass

    with pytest.raises(MetadataError, match="NotAnEntity.*not an entity"):
        connect([NotAnEntity])


def test_the_binding_hint_reads_the_assignments_around_inlined_text():
    """The column a driver could not bind is read from the UPDATE's assignments, as the
    statement is shown (values inlined): a text value reading `"body" = ... where` named
    the wrong property."""
    from orm.platforms.base import unbindable_hint

    sql = "update `post` set `title` = 'say \"body\" = 1 where x', `tags` = {'a'} where `id` = 1"
    entity_name, prop, hint = unbindable_hint(
        sql, ["say", {"a"}, 1], 1, lambda table, column: (table.title(), column), "text"
    )
    assert (entity_name, prop) == ("Post", "tags")
    assert hint.startswith("the type of Post.tags gave set {'a'} to store")

"""Values at the edges of what the databases store: timezone-aware datetimes (compared as
instants), NaN and infinities in float columns, values a JSON property cannot encode,
integers beyond 64 bits, decimals beyond a column's scale, NUL characters and strings beyond
a `length`. A value that cannot be stored is a ValidationError naming entity and property,
before any SQL runs, on every write path; the flush stays retryable.

Aware datetimes are declared `column_type="timestamptz"`: PostgreSQL's `timestamp` (the
default) holds no offset, its `timestamptz` holds an instant; SQLite keeps ISO text either
way, an aware value in UTC."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from orm import DriverException, PrimaryKey, Property, ValidationError, entity, t
from tests.core.models import ALL, Book, Everything, User
from tests.databases import execute, rows, sql

PLUS2 = timezone(timedelta(hours=2))
MINUS5 = timezone(timedelta(hours=-5))


@entity()
class Timed:
    """A datetime column that holds instants: `timestamptz` on PostgreSQL."""

    id: int = PrimaryKey()
    dt: datetime | None = Property(column_type="timestamptz", default=None)


@pytest.fixture
def orm(connect, log):
    """The shared entities and Timed."""
    instance = connect([*ALL, Timed], debug=["query"], logger=log.append)
    log.clear()
    return instance


# -- timezone-aware datetimes -----------------------------------------------------------------

#: three instants whose wall-clock text sorts in another order than the instants:
#: A = 08:00 UTC, B = 10:00 UTC, C = 09:00 UTC
A = datetime(2024, 1, 2, 10, 0, tzinfo=PLUS2)
B = datetime(2024, 1, 2, 5, 0, tzinfo=MINUS5)
C = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def stamped(em):
    """Three Timed rows holding A, B, C; returns their ids by letter."""
    a, b, c = Timed(dt=A), Timed(dt=B), Timed(dt=C)
    em.persist([a, b, c]).flush()
    return {"A": a.id, "B": b.id, "C": c.id}


def letters(found, ids):
    by_id = {v: k for k, v in ids.items()}
    return [by_id[e.id] for e in found]


def test_aware_datetimes_are_stored_in_utc(orm, database, stamped):
    if database == "sqlite":  # ISO text in UTC
        stored = rows(orm, "select dt from timed order by id")
        assert stored == [
            ("2024-01-02 08:00:00+00:00",),
            ("2024-01-02 10:00:00+00:00",),
            ("2024-01-02 09:00:00+00:00",),
        ]
    else:  # the instants; the session's time zone is UTC
        stored = rows(orm, "select cast(dt as text) from timed order by id")
        assert stored == [
            ("2024-01-02 08:00:00+00",),
            ("2024-01-02 10:00:00+00",),
            ("2024-01-02 09:00:00+00",),
        ]
        assert rows(orm, "select extract(epoch from dt) from timed order by id") == [
            (Decimal(int(x.timestamp())),) for x in (A, B, C)
        ]


def test_eq_finds_the_same_instant_in_another_offset(orm, stamped):
    em = orm.em.fork()
    same_as_a = datetime(2024, 1, 2, 3, 0, tzinfo=MINUS5)
    assert letters(em.find(Timed, {"dt": same_as_a}), stamped) == ["A"]
    assert letters(em.find(Timed, {"dt": {"$in": [same_as_a]}}), stamped) == ["A"]
    assert letters(em.find(Timed, {"dt": {"$ne": same_as_a}}, order_by={"id": 1}),
                   stamped) == ["B", "C"]


def test_gt_and_order_by_follow_instants(orm, stamped):
    em = orm.em.fork()
    nine_utc = datetime(2024, 1, 2, 11, 0, tzinfo=PLUS2)
    assert letters(em.find(Timed, {"dt": {"$gt": nine_utc}}), stamped) == ["B"]
    assert letters(em.find(Timed, {"dt": {"$lte": nine_utc}}, order_by={"dt": "asc"}),
                   stamped) == ["A", "C"]
    ordered = em.find(Timed, order_by={"dt": "desc"})
    assert letters(ordered, stamped) == ["B", "C", "A"]


def test_aware_values_read_back_aware_in_utc_and_equal(orm, log, stamped):
    em = orm.em.fork()
    found = {e.id: e.dt for e in em.find(Timed)}
    for letter, original in (("A", A), ("B", B), ("C", C)):
        loaded = found[stamped[letter]]
        assert loaded == original
        assert loaded.utcoffset() == timedelta(0)
        assert loaded.tzinfo is not None
        assert loaded.replace(tzinfo=None) == original.astimezone(UTC).replace(tzinfo=None)
    log.clear()
    em.flush()
    assert log == [] and em.get_unit_of_work().compute_change_sets() == [], "nothing dirty"


def test_no_change_flush_runs_no_sql_for_aware_values(orm, em, log, stamped):
    em.flush()  # the instances just written, still in +02:00 / -05:00
    fresh = orm.em.fork()
    loaded = fresh.find(Timed)
    log.clear()
    em.flush()
    fresh.flush()
    assert log.writes() == []
    # the same instant in another offset is no change either
    loaded[0].dt = loaded[0].dt.astimezone(PLUS2)
    fresh.flush()
    assert log.writes() == []


def stored_text(orm, database, key):
    """The column's value as text: SQLite's ISO text, PostgreSQL's timestamptz output."""
    if database == "sqlite":
        return rows(orm, f"select dt from timed where id = {key}")[0][0]
    return rows(orm, f"select cast(dt as text) from timed where id = {key}")[0][0]


def test_changed_aware_value_is_written_in_utc(orm, em, log, database, stamped):
    entity = em.find_one(Timed, stamped["A"])
    entity.dt = datetime(2024, 1, 2, 23, 30, tzinfo=MINUS5)
    log.clear()
    em.flush()
    assert any(w.startswith(sql(orm, "update `timed` set `dt` = '2024-01-03 04:30:00+00:00'"))
               for w in log.writes())
    assert stored_text(orm, database, stamped["A"]) == {
        "sqlite": "2024-01-03 04:30:00+00:00", "postgresql": "2024-01-03 04:30:00+00"
    }[database]
    loaded = orm.em.fork().find_one(Timed, stamped["A"]).dt
    assert loaded == entity.dt and loaded.utcoffset() == timedelta(0)


def test_aware_values_through_native_writes_and_upsert(orm, em, database):
    key = em.native_insert(Timed, {"dt": A})
    em.native_update(Timed, {"dt": A}, {"dt": B})
    utc = "+00:00" if database == "sqlite" else "+00"
    assert stored_text(orm, database, key) == "2024-01-02 10:00:00" + utc
    assert em.upsert(Timed, {"id": key, "dt": C}).dt == C
    assert stored_text(orm, database, key) == "2024-01-02 09:00:00" + utc
    assert orm.em.fork().find_one(Timed, key).dt == C


def test_naive_datetimes_stay_naive(orm, em, log, database):
    naive = datetime(2024, 5, 6, 7, 8, 9, 123456)
    entity = Everything(dt=naive)
    em.persist(entity).flush()
    stored = {"sqlite": "2024-05-06 07:08:09.123456", "postgresql": naive}[database]
    assert rows(orm, "select dt from everything") == [(stored,)]
    fresh = orm.em.fork()
    loaded = fresh.find_one(Everything, entity.id)
    assert loaded.dt == naive and loaded.dt.tzinfo is None
    log.clear()
    fresh.flush()
    assert log == [], "a loaded entity is not dirty"


def test_an_aware_value_in_a_plain_datetime_column(orm, em, log, database):
    """Without `timestamptz`: SQLite keeps the aware value (as UTC text); PostgreSQL's
    `timestamp` has no offset, so the value is written as its UTC wall-clock time and read
    back naive. Either way nothing looks changed afterwards."""
    entity = Everything(dt=A)
    em.persist(entity).flush()
    fresh = orm.em.fork()
    loaded = fresh.find_one(Everything, entity.id).dt
    if database == "sqlite":
        assert loaded == A and loaded.utcoffset() == timedelta(0)
    else:
        assert loaded == datetime(2024, 1, 2, 8, 0) and loaded.tzinfo is None
        assert rows(orm, "select dt from everything") == [(datetime(2024, 1, 2, 8, 0),)]
    log.clear()
    em.flush()
    fresh.flush()
    assert log == [], "neither the written nor the loaded entity is dirty"


def test_naive_values_sort_among_aware_ones_as_utc(orm, em, database, stamped):
    naive = Timed(dt=datetime(2024, 1, 2, 9, 30))  # between C (09:00) and B (10:00 UTC)
    em.persist(naive).flush()
    ids = dict(stamped, N=naive.id)
    ordered = orm.em.fork().find(Timed, order_by={"dt": "asc"})
    assert letters(ordered, ids) == ["A", "C", "N", "B"]
    loaded = ordered[2].dt
    if database == "sqlite":  # kept as written
        assert loaded == datetime(2024, 1, 2, 9, 30)
    else:  # a timestamptz holds instants: a naive value is taken as UTC
        assert loaded == datetime(2024, 1, 2, 9, 30, tzinfo=UTC)


# -- NaN and infinities in float columns ------------------------------------------------------

NAN = float("nan")


def assert_refused(excinfo, entity_name, prop, *words):
    err = excinfo.value
    assert err.property == prop
    text = str(err)
    assert f"{entity_name}.{prop}" in text
    for word in words:
        assert word in text, text


def test_nan_is_refused_at_flush_and_the_flush_is_retryable(orm, em):
    entity = Everything(f=NAN)
    em.persist(entity)
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    assert_refused(excinfo, "Everything", "f", "NaN")
    assert excinfo.value.entity is entity
    assert rows(orm, "select count(*) from everything") == [(0,)]
    entity.f = 1.5
    em.flush()
    assert rows(orm, "select f from everything") == [(1.5,)]


def test_nan_is_refused_on_update(orm, em, log):
    entity = Everything(f=1.0)
    em.persist(entity).flush()
    entity.f = NAN
    log.clear()
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    assert_refused(excinfo, "Everything", "f", "NaN")
    assert log.writes() == []
    entity.f = 2.0
    em.flush()
    assert rows(orm, "select f from everything") == [(2.0,)]


def test_nan_is_refused_by_native_writes_and_upsert(orm, em, log):
    key = em.native_insert(Everything, {"f": 1.0})
    log.clear()
    for call in (
        lambda: em.native_insert(Everything, {"f": NAN}),
        lambda: em.native_update(Everything, {"id": key}, {"f": NAN}),
        lambda: em.upsert(Everything, {"id": key, "f": NAN}),
    ):
        with pytest.raises(ValidationError) as excinfo:
            call()
        assert_refused(excinfo, "Everything", "f", "NaN")
    assert log.writes() == []
    assert rows(orm, "select id, f from everything") == [(key, 1.0)]


@pytest.mark.parametrize(
    "where", [{"f": NAN}, {"f": {"$gt": NAN}}, {"f": {"$in": [1.0, NAN]}}]
)
def test_nan_is_refused_in_filters(em, log, where):
    with pytest.raises(ValidationError) as excinfo:
        em.find(Everything, where)
    assert_refused(excinfo, "Everything", "f", "NaN")
    assert log.sql() == []


def test_infinities_round_trip(orm, em, log):
    up, down, plain = Everything(f=math.inf), Everything(f=-math.inf), Everything(f=1.0)
    em.persist([up, down, plain]).flush()
    fresh = orm.em.fork()
    loaded = {e.id: e.f for e in fresh.find(Everything)}
    assert loaded == {up.id: math.inf, down.id: -math.inf, plain.id: 1.0}
    assert [e.id for e in fresh.find(Everything, {"f": {"$gt": 1e308}})] == [up.id]
    assert [e.id for e in fresh.find(Everything, {"f": -math.inf})] == [down.id]
    log.clear()
    fresh.flush()
    assert log.writes() == []


# -- values a JSON property cannot encode; integers beyond 64 bits -----------------------------

UNENCODABLE = [
    ("doc", {"when": datetime(2024, 1, 2)}, "not JSON serializable"),
    ("doc", {"tags": {1, 2}}, "not JSON serializable"),
    ("items", [datetime(2024, 1, 2)], "not JSON serializable"),
    ("i", 2**63, "64-bit integers"),
    ("i", -(2**63) - 1, "64-bit integers"),
    ("f", 2**64, "64-bit integers"),
    # not JSON: PostgreSQL's jsonb refused the statement; SQLite stored text no JSON
    # reader takes (and NaN, never equal to itself, would look changed at every flush)
    ("doc", {"a": math.nan}, "not JSON compliant"),
    ("items", [1, -math.inf], "not JSON compliant"),
    # an int to isinstance: PostgreSQL refused the statement, SQLite stored 1 (and 'True'
    # in a decimal column, a row no query could read back)
    ("i", True, "True and False are not values of it"),
    ("f", True, "True and False are not values of it"),
    ("dec", True, "True and False are not values of it"),
]
GOOD = {"doc": {"ok": 1}, "items": [1], "i": 7, "f": 7.0, "dec": Decimal("7.25")}


@pytest.mark.parametrize(("prop", "bad", "words"), UNENCODABLE)
def test_unencodable_value_on_insert_is_a_validation_error(orm, em, log, prop, bad, words):
    entity = Everything(**{prop: bad})
    em.persist(entity)
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    assert_refused(excinfo, "Everything", prop, words, "flush again")
    assert excinfo.value.entity is entity
    assert log.writes() == []
    setattr(entity, prop, GOOD[prop])
    em.flush()
    assert getattr(orm.em.fork().find_one(Everything, entity.id), prop) == GOOD[prop]


@pytest.mark.parametrize(("prop", "bad", "words"), UNENCODABLE)
def test_unencodable_value_on_update_is_a_validation_error(orm, em, log, prop, bad, words):
    entity = Everything()
    em.persist(entity).flush()
    if prop == "doc":
        entity.doc.update(bad)  # changed in place: found by comparing at flush
    else:
        setattr(entity, prop, bad)
    log.clear()
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    assert_refused(excinfo, "Everything", prop, words)
    assert log.writes() == []
    setattr(entity, prop, GOOD[prop])
    em.flush()
    assert getattr(orm.em.fork().find_one(Everything, entity.id), prop) == GOOD[prop]


@pytest.mark.parametrize(("prop", "bad", "words"), UNENCODABLE)
def test_unencodable_value_on_a_reference(orm, em, log, prop, bad, words):
    key = em.native_insert(Everything, {})
    ref = em.get_reference(Everything, key)
    setattr(ref, prop, bad)
    log.clear()
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    assert_refused(excinfo, "Everything", prop, words)
    assert log.writes() == []


@pytest.mark.parametrize(("prop", "bad", "words"), UNENCODABLE)
def test_unencodable_value_in_native_writes_and_upsert(orm, em, log, prop, bad, words):
    key = em.native_insert(Everything, {})
    log.clear()
    for call in (
        lambda: em.native_insert(Everything, {prop: bad}),
        lambda: em.native_update(Everything, {"id": key}, {prop: bad}),
        lambda: em.upsert(Everything, {"id": key, prop: bad}),
    ):
        with pytest.raises(ValidationError) as excinfo:
            call()
        assert_refused(excinfo, "Everything", prop, words)
    assert log.writes() == []
    assert rows(orm, "select count(*) from everything") == [(1,)]


def test_64_bit_bounds_round_trip(orm, em):
    """An `int` column is 64-bit on both databases (`bigint` on PostgreSQL)."""
    low, high = Everything(i=-(2**63)), Everything(i=2**63 - 1)
    em.persist([low, high]).flush()
    fresh = orm.em.fork()
    assert fresh.find_one(Everything, low.id).i == -(2**63)
    assert fresh.find_one(Everything, high.id).i == 2**63 - 1
    assert [e.id for e in fresh.find(Everything, {"i": 2**63 - 1})] == [high.id]
    em.native_update(Everything, {"id": low.id}, {"i": 2**40})
    assert rows(orm, "select i from everything order by id") == [(2**40,), (2**63 - 1,)]


@pytest.mark.parametrize("where", [{"age": 2**64}, {"age": {"$in": [1, -(2**64)]}}])
def test_int_beyond_64_bits_is_refused_in_filters(em, log, where):
    with pytest.raises(ValidationError) as excinfo:
        em.find(User, where)
    assert_refused(excinfo, "User", "age", "64-bit integers")
    assert log.sql() == []


@entity()
class Gauge:
    id: int = PrimaryKey()
    name: str = ""
    high: float = math.inf
    low: float = -math.inf


def test_infinite_defaults_are_numbers_in_the_schema(connect, database):
    with connect([Gauge]) as o:
        ddl = o.schema.get_create_schema_sql()
        if database == "sqlite":
            assert "`high` real not null default 9e999" in ddl
            assert "`low` real not null default -9e999" in ddl
        else:
            assert "\"high\" double precision not null default 'Infinity'::double precision" in ddl
            assert "\"low\" double precision not null default '-Infinity'::double precision" in ddl
        execute(o, "insert into gauge (name) values ('raw')")  # another program's insert
        loaded = o.em.fork().find_one(Gauge, {"name": "raw"})
        assert (loaded.high, loaded.low) == (math.inf, -math.inf)


@pytest.mark.parametrize(
    ("column", "stored", "prop", "refused_by_postgresql"),
    [("doc", "{bad", "doc", "invalid input syntax for type json"),
     ("dt", "not a date", "dt", 'invalid input syntax for type timestamp: "not a date"'),
     ("u", "not-a-uuid", "u", 'invalid input syntax for type uuid: "not-a-uuid"'),
     ("dec", "n/a", "dec", 'invalid input syntax for type numeric: "n/a"'),
     ("b", "maybe", "b", 'invalid input syntax for type boolean: "maybe"'),
     ("b", 2, "b", 'column "b" is of type boolean but expression is of type'),
     ("color", "blue", "color", None), ("size", 7, "size", None)],
)
def test_a_stored_value_the_type_cannot_read_is_a_validation_error(
    orm, database, column, stored, prop, refused_by_postgresql
):
    em = orm.em.fork()
    em.persist(Everything()).flush()
    update = f"update `everything` set `{column}` = ?"
    if database == "postgresql" and refused_by_postgresql:
        # a typed PostgreSQL column never holds such a value: the database refuses it
        with pytest.raises(DriverException, match=refused_by_postgresql):
            execute(orm, update, [stored])
        return
    execute(orm, update, [stored])
    with pytest.raises(ValidationError) as err:
        orm.em.fork().find(Everything, {})
    message = str(err.value)
    assert f"The Everything row with id = 1 holds {stored!r}" in message
    assert f"Everything.{prop}" in message and "Fix the stored value" in message
    assert err.value.property == prop
    with pytest.raises(ValidationError, match=f"Everything.{prop}"):
        em.refresh(em.find_one_or_fail(Everything, 1))


def test_a_lone_surrogate_is_a_validation_error_and_the_flush_stays_retryable(orm):
    em = orm.em.fork()
    user = User(full_name="\ud800", email="s@x", password="p")
    with pytest.raises(ValidationError) as err:
        em.persist(user).flush()
    assert "cannot be encoded as UTF-8 (a lone surrogate)" in str(err.value)
    assert "'\\ud800'" in str(err.value)
    with pytest.raises(ValidationError, match="lone surrogate"):
        em.find(User, {"full_name": "\ud800"})
    for where in ({"full_name": "\ud800"}, {"full_name": {"$like": "\ud800%"}}):
        with pytest.raises(ValidationError, match=r"on User\.full_name .*lone surrogate"):
            orm.em.fork().find(User, where)  # a fork: nothing to flush first
    user.full_name = "fixed"
    em.flush()
    assert rows(orm, "select full_name from `user`") == [("fixed",)]


@pytest.mark.parametrize("value", ["1E-400", "-1E-400", "1E+400", "2E-308", "123E+306"])
def test_a_decimal_beyond_a_float_is_refused_on_sqlite(orm, em, database, value):
    """SQLite stores a non-integer numeric value as a 64-bit float: 1E-400 was stored as 0
    and 1E+400 as an infinity, silently. PostgreSQL refuses them for numeric(10,2) (too
    many places, too many digits), where 1E+300 was a driver error (`numeric field
    overflow`): the digits before the point of an exponent were not counted."""
    entity = Everything(dec=Decimal(value))
    em.persist(entity)
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    words = ["too large or too small"] if database == "sqlite" else ["numeric(10,2)"]
    assert_refused(excinfo, "Everything", "dec", *words)
    entity.dec = Decimal("1E+7")  # 8 digits before the point: fits both
    em.flush()
    assert orm.em.fork().find_one(Everything, entity.id).dec == Decimal("10000000")


def test_a_decimal_sqlite_would_round_is_refused_and_a_text_column_keeps_all_digits(
    connect, database
):
    """SQLite keeps decimals as 15-digit REALs: more digits are refused (a text column keeps
    them all). PostgreSQL's numeric(20,2) holds all 20 digits exactly."""

    @entity()
    class Money:
        id: int = PrimaryKey()
        amount: Decimal = Property(column_type="decimal(20,2)", default=Decimal("0"))
        exact: Decimal = Property(column_type="text", default=Decimal("0"))

    with connect([Money]) as orm:
        em = orm.em.fork()
        money = Money(amount=Decimal("12345678901234567.89"))
        if database == "sqlite":
            with pytest.raises(ValidationError) as err:
                em.persist(money).flush()
            assert "Money.amount" in str(err.value) and "column_type='text'" in str(err.value)
        else:
            em.persist(money).flush()
            assert orm.em.fork().find_one_or_fail(Money, money.id).amount == money.amount
        money.amount = Decimal("12345678901234567")  # an integer: stored exactly
        money.exact = Decimal("12345678901234567.891234")
        em.flush()
        again = orm.em.fork().find_one_or_fail(Money, money.id)
        assert again.amount == Decimal("12345678901234567")
        assert again.exact == Decimal("12345678901234567.891234")
        money.amount = Decimal("1234567890123.45")  # 15 digits: kept
        em.flush()
        assert orm.em.fork().find_one_or_fail(Money, money.id).amount == money.amount
        with pytest.raises(ValidationError, match="Money.amount"):
            em.native_insert(Money, {"amount": Decimal("0.1234567890123456")})


def test_decimals_with_trailing_zeros_are_kept_and_non_finite_ones_refused(em, orm):
    book = Book(title="t", price=Decimal("1.000000000000000000"))
    em.persist(book).flush()
    assert orm.em.fork().find_one_or_fail(Book, book.uuid).price == Decimal("1")
    for bad in (Decimal("NaN"), Decimal("Infinity")):
        book.price = bad
        with pytest.raises(ValidationError, match="not a finite number"):
            em.flush()
    book.price = Decimal("2.5")
    em.flush()


def test_native_writes_refuse_a_missing_condition_and_empty_data(em, orm):
    em.persist([User(full_name=n, email=f"{n}@x", password="p") for n in "ab"]).flush()
    missing_id = None
    with pytest.raises(ValidationError, match=r"native_delete\(User, None\): no condition"):
        em.native_delete(User, missing_id)
    with pytest.raises(ValidationError, match=r"native_update\(User, None\): no condition"):
        em.native_update(User, missing_id, {"age": 1})
    with pytest.raises(ValidationError, match="got no data"):
        em.native_update(User, {"id": 1}, {})
    assert rows(orm, "select count(*), sum(age) from `user`") == [(2, 0)]
    assert em.native_update(User, {}, {"age": 2}) == 2
    assert em.native_delete(User, {}) == 2


# -- decimals beyond a column's scale, NUL characters, strings beyond `length` ----------------


def test_a_decimal_with_more_places_than_the_scale(orm, em, log, database):
    """Everything.dec is numeric(10,2) on PostgreSQL, which would round 1.234 to 1.23 and
    refuse 9 integer digits: both are a ValidationError naming the property, on every write
    path, before any SQL runs. SQLite stores such decimals as they are."""
    key = em.native_insert(Everything, {"dec": Decimal("1.5")})
    too_fine, too_large = Decimal("1.234"), Decimal("123456789.5")
    if database == "sqlite":
        em.native_update(Everything, {"id": key}, {"dec": too_fine})
        assert orm.em.fork().find_one_or_fail(Everything, key).dec == too_fine
        entity = Everything(dec=too_large)
        em.persist(entity).flush()
        assert orm.em.fork().find_one_or_fail(Everything, entity.id).dec == too_large
        return
    log.clear()
    for value, words in ((too_fine, "3 decimal places, more than the column's scale 2"),
                         (too_large, "9 digits before the decimal point")):
        entity = Everything(dec=value)
        em.persist(entity)
        with pytest.raises(ValidationError) as excinfo:
            em.flush()
        assert_refused(excinfo, "Everything", "dec", words, "numeric(10,2)")
        assert excinfo.value.entity is entity
        em.remove(entity)
        for call in (
            lambda v=value: em.native_insert(Everything, {"dec": v}),
            lambda v=value: em.native_update(Everything, {"id": key}, {"dec": v}),
            lambda v=value: em.upsert(Everything, {"id": key, "dec": v}),
        ):
            with pytest.raises(ValidationError) as excinfo:
                call()
            assert_refused(excinfo, "Everything", "dec", words)
    assert log.writes() == []
    loaded = em.find_one_or_fail(Everything, key)
    loaded.dec = Decimal("1.230")  # a third place that is zero: the same number, kept
    em.flush()
    assert rows(orm, "select dec from everything") == [(Decimal("1.23"),)]
    fresh = orm.em.fork()
    assert fresh.find_one_or_fail(Everything, key).dec == Decimal("1.23")
    log.clear()
    fresh.flush()
    assert log == []


def test_a_column_type_decimal_has_the_same_limits(em, orm, database):
    """Book.price is declared `column_type="decimal(10,2)"`, verbatim in the DDL: on
    PostgreSQL the same limits as `precision=10, scale=2` apply."""
    book = Book(title="t", price=Decimal("9.999"))
    em.persist(book)
    if database == "sqlite":
        em.flush()
        assert orm.em.fork().find_one_or_fail(Book, book.uuid).price == Decimal("9.999")
        return
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    assert_refused(excinfo, "Book", "price", "3 decimal places")
    book.price = Decimal("9.99")
    em.flush()
    assert orm.em.fork().find_one_or_fail(Book, book.uuid).price == Decimal("9.99")


def test_nul_characters(orm, em, log, database):
    """SQLite stores a NUL character in text and JSON as it is; PostgreSQL's text and jsonb
    cannot hold one: a ValidationError naming entity and property, on every write path and in
    filters, before any SQL runs. bytes keep NUL bytes on both."""
    user = User(full_name="a\x00b", email="n@x", password="p")
    doc = Everything(doc={"k": "x\x00"}, raw=b"\x00\x01")
    em.persist([user, doc])
    if database == "sqlite":
        em.flush()
        fresh = orm.em.fork()
        assert fresh.find_one_or_fail(User, {"full_name": "a\x00b"}).id == user.id
        assert fresh.find_one_or_fail(Everything, doc.id).doc == {"k": "x\x00"}
        return
    log.clear()
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    assert_refused(excinfo, "User", "full_name", "a NUL character", "PostgreSQL text")
    assert excinfo.value.entity is user
    user.full_name = "ab"
    with pytest.raises(ValidationError) as excinfo:
        em.flush()
    assert_refused(excinfo, "Everything", "doc", "a NUL character", "jsonb")
    assert log.writes() == []
    doc.doc = {"k": "x"}
    em.flush()
    for prop, call in (
        ("full_name", lambda: em.native_insert(User, {"full_name": "\x00", "email": "m@x",
                                                      "password": "p"})),
        ("nickname", lambda: em.native_update(User, {"id": user.id}, {"nickname": "n\x00"})),
        ("password", lambda: em.upsert(User, {"email": "n@x", "full_name": "x",
                                              "password": "\x00"})),
        ("full_name", lambda: em.find(User, {"full_name": "a\x00b"})),
        ("bio", lambda: em.find(User, {"bio": {"$like": "%\x00%"}})),
        ("bio", lambda: em.find(User, {"bio": {"$re": "\x00"}})),
    ):
        with pytest.raises(ValidationError) as excinfo:
            call()
        assert_refused(excinfo, "User", prop, "a NUL character")
    fresh = orm.em.fork()
    assert fresh.find_one_or_fail(User, user.id).full_name == "ab"
    assert fresh.find_one_or_fail(Everything, doc.id).raw == b"\x00\x01"


@entity()
class Coded:
    id: int = PrimaryKey()
    code: str = Property(length=5)
    note: str = Property(type="text", default="")


def test_a_string_longer_than_its_length_is_a_validation_error(connect, log, database):
    """`length=5` is varchar(5) on both databases; SQLite would store a longer string, and
    PostgreSQL refuse it with a bare error: both refuse it first, naming the property."""
    with connect([Coded], debug=["query"], logger=log.append) as o:
        assert sql(o, "`code` varchar(5) not null") in o.schema.get_create_schema_sql()
        em = o.em.fork()
        coded = Coded(code="abcdef")
        em.persist(coded)
        log.clear()
        with pytest.raises(ValidationError) as excinfo:
            em.flush()
        assert_refused(excinfo, "Coded", "code", "6 characters, longer than the column's 5")
        with pytest.raises(ValidationError, match=r"Coded\.code"):
            em.native_insert(Coded, {"code": "toolong"})
        assert log.writes() == []
        coded.code = "abcde"
        coded.note = "x" * 100  # a text column has no limit
        em.flush()
        assert rows(o, "select code, note from coded") == [("abcde", "x" * 100)]
        coded.code = "éééééé"  # characters, not bytes
        with pytest.raises(ValidationError, match="6 characters"):
            em.flush()
        coded.code = "ééééé"
        em.flush()
        assert o.em.fork().find_one_or_fail(Coded, coded.id).code == "ééééé"


@entity()
class Setting:
    id: int = PrimaryKey()
    value: Any = Property(type=t.json)


def test_top_level_json_numbers_round_trip_exactly(connect):
    """A document that is a bare number stays that number (SQLite's NUMERIC affinity of a
    `json` column turned its text into a float or an integer)."""
    em = connect([Setting]).em.fork()
    values = [12345678901234567890123, 2**63, 1.0, 0.5, "007", True, [1.0, 2]]
    settings = [Setting(value=v) for v in values]
    em.persist(settings).flush()
    fresh = em.fork()
    loaded = [fresh.find_one_or_fail(Setting, s.id).value for s in settings]
    assert loaded == values
    assert [type(v) for v in loaded] == [type(v) for v in values]
    fresh.flush()

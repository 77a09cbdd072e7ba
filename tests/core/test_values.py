"""Values at the edges of what SQLite stores: timezone-aware datetimes (compared as instants),
NaN and infinities in float columns, values a JSON property cannot encode, and integers
beyond 64 bits. A value that cannot be stored is a ValidationError naming entity and
property, before any SQL runs, on every write path; the flush stays retryable."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from orm import ORM, PrimaryKey, ValidationError, entity
from tests.core.models import Everything, User

PLUS2 = timezone(timedelta(hours=2))
MINUS5 = timezone(timedelta(hours=-5))


def rows(orm, sql):
    return orm.connection.raw.execute(sql).fetchall()


# -- timezone-aware datetimes -----------------------------------------------------------------

#: three instants whose wall-clock text sorts in another order than the instants:
#: A = 08:00 UTC, B = 10:00 UTC, C = 09:00 UTC
A = datetime(2024, 1, 2, 10, 0, tzinfo=PLUS2)
B = datetime(2024, 1, 2, 5, 0, tzinfo=MINUS5)
C = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def stamped(em):
    """Three Everything rows holding A, B, C; returns their ids by letter."""
    a, b, c = Everything(dt=A), Everything(dt=B), Everything(dt=C)
    em.persist([a, b, c]).flush()
    return {"A": a.id, "B": b.id, "C": c.id}


def letters(found, ids):
    by_id = {v: k for k, v in ids.items()}
    return [by_id[e.id] for e in found]


def test_aware_datetimes_are_stored_in_utc(orm, stamped):
    stored = rows(orm, "select dt from everything order by id")
    assert stored == [
        ("2024-01-02 08:00:00+00:00",),
        ("2024-01-02 10:00:00+00:00",),
        ("2024-01-02 09:00:00+00:00",),
    ]


def test_eq_finds_the_same_instant_in_another_offset(orm, stamped):
    em = orm.em.fork()
    same_as_a = datetime(2024, 1, 2, 3, 0, tzinfo=MINUS5)
    assert letters(em.find(Everything, {"dt": same_as_a}), stamped) == ["A"]
    assert letters(em.find(Everything, {"dt": {"$in": [same_as_a]}}), stamped) == ["A"]
    assert letters(em.find(Everything, {"dt": {"$ne": same_as_a}}, order_by={"id": 1}),
                   stamped) == ["B", "C"]


def test_gt_and_order_by_follow_instants(orm, stamped):
    em = orm.em.fork()
    nine_utc = datetime(2024, 1, 2, 11, 0, tzinfo=PLUS2)
    assert letters(em.find(Everything, {"dt": {"$gt": nine_utc}}), stamped) == ["B"]
    assert letters(em.find(Everything, {"dt": {"$lte": nine_utc}}, order_by={"dt": "asc"}),
                   stamped) == ["A", "C"]
    ordered = em.find(Everything, order_by={"dt": "desc"})
    assert letters(ordered, stamped) == ["B", "C", "A"]


def test_aware_values_read_back_aware_in_utc_and_equal(orm, stamped):
    em = orm.em.fork()
    found = {e.id: e.dt for e in em.find(Everything)}
    for letter, original in (("A", A), ("B", B), ("C", C)):
        loaded = found[stamped[letter]]
        assert loaded == original
        assert loaded.utcoffset() == timedelta(0)
        assert loaded.tzinfo is not None


def test_no_change_flush_runs_no_sql_for_aware_values(orm, em, log, stamped):
    em.flush()  # the instances just written, still in +02:00 / -05:00
    fresh = orm.em.fork()
    loaded = fresh.find(Everything)
    log.clear()
    em.flush()
    fresh.flush()
    assert log.writes() == []
    # the same instant in another offset is no change either
    loaded[0].dt = loaded[0].dt.astimezone(PLUS2)
    fresh.flush()
    assert log.writes() == []


def test_changed_aware_value_is_written_in_utc(orm, em, log, stamped):
    entity = em.find_one(Everything, stamped["A"])
    entity.dt = datetime(2024, 1, 2, 23, 30, tzinfo=MINUS5)
    log.clear()
    em.flush()
    assert any(w.startswith("update `everything` set `dt` = '2024-01-03 04:30:00+00:00'")
               for w in log.writes())
    assert rows(orm, f"select dt from everything where id = {stamped['A']}") == [
        ("2024-01-03 04:30:00+00:00",)
    ]
    assert orm.em.fork().find_one(Everything, stamped["A"]).dt == entity.dt


def test_aware_values_through_native_writes_and_upsert(orm, em):
    key = em.native_insert(Everything, {"dt": A})
    em.native_update(Everything, {"dt": A}, {"dt": B})
    assert rows(orm, f"select dt from everything where id = {key}") == [
        ("2024-01-02 10:00:00+00:00",)
    ]
    em.upsert(Everything, {"id": key, "dt": C})
    assert rows(orm, f"select dt from everything where id = {key}") == [
        ("2024-01-02 09:00:00+00:00",)
    ]


def test_naive_datetimes_stay_naive(orm, em):
    naive = datetime(2024, 5, 6, 7, 8, 9, 123456)
    entity = Everything(dt=naive)
    em.persist(entity).flush()
    assert rows(orm, "select dt from everything") == [("2024-05-06 07:08:09.123456",)]
    loaded = orm.em.fork().find_one(Everything, entity.id)
    assert loaded.dt == naive and loaded.dt.tzinfo is None


def test_naive_values_sort_among_aware_ones_as_utc(orm, em, stamped):
    naive = Everything(dt=datetime(2024, 1, 2, 9, 30))  # between C (09:00) and B (10:00 UTC)
    em.persist(naive).flush()
    ids = dict(stamped, N=naive.id)
    ordered = orm.em.fork().find(Everything, order_by={"dt": "asc"})
    assert letters(ordered, ids) == ["A", "C", "N", "B"]


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
]
GOOD = {"doc": {"ok": 1}, "items": [1], "i": 7, "f": 7.0}


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
    low, high = Everything(i=-(2**63)), Everything(i=2**63 - 1)
    em.persist([low, high]).flush()
    fresh = orm.em.fork()
    assert fresh.find_one(Everything, low.id).i == -(2**63)
    assert fresh.find_one(Everything, high.id).i == 2**63 - 1
    assert [e.id for e in fresh.find(Everything, {"i": 2**63 - 1})] == [high.id]


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


def test_infinite_defaults_are_numbers_in_the_schema(tmp_path):
    with ORM.init(db_name=str(tmp_path / "g.db"), entities=[Gauge]) as o:
        sql = o.schema.get_create_schema_sql()
        assert "`high` real not null default 9e999" in sql
        assert "`low` real not null default -9e999" in sql
        o.schema.create_schema()
        o.connection.raw.execute("insert into gauge (name) values ('raw')")
        o.connection.raw.commit()
        loaded = o.em.fork().find_one(Gauge, {"name": "raw"})
        assert (loaded.high, loaded.low) == (math.inf, -math.inf)


@pytest.mark.parametrize(
    ("column", "stored", "prop"),
    [("doc", "{bad", "doc"), ("dt", "not a date", "dt"), ("u", "not-a-uuid", "u"),
     ("dec", "n/a", "dec"), ("b", "maybe", "b"), ("b", 2, "b")],
)
def test_a_stored_value_the_type_cannot_read_is_a_validation_error(orm, column, stored, prop):
    em = orm.em.fork()
    em.persist(Everything()).flush()
    orm.connection.execute(f"update everything set {column} = ?", [stored])
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
    user.full_name = "fixed"
    em.flush()
    assert orm.connection.query("select full_name from user") == [("fixed",)]


def test_a_decimal_sqlite_would_round_is_refused_and_a_text_column_keeps_all_digits(tmp_path):
    from orm import Property

    @entity()
    class Money:
        id: int = PrimaryKey()
        amount: Decimal = Property(column_type="decimal(20,2)", default=Decimal("0"))
        exact: Decimal = Property(column_type="text", default=Decimal("0"))

    with ORM.init(db_name=str(tmp_path / "m.db"), entities=[Money]) as orm:
        orm.schema.create_schema()
        em = orm.em.fork()
        money = Money(amount=Decimal("12345678901234567.89"))
        with pytest.raises(ValidationError) as err:
            em.persist(money).flush()
        assert "Money.amount" in str(err.value) and "column_type='text'" in str(err.value)
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
    from tests.core.models import Book

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
    assert orm.connection.query("select count(*), sum(age) from user") == [(2, 0)]
    assert em.native_update(User, {}, {"age": 2}) == 2
    assert em.native_delete(User, {}) == 2

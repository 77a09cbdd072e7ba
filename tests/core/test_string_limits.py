"""Strings the database would refuse or change: longer than the property's `length`, or (on
PostgreSQL, whose text cannot hold one) holding a NUL character. Writes are refused with a
ValidationError naming entity and property before any SQL runs, the same on both databases;
filters only refuse what cannot be bound (a value longer than the column simply matches no
row)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orm import PrimaryKey, Property, ValidationError, entity
from tests import databases


@entity()
class Handle:
    id: int = PrimaryKey()
    name: str = Property(length=5)
    note: str = ""


@pytest.fixture
def em(connect, log):
    return connect([Handle], debug=["query"], logger=log.append).em.fork()


def test_a_value_longer_than_the_length_is_refused_before_any_sql(em, log):
    em.persist(Handle(name="abcde")).flush()
    log.clear()
    em.persist(Handle(name="abcdef"))
    with pytest.raises(ValidationError) as caught:
        em.flush()
    message = str(caught.value)
    assert "Handle.name" in message and "6 characters" in message and "length=5" in message
    assert caught.value.property == "name"
    assert log.writes() == []
    assert [h.name for h in em.fork().find(Handle, {})] == ["abcde"]


def test_a_too_long_value_is_refused_on_update_and_native_writes(em):
    handle = Handle(name="ok")
    em.persist(handle).flush()
    handle.name = "x" * 6
    with pytest.raises(ValidationError, match="Handle.name"):
        em.flush()
    handle.name = "ok"
    with pytest.raises(ValidationError, match="Handle.name"):
        em.native_update(Handle, {"id": handle.id}, {"name": "y" * 9})
    with pytest.raises(ValidationError, match="Handle.name"):
        em.native_insert(Handle, {"name": "z" * 6})
    assert [h.name for h in em.fork().find(Handle, {})] == ["ok"]


def test_a_filter_with_a_value_longer_than_the_column_matches_nothing(em):
    em.persist(Handle(name="abcde")).flush()
    assert em.find(Handle, {"name": "abcdef"}) == []
    assert em.count(Handle, {"name": {"$in": ["abcde", "abcdefgh"]}}) == 1


def test_a_nul_character_is_refused_on_postgresql_and_kept_on_sqlite(em, database):
    if database == "postgresql":
        em.persist(Handle(name="a\x00b"))
        with pytest.raises(ValidationError) as caught:
            em.flush()
        assert "Handle.name" in str(caught.value) and "NUL" in str(caught.value)
        em.clear()
        em.persist(Handle(name="ok", note="tab\x00"))
        with pytest.raises(ValidationError, match="Handle.note"):
            em.flush()
        with pytest.raises(ValidationError, match="NUL"):
            em.find(Handle, {"note": {"$like": "%\x00%"}})
        with pytest.raises(ValidationError, match="NUL"):
            em.find(Handle, {"note": "a\x00"})
        assert databases.rows(em._orm, "select count(*) from `handle`") == [(0,)]
    else:
        handle = Handle(name="a\x00b", note="\x00")
        em.persist(handle).flush()
        assert em.fork().find_one(Handle, handle.id).name == "a\x00b"


@entity()
class Priced:
    id: int = PrimaryKey()
    price: Decimal = Property(precision=6, scale=2)


def test_a_filter_compares_decimals_with_more_places_than_the_scale(connect, database):
    em = connect([Priced]).em.fork()
    em.persist([Priced(price=Decimal("1.23")), Priced(price=Decimal("1.24"))]).flush()
    found = em.find(Priced, {"price": {"$gt": Decimal("1.234")}})
    assert [p.price for p in found] == [Decimal("1.24")]
    assert em.find(Priced, {"price": Decimal("1.235")}) == []
    if database == "postgresql":  # the column would round it: refused when written
        with pytest.raises(ValidationError, match="Priced.price"):
            em.persist(Priced(price=Decimal("1.235"))).flush()


def test_a_like_pattern_with_a_backslash_matches_the_same_rows_on_both(em):
    em.persist([Handle(name="x", note="C:\\data\\a"), Handle(name="y", note="C:data")]).flush()
    found = em.find(Handle, {"note": {"$like": "C:\\data%"}})
    assert [h.note for h in found] == ["C:\\data\\a"]
    assert em.native_delete(Handle, {"note": {"$like": "C:\\data%"}}) == 1
    assert [h.note for h in em.fork().find(Handle, {})] == ["C:data"]

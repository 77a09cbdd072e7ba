"""Integers in columns narrower than 64 bits: on PostgreSQL a `smallint` holds 16 bits and
the `integer` column of an int-valued enum 32, and the server's "integer out of range" names
no column. Such values are a ValidationError naming the entity and property before any SQL
runs, in a flush, in the native writes and in a filter, as a value beyond 64 bits is on both
databases; SQLite stores any 64-bit integer in any integer column."""

from __future__ import annotations

import enum

import pytest

from orm import PrimaryKey, Property, ValidationError, entity, t
from orm.types import CheckedIntegerType, IntegerType
from tests.databases import rows


class Flags(enum.IntEnum):
    SMALL = 1
    HUGE = 2**40


@entity()
class Gauge:
    id: int = PrimaryKey()
    small: int = Property(type=t.smallint, default=0)
    flag: Flags = Flags.SMALL
    wide: int = 0
    declared: int = Property(column_type="integer", default=0)


CASES = [
    ("small", 40000, 32767, "smallint (-32768 to 32767)"),
    ("small", -32769, -32768, "smallint (-32768 to 32767)"),
    ("flag", Flags.HUGE, None, "integer (-2147483648 to 2147483647)"),
    ("declared", 2**31, 2**31 - 1, "integer (-2147483648 to 2147483647)"),
]


def stored(o):
    return rows(o, "select `small`, `flag`, `wide`, `declared` from `gauge` order by `id`")


@pytest.mark.parametrize("name, bad, edge, column", CASES)
def test_a_value_out_of_the_column_range_is_refused_before_any_sql(
    connect, database, name, bad, edge, column
):
    o = connect([Gauge])
    em = o.em.fork()
    if edge is not None:  # the column's own limit is stored and read back
        em.persist(Gauge(**{name: edge})).flush()
        assert getattr(o.em.fork().find_one_or_fail(Gauge, {name: edge}), name) == edge
    g = Gauge(**{name: bad})
    if database == "sqlite":
        em.persist(g).flush()
        assert getattr(o.em.fork().find_one_or_fail(Gauge, g.id), name) == bad
        return
    before = stored(o)
    with pytest.raises(ValidationError) as info:
        em.persist(g).flush()
    assert info.value.property == name and info.value.entity is g
    message = str(info.value)
    assert f"Invalid value for Gauge.{name}" in message and column in message
    assert "flush again" in message
    em.clear()
    for call in (
        lambda: o.em.fork().native_insert(Gauge, {name: bad}),
        lambda: o.em.fork().native_update(Gauge, {}, {name: bad}),
        lambda: o.em.fork().upsert(Gauge, {"id": 1, name: bad}),
    ):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.property == name and column in str(info.value)
    # in a filter it is refused too, as a value beyond 64 bits is
    with pytest.raises(ValidationError) as info:
        o.em.fork().find(Gauge, {name: bad})
    assert info.value.property == name and column in str(info.value)
    assert stored(o) == before


def test_a_bigint_column_keeps_its_64_bit_range(connect, database):
    o = connect([Gauge])
    em = o.em.fork()
    g = Gauge(wide=2**63 - 1)
    em.persist(g).flush()
    assert o.em.fork().find_one_or_fail(Gauge, {"wide": 2**63 - 1}).id == g.id
    with pytest.raises(ValidationError) as info:
        o.em.fork().find(Gauge, {"wide": 2**63})
    assert info.value.property == "wide"
    # only the narrow columns pay for a range check
    kinds = {p.name: type(p.type) for p in o.metadata.get(Gauge).columns}
    assert kinds["wide"] is IntegerType and kinds["id"] is IntegerType
    narrow = CheckedIntegerType if database == "postgresql" else None
    if narrow is not None:
        assert kinds["small"] is narrow and kinds["flag"] is narrow


def test_values_in_range_round_trip_and_filter_as_before(connect, database, log):
    o = connect([Gauge], debug=["query"], logger=log.append)
    em = o.em.fork()
    em.persist([Gauge(small=-32768, flag=Flags.SMALL), Gauge(small=5)]).flush()
    found = o.em.fork().find(Gauge, {"small": {"$in": [5, "-32768"]}}, order_by={"small": "asc"})
    assert [(g.small, g.flag) for g in found] == [(-32768, Flags.SMALL), (5, Flags.SMALL)]
    assert o.em.fork().find(Gauge, {"flag": Flags.SMALL}, order_by={"id": "asc"})[0].small == -32768
    loaded = o.em.fork()
    one = loaded.find_one_or_fail(Gauge, {"small": 5})
    log.clear()
    loaded.flush()  # nothing changed: the checked type compares as the mapped one did
    assert log.writes() == []
    one.small, one.flag = 6, Flags.HUGE if database == "sqlite" else Flags.SMALL
    loaded.flush()
    assert [w for w in log.writes() if w.startswith("update")] != []
    assert stored(o)[1][0] == 6


def test_native_writes_name_their_own_call_in_the_advice(connect, database):
    o = connect([Gauge])
    em = o.em.fork()
    for label, call in (
        ("native_insert", lambda: em.native_insert(Gauge, {"small": "x"})),
        ("native_update", lambda: em.native_update(Gauge, {}, {"small": "x"})),
        ("upsert", lambda: em.upsert(Gauge, {"id": 1, "small": "x"})),
    ):
        with pytest.raises(ValidationError) as info:
            call()
        message = str(info.value)
        assert message.endswith(f"Fix the value and call {label}() again; nothing was written.")
        assert "flush" not in message
    with pytest.raises(ValidationError) as info:
        em.persist(Gauge(small="x")).flush()  # type: ignore[arg-type]
    assert str(info.value).endswith("Fix the value and flush again; nothing of this flush was "
                                    "written.")

"""A `bytes` property may hold a bytearray (or a memoryview of one), which can change in place,
without any assignment: the flush must still find and write the change."""

from __future__ import annotations

from tests.core.models import Everything
from tests.databases import rows


def stored_raw(orm, key):
    return rows(orm, "select raw from everything where id = ?", (key,))[0][0]


def test_bytearray_changed_in_place_on_a_loaded_entity_is_written(em, orm):
    em.persist(Everything(raw=b"old")).flush()
    fork = em.fork()
    e = fork.find_one(Everything, 1)
    e.raw = bytearray(b"abc")
    fork.flush()
    assert stored_raw(orm, 1) == b"abc"
    e.raw[0] = 0x7A
    fork.flush()
    assert stored_raw(orm, 1) == b"zbc", "the in-place change must be written"
    e.raw.extend(b"!")
    fork.flush()
    assert stored_raw(orm, 1) == b"zbc!"


def test_bytearray_of_a_new_entity_changed_after_its_insert_is_written(em, orm):
    e = Everything(raw=bytearray(b"abc"))
    em.persist(e).flush()
    assert stored_raw(orm, e.id) == b"abc"
    e.raw[0] = 0x7A
    em.flush()
    assert stored_raw(orm, e.id) == b"zbc"
    assert type(e.raw) is bytearray, "the entity keeps the user's own object"


def test_memoryview_over_a_changed_buffer_is_written(em, orm):
    buffer = bytearray(b"abc")
    e = Everything(raw=memoryview(buffer))
    em.persist(e).flush()
    buffer[2] = ord("x")
    em.flush()
    assert stored_raw(orm, e.id) == b"abx"


def test_unchanged_bytes_and_bytearrays_write_nothing(em, orm, log):
    em.persist([Everything(raw=b"same"), Everything(raw=bytearray(b"same"))]).flush()
    fork = em.fork()
    loaded = fork.find(Everything)
    log.clear()
    fork.flush()
    em.flush()
    assert log.writes() == [], "nothing changed, nothing written"
    loaded[0].raw = bytearray(b"same")
    fork.flush()
    assert [w for w in log.writes() if w.startswith("update")] == [], "an equal value"


def test_a_type_with_bytes_but_no_json_finds_in_place_changes(connect):
    """Without a JSON column nothing else makes the flush look at unwritten entities: only
    those holding a bytearray are compared again (loaded ones hold bytes: never)."""
    from orm import PrimaryKey, entity

    @entity()
    class Attachment:
        id: int = PrimaryKey()
        data: bytes = b""

    with connect([Attachment]) as orm:
        em = orm.em.fork()
        em.persist([Attachment(data=b"x") for _ in range(3)]).flush()
        held = Attachment(data=bytearray(b"abc"))
        em.persist(held).flush()
        uow = em.get_unit_of_work()
        assert list(uow.watched.values()) == [held], "only the bytearray holder is watched"
        held.data[0] = 0x7A
        em.flush()
        assert rows(orm, "select data from attachment where id = 4") == [(b"zbc",)]
        held.data[1] = 0x7A
        assert em.count(Attachment, {"data": b"zzc"}) == 1, "FlushMode.AUTO sees it too"
        loaded = orm.em.fork()
        for a in loaded.find(Attachment, {}):
            a.data  # noqa: B018 - loaded values are bytes
        assert loaded.get_unit_of_work().watched == {}
        held.data = b"plain"
        em.flush()
        assert uow.watched == {}, "bytes again: no longer compared at every flush"

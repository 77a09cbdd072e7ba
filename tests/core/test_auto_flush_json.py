"""A JSON document changed in place (no assignment, so no `__setattr__` marks the entity
dirty) is still a change the queries see: FlushMode.AUTO flushes it before a query over its
entity type, FlushMode.COMMIT leaves it for the explicit flush."""

from __future__ import annotations

import pytest

from orm import FlushMode
from tests.core.models import ALL, Everything, User
from tests.databases import rows, sql

CHANGED = {"doc": {"$like": '%"k": 1%'}}


@pytest.fixture
def stored(orm):
    em = orm.em.fork()
    em.persist([Everything(doc={"a": 0}, items=[0]), Everything(doc={"a": 1})]).flush()
    return orm


def stored_docs(orm) -> list[tuple]:
    return rows(orm, "select id, doc, items from everything order by id")


def loaded(orm, flush_mode=None):
    em = orm.em.fork(flush_mode=flush_mode)
    first = em.find(Everything, {}, order_by={"id": "asc"})[0]
    return em, first


@pytest.mark.parametrize("query", ["find", "count", "find_one", "find_and_count"])
def test_auto_flush_writes_an_in_place_change_before_a_query(stored, log, query):
    em, e = loaded(stored)
    e.doc["k"] = 1
    log.clear()
    if query == "find":
        result = [x.id for x in em.find(Everything, CHANGED)]
    elif query == "count":
        result = em.count(Everything, CHANGED)
    elif query == "find_one":
        result = em.find_one(Everything, CHANGED).id
    else:
        found, total = em.find_and_count(Everything, CHANGED)
        result = ([x.id for x in found], total)
    assert result == {"find": [1], "count": 1, "find_one": 1, "find_and_count": ([1], 1)}[query]
    assert log.writes()[:3] == [
        "begin",
        sql(stored, """update `everything` set `doc` = '{"a": 0, "k": 1}' where `id` = 1"""),
        "commit",
    ]
    assert stored_docs(stored)[0] == (1, '{"a": 0, "k": 1}', "[0]")
    log.clear()
    em.flush()
    assert log == [], "written once"


def test_auto_flush_writes_a_nested_list_change(stored):
    em, e = loaded(stored)
    e.items.append({"nested": [1]})
    assert em.count(Everything, {"items": {"$like": "%nested%"}}) == 1
    assert stored_docs(stored)[0][2] == '[0, {"nested": [1]}]'
    e.items[1]["nested"].append(2)
    assert [x.id for x in em.find(Everything, {"items": {"$like": "%[1, 2]%"}})] == [1]


def test_a_query_over_another_entity_type_does_not_flush(stored, log):
    em, e = loaded(stored)
    e.doc["k"] = 1
    log.clear()
    em.find(User, {})
    assert log.writes() == []
    assert stored_docs(stored)[0][1] == '{"a": 0}'


def test_a_lookup_answered_by_the_identity_map_does_not_flush(stored, log):
    em, e = loaded(stored)
    e.doc["k"] = 1
    log.clear()
    assert em.find_one(Everything, 1) is e
    assert log == []


@pytest.mark.parametrize("how", ["config", "fork", "query"])
def test_flush_mode_commit_leaves_an_in_place_change_for_the_flush(stored, connect, log, how):
    if how == "config":  # another ORM on the same database, configured so
        orm = connect(ALL, create=False, flush_mode=FlushMode.COMMIT)
        em, e = loaded(orm)
        options = {}
    else:
        orm = stored
        em, e = loaded(stored, FlushMode.COMMIT if how == "fork" else None)
        options = {} if how == "fork" else {"flush_mode": FlushMode.COMMIT}
    try:
        e.doc["k"] = 1
        log.clear()
        assert em.count(Everything, CHANGED, **options) == 0
        assert em.find(Everything, CHANGED, **options) == []
        assert stored_docs(orm)[0][1] == '{"a": 0}'
        assert log.writes() == []
        em.flush()
        assert stored_docs(orm)[0][1] == '{"a": 0, "k": 1}'
        assert em.count(Everything, CHANGED, **options) == 1
    finally:
        if orm is not stored:
            orm.close()


def test_flush_mode_always_flushes_before_any_query(stored):
    em, e = loaded(stored, FlushMode.ALWAYS)
    e.doc["k"] = 1
    em.find(User, {})
    assert stored_docs(stored)[0][1] == '{"a": 0, "k": 1}'

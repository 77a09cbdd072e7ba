"""Filters: empty conditions mean TRUE wherever they appear, and every operand is checked
against its property's type and its operator before any SQL runs (a ValidationError naming
entity, property, operator and value, never a driver error)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from orm import ValidationError
from tests.core.models import Book, Color, Everything, User

AGES = [20, 21, 22, 23, 24]


@pytest.fixture
def users(em):
    people = [
        User(full_name=f"U{i}", email=f"u{i}@x.io", password="pw", age=age)
        for i, age in enumerate(AGES)
    ]
    em.persist(people).flush()
    return people


def indexes(found, people):
    ids = [u.id for u in people]
    return sorted(ids.index(u.id) for u in found)


ALL_FIVE = [0, 1, 2, 3, 4]

# -- empty conditions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"$or": [{}, {"age": 20}]}, ALL_FIVE),
        ({"$or": [{"age": 20}, {}]}, ALL_FIVE),
        ({"$or": [{}]}, ALL_FIVE),
        ({"$or": [{"$or": [{}]}, {"age": 20}]}, ALL_FIVE),
        ({"$or": [{"$and": [{}]}, {"age": 20}]}, ALL_FIVE),
        ({"$or": [{"$not": {"$not": {}}}, {"age": 20}]}, ALL_FIVE),
        ({"$and": [{"$or": [{}, {"age": 20}]}, {"age": 21}]}, [1]),
        ({"$and": [{}, {"age": 20}]}, [0]),
        ({"$and": [{}]}, ALL_FIVE),
        ({"$and": []}, ALL_FIVE),
        ({"$or": []}, []),
        ({"$not": {}}, []),
        ({"$not": {"$or": [{}, {"age": 20}]}}, []),
        ({"$not": {"$and": [{}, {"age": 20}]}}, [1, 2, 3, 4]),
        ({"$not": {"$not": {}}}, ALL_FIVE),
        ({"age": 21, "$or": [{}]}, [1]),
    ],
)
def test_an_empty_condition_is_true(orm, users, log, where, expected):
    em = orm.em.fork()
    assert indexes(em.find(User, where), users) == expected
    assert em.count(User, where) == len(expected)


def test_an_empty_branch_is_still_validated(em, users):
    with pytest.raises(ValidationError, match="User has no property 'nope'"):
        em.find(User, {"$or": [{}, {"nope": 1}]})


# -- operands checked before any SQL ----------------------------------------------------------

BAD = [
    ({"age": {"nope": 1}}, "age", r"'nope' is not an operator \(operators start with '\$'"),
    ({"age": {"$gt": 1, "nope": 2}}, "age", r"mixes operators \(\$gt\) with other keys \('nope'\)"),
    ({"age": {"$eq": [1, 2]}}, "age",
     r"\$eq on User\.age in a filter: got list \[1, 2\]; expected int \(for a list of values "
     r"use \$in"),
    ({"full_name": {"$like": {"a": 1}}}, "full_name",
     r"\$like on User\.full_name in a filter: got dict \{'a': 1\}; expected a str pattern"),
    ({"age": {"$gt": {"$lt": 1}}}, "age",
     r"\$gt on User\.age in a filter: got dict \{'\$lt': 1\}; expected int \(operators are not "
     r"nested"),
    ({"age": object()}, "age", r"\$eq on User\.age in a filter: got object <object object"),
    ({"age": {"$in": [1, {"a": 1}]}}, "age",
     r"\$in on User\.age in a filter: got dict \{'a': 1\}; expected int"),
    ({"age": {"$nin": [[1]]}}, "age", r"\$nin on User\.age in a filter: got list \[1\]"),
    ({"age": {"$in": 5}}, "age", r"\$in on User\.age takes a list"),
    ({"email": {"$re": "(unclosed"}}, "email",
     r"\$re on User\.email in a filter: got str '\(unclosed'; expected a valid regular "
     r"expression \(Python's re: missing \)"),
    ({"email": {"$re": 5}}, "email", r"\$re on User\.email .*expected a str regular expression"),
    ({"nickname": {"$exists": "yes"}}, "nickname",
     r"\$exists on User\.nickname in a filter: got str 'yes'; expected True or False"),
    ({"age": {"$gt": None}}, "age", r"\$gt on User\.age .*got NoneType None; expected int "
     r"\(for null use \$eq, \$ne or \$exists\)"),
    ({"age": "twenty"}, "age", r"\$eq on User\.age in a filter: got str 'twenty'; expected int"),
    ({"full_name": 5}, "full_name", r"\$eq on User\.full_name in a filter: got int 5; "
     r"expected str"),
    ({"age": {}}, "age", r"\$eq on User\.age in a filter: got dict \{\}; expected int"),
    ({"age": {"$not": {"$like": 5}}}, "age", r"\$like on User\.age .*expected a str pattern"),
    ({"id": "abc"}, "id", r"\$eq on User\.id in a filter: got str 'abc'; expected int"),
]


@pytest.mark.parametrize(("where", "prop", "message"), BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_operand_is_a_validation_error_before_sql(em, users, log, where, prop, message):
    log.clear()
    with pytest.raises(ValidationError, match=message) as excinfo:
        em.find(User, where)
    assert excinfo.value.property == prop
    assert excinfo.value.entity is User
    assert log.sql() == []


@pytest.mark.parametrize("call", ["count", "native_update", "native_delete"])
def test_every_filtering_call_validates(em, users, log, call):
    log.clear()
    with pytest.raises(ValidationError, match=r"\$like on User\.full_name"):
        if call == "native_update":
            em.native_update(User, {"full_name": {"$like": 5}}, {"age": 1})
        else:
            getattr(em, call)(User, {"full_name": {"$like": 5}})
    assert log.sql() == []


# -- legitimate filters still work ------------------------------------------------------------


def test_a_primary_key_filter_accepts_the_entity_and_its_text(orm, users):
    em = orm.em.fork()
    first, second = em.find(User, {"id": {"$in": [users[0].id, users[1].id]}})
    assert em.find(User, {"id": first}) == [first]
    assert em.find(User, {"id": {"$in": [first, second]}}) == [first, second]
    assert em.find(User, {"id": {"$ne": first}, "age": {"$lt": 22}}) == [second]
    assert orm.em.fork().find_one(User, str(users[2].id)).email == "u2@x.io"


def test_uuid_enum_and_numeric_operands(orm, em):
    book = Book(title="T")
    em.persist(book)
    loud = Everything(f=2.5, dec=Decimal("3.50"), color=Color.GREEN, b=True)
    em.persist([loud, Everything()]).flush()
    fresh = orm.em.fork()
    assert fresh.find_one(Book, str(book.uuid)).title == "T"
    assert fresh.find(Book, {"uuid": {"$in": [book.uuid, uuid.uuid4()]}})[0].title == "T"
    assert [e.id for e in fresh.find(Everything, {"f": {"$gt": 2}})] == [loud.id]
    assert [e.id for e in fresh.find(Everything, {"dec": {"$gte": 3}})] == [loud.id]
    assert [e.id for e in fresh.find(Everything, {"dec": Decimal("3.5")})] == [loud.id]
    assert [e.id for e in fresh.find(Everything, {"color": Color.GREEN})] == [loud.id]
    assert [e.id for e in fresh.find(Everything, {"color": "green"})] == [loud.id]
    assert [e.id for e in fresh.find(Everything, {"b": True})] == [loud.id]
    with pytest.raises(ValidationError, match=r"\$eq on Everything\.color .*got str 'blue'"):
        fresh.find(Everything, {"color": "blue"})


def test_json_values_are_equality_operands(orm, em):
    a = Everything(doc={"k": 1, "tags": ["x"]}, items=[1, 2])
    b = Everything(doc={}, items=[])
    em.persist([a, b]).flush()
    fresh = orm.em.fork()
    assert [e.id for e in fresh.find(Everything, {"doc": {"k": 1, "tags": ["x"]}})] == [a.id]
    assert [e.id for e in fresh.find(Everything, {"doc": {}})] == [b.id]
    assert [e.id for e in fresh.find(Everything, {"doc": {"$eq": {"k": 1, "tags": ["x"]}}})] == [
        a.id
    ]
    assert [e.id for e in fresh.find(Everything, {"items": [1, 2]})] == [a.id]
    assert [e.id for e in fresh.find(Everything, {"doc": {"$in": [{}, {"z": 0}]}})] == [b.id]
    assert [e.id for e in fresh.find(Everything, {"items": {"$ne": []}})] == [a.id]

"""Filters on nullable columns holding a mix of NULLs and values.

`None` means SQL NULL and compiles to `is null` / `is not null` (`{"nickname": None}`,
`$eq`/`$ne` with None, `$exists`). Comparisons with a value keep SQL's three-valued logic, as
MikroORM's do (its `$ne` compiles to `!=`, `$nin` to `not in`, `$not` to `not (...)`): a row
whose column is NULL matches neither `= 'x'` nor `!= 'x'`, nor `not in (...)`, nor
`not (= 'x')`. To include the NULL rows, say so: `{"$or": [{"nickname": {"$ne": "x"}},
{"nickname": None}]}`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from orm import ValidationError
from tests.core.models import Everything, User

NICKNAMES = {1: None, 2: "x", 3: "y", 4: None, 5: "z"}


@pytest.fixture
def users(em):
    em.persist([
        User(full_name=f"User {k}", email=f"u{k}@x.io", password="pw", nickname=nick, age=k)
        for k, nick in NICKNAMES.items()
    ]).flush()
    return em.fork()


def ids(em, where, entity=User):
    found = sorted(e.id for e in em.find(entity, where))
    assert em.fork().count(entity, where) == len(found), "count agrees with find"
    return found


NULLS = [k for k, v in NICKNAMES.items() if v is None]
VALUES = [k for k, v in NICKNAMES.items() if v is not None]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"nickname": None}, NULLS),
        ({"nickname": {"$eq": None}}, NULLS),
        ({"nickname": {"$exists": False}}, NULLS),
        ({"nickname": {"$exists": True}}, VALUES),
        ({"nickname": {"$ne": None}}, VALUES),
        ({"$not": {"nickname": None}}, VALUES),
        ({"nickname": {"$not": {"$eq": None}}}, VALUES),
    ],
    ids=["none", "eq-none", "exists-false", "exists-true", "ne-none", "not-none",
         "prop-not-eq-none"],
)
def test_none_means_null(users, where, expected):
    assert ids(users, where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"nickname": "x"}, [2]),
        ({"nickname": {"$ne": "x"}}, [3, 5]),
        ({"nickname": {"$nin": ["x", "y"]}}, [5]),
        ({"nickname": {"$in": ["x", "y"]}}, [2, 3]),
        ({"nickname": {"$not": {"$eq": "x"}}}, [3, 5]),
        ({"$not": {"nickname": "x"}}, [3, 5]),
        ({"nickname": {"$like": "%"}}, VALUES),
        ({"nickname": {"$gt": "a"}}, VALUES),
    ],
    ids=["eq", "ne", "nin", "in", "not-eq", "not-prop", "like", "gt"],
)
def test_comparisons_with_a_value_never_match_null(users, where, expected):
    """SQL's (and MikroORM's) semantics: NULL is neither equal nor unequal to a value."""
    assert ids(users, where) == expected


def test_null_rows_are_included_when_asked_for(users):
    where = {"$or": [{"nickname": {"$ne": "x"}}, {"nickname": None}]}
    assert ids(users, where) == [1, 3, 4, 5]
    where = {"$or": [{"nickname": {"$nin": ["x", "y"]}}, {"nickname": {"$exists": False}}]}
    assert ids(users, where) == [1, 4, 5]


def test_null_filters_combine_with_other_conditions(users):
    assert ids(users, {"nickname": None, "age": {"$gt": 1}}) == [4]
    assert ids(users, {"$and": [{"nickname": {"$ne": None}}, {"age": {"$lte": 3}}]}) == [2, 3]
    assert users.find_one(User, {"nickname": None, "age": 4}).email == "u4@x.io"


def test_null_filters_on_other_nullable_types(em):
    when, key = datetime(2024, 5, 6, 7, 8, 9), uuid.UUID(int=7)
    em.persist([
        Everything(dt=when, u=None, note="n"),
        Everything(dt=None, u=key, note=None),
        Everything(dt=None, u=None, note=None),
    ]).flush()
    fresh = em.fork()
    assert ids(fresh, {"dt": None}, Everything) == [2, 3]
    assert ids(fresh, {"dt": {"$ne": None}}, Everything) == [1]
    assert ids(fresh, {"dt": {"$ne": when}}, Everything) == []
    assert ids(fresh, {"dt": when}, Everything) == [1]
    assert ids(fresh, {"u": {"$exists": True}}, Everything) == [2]
    assert ids(fresh, {"u": {"$nin": [uuid.UUID(int=8)]}}, Everything) == [2]
    assert ids(fresh, {"note": {"$not": {"$eq": "n"}}}, Everything) == []
    assert ids(fresh, {"note": None, "u": None}, Everything) == [3]


def test_none_in_a_not_nullable_column_is_allowed_and_matches_nothing(users):
    assert ids(users, {"full_name": None}) == []
    assert ids(users, {"full_name": {"$ne": None}}) == [1, 2, 3, 4, 5]


def test_exists_on_an_unknown_property_is_refused(users):
    with pytest.raises(ValidationError, match="User has no property .nick."):
        users.find(User, {"nick": {"$exists": False}})


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"nickname": {"$in": [None, "x"]}}, sorted(NULLS + [2])),
        ({"nickname": {"$in": [None]}}, NULLS),
        ({"nickname": [None, "y"]}, sorted(NULLS + [3])),
        ({"nickname": {"$nin": [None, "x"]}}, [3, 5]),
        ({"nickname": {"$nin": [None]}}, VALUES),
    ],
)
def test_none_inside_in_and_nin_means_null(users, where, expected):
    """`$in: [None, "x"]` is `is null or = 'x'`; `$nin: [None, "x"]` is `is not null and
    != 'x'` (plain SQL `not in (NULL, 'x')` would match no row at all)."""
    assert ids(users, where) == expected

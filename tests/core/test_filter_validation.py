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


# -- found by the filter fuzzer (test_filter_fuzz.py) ----------------------------------------


@pytest.mark.parametrize(
    "where",
    [{"nickname": None}, {"nickname": {"$exists": True}}, {"$not": {"nickname": None}},
     {"nickname": {"$in": [None]}}],
)
def test_find_one_takes_a_condition_that_binds_no_value(em, where):
    """It was refused as "no condition" (it compiles with no parameter); it names a
    column, so find_one answers it."""
    em.persist([
        User(full_name="A", email="a@x.io", password="pw", nickname=None),
        User(full_name="B", email="b@x.io", password="pw", nickname="b"),
    ]).flush()
    fresh = em.fork()
    expected = fresh.find(User, where)
    assert len(expected) == 1
    assert fresh.find_one(User, where) is expected[0]


@pytest.mark.parametrize(
    "where",
    [{"$not": {"$not": {"$or": []}}}, {"$or": [{"$not": {}}]}, {"id": {"$not": {"$nin": []}}},
     {"$and": [{"age": 20}, {"$or": []}]}],
)
def test_find_one_answers_a_filter_true_of_no_row(em, users, log, where):
    """Constants fold: a filter true of no row (whatever columns its other branches name)
    is FALSE, so find_one returns None instead of refusing it as "no condition"."""
    log.clear()
    assert em.find_one(User, where) is None
    assert em.find(User, where) == []
    assert log.sql()[-1].endswith("where 1 = 0")


@pytest.mark.parametrize(
    "where",
    [{"$not": {"$or": []}}, {"$or": [{"age": 20}, {"$not": {"$or": []}}]},
     {"id": {"$nin": []}}, {"$and": [{"$and": []}, {"age": {"$nin": []}}]}],
)
def test_find_one_still_refuses_a_filter_true_of_every_row(em, users, where):
    with pytest.raises(ValidationError, match=r"find_one\(User, .*\) has no condition"):
        em.find_one(User, where)
    assert len(em.find(User, where)) == len(AGES)


BOOLS = [
    (User, {"age": True}, "age", r"\$eq on User\.age .*got bool True; expected int"),
    (User, {"id": False}, "id", r"\$eq on User\.id .*got bool False; expected int"),
    (User, {"age": {"$in": [20, False]}}, "age", r"\$in on User\.age .*got bool False"),
    (User, {"age": {"$not": {"$gt": True}}}, "age", r"\$gt on User\.age .*got bool True"),
    (Everything, {"f": {"$lt": True}}, "f", r"\$lt on Everything\.f .*got bool True"),
    (Everything, {"dec": True}, "dec", r"\$eq on Everything\.dec .*got bool True"),
    (Everything, {"size": True}, "size", r"\$eq on Everything\.size .*got bool True"),
]


@pytest.mark.parametrize(("entity", "where", "prop", "message"), BOOLS,
                         ids=[repr(b[1]) for b in BOOLS])
def test_a_bool_is_not_a_number_in_a_filter(em, users, log, entity, where, prop, message):
    """True == 1 in Python, and SQLite matched the rows holding 1; PostgreSQL refused the
    statement (`operator does not exist: bigint = boolean`), a driver error."""
    log.clear()
    with pytest.raises(ValidationError, match=message) as excinfo:
        em.find(entity, where)
    assert "True and False are not values of it" in str(excinfo.value)
    assert excinfo.value.property == prop
    assert log.sql() == []
    assert em.find(Everything, {"b": True}) == []  # a bool property still takes them


def test_a_lone_surrogate_in_a_filter_names_the_property(em, users, log):
    """The driver's UnicodeEncodeError became a ValidationError naming neither entity nor
    property, after the statement was sent."""
    log.clear()
    for where, op in (({"email": "\ud800"}, r"\$eq"), ({"email": {"$in": ["a", "b\udfff"]}},
                      r"\$in"), ({"email": {"$like": "\ud800%"}}, r"\$like"),
                      ({"email": {"$re": "\ud800"}}, r"\$re"), ({"$or": [{"bio": "\ud800"}]},
                      r"\$eq")):
        with pytest.raises(ValidationError, match=op + r" on User\.(email|bio) .*lone surrogate"):
            em.find(User, where)
    assert log.sql() == []


@pytest.mark.parametrize("value", [Decimal("1E+1000000"), Decimal("-1E+1000000"),
                                   Decimal("1E+131072"), Decimal("1E-20000")])
def test_a_decimal_no_column_holds_is_refused_in_a_filter(em, log, value):
    """SQLite's check raised decimal.Overflow (normalize() of 1E+1000000); PostgreSQL
    refused the statement (`value overflows numeric format`), a driver error."""
    em.persist(Everything()).flush()
    log.clear()
    with pytest.raises(ValidationError, match=r"\$gt on Everything\.dec in a filter") as exc:
        em.find(Everything, {"dec": {"$gt": value}})
    assert exc.value.property == "dec"
    assert "more digits than PostgreSQL's numeric holds" in str(exc.value) or (
        "too large or too small" in str(exc.value)
    )
    assert log.sql() == []


def test_a_decimal_beyond_a_float_is_refused_in_a_filter_on_sqlite(em, database):
    """SQLite compares a numeric column as 64-bit floats: 1E-400 became 0 and matched the
    rows holding 0. PostgreSQL compares it exactly."""
    em.persist(Everything(dec=Decimal("0"))).flush()
    where = {"dec": Decimal("1E-400")}
    if database == "sqlite":
        with pytest.raises(ValidationError, match=r"Everything\.dec .*too large or too small"):
            em.find(Everything, where)
    else:
        assert em.find(Everything, where) == []


@pytest.mark.parametrize("doc", [{"a": float("nan")}, [1, float("inf")], {"a": [-float("inf")]}])
def test_nan_and_infinity_in_a_json_filter_are_refused(em, log, doc):
    """json.dumps wrote NaN and Infinity, which are not JSON: PostgreSQL's jsonb refused
    them (a driver error); SQLite compared text no stored document holds."""
    log.clear()
    prop = "doc" if isinstance(doc, dict) else "items"
    with pytest.raises(ValidationError, match=rf"\$in on Everything\.{prop} .*not JSON compliant"):
        em.find(Everything, {prop: {"$in": [doc]}})
    assert log.sql() == []


@pytest.mark.parametrize(
    "pattern", ["(?P<name>u)", "(?i:U)", "u{1,256}", "u*+", "(?>u)", r"\d{1000}", "(?=u)*",
                "(u{255}){255}"],
)
def test_a_regular_expression_postgresql_refuses_is_a_validation_error(
    orm, em, users, database, pattern
):
    """Python's re compiles these; PostgreSQL's regular expressions refused them (SQLSTATE
    2201B), a driver error that also aborted the transaction it ran in. On SQLite (Python's
    re) they work."""
    if database == "sqlite":
        em.find(User, {"email": {"$re": pattern}})
        return
    with pytest.raises(ValidationError, match=r"\$re on User\.email in a filter: got str "
                       r".*; expected a regular expression postgresql takes \(invalid "
                       r"regular expression") as excinfo:
        em.find(User, {"email": {"$re": pattern}})
    assert excinfo.value.property == "email"
    with pytest.raises(ValidationError, match=r"\$re on User\.email"):  # the answer is kept
        em.count(User, {"email": {"$re": pattern}})
    # inside a transaction: refused, and the transaction goes on and commits
    with em.transaction() as tx:
        tx.persist(User(full_name="T", email="t@x.io", password="pw"))
        tx.flush()
        with pytest.raises(ValidationError, match=r"\$re on User\.full_name"):
            # a pattern not asked about yet: the server is asked inside the transaction
            tx.find(User, {"full_name": {"$re": pattern + "|zz"}})
        assert [u.email for u in tx.find(User, {"email": {"$re": "^t@"}})] == ["t@x.io"]
    assert orm.em.fork().count(User, {"email": "t@x.io"}) == 1


def test_an_in_list_longer_than_a_statement_binds_is_a_validation_error(orm, em, log):
    """PostgreSQL's protocol binds at most 65535 parameters (psycopg raised, mapped to a
    ConnectionException); SQLite at most its SQLITE_LIMIT_VARIABLE_NUMBER (an
    OperationalError). The limit counts the statement's other parameters too."""
    em.persist(User(full_name="A", email="a@x.io", password="pw")).flush()
    most = orm.platform.max_parameters
    assert most == orm.connection.max_variables
    log.clear()
    with pytest.raises(ValidationError, match=rf"\$in on User\.id in a filter has {most - 1} "
                       rf"values, more than one statement can bind .*at most {most} "
                       r"parameters") as excinfo:
        em.find(User, {"id": {"$in": list(range(most - 1))}, "age": {"$ne": 5}})
    assert excinfo.value.property == "id"
    with pytest.raises(ValidationError, match=r"\$nin on User\.age"):
        em.native_update(User, {"age": {"$nin": list(range(most - 1))}}, {"bio": "x", "age": 1})
    assert log.sql() == []
    if orm.platform.name == "postgresql":  # at the limit it runs (SQLite's is 250,000 here)
        ids = list(range(1, most - 1))
        assert len(em.find(User, {"id": {"$in": ids}}, limit=1, offset=0)) == 1


def test_a_relation_filter_binds_within_the_statement_and_folds_its_constants(connect, log):
    """A relation's conditions compile into a subquery of the same statement: their values
    count toward the one parameter limit, and a condition true of no target row is the
    constant FALSE there too."""
    from tests.core.relation_models import Article, Author, Image, Team

    orm = connect([Article, Author, Team, Image], debug=["query"], logger=log.append)
    em = orm.em.fork()
    em.persist(Article(title="T", author=Author(name="A"))).flush()
    half = orm.platform.max_parameters // 2
    log.clear()
    with pytest.raises(ValidationError, match=r"\$in on Author\.name in a filter has") as exc:
        names = ["A"] * (half + 2)  # with the titles, more than the statement can bind
        em.find(Article, {"title": {"$in": ["T"] * half}, "author": {"name": {"$in": names}}})
    assert exc.value.property == "name"
    assert log.sql() == []
    fresh = orm.em.fork()
    assert fresh.find(Article, {"author": {"name": {"$in": []}}}) == []
    assert log.sql()[-1].endswith("where 1 = 0)")
    assert [a.title for a in fresh.find(Article, {"author": {"name": {"$nin": []}}})] == ["T"]
    assert fresh.find_one(Article, {"author": {"name": "A"}}).title == "T"

"""Keys entering the ORM, lookups without a condition, primary-key changes and which
EntityManager an entity belongs to (SPEC section 3)."""

from __future__ import annotations

import uuid

import pytest

from orm import wrap
from orm.errors import ValidationError
from tests.core.models import Article, Book, Tag, User
from tests.databases import rows, sql


def _user(name: str) -> User:
    return User(full_name=name, email=f"{name}@x", password="p")


@pytest.fixture
def one_user(orm) -> int:
    user = _user("a")
    orm.em.fork().persist(user).flush()
    return user.id


# -- keys are converted by the primary key's type, or refused -------------------------------
def test_get_reference_with_a_text_key_is_the_same_identity(em, one_user):
    loaded = em.find_one_or_fail(User, one_user)
    assert em.get_reference(User, str(one_user)) is loaded
    ref = em.fork().get_reference(User, "1")
    assert ref.id == 1 and type(ref.id) is int


def test_find_one_with_a_text_key_returns_the_managed_instance(em, one_user):
    loaded = em.find_one_or_fail(User, one_user)
    assert em.find_one(User, "1") is loaded
    assert em.find_one_or_fail(User, {"id": "1"}) is loaded
    assert list(em.get_unit_of_work().get_identity_map()[User]) == [1]


def test_a_key_of_the_wrong_type_is_refused(em, one_user):
    with pytest.raises(ValidationError) as err:
        em.get_reference(User, "one")
    assert "'one' is not a valid primary key for User.id" in str(err.value)
    assert err.value.property == "id"
    with pytest.raises(ValidationError, match="not a valid primary key for User.id"):
        em.find_one(User, 1.5)
    with pytest.raises(ValidationError, match="not a valid primary key for User.id"):
        em.get_reference(User, True)
    with pytest.raises(ValidationError, match="not a valid primary key for Tag.name"):
        em.get_reference(Tag, 5)


def test_uuid_keys_given_as_text(em):
    book = Book(title="t")
    em.persist(book).flush()
    assert em.get_reference(Book, str(book.uuid)) is book
    assert em.find_one(Book, str(book.uuid)) is book
    with pytest.raises(ValidationError, match="not a valid primary key for Book.uuid"):
        em.find_one(Book, "not-a-uuid")
    assert isinstance(book.uuid, uuid.UUID)


# -- a lookup needs a condition ---------------------------------------------------------------
@pytest.mark.parametrize(
    "where",
    [None, {}, {"$and": []}, {"$or": [{}]}, {"$or": [{}, {"age": 1}]}, {"$and": [{}]},
     {"id": {"$nin": []}}],
)
def test_find_one_without_a_condition_is_refused(em, one_user, where):
    with pytest.raises(ValidationError) as err:
        em.find_one(User, where)
    assert "find_one(User" in str(err.value) and "has no condition" in str(err.value)
    with pytest.raises(ValidationError, match="has no condition"):
        em.find_one_or_fail(User, where)


def test_get_reference_without_a_key_is_refused(em):
    with pytest.raises(ValidationError, match="No primary key given for User.id"):
        em.get_reference(User, None)


# -- a new primary key is written and re-keys the identity map -------------------------------
def test_assigning_a_new_primary_key_updates_the_row(em, orm, log, one_user):
    user = em.find_one_or_fail(User, one_user)
    log.clear()
    user.id = 99
    em.flush()
    assert log.writes()[1] == sql(orm, "update `user` set `id` = 99 where `id` = 1")
    assert rows(orm, "select id, full_name from `user`") == [(99, "a")]
    im = em.get_unit_of_work().get_identity_map()[User]
    assert im == {99: user}
    assert em.find_one(User, 99) is user
    assert em.find_one(User, 1) is None
    log.clear()
    em.flush()
    assert log == [], "nothing left to write"


def test_a_new_key_and_other_columns_in_one_update(em, orm, one_user):
    user = em.find_one_or_fail(User, one_user)
    user.id = 7
    user.age = 30
    em.flush()
    assert rows(orm, "select id, age from `user`") == [(7, 30)]


def test_new_keys_for_many_rows_at_once(em, orm):
    em.persist([_user(f"u{i}") for i in range(250)]).flush()
    users = em.find(User, {}, order_by={"id": "asc"})
    for user in users:
        user.id += 1000
    em.flush()
    stored = rows(orm, "select id, full_name from `user` order by id")
    assert stored == [(1001 + i, f"u{i}") for i in range(250)]
    assert sorted(em.get_unit_of_work().get_identity_map()[User]) == [r[0] for r in stored]


def test_removing_an_entity_whose_key_was_changed_deletes_its_row(em, orm, one_user):
    orm.em.fork().persist(_user("b")).flush()
    user = em.find_one_or_fail(User, one_user)
    user.id = 2  # the key of the other row: the delete must still target row 1
    em.remove(user).flush()
    assert rows(orm, "select id, full_name from `user`") == [(2, "b")]
    assert em.get_unit_of_work().get_identity_map()[User] == {}


def test_a_versioned_entity_gets_a_new_key(em, orm):
    article = Article(title="t")
    em.persist(article).flush()
    article.id = 50
    em.flush()
    assert rows(orm, "select id, version from article") == [(50, 2)]


def test_a_new_key_of_the_wrong_type_is_refused_at_flush(em, orm, one_user):
    user = em.find_one_or_fail(User, one_user)
    user.id = "x"
    with pytest.raises(ValidationError, match="User.id"):
        em.flush()
    assert rows(orm, "select id from `user`") == [(1,)]
    user.id = 3
    em.flush()
    assert rows(orm, "select id from `user`") == [(3,)]


# -- an entity belongs to one EntityManager ---------------------------------------------------
def test_a_new_entity_persisted_in_a_second_fork_is_refused(orm):
    first, second = orm.em.fork(), orm.em.fork()
    user = _user("a")
    first.persist(user)
    with pytest.raises(ValidationError) as err:
        second.persist(user)
    message = str(err.value)
    assert "User" in message and "already new in another EntityManager" in message
    assert f"(id {first.id})" in message
    second.flush()
    first.flush()
    assert rows(orm, "select count(*) from `user`") == [(1,)]


def test_a_managed_entity_persisted_in_another_fork_is_refused(orm, one_user):
    first, second = orm.em.fork(), orm.em.fork()
    user = first.find_one_or_fail(User, one_user)
    with pytest.raises(ValidationError, match="already managed by another EntityManager"):
        second.persist(user)


def test_a_persisted_entity_is_not_managed_until_flushed(em):
    user = _user("a")
    em.persist(user)
    assert not wrap(user).is_managed()
    em.flush()
    assert wrap(user).is_managed()


def test_removing_or_clearing_a_new_entity_frees_it_for_another_fork(orm):
    first, second = orm.em.fork(), orm.em.fork()
    user = _user("a")
    first.persist(user)
    first.remove(user)
    second.persist(user)  # no longer held by the first
    second.remove(user)
    first.persist(user)
    first.clear()
    second.persist(user).flush()
    assert rows(orm, "select count(*) from `user`") == [(1,)]


def test_refresh_of_an_unflushed_entity_is_refused(em):
    user = _user("a")
    em.persist(user)
    with pytest.raises(ValidationError, match="Cannot refresh User"):
        em.refresh(user)


def test_a_new_key_on_an_uninitialized_reference_is_refused(em, orm, one_user):
    orm.em.fork().persist(_user("b")).flush()
    ref = em.get_reference(User, one_user)
    ref.id = 2
    ref.age = 5
    with pytest.raises(ValidationError, match="primary key of an uninitialized User reference"):
        em.flush()
    em.remove(ref)
    with pytest.raises(ValidationError, match="load it first"):
        em.flush()
    assert rows(orm, "select id, age from `user` order by id") == [(1, 0), (2, 0)]


def test_find_one_with_a_condition_that_matches_nothing_is_none(em, one_user):
    assert em.find_one(User, {"id": {"$in": []}}) is None
    assert em.find_one(User, {"$not": {}}) is None
    assert em.find_one(User, {"$or": [{"age": 0}]}) is not None


# -- a new entity under the key of an instance the identity map holds -----------------------
def test_a_new_entity_under_the_key_of_a_stale_one_is_refused(em, orm, one_user):
    """The row of a loaded entity was deleted elsewhere, and a new entity is persisted with
    its key: inserting it would leave two instances for one row (the stale one's writes
    would land on the new row), so the flush refuses it until the stale one is let go."""
    stale = em.find_one_or_fail(User, one_user)
    orm.em.fork().native_delete(User, {"id": one_user})
    new = User(id=one_user, full_name="new", email="new@x", password="p")
    em.persist(new)
    with pytest.raises(ValidationError, match="already holds another instance"):
        em.flush()
    assert rows(orm, "select count(*) from `user`") == [(0,)], "nothing written"
    assert em.refresh(stale) is None  # the way out the message names
    em.flush()
    stale.full_name = "stale write"
    em.flush()
    assert rows(orm, "select id, full_name from `user`") == [(one_user, "new")]
    assert em.find_one(User, one_user) is new


def test_a_new_entity_under_the_key_of_one_being_removed_is_refused(em, orm, one_user):
    """Inserts run before deletes: the new row would be deleted by the same flush."""
    old = em.find_one_or_fail(User, one_user)
    orm.em.fork().native_delete(User, {"id": one_user})
    em.remove(old)
    em.persist(User(id=one_user, full_name="new", email="new@x", password="p"))
    with pytest.raises(ValidationError, match="already holds another instance"):
        em.flush()
    assert rows(orm, "select count(*) from `user`") == [(0,)]

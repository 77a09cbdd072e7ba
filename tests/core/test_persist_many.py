"""`em.persist(list)`: every entity of the list (and of nested lists, tuples, sets) joins the
Unit of Work as `persist(entity)` would make it, and one that cannot be persisted is refused
with the error `persist(entity)` gives."""

from __future__ import annotations

import pytest

from orm import ValidationError
from tests.core.models import Article, Tag


def test_persist_of_nested_collections_persists_every_entity(em) -> None:
    first, second, third = Tag(name="a"), Tag(name="b"), Article(title="t")
    assert em.persist([first, (second, {third})]) is em
    em.flush()
    assert sorted(t.name for t in em.fork().find(Tag, {})) == ["a", "b"]
    assert [a.title for a in em.fork().find(Article, {})] == ["t"]
    assert third.id is not None


def test_persist_of_a_list_holding_a_non_entity_names_it(em) -> None:
    stranger = object()
    with pytest.raises(ValidationError) as single:
        em.fork().persist(stranger)
    with pytest.raises(ValidationError) as listed:
        em.persist([Tag(name="ok"), stranger])
    assert str(listed.value) == str(single.value)
    assert "object" in str(listed.value)


def test_persist_of_a_list_refuses_an_entity_of_another_entity_manager(em) -> None:
    owned = Tag(name="owned")
    other = em.fork()
    other.persist(owned)
    with pytest.raises(ValidationError, match="already new in another EntityManager"):
        em.persist([Tag(name="mine"), owned])

"""The diff core's part in relations, compiled core and twin side by side: a relation
column's key becomes the target entity in the same hydration pass (from the identity maps,
or a reference entered there), its snapshot keeps the key, and a bad `targets` plan entry
is refused the same way by both."""

from __future__ import annotations

import pytest

from orm import _diff_py
from orm._backend import core
from orm._markers import REFERENCE
from orm.entity.reference import Ref
from tests.core.relation_models import Article, Author

CORES = [pytest.param(_diff_py, id="twin")]
if core is not _diff_py:
    CORES.append(pytest.param(core, id="compiled"))


class FakeUoW:
    def __init__(self):
        self.dirty = {}
        self.identity_map = {}


def _plan(backend, wrapper=None, **changes):
    args = dict(
        cls=Article,
        names=("id", "title", "author"),
        pk_index=0,
        to_python=(None, None, None),
        to_db=(None, None, None),
        compare=(None, None, None),
        accepts=(None, None, None),
        nullable=(False, False, True),
        has_mutable=False,
        on_invalid=None,
        kinds=(0, 0, 0),
        targets=(None, None, (Author, "id", None, wrapper)),
    )
    args.update(changes)
    return backend.Plan(**args)


@pytest.mark.parametrize("backend", CORES)
def test_keys_become_shared_references(backend):
    plan = _plan(backend)
    uow = FakeUoW()
    im = uow.identity_map.setdefault(Article, {})
    one, two, three = backend.hydrate(
        plan, [(1, "a", 7), (2, "b", 7), (3, "c", None)], im, uow, False
    )
    ref = one.author
    assert type(ref) is Author and ref is two.author and three.author is None
    assert ref._orm_snap is REFERENCE and ref._orm_uow is uow and ref.id == 7
    assert uow.identity_map[Author] == {7: ref}
    assert one._orm_snap == (1, "a", 7), "the snapshot keeps the key"
    loaded = object.__new__(Author)
    object.__setattr__(loaded, "id", 8)
    uow.identity_map[Author][8] = loaded
    (four,) = backend.hydrate(plan, [(4, "d", 8)], im, uow, False)
    assert four.author is loaded, "an entity the map holds is used as it is"


@pytest.mark.parametrize("backend", CORES)
def test_refill_refresh_and_detached_rows(backend):
    plan = _plan(backend)
    uow = FakeUoW()
    im = uow.identity_map.setdefault(Article, {})
    (art,) = backend.hydrate(plan, [(1, "a", 7)], im, uow, False)
    backend.hydrate(plan, [(1, "a", 9)], im, uow, True)  # refresh
    assert art.author is uow.identity_map[Author][9] and art._orm_snap == (1, "a", 9)
    (detached,) = backend.hydrate(plan, [(1, "a", 9)], None, uow, False)
    assert detached.author is not art.author and detached.author._orm_uow is None


@pytest.mark.parametrize("backend", CORES)
def test_wrapper_and_key_converter(backend):
    plan = _plan(backend, targets=(None, None, (Author, "id", int, Ref)))
    uow = FakeUoW()
    (art,) = backend.hydrate(plan, [(1, "a", "5")], {}, uow, False)
    assert type(art.author) is Ref and art.author.id == 5 and not art.author.is_initialized()
    assert art._orm_snap == (1, "a", "5")


def _error(backend, **changes):
    with pytest.raises((TypeError, ValueError)) as info:
        _plan(backend, **changes)
    return type(info.value), str(info.value)


def test_bad_targets_are_refused_alike():
    if core is _diff_py:
        pytest.skip("the compiled core is not loaded")
    bad = [
        dict(targets=(None, None)),
        dict(targets=(None, None, (Author, "id"))),
        dict(targets=(None, None, ("Author", "id", None, None))),
        dict(to_python=(None, None, int)),
        dict(kinds=(0, 0, 3)),
    ]
    for changes in bad:
        assert _error(core, **changes) == _error(_diff_py, **changes), changes

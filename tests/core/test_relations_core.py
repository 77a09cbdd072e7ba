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


class _Writer(Author):
    """A subclass of the target: not the exact class the direct path reads."""


@pytest.mark.parametrize("backend", CORES)
def test_direct_keys_read_the_target_key_and_leave_the_rest_to_to_db(backend):
    from orm.metadata.model import PendingKey

    calls = []

    def to_db(value):
        calls.append(value)
        return ("converted", value)

    plan = _plan(
        backend,
        to_db=(None, None, to_db),
        keys=(None, None, (Author, "id", PendingKey)),
    )
    stored, new, other = object.__new__(Author), object.__new__(Author), object.__new__(_Writer)
    object.__setattr__(stored, "id", 5)
    object.__setattr__(new, "id", None)
    object.__setattr__(other, "id", 6)
    wrapped = Ref(stored)
    rows = []
    for i, author in enumerate((stored, new, wrapped, other, None)):
        art = object.__new__(Article)
        object.__setattr__(art, "id", i)
        object.__setattr__(art, "title", "t")
        object.__setattr__(art, "author", author)
        rows.append(art)
    flat, snapshots = backend.insert_rows(plan, rows, False)
    keys = flat[2::3]
    assert keys[0] == 5, "a stored target's key as it is, without to_db"
    pending = keys[1]
    assert type(pending) is PendingKey and pending.entity is new
    assert repr(pending) == "<key of new Author>"
    assert keys[2:] == [("converted", wrapped), ("converted", other), None]
    assert calls == [wrapped, other], "only a Ref and a subclass go through to_db"
    assert [s[2] for s in snapshots] == keys


def test_bad_keys_are_refused_alike():
    if core is _diff_py:
        pytest.skip("the compiled core is not loaded")
    from orm.metadata.model import PendingKey

    direct = (Author, "id", PendingKey)
    bad = [
        dict(keys=(None, None)),
        dict(keys=(None, None, (Author, "id")), to_db=(None, None, str)),
        dict(keys=(None, None, (Author, 1, PendingKey)), to_db=(None, None, str)),
        dict(keys=(None, None, (Author, "id", "PendingKey")), to_db=(None, None, str)),
        dict(keys=(None, None, direct)),  # no to_db to fall back on
    ]
    for changes in bad:
        assert _error(core, **changes) == _error(_diff_py, **changes), changes


def test_plan_keys_only_for_keys_written_as_they_are():
    from orm import ORM
    from orm.metadata.model import PendingKey
    from tests.core.relation_models import Image, Team

    orm = ORM.init(db_name=":memory:", entities=[Article, Author, Team, Image])
    try:
        plan = orm.em.metadata.get(Article).plan
        direct = (Author, "id", PendingKey)
        # cover: an Image's UUID key is converted on its way to the database
        assert dict(zip(plan.names, plan.keys, strict=True)) == {
            "id": None, "title": None, "author": direct, "reviewer": direct, "cover": None
        }
        assert orm.em.metadata.get(Team).plan.keys is None, "no relation"
    finally:
        orm.close()

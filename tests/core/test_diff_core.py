"""The change detector's own contract (`orm._diff` / `orm._diff_py`, whichever is active)."""

from __future__ import annotations

import os
import threading
from datetime import datetime

import pytest

import orm
from orm import _diff_py
from orm._backend import core
from orm._markers import REFERENCE, UNLOADED
from orm.errors import ValidationError
from tests.core.models import User
from tests.databases import sql


class FakeUoW:
    def __init__(self):
        self.dirty = {}


CREATED = datetime(2024, 1, 2, 3, 4, 5)


@pytest.fixture
def stored(database):
    """User.created_at (CREATED) as the database's driver gives it: ISO text from sqlite3,
    a datetime from psycopg."""
    return "2024-01-02 03:04:05" if database == "sqlite" else CREATED


def test_backend_is_reported_and_the_compiled_one_is_preferred():
    if os.environ.get("ORM_PURE_PYTHON") == "1":
        assert orm.diff_backend() == "python" and core is _diff_py
    else:
        assert orm.diff_backend() == "cython", "the compiled extension must be built and used"
        assert core.__file__.endswith((".so", ".pyd"))


def test_both_backends_expose_the_same_functions():
    names = {"Plan", "hydrate", "insert_rows", "finish_inserts", "compute_changes", "group_by_type", "primary_keys", "forget",
             "init_entity", "apply_snapshots", "detach", "tracked_setattr", "BACKEND", "join_new",
             "loaded_by_key", "relation_targets", "group_by_key", "fill_collections"}
    assert names <= set(dir(core)) and names <= set(dir(_diff_py))


def test_hydrate_builds_instances_with_snapshot_and_identity(orm, stored):
    plan = orm.metadata.get(User).plan
    uow, im = FakeUoW(), {}
    row = (1, "A", "a@x", "pw", "", 3, None, stored)
    (u,) = core.hydrate(plan, [row], im, uow, False)
    assert type(u) is User and im == {1: u}
    assert core.snapshot(u) == row[:7] + (CREATED,), (
        "the snapshot is the row, holding the Python value of value-typed columns"
    )
    assert u._orm_uow is uow and u.created_at == CREATED
    (again,) = core.hydrate(plan, [(1, "B", "a@x", "pw", "", 3, None, stored)], im, uow,
                            False)
    assert again is u and u.full_name == "A", "managed instance kept as is"
    core.hydrate(plan, [(1, "B", "a@x", "pw", "", 3, None, stored)], im, uow, True)
    assert u.full_name == "B"
    (loose,) = core.hydrate(plan, [row], None, uow, False)
    assert loose is not u and loose._orm_uow is None


def test_tracked_setattr_marks_managed_entities_only(orm, stored):
    plan = orm.metadata.get(User).plan
    uow = FakeUoW()
    (u,) = core.hydrate(plan, [(1, "A", "a@x", "pw", "", 3, None, stored)], {}, uow, False)
    fresh = User(full_name="x", email="y", password="z")
    fresh.age = 4
    assert uow.dirty == {}
    u.age = 4
    assert uow.dirty == {id(u): u}


def test_compute_changes_groups_by_changed_columns(orm, stored):
    plan = orm.metadata.get(User).plan
    uow = FakeUoW()
    rows = [(i, f"U{i}", f"u{i}@x", "pw", "", i, None, stored) for i in (1, 2, 3)]
    a, b, c = core.hydrate(plan, rows, {}, uow, False)
    a.age = 10
    b.age = 20
    c.full_name = "C"
    c.age = 3  # unchanged value
    groups = core.compute_changes(plan, [a, b, c])
    assert set(groups) == {(5,), (1,)}
    ents, snaps, params = groups[(5,)]
    assert ents == [a, b] and params == [(10, 1), (20, 2)]
    assert snaps[0] == (1, "U1", "u1@x", "pw", "", 10, None, CREATED)
    assert groups[(1,)][2] == [("C", 3)]


def test_compute_changes_skips_new_references_and_unloaded(orm):
    plan = orm.metadata.get(User).plan
    new = User(full_name="n", email="e", password="p")
    ref = User.__new__(User)
    object.__setattr__(ref, "id", 5)
    object.__setattr__(ref, "_orm_snap", REFERENCE)
    partial_row = (7, UNLOADED, "p@x", UNLOADED, UNLOADED, UNLOADED, UNLOADED, UNLOADED)
    (partial,) = core.hydrate(plan, [partial_row], {}, FakeUoW(), False)
    partial.email = "q@x"
    assert core.compute_changes(plan, [new, ref]) == {}
    assert core.compute_changes(plan, [partial])[(2,)][2] == [("q@x", 7)]


def _kept(plan):
    """The plan without "taken on write": its snapshots are kept from the insert or load."""
    return core.Plan(plan.cls, plan.names, plan.pk_index, plan.to_python, plan.to_db,
                     plan.compare, plan.accepts, plan.nullable, plan.has_mutable,
                     plan.on_invalid, plan.kinds, plan.targets, plan.keys, plan.recheck)


def test_insert_rows_validates_and_converts(orm, stored):
    plan = _kept(orm.metadata.get(User).plan)
    u = User(full_name="n", email="e", password="p")
    flat, snapshots = core.insert_rows(plan, [u, u], True)
    assert flat == ["n", "e", "p", "", 0, None, stored] * 2
    assert snapshots[0] == (None, "n", "e", "p", "", 0, None, u.created_at)
    u.age = 1.5
    with pytest.raises(ValidationError, match="User.age: expected int, got float"):
        core.insert_rows(plan, [u], True)


def test_finish_inserts_assigns_consecutive_keys(orm):
    plan = _kept(orm.metadata.get(User).plan)
    users = [User(full_name=f"n{i}", email=f"e{i}", password="p") for i in range(3)]
    flat, snapshots = core.insert_rows(plan, users, True)
    im, uow = {}, FakeUoW()
    core.finish_inserts(plan, users, snapshots, True, 41, uow, im)
    assert [u.id for u in users] == [41, 42, 43] and im[42] is users[1]
    assert users[1]._orm_snap == (42, *flat[7:13], users[1].created_at)
    core.detach(users)
    assert users[0]._orm_uow is None and users[0]._orm_snap is None


def test_join_new_enters_the_entity_untracked():
    uow, group = FakeUoW(), {}
    user = User(full_name="n", email="e", password="p")
    core.join_new(user, uow, group)
    assert group == {id(user): user} and user._orm_uow is uow
    assert uow.dirty == {}  # joining is no write the flush has to compare
    with pytest.raises(TypeError, match=r"Argument 'group' has incorrect type \(expected dict, got NoneType\)"):
        core.join_new(user, uow, None)


# -- bad input: the compiled core checks what it used to trust, and raises what the twin does --


def _user_row(key=1, **changes):
    row = dict(id=key, full_name="A", email="a@x", password="pw", bio="", age=3,
               nickname=None, created_at="2024-01-02 03:04:05")
    row.update(changes)
    return tuple(row.values())


def test_init_entity_with_fewer_values_than_names_raises_and_sets_nothing():
    entity = FakeUoW()
    with pytest.raises(ValueError, match="^init_entity: 3 names but 1 values$"):
        core.init_entity(entity, ("a", "b", "c"), (1,))
    assert not hasattr(entity, "a")
    with pytest.raises(ValueError, match="^init_entity: 1 names but 2 values$"):
        core.init_entity(entity, ("a",), (1, 2))
    with pytest.raises(TypeError, match="Argument 'values' has incorrect type"):
        core.init_entity(entity, ("a",), [1])


def test_plan_exposes_its_kinds_and_cannot_be_changed(orm, database):
    plan = orm.metadata.get(User).plan
    if database == "sqlite":
        assert plan.kinds == (0, 0, 0, 0, 0, 0, 0, 1), "created_at is a datetime column"
    else:  # psycopg gives a datetime: nothing to convert, compared as the database value
        assert plan.kinds == (0,) * 8
        assert plan.to_python[7] is None
    with pytest.raises(AttributeError, match="not writable"):
        plan.n = 100
    with pytest.raises(AttributeError, match="not writable"):
        plan.names = ()


def _plan_args(n=3, **changes):
    args = dict(cls=User, names=tuple(f"c{i}" for i in range(n)), pk_index=0,
                to_python=(None,) * n, to_db=(None,) * n, compare=(None,) * n,
                accepts=(None,) * n, nullable=(True,) * n, has_mutable=False,
                on_invalid=None, kinds=(0,) * n)
    args.update(changes)
    return args


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"kinds": (0, 0)}, ValueError, "^Plan of User: kinds has 2 entries for 3 columns$"),
        ({"nullable": (True,)}, ValueError, "nullable has 1 entries for 3 columns"),
        ({"pk_index": -1}, ValueError, r"pk_index -1 is not a column index \(0 to 2\)"),
        ({"pk_index": 3}, ValueError, r"pk_index 3 is not a column index \(0 to 2\)"),
        ({"kinds": (0, 7, 0)}, ValueError, "the kind of column c1 is 7, not one of 0 to 4"),
        ({"names": ("a", 1, "c")}, TypeError, "column names must be str, got int 1"),
        ({"to_db": [None] * 3}, TypeError, "Argument 'to_db' has incorrect type"),
        ({"recheck": (None, str)}, ValueError, "recheck has 2 entries for 3 columns"),
        ({"recheck": (None, 5, None)}, TypeError,
         "the recheck of column c1 must be callable or None, got int"),
        ({"recheck": [None] * 3}, TypeError, "Argument 'recheck' has incorrect type"),
        ({"names": ()} | {k: () for k in ("to_python", "to_db", "compare", "accepts",
                                          "nullable", "kinds")},
         ValueError, r"pk_index 0 is not a column index"),
    ],
)
def test_plan_rejects_inconsistent_arguments(changes, error, message):
    with pytest.raises(error, match=message):
        core.Plan(**_plan_args(**changes))


def test_plan_has_at_most_512_columns():
    core.Plan(**_plan_args(512))
    with pytest.raises(ValueError, match="at most 512 columns"):
        core.Plan(**_plan_args(513))


def test_an_uninitialized_or_foreign_plan_is_refused(orm):
    with pytest.raises(ValueError, match="never initialized"):
        core.hydrate(core.Plan.__new__(core.Plan), [], None, None, False)
    with pytest.raises(TypeError, match="Argument 'plan' has incorrect type"):
        core.compute_changes(None, [])
    with pytest.raises(TypeError, match="not an acceptable base type"):
        type("MyPlan", (core.Plan,), {})


@pytest.mark.parametrize(
    ("row", "error", "message"),
    [
        (_user_row()[:5], ValueError, "^hydrate: row 1 has 5 values, the plan of User has 8 columns$"),
        (_user_row() + (1,), ValueError, "row 1 has 9 values"),
        (list(_user_row()), TypeError, "^hydrate: row 1 is a list, not a tuple$"),
        (None, TypeError, "row 1 is a NoneType, not a tuple"),
    ],
)
def test_hydrate_checks_each_row(orm, stored, row, error, message):
    plan = orm.metadata.get(User).plan
    im = {}
    with pytest.raises(error, match=message):
        core.hydrate(plan, [_user_row(7, created_at=stored), row], im, FakeUoW(), False)
    assert list(im) == [7], "the rows before the bad one are hydrated"


def test_hydrate_into_an_identity_map_needs_a_unit_of_work(orm, stored):
    plan = orm.metadata.get(User).plan
    im = {}
    with pytest.raises(TypeError, match=r"identity map needs the unit of work .*uow is None"):
        core.hydrate(plan, [_user_row(created_at=stored)], im, None, False)
    assert im == {}
    with pytest.raises(TypeError, match="expected dict or None, got list"):
        core.hydrate(plan, [_user_row(created_at=stored)], [], FakeUoW(), False)
    (detached,) = core.hydrate(plan, [_user_row(created_at=stored)], None, None, False)
    assert detached._orm_uow is None


def test_a_snapshot_of_the_wrong_width_is_an_error_not_a_crash(orm, stored):
    plan = orm.metadata.get(User).plan
    uow, im = FakeUoW(), {}
    (u,) = core.hydrate(plan, [_user_row(created_at=stored)], im, uow, False)
    object.__setattr__(u, "_orm_snap", (1, "A"))
    with pytest.raises(ValueError, match="^compute_changes: the snapshot of a User has 2 values, "
                                         "its plan has 8 columns$"):
        core.compute_changes(plan, [u])
    with pytest.raises(ValueError, match="^hydrate: the snapshot of a User has 2 values"):
        core.hydrate(plan, [_user_row(created_at=stored)], im, uow, True)
    object.__setattr__(u, "_orm_snap", list(_user_row(created_at=stored)))
    with pytest.raises(TypeError, match="the snapshot of a User is a list, not a tuple"):
        core.compute_changes(plan, [u])


def test_finish_inserts_leaves_snapshot_tuples_held_elsewhere_alone(orm):
    plan = _kept(orm.metadata.get(User).plan)
    users = [User(full_name=f"n{i}", email=f"e{i}", password="p") for i in range(2)]
    _, snapshots = core.insert_rows(plan, users, True)
    held = snapshots[0]
    before = tuple(held)
    core.finish_inserts(plan, users, snapshots, True, 10, FakeUoW(), {})
    assert held == before and held[0] is None, "a tuple the caller holds is not changed"
    assert users[0]._orm_snap[0] == 10 and users[1]._orm_snap[0] == 11
    assert snapshots == [users[0]._orm_snap, users[1]._orm_snap], (
        "the list handed in holds the completed snapshots"
    )


def test_finish_inserts_and_apply_snapshots_check_their_lists(orm):
    plan = _kept(orm.metadata.get(User).plan)
    users = [User(full_name="n", email="e", password="p")]
    _, snapshots = core.insert_rows(plan, users, True)
    im = {}
    with pytest.raises(ValueError, match="^finish_inserts: 1 entities but 0 snapshots$"):
        core.finish_inserts(plan, users, [], True, 1, FakeUoW(), im)
    with pytest.raises(ValueError, match="the snapshot of a User has 7 values"):
        core.finish_inserts(plan, users, [snapshots[0][1:]], True, 1, FakeUoW(), im)
    with pytest.raises(TypeError, match="expected dict, got NoneType"):
        core.finish_inserts(plan, users, snapshots, True, 1, FakeUoW(), None)
    assert im == {} and users[0].id is None, "nothing done"
    with pytest.raises(ValueError, match="^apply_snapshots: 1 entities but 2 snapshots$"):
        core.apply_snapshots(users, snapshots * 2)


def test_tracked_setattr_and_refresh_accept_any_dirty_mapping(orm, stored):
    class Dirty(dict):
        pass

    plan = orm.metadata.get(User).plan
    uow = FakeUoW()
    uow.dirty = Dirty()
    im = {}
    (u,) = core.hydrate(plan, [_user_row(created_at=stored)], im, uow, False)
    u.age = 40
    assert uow.dirty == {id(u): u}
    core.hydrate(plan, [_user_row(created_at=stored)], im, uow, True)
    assert u.age == 3 and uow.dirty == {}, "a refresh discards the write and its dirty entry"
    uow.dirty = "not a mapping"
    with pytest.raises(TypeError, match="does not support item assignment"):
        u.age = 41


def test_forget_checks_the_identity_map(orm, stored):
    plan = orm.metadata.get(User).plan
    (u,) = core.hydrate(plan, [_user_row(created_at=stored)], {}, FakeUoW(), False)
    with pytest.raises(TypeError, match="expected dict or None, got tuple"):
        core.forget(plan, [u], ())
    snap = core.snapshot(u)  # the key is the snapshot's (the row's), not the attribute's
    i = plan.pk_index
    object.__setattr__(u, "_orm_snap", (*snap[:i], [1], *snap[i + 1 :]))
    with pytest.raises(TypeError, match="unhashable"):
        core.forget(plan, [u], {})


def test_a_refreshed_entity_updates_only_the_column_changed_afterwards(em, orm, log):
    """The snapshot after a refresh holds Python values for datetime, boolean, decimal and
    enum columns, as after a load: a later flush must not rewrite them."""
    from decimal import Decimal

    from tests.core.models import Color, Everything

    em.persist(Everything(b=True, dec=Decimal("1.50"), dt=datetime(2024, 5, 6, 7, 8, 9),
                          color=Color.GREEN, s="x")).flush()
    fork = em.fork()
    e = fork.find_one(Everything, 1)
    fork.refresh(e)
    fork.find(Everything, {"id": 1}, refresh=True)
    e.s = "y"
    log.clear()
    fork.flush()
    assert log.writes() == [
        "begin", sql(orm, "update `everything` set `s` = 'y' where `id` = 1"), "commit"
    ], "only the changed column is written"


# -- populate's loops (orm.entity.loader): those without a plan in both backends (a plan is
# the active backend's; the twin runs this file itself, see tests/test_pure_python_twin.py)

BOTH = [core] if core is _diff_py else [core, _diff_py]


def test_hydrate_with_an_extra_column_collects_it_and_keeps_it_out(orm, stored):
    plan = orm.metadata.get(User).plan
    uow, im = FakeUoW(), {}
    extra: list = []
    rows = [(1, "A", "a@x", "pw", "", 3, None, stored, "k1"),
            (1, "A", "a@x", "pw", "", 3, None, stored, "k2")]
    first, again = core.hydrate(plan, rows, im, uow, False, extra)
    assert extra == ["k1", "k2"] and first is again and im == {1: first}
    assert len(core.snapshot(first)) == 8 and first.created_at == CREATED
    with pytest.raises(ValueError, match=r"row 0 has 8 values, .* 8 columns and one extra"):
        core.hydrate(plan, [(2, "B", "b@x", "pw", "", 3, None, stored)], im, uow, False, [])


def test_loaded_by_key_leaves_out_references_and_new_entities(orm):
    plan = orm.metadata.get(User).plan
    loaded, twin, ref, new = (object.__new__(User) for _ in range(4))
    for entity, key, snap in ((loaded, 1, ()), (twin, 1, ()), (ref, 2, REFERENCE), (new, 3, None)):
        object.__setattr__(entity, "id", key)
        object.__setattr__(entity, "_orm_snap", snap)
    assert core.loaded_by_key(plan, [loaded, twin, ref, new]) == {1: loaded}
    assert core.loaded_by_key(plan, [twin, loaded])[1] is twin, "the first of a key"


@pytest.mark.parametrize("backend", BOTH, ids=lambda m: m.BACKEND)
def test_group_by_key_groups_in_row_order_and_lists_each_item_once(backend):
    a, b, c = object(), object(), object()
    groups, items = backend.group_by_key([a, b, a, c, b], ["1", "1", "2", "2", "1"], int)
    assert groups == {1: {id(a): a, id(b): b}, 2: {id(a): a, id(c): c}}
    assert list(groups[1].values()) == [a, b] and items == [a, b, c]
    assert backend.group_by_key([a], [1], None, False) == ({1: {id(a): a}}, None)
    with pytest.raises(ValueError, match="2 items but 1 keys"):
        backend.group_by_key([a, b], [1], None)


@pytest.mark.parametrize("backend", BOTH, ids=lambda m: m.BACKEND)
def test_fill_collections_makes_missing_ones_and_fills_the_others(backend):
    class Owner:
        pass

    class Held:
        def __init__(self):
            self.filled = None

        def _fill(self, items):
            self.filled = list(items)

    fresh, holding, empty = Owner(), Owner(), Owner()
    held = holding.items = Held()
    x, y = object(), object()
    groups = {1: {id(x): x}, 2: {id(y): y}}
    made = []

    def make(owner, name, items):
        made.append((owner, name, items))
        return ("made", items)

    backend.fill_collections({1: fresh, 2: holding, 3: empty}, groups, "items", make)
    assert fresh.items == ("made", {id(x): x}) and fresh.items[1] is groups[1]
    assert holding.items is held and held.filled == [y], "an existing one keeps its state"
    assert empty.items == ("made", {}), "an owner without rows gets an empty collection"
    assert [m[0] for m in made] == [fresh, empty]


@pytest.mark.parametrize("backend", BOTH, ids=lambda m: m.BACKEND)
def test_relation_targets_unwraps_refs_and_skips_what_cannot_be_read(orm, backend):
    from orm import Ref

    class Unreadable:
        @property
        def author(self):
            raise ValidationError("not loaded")

    class Holder:
        def __init__(self, author):
            self.author = author

    loaded, ref = object.__new__(User), object.__new__(User)
    object.__setattr__(loaded, "_orm_snap", ())
    object.__setattr__(ref, "_orm_snap", REFERENCE)
    object.__setattr__(ref, "id", 7)
    entities = [Holder(loaded), Holder(Ref(ref)), Holder(ref), Holder(None), Unreadable()]
    targets, keys = backend.relation_targets(entities, "author", "id", Ref)
    assert targets == [loaded, ref] and keys == [7]


@pytest.mark.parametrize("backend", BOTH, ids=lambda m: m.BACKEND)
def test_fill_collections_given_the_collection_class_builds_what_loaded_builds(backend):
    from orm.entity.collection import Collection

    class Owner:
        pass

    class Other(Collection):  # another slot layout: built by its own _loaded
        __slots__ = ("extra",)

        @classmethod
        def _loaded(cls, owner, prop, items):
            made = super()._loaded(owner, prop, items)
            made.extra = "set"
            return made

    x = object()
    for cls in (Collection, Other):
        owner, group = Owner(), {id(x): x}
        backend.fill_collections({1: owner}, {1: group}, "items", cls)
        made, expected = owner.items, cls._loaded(owner, "items", group)
        assert type(made) is cls and made.is_initialized() and not made.is_dirty()
        for slot in ("owner", "prop", "_items", "_dirty", "_delta"):
            assert getattr(made, slot) is getattr(expected, slot), slot
        assert cls is Collection or made.extra == "set"


def test_births_are_noted_by_thread():
    """A flush with handlers notes the entities made while it runs (track_births); another
    thread's entities made meanwhile are not its own, and another thread's tracking neither
    sees this thread's nor is left behind when both end (one set for the process took the
    entities of whichever flush began last, and was restored out of order)."""
    mine: set[int] = set()
    theirs: set[int] = set()
    started, release = threading.Event(), threading.Event()
    made: list[FakeUoW] = []

    def other_flush() -> None:
        previous = core.track_births(theirs)
        started.set()
        release.wait(5)
        entity = FakeUoW()
        core.init_entity(entity, ("a",), (1,))
        made.append(entity)
        assert core.track_births(previous) is theirs

    assert core.track_births(mine) is None
    thread = threading.Thread(target=other_flush)
    thread.start()
    started.wait(5)
    here = FakeUoW()
    core.init_entity(here, ("a",), (1,))
    release.set()
    thread.join(5)
    assert core.track_births(None) is mine
    assert mine == {id(here)} and theirs == {id(made[0])}
    later = FakeUoW()
    core.init_entity(later, ("a",), (1,))
    assert id(later) not in mine and core.track_births(None) is None


def test_assignments_are_noted_by_thread_while_tracked():
    """track_assignments: every assignment through an entity class's `__setattr__` in this
    thread appends (entity, name, the value it replaces or MISSING), nothing else's."""
    from orm._markers import MISSING

    class Thing:
        __setattr__ = core.tracked_setattr

        def __init__(self):
            object.__setattr__(self, "_orm_uow", None)

    with pytest.raises(TypeError, match="track_assignments: journal must be a list or None"):
        core.track_assignments(())
    journal: list = []
    thing, other = Thing(), Thing()
    thing.a = 1  # not tracked yet
    assert core.track_assignments(journal) is None
    try:
        thing.a = 2
        thing.b = 3
        thread = threading.Thread(target=lambda: setattr(other, "a", 9))
        thread.start()
        thread.join(5)
    finally:
        assert core.track_assignments(None) is journal
    thing.a = 4
    assert journal == [(thing, "a", 1), (thing, "b", MISSING)] and other.a == 9

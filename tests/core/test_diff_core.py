"""The change detector's own contract (`orm._diff` / `orm._diff_py`, whichever is active)."""

from __future__ import annotations

import os
from datetime import datetime

import pytest

import orm
from orm import _diff_py
from orm._backend import core
from orm._markers import REFERENCE, UNLOADED
from orm.errors import ValidationError
from tests.core.models import User


class FakeUoW:
    def __init__(self):
        self.dirty = {}


def test_backend_is_reported_and_the_compiled_one_is_preferred():
    if os.environ.get("ORM_PURE_PYTHON") == "1":
        assert orm.diff_backend() == "python" and core is _diff_py
    else:
        assert orm.diff_backend() == "cython", "the compiled extension must be built and used"
        assert core.__file__.endswith((".so", ".pyd"))


def test_both_backends_expose_the_same_functions():
    names = {"Plan", "hydrate", "insert_rows", "finish_inserts", "compute_changes", "group_by_type", "primary_keys", "forget",
             "init_entity", "apply_snapshots", "detach", "tracked_setattr", "BACKEND"}
    assert names <= set(dir(core)) and names <= set(dir(_diff_py))


def test_hydrate_builds_instances_with_snapshot_and_identity(orm):
    plan = orm.metadata.get(User).plan
    uow, im = FakeUoW(), {}
    row = (1, "A", "a@x", "pw", "", 3, None, "2024-01-02 03:04:05")
    (u,) = core.hydrate(plan, [row], im, uow, False)
    assert type(u) is User and im == {1: u}
    assert u._orm_snap == row[:7] + (datetime(2024, 1, 2, 3, 4, 5),), (
        "the snapshot is the row, holding the Python value of value-typed columns"
    )
    assert u._orm_uow is uow and u.created_at == datetime(2024, 1, 2, 3, 4, 5)
    (again,) = core.hydrate(plan, [(1, "B", "a@x", "pw", "", 3, None, "2024-01-02")], im, uow,
                            False)
    assert again is u and u.full_name == "A", "managed instance kept as is"
    core.hydrate(plan, [(1, "B", "a@x", "pw", "", 3, None, "2024-01-02 03:04:05")], im, uow,
                 True)
    assert u.full_name == "B"
    (loose,) = core.hydrate(plan, [row], None, uow, False)
    assert loose is not u and loose._orm_uow is None


def test_tracked_setattr_marks_managed_entities_only(orm):
    plan = orm.metadata.get(User).plan
    uow = FakeUoW()
    (u,) = core.hydrate(plan, [(1, "A", "a@x", "pw", "", 3, None, "2024-01-02 03:04:05")], {},
                        uow, False)
    fresh = User(full_name="x", email="y", password="z")
    fresh.age = 4
    assert uow.dirty == {}
    u.age = 4
    assert uow.dirty == {id(u): u}


def test_compute_changes_groups_by_changed_columns(orm):
    plan = orm.metadata.get(User).plan
    uow = FakeUoW()
    rows = [(i, f"U{i}", f"u{i}@x", "pw", "", i, None, "2024-01-02 03:04:05") for i in (1, 2, 3)]
    a, b, c = core.hydrate(plan, rows, {}, uow, False)
    a.age = 10
    b.age = 20
    c.full_name = "C"
    c.age = 3  # unchanged value
    groups = core.compute_changes(plan, [a, b, c])
    assert set(groups) == {(5,), (1,)}
    ents, snaps, params = groups[(5,)]
    assert ents == [a, b] and params == [(10, 1), (20, 2)]
    assert snaps[0] == (1, "U1", "u1@x", "pw", "", 10, None, datetime(2024, 1, 2, 3, 4, 5))
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


def test_insert_rows_validates_and_converts(orm):
    plan = orm.metadata.get(User).plan
    u = User(full_name="n", email="e", password="p")
    flat, snapshots = core.insert_rows(plan, [u, u], True)
    assert flat == ["n", "e", "p", "", 0, None, "2024-01-02 03:04:05"] * 2
    assert snapshots[0] == (None, "n", "e", "p", "", 0, None, u.created_at)
    u.age = 1.5
    with pytest.raises(ValidationError, match="User.age: expected int, got float"):
        core.insert_rows(plan, [u], True)


def test_finish_inserts_assigns_consecutive_keys(orm):
    plan = orm.metadata.get(User).plan
    users = [User(full_name=f"n{i}", email=f"e{i}", password="p") for i in range(3)]
    flat, snapshots = core.insert_rows(plan, users, True)
    im, uow = {}, FakeUoW()
    core.finish_inserts(plan, users, snapshots, True, 41, uow, im)
    assert [u.id for u in users] == [41, 42, 43] and im[42] is users[1]
    assert users[1]._orm_snap == (42, *flat[7:13], users[1].created_at)
    core.detach(users)
    assert users[0]._orm_uow is None and users[0]._orm_snap is None

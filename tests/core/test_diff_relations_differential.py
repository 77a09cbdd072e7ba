"""The core functions of the relation and many-to-many paths (cascade walks, pivot plans,
pair keys, pending key slots, populate grouping), compiled and twin, fed the same random
object graphs: same results, same errors, same state left on the objects. Plain stand-ins
play the entities and collections: these functions read only a few attributes."""

from __future__ import annotations

import importlib
import random
from typing import Any

import pytest

import orm._diff_py as P

try:
    C = importlib.import_module("orm._diff")
except ImportError:  # pragma: no cover - no compiler where the suite runs
    C = None

pytestmark = pytest.mark.skipif(C is None, reason="the compiled core is not built")

UNSTORED = type("Unstored", (), {"__slots__": ()})()


class Node:
    """An entity: `_orm_uow`, `_orm_snap`, a key `id`, a relation `ref`."""

    def __init__(self, key: Any, uow: Any, snap: Any) -> None:
        self.id = key
        self._orm_uow = uow
        self._orm_snap = snap


class Sub(Node):
    pass


class Other:
    _orm_uow = None
    _orm_snap = None


class Box:
    """Ref stand-in."""

    def __init__(self, entity: Any) -> None:
        self.entity = entity


class Holder:
    __slots__ = ("owner", "prop", "_items", "_dirty", "_delta")


def _world(seed: int) -> dict[str, Any]:
    """Nodes in two units of work (or none), stored or new, some subclassed, pointing at each
    other through `ref` (plain, boxed, None, another type, or unreadable), holding `tags`."""
    rnd = random.Random(seed)
    uows = [object(), object(), None]
    nodes = []
    for k in range(rnd.randint(0, 12)):
        cls = Sub if rnd.random() < 0.2 else Node
        node = cls(k if rnd.random() < 0.8 else None, rnd.choice(uows),
                   rnd.choice([None, None, ("s", k)]))
        nodes.append(node)
    for node in nodes:
        pick = rnd.random()
        if pick < 0.5 and nodes:
            node.ref = rnd.choice(nodes)
        elif pick < 0.65 and nodes:
            node.ref = Box(rnd.choice(nodes))
        elif pick < 0.75:
            node.ref = Other()
        elif pick < 0.9:
            node.ref = None
        # else: no attribute (an unloaded column)
        if rnd.random() < 0.7:
            holder = Holder()
            holder.owner, holder.prop, holder._dirty = node, "tags", False
            chosen = rnd.sample(nodes, min(len(nodes), rnd.randint(0, 4)))
            holder._items = None if rnd.random() < 0.15 else {id(n): n for n in chosen}
            holder._delta = rnd.choice([
                None, UNSTORED, {}, {id(n): (n, True) for n in chosen},
                {id(n): (n, True) for n in chosen[1:]},  # an item not recorded
                {id(n): (n, k > 0) for k, n in enumerate(chosen)},  # one recorded removed
            ])
            node.tags = holder
    return {"rnd": rnd, "uows": uows, "nodes": nodes}


def _both(name: str, *args: Any) -> Any:
    """Call `name` in both cores on the same arguments; the same outcome either way."""
    out = []
    for core in (C, P):
        try:
            out.append(("ok", getattr(core, name)(*args)))
        except Exception as exc:  # noqa: BLE001 - the error is what is compared
            out.append(("error", type(exc).__name__))
    assert out[0] == out[1], f"{name}: compiled {out[0]!r} != twin {out[1]!r}"
    return out[0][1]


@pytest.mark.parametrize("seed", range(150))
def test_relation_walks_agree(seed):
    w = _world(seed)
    nodes, uow = w["nodes"], w["uows"][0]
    new_ids = {id(n) for n in nodes if n._orm_snap is None and w["rnd"].random() < 0.5}
    _both("new_targets", nodes, "ref", Node, Box)
    _both("new_targets", nodes, "ref", Node, Box, new_ids)
    groups: dict[type, dict[int, Any]] = {}
    for n in nodes:
        if id(n) in new_ids:
            groups.setdefault(type(n), {})[id(n)] = n
    _both("new_targets", nodes, "ref", Node, Box, None, groups)
    _both("relation_targets", nodes, "ref", "id", Box)
    _both("not_managed", nodes, uow)
    for cascade in (False, True):
        registries = [{}, {}]
        results = [
            core.collection_items(nodes, "tags", uow, registry, cascade)
            for core, registry in zip((C, P), registries, strict=True)
        ]
        assert results[0] == results[1] and registries[0] == registries[1]
        # read as attributes: the nodes holding a collection (as new entities of a generated
        # __init__ all do), then all of them (an AttributeError in both cores)
        held = [n for n in nodes if hasattr(n, "tags")]
        for group in (held, nodes):
            registries = [{}, {}]
            results = []
            for core, registry in zip((C, P), registries, strict=True):
                try:
                    results.append(
                        core.collection_items(group, "tags", uow, registry, cascade, True)
                    )
                except AttributeError:
                    results.append("AttributeError")
            assert results[0] == results[1] and registries[0] == registries[1]
    for items in (nodes, [Box(n) for n in nodes], nodes + [Other()]):
        _both("checked_items", items, Node, Box)


@pytest.mark.parametrize("seed", range(150))
def test_new_owners_collections_agree(seed):
    """`collection_items` given UNSTORED (the owning collections of new owners) changes the
    collections: each core gets a world of its own, the same one, and leaves the same
    deltas, registry and `unpaired` list (by the nodes' positions)."""
    outcomes = []
    for core in (C, P):
        w = _world(seed)
        nodes, uow = w["nodes"], w["uows"][0]
        where = {id(n): k for k, n in enumerate(nodes)}
        registry: dict[int, Any] = {}
        unpaired: list[Any] = []
        found = core.collection_items(nodes, "tags", uow, registry, True, False, UNSTORED,
                                      unpaired)
        holders = [n.__dict__.get("tags") for n in nodes]
        position = {id(h): k for k, h in enumerate(holders) if h is not None}
        outcomes.append((
            [where[id(n)] for n in found],
            sorted(position[key] for key in registry),
            [position[id(h)] for h in unpaired],
            [None if h is None else (h._delta is UNSTORED, h._delta is None) for h in holders],
        ))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("seed", range(150))
def test_pivot_plans_and_keys_agree(seed):
    w = _world(seed)
    nodes, uow, rnd = w["nodes"], w["uows"][0], w["rnd"]
    holders = [n.tags for n in nodes if hasattr(n, "tags") and n.tags._items is not None]
    groups = [core.fresh_runs(list(holders), uow, UNSTORED) for core in (C, P)]
    assert groups[0] == groups[1]
    owners = [n for n in nodes if n.id is not None]
    runs = [[m for m in nodes if m.id is not None and rnd.random() < 0.3] for _ in owners]
    generated = {id(n): 1000 + k for k, n in enumerate(nodes) if rnd.random() < 0.3}
    _both("pair_keys", owners, runs, generated, "id", "id")
    _both("pair_keys", owners, runs[:-1] if runs else [[]], generated, "id", "id")
    start = rnd.randint(0, len(nodes))
    fresh = [Node(None, None, None) for _ in range(rnd.randint(0, 4))] + nodes
    before = [n._orm_uow for n in fresh]
    states = []
    for core in (C, P):
        for node, held in zip(fresh, before, strict=True):  # the same state for each core
            node._orm_uow = held
        group: dict[int, Any] = {}
        stop = core.join_new_run(fresh, min(start, len(fresh)), Node, uow, group)
        states.append((stop, list(group.values()), [n._orm_uow for n in fresh]))
    assert states[0] == states[1]


@pytest.mark.parametrize("seed", range(50))
def test_settling_written_collections_agrees(seed):
    """After a commit: a collection still holding the changes written is clean, the others
    are handed back, in order; the same state left by both cores."""
    rnd = random.Random(seed)
    states = []
    for core in (C, P):
        rnd.seed(seed)
        written = []
        holders = []
        for _ in range(rnd.randint(0, 8)):
            holder = Holder()
            holder.owner, holder.prop, holder._items, holder._dirty = None, "tags", {}, True
            changes = rnd.choice([UNSTORED, {1: (None, True)}])
            holder._delta = changes if rnd.random() < 0.6 else rnd.choice([None, {}, UNSTORED])
            holders.append(holder)
            written.append((holder, changes))
        left = core.settle(written)
        states.append((
            [written.index(pair) for pair in left],
            [(h._delta is None, h._dirty) for h in holders],
        ))
    assert states[0] == states[1]
    for core in (C, P):
        with pytest.raises(TypeError):
            core.settle([(Holder(),)])


@pytest.mark.parametrize("seed", range(150))
def test_pending_slots_and_key_fills_agree(seed):
    rnd = random.Random(seed)

    class Pending:
        def __init__(self, entity: Any) -> None:
            self.entity = entity

    targets = [Node(None, None, None) for _ in range(4)]
    width = rnd.randint(1, 4)
    flat = [Pending(rnd.choice(targets)) if rnd.random() < 0.4 else k for k in range(width * 5)]
    position = rnd.randint(-1, width)
    found = _both("pending_slots", flat, width, position, Pending)
    keys = {id(t): 50 + k for k, t in enumerate(targets) if rnd.random() < 0.6}
    if isinstance(found, tuple):  # (an error's name otherwise: a position outside the row)
        rows, owed = found
        conv = rnd.choice([None, str])
        holders = [list(flat), list(flat)]
        slots = [r * width + position for r in rows]
        results = [
            core.fill_keys(holder, slots, owed, keys, conv)
            for core, holder in zip((C, P), holders, strict=True)
        ]
        assert results[0] == results[1] and holders[0] == holders[1]
        snaps = [[tuple(range(width)) for _ in range(5)] for _ in range(2)]
        complete = {id(t): 7 for t in targets}
        for core, snap in zip((C, P), snaps, strict=True):
            core.patch_keys(snap, rows, position, owed, complete, conv)
        assert snaps[0] == snaps[1]


@pytest.mark.parametrize("seed", range(100))
def test_populate_grouping_agrees(seed):
    rnd = random.Random(seed)
    items = [Node(k, None, ("s",)) for k in range(rnd.randint(0, 8))]
    rows = [rnd.choice(items) for _ in range(rnd.randint(0, 12))] if items else []
    keys = [rnd.choice([1, 2, 3, None, "2"]) for _ in rows]
    for conv in (None, int, str):
        for distinct in (True, False):
            out = []
            for core in (C, P):
                try:
                    groups, seen = core.group_by_key(rows, keys, conv, distinct)
                    out.append(({k: list(v.values()) for k, v in groups.items()}, seen))
                except Exception as exc:  # noqa: BLE001
                    out.append(type(exc).__name__)
            assert out[0] == out[1]
    _both("group_by_key", rows, keys[:-1] if keys else [1], None)

"""The compiled core (`orm._diff`) and its pure-Python twin (`orm._diff_py`) are the same
function: fed the same rows, writes, in-place changes, refreshes, partial loads, references,
inserts, flushes, deletes and bad input, they return the same results, raise the same errors
and leave the same entity state (attributes, snapshots, identity maps, dirty entries).

Both modules are imported directly, whichever one the ORM uses; the plans are built from the
real metadata of the test entities, once per backend with the same arguments, and once per
database: on PostgreSQL the entities' types are its native ones (psycopg gives and takes
datetimes, booleans, decimals and UUIDs as they are), so the plans convert less and compare
more columns as database values.
"""

from __future__ import annotations

import copy
import enum
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import orm._diff_py as P
from orm import ORM
from orm._markers import REFERENCE, UNLOADED
from orm.platforms.postgresql_types import (
    PgBooleanType,
    PgDateTimeType,
    PgDateType,
    PgDecimalType,
    PgTimeType,
)
from orm.types import (
    BlobType,
    BooleanType,
    CheckedIntegerType,
    CheckedStringType,
    DateTimeType,
    DateType,
    DecimalType,
    EnumType,
    FloatType,
    IntegerType,
    JsonType,
    StringType,
    TextType,
    TimeType,
    UuidType,
)
from tests import databases
from tests.core.models import ALL, Book, Everything, Tag, User

C = pytest.importorskip("orm._diff", reason="the compiled core is not built")

TYPES = [Everything, User, Book, Tag]
_object_new = object.__new__
_set = object.__setattr__


# -- plans: the real metadata, one Plan per backend ---------------------------------------------


class Model:
    """An entity type, its metadata and one plan per backend."""

    def __init__(self, cls: type, meta: Any, plans: dict[Any, Any]) -> None:
        self.cls = cls
        self.meta = meta
        self.plans = plans  # backend module -> Plan
        # built once: building strategies is what would cost most in this test
        self.keys = keys(self)
        self.written = {p.name: written_values(p) for p in meta.columns}
        self.rows = {partial: rows(self, partial) for partial in (False, True)}

    @property
    def n(self) -> int:
        return len(self.meta.columns)

    def __repr__(self) -> str:
        return f"Model({self.cls.__name__})"


def plan_arguments(plan: Any) -> tuple:
    return (
        plan.cls,
        plan.names,
        plan.pk_index,
        plan.to_python,
        plan.to_db,
        plan.compare,
        plan.accepts,
        plan.nullable,
        plan.has_mutable,
        plan.on_invalid,
        plan.kinds,
    )


@pytest.fixture(scope="module", params=databases.DATABASES)
def models(request):
    """The plans of each database's metadata (no table is needed). The ORM is closed once
    they are built: PostgreSQL's pool would otherwise connect in a background thread while
    hypothesis draws (and its use of `random` there makes hypothesis warn)."""
    if request.param == "sqlite":
        instance = ORM.init(db_name=":memory:", entities=ALL)
    else:
        instance = ORM.init(entities=ALL, **databases.pg_options())
    try:
        out = {}
        for cls in TYPES:
            meta = instance.metadata.get(cls)
            args = plan_arguments(meta.plan)
            out[cls] = Model(cls, meta, {C: C.Plan(*args), P: P.Plan(*args)})
    finally:
        instance.close()
    return out


# -- values: Python values per mapped type, and their database form -----------------------------

_UUIDS = [uuid.UUID(int=i) for i in (1, 2, 3)]


def _json_of(text: Any) -> st.SearchStrategy:
    return st.recursive(
        st.none() | st.booleans() | st.integers(-5, 5) | text(max_size=3),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text(max_size=2), inner,
                                                                     max_size=3),
        max_leaves=5,
    )


def _text_without_nul(max_size: int) -> st.SearchStrategy:
    """What PostgreSQL's text and jsonb hold (a NUL character is refused)."""
    return st.text(
        st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=max_size
    )


_json = _json_of(st.text)
_pg_json = _json_of(_text_without_nul)
_datetimes = st.datetimes() | st.datetimes(timezones=st.just(UTC))


def python_values(prop: Any) -> st.SearchStrategy:
    """Valid Python values of a column (on either database's types)."""
    mapped = prop.type
    kind = type(mapped)
    if kind is CheckedIntegerType:  # a narrow integer column: the values it holds
        inner = mapped.mapped
        if type(inner) is EnumType:
            values = st.sampled_from(list(inner.enum_class))
        else:
            values = st.integers(mapped.low, mapped.high)
    elif kind is EnumType:
        values = st.sampled_from(list(mapped.enum_class))
    elif kind in (BooleanType, PgBooleanType):
        values = st.booleans()
    elif issubclass(kind, IntegerType):
        values = st.integers(-(2**63), 2**63 - 1)
    elif kind is FloatType:
        values = st.floats(allow_nan=False) | st.integers(-3, 3)
    elif kind in (StringType, TextType):
        values = st.text(max_size=4)
    elif kind is CheckedStringType:
        assert mapped.max_length is None or mapped.max_length >= 4
        values = _text_without_nul(4) if mapped.refuse_nul else st.text(max_size=4)
    elif kind is BlobType:
        values = st.binary(max_size=4) | st.binary(max_size=4).map(bytearray)
    elif kind in (DecimalType, PgDecimalType):
        values = st.decimals(allow_nan=False, allow_infinity=False, places=2,
                             min_value=-999, max_value=999) | st.integers(-9, 9)
    elif kind in (DateTimeType, PgDateTimeType):
        values = _datetimes
    elif kind in (DateType, PgDateType):
        values = st.dates()
    elif kind in (TimeType, PgTimeType):
        values = st.times()
    elif issubclass(kind, UuidType):
        values = st.sampled_from(_UUIDS) | st.uuids()
    elif issubclass(kind, JsonType):
        json = _json if kind is JsonType else _pg_json
        text = st.text if kind is JsonType else _text_without_nul
        values = st.dictionaries(text(max_size=2), json, max_size=3) | st.lists(
            json, max_size=3)
    else:  # pragma: no cover - a new type in the test models
        raise AssertionError(f"no strategy for {mapped!r}")
    return values | st.none() if prop.nullable else values


_INVALID = st.sampled_from(["text", 1.5, None, [1], b"x", True])


def written_values(prop: Any) -> st.SearchStrategy:
    """What a user may write: mostly valid values, sometimes not (ValidationError at flush)."""
    valid = python_values(prop)
    return st.integers(0, 29).flatmap(lambda k: _INVALID if k == 0 else valid)


def db_values(prop: Any) -> st.SearchStrategy:
    """The database form the driver (sqlite3, psycopg) returns for a column."""
    return python_values(prop).map(lambda v: None if v is None else prop.type.to_db(v))


def keys(model: Model) -> st.SearchStrategy:
    """Python values of the primary key, from a small pool (rows meet the identity map)."""
    if model.cls is Book:
        return st.sampled_from(_UUIDS)
    if model.cls is Tag:
        return st.sampled_from(["a", "b", "c"])
    return st.integers(1, 6)


def rows(model: Model, partial: bool) -> st.SearchStrategy:
    """Rows as the driver returns them; a partial one has UNLOADED for the columns a
    `fields=` query left out (never the key)."""
    pk_prop = model.meta.pk
    columns = []
    for prop in model.meta.columns:
        if prop is pk_prop:
            to_db = pk_prop.type.to_db if pk_prop.type.converts else None
            columns.append(model.keys.map(to_db) if to_db else model.keys)
        elif partial:
            columns.append(st.just(UNLOADED) | db_values(prop))
        else:
            columns.append(db_values(prop))
    return st.tuples(*columns)


# -- one world per backend ----------------------------------------------------------------------


class Dirty(dict):
    """A unit of work's dirty entries in a dict subclass (the cores' slow path)."""


class UoW:
    def __init__(self, dirty: dict) -> None:
        self.dirty = dirty


@dataclass
class World:
    core: Any
    models: dict[type, Model]
    dirty_type: type
    uow: UoW = field(init=False)
    maps: dict[type, dict] = field(init=False)
    objs: list[Any] = field(default_factory=list)
    index: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.uow = UoW(self.dirty_type())
        self.maps = {cls: {} for cls in TYPES}

    def plan(self, cls: type) -> Any:
        return self.models[cls].plans[self.core]

    def register(self, entities: list[Any]) -> None:
        for e in entities:
            if id(e) not in self.index:
                self.index[id(e)] = len(self.objs)
                self.objs.append(e)

    def canon(self, value: Any) -> Any:
        """A comparable form of a value: entities as their index, the unit of work as a
        marker, each plain value with its exact type."""
        if value is UNLOADED or value is REFERENCE:
            return ("marker", repr(value))
        if value is self.uow:
            return ("uow",)
        if id(value) in self.index and self.objs[self.index[id(value)]] is value:
            return ("entity", self.index[id(value)])
        if isinstance(value, type):
            return ("type", value.__qualname__)
        if type(value) in (tuple, list):
            return (type(value).__name__, [self.canon(v) for v in value])
        if isinstance(value, dict):
            return ("dict", [(self.canon(k), self.canon(v)) for k, v in value.items()])
        if type(value) is memoryview:
            return ("memoryview", bytes(value))
        return (type(value).__qualname__, repr(value))

    def state(self) -> Any:
        entities = []
        for e in self.objs:
            attrs = {name: self.canon(v) for name, v in vars(e).items()}
            entities.append((type(e).__name__, attrs))
        maps = {cls.__name__: self.canon(m) for cls, m in self.maps.items()}
        dirty = [(key == id(e), self.canon(e)) for key, e in self.uow.dirty.items()]
        return {"entities": entities, "maps": maps, "dirty": dirty}


def outcome(world: World, op) -> Any:
    try:
        return ("ok", world.canon(op(world)))
    except Exception as exc:  # both must fail alike
        return ("raised", type(exc).__name__, str(exc))


def run_both(worlds: tuple[World, World], op) -> Any:
    compiled, twin = (outcome(w, op) for w in worlds)
    assert compiled == twin, "the compiled core and the twin returned different results"
    assert_same_state(worlds)
    event(f"{getattr(op, '__qualname__', op).split('.')[0]}: {compiled[0]}")
    return compiled


def assert_same_state(worlds: tuple[World, World]) -> None:
    compiled, twin = (w.state() for w in worlds)
    for part in ("entities", "maps", "dirty"):
        assert compiled[part] == twin[part], f"the backends left different {part}"


# -- steps: each draws its input once and runs it on both worlds --------------------------------


def pick_model(data, models) -> Model:
    return models[data.draw(st.sampled_from(TYPES), label="type")]


def pick_entities(data, worlds, cls: type | None = None) -> list[int]:
    objs = worlds[0].objs
    candidates = [i for i, e in enumerate(objs) if cls is None or type(e) is cls]
    if not candidates:
        return []
    return data.draw(st.lists(st.sampled_from(candidates), max_size=4, unique=True),
                     label="entities")


def step_hydrate(data, models, worlds) -> None:
    model = pick_model(data, models)
    partial = data.draw(st.booleans(), label="partial")
    drawn = data.draw(st.lists(model.rows[partial], max_size=4), label="rows")
    refresh = data.draw(st.booleans(), label="refresh")
    detached = data.draw(st.integers(0, 9), label="detached") == 0
    hold = data.draw(st.booleans(), label="rows held elsewhere too")
    held: dict[int, list] = {}

    def op(w: World) -> Any:
        fresh = [tuple([*r]) for r in drawn]  # new tuples: the core may patch them in place
        if hold:
            held[id(w)] = [(r, tuple([*r])) for r in fresh]
        im = None if detached else w.maps[model.cls]
        out = w.core.hydrate(w.plan(model.cls), fresh, im, w.uow, refresh)
        w.register(out)
        return out

    run_both(worlds, op)
    for pairs in held.values():
        for row, before in pairs:
            assert all(a is b for a, b in zip(row, before, strict=True)), (
                "a row tuple someone else holds was changed"
            )


def step_write(data, models, worlds) -> None:
    chosen = pick_entities(data, worlds)
    if not chosen:
        return
    i = chosen[0]
    model = models[type(worlds[0].objs[i])]
    prop = data.draw(st.sampled_from(model.meta.columns), label="property")
    value = data.draw(model.written[prop.name], label="value")

    def op(w: World) -> Any:
        mine = value if w is worlds[0] else copy.deepcopy(value)
        w.core.tracked_setattr(w.objs[i], prop.name, mine)

    run_both(worlds, op)


def step_change_in_place(data, models, worlds) -> None:
    chosen = pick_entities(data, worlds)
    if not chosen:
        return
    i = chosen[0]
    names = sorted(n for n, v in vars(worlds[0].objs[i]).items()
                   if type(v) in (dict, list, bytearray))
    if not names:
        return
    name = data.draw(st.sampled_from(names), label="changed in place")
    item = data.draw(st.integers(0, 255), label="item")

    def op(w: World) -> None:
        value = vars(w.objs[i])[name]
        if type(value) is dict:
            value[f"k{item % 3}"] = item
        elif type(value) is list:
            value.append(item)
        elif value:
            value[0] = item
        else:
            value.append(item)

    run_both(worlds, op)


def step_flush(data, models, worlds) -> None:
    """What a unit of work does at flush: compare the dirty entities (and every managed one
    of a type holding mutable values), then the written values become the snapshots."""
    excluded = pick_entities(data, worlds)

    def op(w: World) -> Any:
        out = []
        removed = {id(w.objs[i]) for i in excluded}
        groups = w.core.group_by_type(list(w.uow.dirty.values()), removed)
        out.append(groups)
        for cls in TYPES:
            if w.maps[cls] and w.plan(cls).has_mutable:
                skip = removed | set(w.uow.dirty)
                extra = w.core.group_by_type(w.maps[cls].values(), skip).get(cls, [])
                groups.setdefault(cls, []).extend(extra)
        for cls, entities in groups.items():
            references: list[Any] = []
            changes = w.core.compute_changes(w.plan(cls), entities, references)
            out.append((changes, references))
            for ents, snapshots, _params in changes.values():
                w.core.apply_snapshots(ents, snapshots)
        w.uow.dirty.clear()
        return out

    run_both(worlds, op)


def step_insert(data, models, worlds) -> None:
    model = pick_model(data, models)
    generated = model.meta.pk.autoincrement and data.draw(st.booleans(), label="generated")
    props = model.meta.columns
    values = data.draw(
        st.lists(st.tuples(*(model.keys if p is model.meta.pk else model.written[p.name]
                             for p in props)), min_size=1, max_size=3),
        label="new entities",
    )
    first_id = data.draw(st.integers(1, 8), label="first id")
    names = tuple(p.name for p in props)

    def op(w: World) -> Any:
        mine = values if w is worlds[0] else copy.deepcopy(values)
        entities = []
        for one in mine:
            e = _object_new(model.cls)
            if generated:
                skip = model.meta.pk_index
                w.core.init_entity(e, names[:skip] + names[skip + 1:], one[:skip] + one[skip + 1:])
            else:
                w.core.init_entity(e, names, one)
            entities.append(e)
        w.register(entities)
        plan = w.plan(model.cls)
        flat, snapshots = w.core.insert_rows(plan, entities, generated)
        result = [flat, list(snapshots)]
        w.core.finish_inserts(plan, entities, snapshots, generated, first_id, w.uow,
                              w.maps[model.cls])
        result.append(snapshots)
        result.append(w.core.primary_keys(plan, entities))
        return result

    run_both(worlds, op)


def step_reference(data, models, worlds) -> None:
    """An uninitialized reference (em.get_reference): only its key is known."""
    model = pick_model(data, models)
    key = data.draw(model.keys, label="reference key")

    def op(w: World) -> None:
        im = w.maps[model.cls]
        if key in im:
            return
        e = _object_new(model.cls)
        _set(e, model.meta.pk.name, key)
        _set(e, "_orm_snap", REFERENCE)
        _set(e, "_orm_uow", w.uow)
        im[key] = e
        w.register([e])

    run_both(worlds, op)


def step_delete(data, models, worlds) -> None:
    model = pick_model(data, models)
    chosen = pick_entities(data, worlds, model.cls)

    def op(w: World) -> Any:
        entities = [w.objs[i] for i in chosen]
        keys_ = w.core.primary_keys(w.plan(model.cls), entities)
        w.core.forget(w.plan(model.cls), entities, w.maps[model.cls])
        return keys_

    run_both(worlds, op)


def step_detach(data, models, worlds) -> None:
    chosen = pick_entities(data, worlds)
    run_both(worlds, lambda w: w.core.detach(w.objs[i] for i in chosen))


def step_bad_input(data, models, worlds) -> None:
    """Input the ORM never gives: both backends refuse it alike (and neither crashes)."""
    model = pick_model(data, models)
    case = data.draw(st.integers(0, 9), label="bad input")
    good = data.draw(model.rows[False], label="row")
    chosen = pick_entities(data, worlds, model.cls)
    width = data.draw(st.sampled_from([0, 1, model.n - 1, model.n + 1]), label="width")

    def op(w: World) -> Any:
        plan, im = w.plan(model.cls), w.maps[model.cls]
        entities = [w.objs[i] for i in chosen]
        if case == 0:  # a row of the wrong width after a good one
            out = w.core.hydrate(plan, [tuple([*good]), (good * 2)[:width]], im, w.uow, False)
            w.register(out)
        elif case == 1:  # a row that is not a tuple
            w.core.hydrate(plan, [list(good)], im, w.uow, False)
        elif case == 2:  # an identity map without its unit of work
            w.core.hydrate(plan, [tuple([*good])], im, None, False)
        elif case == 3:  # snapshots of the wrong width
            saved = [(e, vars(e).get("_orm_snap")) for e in entities]
            try:
                for e, snap in saved:
                    if type(snap) is tuple:
                        _set(e, "_orm_snap", (snap * 2)[:width])
                w.core.compute_changes(plan, entities)
            finally:
                for e, snap in saved:
                    _set(e, "_orm_snap", snap)
        elif case == 4:
            w.core.finish_inserts(plan, entities, [None] * width, True, 1, w.uow, im)
        elif case == 5:
            w.core.apply_snapshots(entities, [()] * width)
        elif case == 6:
            e = _object_new(model.cls)
            w.core.init_entity(e, plan.names, (None,) * width)
            w.register([e])
        elif case == 7:  # a dirty "dict" that is not one
            saved = w.uow.dirty
            w.uow.dirty = []
            try:
                for e in entities:
                    w.core.tracked_setattr(e, plan.names[0], getattr(e, plan.names[0], None))
            finally:
                w.uow.dirty = saved
        elif case == 8:
            w.core.forget(plan, entities, list(im))
        else:
            snapshots = [vars(e).get("_orm_snap") for e in entities]
            w.core.finish_inserts(plan, entities, snapshots, False, 1, w.uow, im)

    run_both(worlds, op)


STEPS = [
    step_hydrate,
    step_hydrate,
    step_write,
    step_write,
    step_change_in_place,
    step_flush,
    step_flush,
    step_insert,
    step_reference,
    step_delete,
    step_detach,
    step_bad_input,
]


@pytest.mark.skipif(
    os.environ.get("ORM_PURE_PYTHON") == "1",
    reason="imports both backends itself: the main run covers it",
)
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_both_backends_agree_on_every_sequence_of_operations(models, data):
    dirty_type = data.draw(st.sampled_from([dict, Dirty]), label="dirty")
    worlds = (World(C, models, dirty_type), World(P, models, dirty_type))
    for _ in range(data.draw(st.integers(1, 14), label="steps")):
        step = data.draw(st.sampled_from(STEPS), label="step")
        step(data, models, worlds)


# -- the plans themselves -----------------------------------------------------------------------


def test_plans_expose_the_same_attributes(models):
    for model in models.values():
        compiled, twin = model.plans[C], model.plans[P]
        assert plan_arguments(compiled) == plan_arguments(twin)
        assert compiled.n == twin.n == model.n
        assert type(compiled.kinds) is tuple and compiled.kinds == model.meta.plan.kinds


class Color(enum.Enum):
    RED = 1


def _arguments(n: int = 3, **changes: Any) -> dict[str, Any]:
    args = dict(cls=User, names=tuple(f"c{i}" for i in range(n)), pk_index=0,
                to_python=(None,) * n, to_db=(None,) * n, compare=(None,) * n,
                accepts=(None,) * n, nullable=(True,) * n, has_mutable=False,
                on_invalid=None, kinds=(0,) * n)
    args.update(changes)
    return args


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"kinds": None},
        {"kinds": (0, 0)},
        {"kinds": (0, 1, 2, 3)},
        {"kinds": (0, 5, 0)},
        {"kinds": (0, True, 0)},
        {"kinds": [0, 0, 0]},
        {"to_python": (None,)},
        {"to_db": (None,) * 4},
        {"compare": ()},
        {"accepts": (None, None)},
        {"nullable": (True,) * 5},
        {"pk_index": -1},
        {"pk_index": 3},
        {"pk_index": 2},
        {"pk_index": "0"},
        {"names": ("a", "b", 3)},
        {"names": ["a", "b", "c"]},
        {"to_python": None},
        {"cls": Color},
        {"n": 0} | {k: () for k in ("names", "to_python", "to_db", "compare", "accepts",
                                    "nullable", "kinds")},
        {"n": 513},
        {"n": 512},
    ],
)
def test_plan_constructors_agree(changes):
    n = changes.pop("n", 3)
    args = _arguments(n, **changes)
    results = []
    for core in (C, P):
        try:
            plan = core.Plan(**args)
        except Exception as exc:
            results.append((type(exc).__name__, str(exc)))
        else:
            results.append(("ok", plan_arguments(plan)))
    assert results[0] == results[1]


def test_plans_are_read_only_and_final_in_both():
    for core in (C, P):
        plan = core.Plan(**_arguments())
        with pytest.raises(AttributeError, match="'kinds' of 'orm._diff(_py)?.Plan' objects is "
                                                 "not writable"):
            plan.kinds = (1, 1, 1)
        with pytest.raises(TypeError, match="is not an acceptable base type"):
            type("Sub", (core.Plan,), {})
        with pytest.raises(ValueError, match="never initialized"):
            core.primary_keys(core.Plan.__new__(core.Plan), [])

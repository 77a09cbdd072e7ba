"""A model-based check of the Unit of Work over every mapped column type.

A hypothesis state machine drives one EntityManager through inserts, assignments of every
type, in-place changes to JSON documents, removals, refreshes, partial loads, loads of rows
another fork wrote, writes through references in other forks and `clear()`, and keeps its
own model of what the database and each entity should hold. At every flush it checks the
SQL the flush ran against the model (no SQL at all when nothing changed; each UPDATE sets
exactly the properties that differ from what was last loaded or written), and afterwards
that the rows, read back by a fresh fork, equal the model.

It runs on each database (`connect`): SQLite in memory, PostgreSQL in the session's schema,
where strings and JSON hold no NUL character (PostgreSQL's text and jsonb cannot; refusing
them is tested in test_values.py).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orm import FlushMode, ValidationError, wrap
from tests.core.models import Color, Everything, Size
from tests.databases import rows, sql


def values_for(database: str) -> dict[str, st.SearchStrategy[Any]]:
    """A strategy per property of Everything: every mapped type, nullable ones with None."""
    if database == "sqlite":
        text = st.text
    else:  # PostgreSQL's text and jsonb hold no NUL character

        def text(max_size: int) -> st.SearchStrategy[str]:
            return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=max_size)

    json_leaf = st.none() | st.booleans() | st.integers(-1000, 1000) | text(max_size=4)
    json = st.recursive(
        json_leaf,
        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(text(max_size=2), inner,
                                                                    max_size=2),
        max_leaves=4,
    )
    return {
        # not properties: what change_json_in_place writes into a document
        "_json": json,
        "_key": text(max_size=2),
        "i": st.integers(-(2**63), 2**63 - 1),
        "s": text(max_size=10),
        "f": st.floats(allow_nan=False),
        "b": st.booleans(),
        "raw": st.binary(max_size=6),
        "dec": st.decimals(min_value=-99999999, max_value=99999999, places=2,
                           allow_nan=False, allow_infinity=False),
        "dt": st.none() | st.datetimes(),
        "d": st.none() | st.dates(),
        "tm": st.none() | st.times(),
        "u": st.none() | st.uuids(),
        "doc": st.dictionaries(text(max_size=3), json, max_size=3),
        "items": st.lists(json, max_size=3),
        "color": st.sampled_from(Color),
        "size": st.sampled_from(Size),
        "note": st.none() | text(max_size=6),
    }


VALUES = {db: values_for(db) for db in ("sqlite", "postgresql")}
PROPS = [name for name in VALUES["sqlite"] if not name.startswith("_")]
DEFAULTS = {
    name: getattr(Everything(), name) for name in PROPS
}


def _same(a: Any, b: Any) -> bool:
    """Equal as the database would store them: Python equality, except that JSON tells
    `true` from `1` (at any depth of a document) and a bool column from an int."""
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return type(a) is type(b) and _json_text(a) == _json_text(b)
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class Statements:
    """The statements one flush ran, with their parameters: a context manager wrapping the
    connection's `execute`, `executemany`, `query` (PostgreSQL inserts one row `returning`
    its key) and `copy_rows` (PostgreSQL's COPY of many rows)."""

    WRAPPED = ("execute", "executemany", "query", "copy_rows")

    def __init__(self, orm: Any) -> None:
        self.connection = orm.connection
        self.calls: list[tuple[str, list[Any]]] = []
        self._set_list = re.compile(sql(orm, r"^update `everything` set (.*?) (?:from|where) "))
        self._column = re.compile(sql(orm, r"`(\w+)` = "))
        self._insert = sql(orm, "insert into `everything` (")
        self._quote = orm.platform.quote("x")[0]

    def __enter__(self) -> Statements:
        conn = self.connection
        for name in self.WRAPPED:
            original = getattr(conn, name, None)
            if original is not None:
                setattr(conn, name, getattr(self, "_" + name)(original))
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.WRAPPED:
            self.connection.__dict__.pop(name, None)

    def _execute(self, original: Any) -> Any:
        def execute(sql: str, params: Any = ()) -> Any:
            self.calls.append((sql, list(params)))
            return original(sql, params)

        return execute

    _query = _execute

    def _executemany(self, original: Any) -> Any:
        def executemany(sql: str, rows: list[Any]) -> Any:
            for row in rows:
                self.calls.append((sql, list(row)))
            return original(sql, rows)

        return executemany

    def _copy_rows(self, original: Any) -> Any:
        def copy_rows(sql: str, rows: Any) -> Any:
            rows = [list(r) for r in rows]
            for row in rows:
                self.calls.append((sql, row))
            return original(sql, rows)

        return copy_rows

    def updated_columns(self) -> dict[int, set[str]]:
        """Row key -> the columns the UPDATE statements set for it."""
        out: dict[int, set[str]] = {}
        for sql_text, params in self.calls:
            match = self._set_list.match(sql_text)
            if not match:
                continue
            columns = self._column.findall(match.group(1))
            width = len(columns) + 1
            assert len(params) % width == 0, sql_text
            for start in range(0, len(params), width):
                key = params[start + width - 1]
                assert key not in out, f"row {key} updated twice in one flush"
                out[key] = set(columns)
        return out

    def inserted_rows(self) -> int:
        count = 0
        for sql_text, params in self.calls:
            if sql_text.startswith(self._insert):
                width = sql_text[: sql_text.index(")")].count(self._quote) // 2 - 1
                count += len(params) // width
            elif sql_text.startswith("copy "):
                count += 1  # one call per row
        return count

    def deleted_keys(self) -> list[int]:
        """The keys of the DELETE statements (`in (?, ?)`, or one array for `= any(%s)`)."""
        keys: list[int] = []
        for sql_text, params in self.calls:
            if sql_text.startswith("delete from"):
                for p in params:
                    keys.extend(p if isinstance(p, list) else [p])
        return keys


class Tracked:
    """The model of one entity the EntityManager under test holds."""

    def __init__(self, key: int | None, entity: Any, values: dict[str, Any],
                 snap: dict[str, Any] | None) -> None:
        self.key = key
        self.entity = entity
        #: what the entity holds (for a partial load, only what was loaded or written)
        self.values = values
        #: what it was last loaded with or written as; None while new
        self.snap = snap
        self.removed = False

    def changed(self) -> set[str]:
        assert self.snap is not None
        return {
            p for p, v in self.values.items()
            if p not in self.snap or not _same(v, self.snap[p])
        }


class UnitOfWorkMachine(RuleBasedStateMachine):
    def __init__(self, connect: Any, database: str) -> None:
        super().__init__()
        self.log: list[str] = []
        # SQLite in memory (a new database per example); PostgreSQL's table recreated
        options = {"db_name": ":memory:"} if database == "sqlite" else {}
        self.orm = connect([Everything], debug=["query"], logger=self.log.append, **options)
        self.values = {p: VALUES[database][p] for p in PROPS}
        self.json = VALUES[database]["_json"]
        self.key = VALUES[database]["_key"]
        self.em = self.orm.em.fork()
        #: the model of the table: key -> property values
        self.db: dict[int, dict[str, Any]] = {}
        self.tracked: list[Tracked] = []

    def teardown(self) -> None:
        self.orm.close()

    # -- helpers ----------------------------------------------------------------------------
    def _by_id(self, key: int) -> Tracked | None:
        for t in self.tracked:
            if t.key == key:
                return t
        return None

    def _pick(self, index: int, *, new_ok: bool = True) -> Tracked | None:
        pool = [t for t in self.tracked if new_ok or t.snap is not None]
        return pool[index % len(pool)] if pool else None

    def _loaded(self, key: int, fields: list[str] | None) -> None:
        """The EntityManager loaded row `key` (all fields, or `fields`)."""
        row = self.db[key]
        names = PROPS if fields is None else fields
        t = self._by_id(key)
        if t is None:
            values = {p: copy.deepcopy(row[p]) for p in names}
            self.tracked.append(Tracked(key, None, values, copy.deepcopy(values)))
            return
        for p in names:  # only what was not loaded yet; a value the user wrote is kept
            if p not in t.snap:
                t.snap[p] = copy.deepcopy(row[p])
                t.values.setdefault(p, copy.deepcopy(row[p]))

    def _attach(self, found: list[Any]) -> None:
        for entity in found:
            t = self._by_id(entity.id)
            assert t is not None
            if t.entity is None:
                t.entity = entity
            assert t.entity is entity, "one instance per row in an identity map"

    def _check_entity(self, t: Tracked) -> None:
        for p in PROPS:
            if p in t.values:
                assert _same(getattr(t.entity, p), t.values[p]), (p, getattr(t.entity, p))
            else:
                with pytest.raises(ValidationError,
                                   match="was not loaded|an uninitialized reference"):
                    getattr(t.entity, p)

    # -- rules ------------------------------------------------------------------------------
    @initialize(data=st.data())
    def stored_rows(self, data: st.DataObject) -> None:
        """Start with a few stored rows, so that every rule has something to work on."""
        for _ in range(3):
            self.add(data)
        self.flush()

    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        if data.draw(st.booleans()):
            given = data.draw(st.fixed_dictionaries(self.values))
        else:  # defaults and default factories for what is left out
            given = data.draw(st.fixed_dictionaries({}, optional=self.values))
        entity = Everything(**copy.deepcopy(given))
        values = {p: copy.deepcopy(given.get(p, DEFAULTS[p])) for p in PROPS}
        self.em.persist(entity)
        self.tracked.append(Tracked(None, entity, values, None))

    @precondition(lambda self: self.tracked)
    @rule(index=st.integers(0, 99), data=st.data())
    def assign(self, index: int, data: st.DataObject) -> None:
        t = self._pick(index)
        prop = data.draw(st.sampled_from(PROPS))
        if prop in t.values:
            before = t.values[prop]
        else:  # not loaded: what the row holds (if another EntityManager left it there)
            before = self.db.get(t.key, {}).get(prop)
        value = data.draw(self.values[prop].filter(lambda v: not _same(v, before)))
        setattr(t.entity, prop, copy.deepcopy(value))
        t.values[prop] = value

    @precondition(lambda self: any(t.snap is not None for t in self.tracked))
    @rule(index=st.integers(0, 99), data=st.data())
    def assign_an_equal_value(self, index: int, data: st.DataObject) -> None:
        """An equal value (a copy of the current one, or the one last loaded or written)
        is no change: the next UPDATE must not set it."""
        t = self._pick(index, new_ok=False)
        known = sorted(set(t.values) | set(t.snap))
        prop = data.draw(st.sampled_from(known))
        source = t.snap if prop in t.snap and data.draw(st.booleans()) else t.values
        if prop not in source:
            return
        setattr(t.entity, prop, copy.deepcopy(source[prop]))
        t.values[prop] = copy.deepcopy(source[prop])

    @precondition(lambda self: self.tracked)
    @rule(index=st.integers(0, 99), prop=st.sampled_from(["doc", "items"]),
          how=st.sampled_from(["set", "delete", "nested"]), data=st.data())
    def change_json_in_place(self, index: int, prop: str, how: str, data: st.DataObject) -> None:
        key, value = data.draw(self.key), data.draw(self.json)
        t = self._pick(index)
        if prop not in t.values:
            return  # not loaded: reading it raises (checked in _check_entity)
        for target in (getattr(t.entity, prop), t.values[prop]):
            item = copy.deepcopy(value)
            if isinstance(target, dict):
                if how == "delete":
                    target.pop(key, None)
                elif how == "nested" and isinstance(target.get(key), (list, dict)):
                    inner = target[key]
                    inner.append(item) if isinstance(inner, list) else inner.update({key: item})
                else:
                    target[key] = item
            else:
                if how == "delete":
                    if target:
                        target.pop()
                elif how == "nested" and target and isinstance(target[0], (list, dict)):
                    inner = target[0]
                    inner.append(item) if isinstance(inner, list) else inner.update({key: item})
                else:
                    target.append(item)

    @precondition(lambda self: self.tracked)
    @rule(index=st.integers(0, 99))
    def remove(self, index: int) -> None:
        t = self._pick(index)
        self.em.remove(t.entity)
        if t.snap is None:
            self.tracked.remove(t)  # removing a new entity cancels its insert
        else:
            t.removed = True

    @precondition(lambda self: any(t.removed for t in self.tracked))
    @rule(index=st.integers(0, 99))
    def persist_again(self, index: int) -> None:
        removed = [t for t in self.tracked if t.removed]
        t = removed[index % len(removed)]
        self.em.persist(t.entity)
        t.removed = False

    @precondition(lambda self: any(t.snap is not None and not t.removed for t in self.tracked))
    @rule(index=st.integers(0, 99), data=st.data())
    def refresh(self, index: int, data: st.DataObject) -> None:
        """Unflushed changes (made here, to make the refresh count) are discarded."""
        pool = [t for t in self.tracked if t.snap is not None and not t.removed]
        t = pool[index % len(pool)]
        for p, v in data.draw(st.fixed_dictionaries({}, optional=self.values)).items():
            setattr(t.entity, p, copy.deepcopy(v))
        assert self.em.refresh(t.entity) is t.entity
        row = self.db[t.key]
        t.values = copy.deepcopy(row)
        t.snap = copy.deepcopy(row)
        self._check_entity(t)

    @rule(fields=st.none() | st.lists(st.sampled_from(PROPS), min_size=1, max_size=4,
                                      unique=True), flush_first=st.booleans())
    def load(self, fields: list[str] | None, flush_first: bool) -> None:
        """A query (all fields, or a partial load): rows the EntityManager does not hold yet
        become entities; held ones keep their state (unflushed changes included: the query
        runs with FlushMode.COMMIT), partial ones get what was missing."""
        if flush_first:
            self.flush()
        found = self.em.find(Everything, {}, fields=fields, order_by={"id": "asc"},
                             flush_mode=FlushMode.COMMIT)
        assert [e.id for e in found] == sorted(self.db)
        for key in sorted(self.db):
            self._loaded(key, fields)
        self._attach(found)
        for t in self.tracked:
            self._check_entity(t)

    def _partial(self) -> list[Tracked]:
        """Entities a partial load left incomplete whose row is still there."""
        return [t for t in self.tracked
                if t.snap is not None and len(t.snap) < len(PROPS) and t.key in self.db]

    @precondition(lambda self: self._partial())
    @rule(index=st.integers(0, 99), data=st.data())
    def write_unloaded_then_load_it(self, index: int, data: st.DataObject) -> None:
        """A property a partial load left out is written, then a query loads it: the
        written value stays (and is written at the next flush)."""
        pool = self._partial()
        t = pool[index % len(pool)]
        prop = data.draw(st.sampled_from([p for p in PROPS if p not in t.snap]))
        before = self.db[t.key][prop]
        value = data.draw(self.values[prop].filter(lambda v: not _same(v, before)))
        setattr(t.entity, prop, copy.deepcopy(value))
        t.values[prop] = value
        self.load(data.draw(st.none() | st.just([prop])), flush_first=False)

    @rule(data=st.data())
    def insert_elsewhere(self, data: st.DataObject) -> None:
        """Another fork inserts a row this EntityManager has not seen."""
        other = self.orm.em.fork()
        given = data.draw(st.fixed_dictionaries({}, optional=self.values))
        entity = Everything(**copy.deepcopy(given))
        other.persist(entity).flush()
        assert entity.id not in self.db
        self.db[entity.id] = {p: copy.deepcopy(given.get(p, DEFAULTS[p])) for p in PROPS}

    @precondition(lambda self: self.db)
    @rule(index=st.integers(0, 99), data=st.data())
    def write_through_reference(self, index: int, data: st.DataObject) -> None:
        """Another fork writes a row through a reference (no query): only what it sets is
        written; this EntityManager's copy of the row goes stale, as an identity map does."""
        key = sorted(self.db)[index % len(self.db)]
        other = self.orm.em.fork()
        ref = other.get_reference(Everything, key)
        assert not wrap(ref).is_initialized()
        written = data.draw(st.fixed_dictionaries({}, optional=self.values))
        for p, v in written.items():
            setattr(ref, p, copy.deepcopy(v))
        with Statements(self.orm) as statements:
            self.log.clear()
            other.flush()
        if not written:
            assert self.log == []
        else:
            assert statements.updated_columns() == {key: set(written)}
        self.db[key].update(copy.deepcopy(written))

    @rule(fields=st.none() | st.lists(st.sampled_from(PROPS), min_size=1, max_size=4,
                                      unique=True))
    def clear_and_load(self, fields: list[str] | None) -> None:
        """`clear()` detaches everything and drops what was not flushed; a new load (often
        partial) starts over."""
        self.em.clear()
        for t in self.tracked:
            assert not wrap(t.entity).is_managed()
        self.tracked = []
        self.load(fields, flush_first=False)

    @rule()
    def flush(self) -> None:
        removed = [t for t in self.tracked if t.removed]
        new = [t for t in self.tracked if t.snap is None]
        changed = {
            t.key: t.changed() for t in self.tracked
            if t.snap is not None and not t.removed and t.changed()
        }
        self.log.clear()
        with Statements(self.orm) as statements:
            self.em.flush()
        if not (removed or new or changed):
            assert self.log == [], "a flush with nothing to write runs no SQL"
            return
        assert self.log[0] == "[query] begin" and self.log[-1] == "[query] commit"
        assert statements.updated_columns() == changed, "UPDATE sets exactly what changed"
        assert statements.inserted_rows() == len(new)
        assert sorted(statements.deleted_keys()) == sorted(t.key for t in removed)
        for t in removed:
            assert not wrap(t.entity).is_managed()
            del self.db[t.key]
            self.tracked.remove(t)
        for t in new:
            assert isinstance(t.entity.id, int) and t.entity.id not in self.db
            t.key = t.entity.id
            self.db[t.entity.id] = copy.deepcopy(t.values)
            t.snap = copy.deepcopy(t.values)
        for key, props in changed.items():
            t = self._by_id(key)
            for p in props:
                self.db[key][p] = copy.deepcopy(t.values[p])
                t.snap[p] = copy.deepcopy(t.values[p])
        self.check_database()

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def entities_hold_what_the_model_says(self) -> None:
        for t in self.tracked:
            if t.entity is not None:
                self._check_entity(t)

    def check_database(self) -> None:
        """The rows, read back by raw SQL and by a fresh fork, equal the model; the fresh
        fork sees nothing to write."""
        keys = [k for (k,) in rows(self.orm, "select id from everything order by id")]
        assert keys == sorted(self.db)
        fresh = self.orm.em.fork()
        for entity in fresh.find(Everything, {}):
            expected = self.db[entity.id]
            for p in PROPS:
                assert _same(getattr(entity, p), expected[p]), (entity.id, p)
        assert fresh.get_unit_of_work().compute_change_sets() == []
        self.log.clear()
        fresh.flush()
        assert self.log == []


MODEL_SETTINGS = settings(
    max_examples=80,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_unit_of_work_matches_the_model(connect, database):
    run_state_machine_as_test(lambda: UnitOfWorkMachine(connect, database),
                              settings=MODEL_SETTINGS)


# -- cases the model found, pinned down ---------------------------------------------------

def test_a_reference_written_and_flushed_is_not_written_again(em, orm, log):
    """After its flush, what was written through a reference is its stored state: a flush
    with nothing new runs no SQL, and a later change writes only itself (never the old
    values over what another EntityManager wrote since)."""
    em.persist(Everything(s="a")).flush()
    other = orm.em.fork()
    ref = other.get_reference(Everything, 1)
    ref.s = "through the reference"
    other.flush()
    log.clear()
    other.flush()
    assert log == []
    later = orm.em.fork()
    later.find_one(Everything, 1).s = "a later writer"
    later.flush()
    ref.i = 7
    log.clear()
    other.flush()
    assert log.writes()[1] == sql(orm, "update `everything` set `i` = 7 where `id` = 1")
    assert rows(orm, "select s, i from everything") == [("a later writer", 7)]


def test_replacing_true_by_1_in_a_json_document_is_a_change(em, orm):
    e = Everything(doc={"flag": True}, items=[0])
    em.persist(e).flush()
    e.doc["flag"] = 1
    e.items[0] = False
    em.flush()
    assert rows(orm, "select doc, items from everything") == [('{"flag": 1}', "[false]")]


def test_an_integer_out_of_range_is_a_validation_error(em, orm):
    e = Everything()
    em.persist(e).flush()
    e.i = 2**63
    with pytest.raises(ValidationError, match=r"Everything\.i"):
        em.flush()
    e.i = 2**63 - 1
    em.flush()
    assert rows(orm, "select i from everything") == [(2**63 - 1,)]

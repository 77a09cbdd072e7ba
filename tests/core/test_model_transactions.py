"""A model-based check of transactions and rollback over every mapped column type.

The state machine of test_model_flush (inserts, assignments of every type, in-place JSON
changes, removals, partial loads, writes through other forks, `clear()`) runs here with
transactions around it: `em.transaction()` blocks opened at random, nested into savepoints,
committed or rolled back by an exception raised inside them, with work done both by the
EntityManager under test and by the block's own fork. Other forks insert, update and delete
rows meanwhile (inside an open block they write into it), so the EntityManager's entities go
stale, and some of its updates find their row gone. Refreshes (`em.refresh`,
`find(refresh=True)`) and queries that flush first (FlushMode.AUTO) are part of it.

The model keeps what this connection sees, what is committed (the rows as the outermost
block found them), and what each entity holds and was last loaded or written as. A rollback
is modelled from the contract (SPEC section 3, README "Transactions, concurrency and what we
guarantee"), not from the code: what flushes inside the block wrote is pending again
(inserted entities new again, their keys taken back; updates dirty again; removals scheduled
again), and entities a query read inside it are read again (detached if their row is gone,
else merged with it, the user's own changes kept). After every step the rows this connection
sees (a fresh fork) and the committed rows (another connection) equal the model, every entity
holds what the model says, and what the Unit of Work would write equals the model's pending
work, so that the next flush writes exactly that, and a flush with nothing to do runs no SQL.

Relations (links and unlinks through both sides, with rollback, populate and `clear()`)
have their own machine, tests/core/test_model_relations.py.

`ORM_PROOF_SCALE=N` runs N times as many programs; under CI the programs are derandomized
(the same ones every run), elsewhere they are new each time.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from orm import FlushMode, ValidationError, wrap
from orm.errors import OptimisticLockError, UniqueConstraintViolationException
from tests.core.models import Everything
from tests.core.test_model_flush import (
    DEFAULTS,
    PROPS,
    VALUES,
    Statements,
    Tracked,
    UnitOfWorkMachine,
    _same,
)
from tests.databases import IN_CI

#: how deep blocks nest (the outermost transaction and two savepoints)
MAX_DEPTH = 3
_files = itertools.count()


#: what the programs did (rules run, rollbacks and what they undid): read by a caller that
#: wants the numbers, e.g. `python -c` driving pytest.main()
SEEN: Counter[str] = Counter()


def event(what: str) -> None:
    SEEN[what] += 1


class Boom(Exception):
    """Raised inside a block to roll it back."""


class Block:
    """The model of one open `em.transaction()` block."""

    def __init__(self, cm: Any, tx: Any, db: dict[int, dict[str, Any]], generation: int,
                 seq: int):
        self.cm = cm
        #: the block's fork, flushed when the block commits
        self.tx = tx
        #: the rows as the block found them: what its rollback brings back
        self.db = copy.deepcopy(db)
        #: what flushes of the EntityManager under test did inside the block, in order:
        #: (generation, "insert" | "update" | "delete" | "refresh_gone", entity, what it was
        #: before: whether the insert generated the key; the snapshot (and for an update
        #: the properties written))
        self.records: list[tuple[int, str, Tracked, Any]] = []
        #: entities a query read inside the block: (generation, entity)
        self.reads: list[tuple[int, Tracked]] = []
        #: the model of the fork's own entities (new ones, and rows it loaded)
        self.tracked: list[Tracked] = []
        #: the entities the fork persisted
        self.created: list[Any] = []
        self.generation = generation
        #: the highest key the database had given out
        self.seq = seq


def _changed(t: Tracked) -> set[str]:
    return t.changed() if t.snap is not None and not t.removed else set()


class TransactionMachine(UnitOfWorkMachine):
    def __init__(self, connect: Any, database: str) -> None:
        super(UnitOfWorkMachine, self).__init__()
        self.log: list[str] = []
        # a file of its own per program on SQLite, so that a second connection reads it
        name = f"machine{next(_files)}.db"
        self.orm = connect([Everything], debug=["query"], logger=self.log.append, name=name)
        if database == "sqlite":  # no disk sync at each commit: durability is not the point
            self.orm.connection.execute("pragma synchronous = off")
        #: another connection: it sees committed rows only
        self.reader = connect([Everything], create=False, name=name)
        self.values = {p: VALUES[database][p] for p in PROPS}
        self.json = VALUES[database]["_json"]
        self.key = VALUES[database]["_key"]
        self.em = self.orm.em.fork()
        #: the rows this connection sees (open blocks' writes included)
        self.db: dict[int, dict[str, Any]] = {}
        self.tracked: list[Tracked] = []
        self.blocks: list[Block] = []
        #: entities whose row a flush of the EntityManager deleted (detached)
        self.deleted: list[Tracked] = []
        #: counts the EntityManager's clear()s: what a rollback undoes is from the same one
        self.generation = 0
        #: the highest key the database has given out (SQLite's AUTOINCREMENT counter, which
        #: a rollback takes back: the next insert gets the keys of rolled-back rows)
        self.seq = 0
        self.database = database

    def teardown(self) -> None:
        self.reader.close()
        self.orm.close()

    def _by_id(self, key: int) -> Tracked | None:
        """The entity the identity map holds for `key` (not a new one that is to be
        inserted under that key)."""
        return next((t for t in self.tracked if t.key == key and t.snap is not None), None)

    # -- the model's flush ------------------------------------------------------------------
    def _expected_flush(self, tracked: list[Tracked]) -> tuple[list, list, dict, list]:
        """(new, removed, changed properties by entity, how the flush fails or None): an
        insert under a key a row holds fails first, then an update whose row is gone."""
        new = [t for t in tracked if t.snap is None]
        removed = [t for t in tracked if t.removed]
        changed = {id(t): _changed(t) for t in tracked if _changed(t)}
        failure = None
        held = {t.key for t in tracked if t.snap is not None}
        generated = sum(t.key is None for t in new)
        # SQLite gives out the keys of rows a rollback took back: pending work on an entity
        # of such a row must not reach the new row that takes its key
        reused = set(range(self.seq + 1, self.seq + generated + 1)) if (
            self.database == "sqlite") else set()
        if any(t.key in held for t in new):  # refused before any SQL
            failure = (ValidationError, "already holds another instance")
        elif any(t.key in reused and (t.removed or id(t) in changed)
                 for t in tracked if t.snap is not None):
            failure = (OptimisticLockError, "has no row")
        elif any(t.key is not None and t.key in self.db for t in new):
            failure = (UniqueConstraintViolationException, None)
        elif any(id(t) in changed and t.key not in self.db for t in tracked):
            failure = (OptimisticLockError, "were deleted after|has no row")
        return new, removed, changed, failure

    def _flushed(self, tracked: list[Tracked], new: list, removed: list, changed: dict,
                 block: Block | None) -> None:
        """The model after a flush of `tracked` that succeeded; `block` records it."""
        generation = self.generation
        for t in removed:
            assert not wrap(t.entity).is_managed()
            self.db.pop(t.key, None)
            tracked.remove(t)
            if tracked is self.tracked:
                self.deleted.append(t)
            if block is not None:
                block.records.append((generation, "delete", t, t.snap))
        for t in tracked:
            if id(t) in changed:
                if block is not None:
                    before = (copy.deepcopy(t.snap), set(changed[id(t)]))
                    block.records.append((generation, "update", t, before))
                for p in changed[id(t)]:
                    self.db[t.key][p] = copy.deepcopy(t.values[p])
                    t.snap[p] = copy.deepcopy(t.values[p])
        for t in new:
            assert isinstance(t.entity.id, int) and t.entity.id not in self.db
            assert t.key is None or t.key == t.entity.id, "a key of its own stays"
            generated = t.key is None
            t.key = t.entity.id
            self.seq = max(self.seq, t.key)
            stale = self._by_id(t.key) if tracked is self.tracked else None
            if stale is not None:  # its row is gone: the database gave its key out again
                assert generated and not wrap(stale.entity).is_managed()
                tracked.remove(stale)
            self.db[t.key] = copy.deepcopy(t.values)
            t.snap = copy.deepcopy(t.values)
            if block is not None:
                block.records.append((generation, "insert", t, generated))

    def _flush_as_modelled(self, run: Any) -> Any:
        """Run `run()` (a flush, or a query that flushes first), checking the statements
        against the model's pending work; returns what `run` returned, or None if the
        flush failed as the model said it would (nothing written)."""
        new, removed, changed, failure = self._expected_flush(self.tracked)
        by_key = {t.key: changed[id(t)] for t in self.tracked if id(t) in changed}
        self.log.clear()
        depth = len(self.blocks)
        opening, closing = (
            ("[query] begin", "[query] commit") if depth == 0
            else (f"[query] savepoint trx{depth}", f"[query] release savepoint trx{depth}")
        )
        with Statements(self.orm) as statements:
            if failure is not None:
                event(f"a flush failed: {failure[0].__name__}")
                with pytest.raises(failure[0], match=failure[1]):
                    run()
                if failure[0] is ValidationError:
                    assert self.log == []
                else:
                    assert self.log[-1] == ("[query] rollback" if depth == 0 else
                                            f"[query] release savepoint trx{depth}")
                return None
            result = run()
        writes = [line for line in self.log if not line.startswith("[query] select")]
        if not (new or removed or changed):
            assert writes == [], "a flush with nothing to write runs no SQL"
            return result
        assert writes[0] == opening and writes[-1] == closing, writes
        assert statements.updated_columns() == by_key, "UPDATE sets exactly what changed"
        assert statements.inserted_rows() == len(new)
        assert sorted(statements.deleted_keys()) == sorted(t.key for t in removed)
        self._flushed(self.tracked, new, removed, changed, self.blocks[-1] if depth else None)
        self.check_database()
        return result

    # -- the EntityManager under test -------------------------------------------------------
    # The inherited rules are grouped below into fewer rules that each draw what to do: the
    # fewer the rules, the likelier the sequences a rollback has to get right (a partial
    # entity written, flushed, filled by a query and rolled back, say).
    def assign(self, index: int, data: st.DataObject) -> None:
        super().assign(index, data)

    def assign_an_equal_value(self, index: int, data: st.DataObject) -> None:
        super().assign_an_equal_value(index, data)

    def change_json_in_place(self, index: int, prop: str, how: str, data: st.DataObject
                             ) -> None:
        super().change_json_in_place(index, prop, how, data)

    def write_unloaded_then_load_it(self, index: int, data: st.DataObject) -> None:
        super().write_unloaded_then_load_it(index, data)

    def insert_elsewhere(self, data: st.DataObject) -> None:
        super().insert_elsewhere(data)
        self.seq = max(self.seq, *self.db)

    def write_through_reference(self, index: int, data: st.DataObject) -> None:
        super().write_through_reference(index, data)

    @precondition(lambda self: self.tracked)
    @rule(index=st.integers(0, 99), data=st.data())
    def write(self, index: int, data: st.DataObject) -> None:
        """A value of any type assigned, an equal one assigned, a JSON document changed in
        place, or a property a partial load left out written and then loaded."""
        kinds = ["assign", "json"]
        if any(t.snap is not None for t in self.tracked):
            kinds.append("equal")
        if self._partial():
            kinds.append("unloaded")
        kind = data.draw(st.sampled_from(kinds))
        if kind == "assign":
            self.assign(index, data)
        elif kind == "equal":
            self.assign_an_equal_value(index, data)
        elif kind == "unloaded":
            self.write_unloaded_then_load_it(index, data)
        else:
            self.change_json_in_place(index, data.draw(st.sampled_from(["doc", "items"])),
                                      data.draw(st.sampled_from(["set", "delete", "nested"])),
                                      data)

    @rule()
    def flush(self) -> None:
        self._flush_as_modelled(self.em.flush)

    @precondition(lambda self: self.blocks and self.tracked)
    @rule(changes=st.integers(1, 3), data=st.data())
    def change_and_flush_in_block(self, changes: int, data: st.DataObject) -> None:
        """The work a rollback must make pending again: changes flushed inside a block."""
        for _ in range(changes):
            self.write(data.draw(st.integers(0, 99)), data)
        self.flush()

    def _read(self, entities: list[Tracked]) -> None:
        """A query inside the open blocks read these entities."""
        if self.blocks:
            self.blocks[-1].reads.extend((self.generation, t) for t in entities)

    @rule(data=st.data())
    def query(self, data: st.DataObject) -> None:
        """A load (partial or not; held entities keep their unflushed changes), a load with
        `refresh=True`, a count that flushes first, or `em.refresh` of one entity."""
        kinds = ["load", "refresh all", "count"]
        if any(t.snap is not None and not t.removed for t in self.tracked):
            kinds.append("refresh one")
        kind = data.draw(st.sampled_from(kinds))
        if kind == "load":
            fields = data.draw(st.none() | st.lists(st.sampled_from(PROPS), min_size=1,
                                                    max_size=4, unique=True))
            self.load(fields, data.draw(st.booleans()))
        elif kind == "refresh all":
            self.load_with_refresh()
        elif kind == "count":
            where = data.draw(st.sampled_from([None, {"id": {"$gt": 0}}]))
            found = self._flush_as_modelled(lambda: self.em.count(Everything, where))
            if found is not None:
                assert found == len(self.db)
        else:
            self.refresh(data.draw(st.integers(0, 99)), data)

    def load(self, fields: list[str] | None, flush_first: bool) -> None:
        super().load(fields, flush_first)
        self._read([t for t in self.tracked if t.snap and t.key in self.db])

    def load_with_refresh(self) -> None:
        """`find(refresh=True)`: every entity held takes its row's values, unflushed
        changes discarded; new entities stay as they are."""
        found = self.em.find(Everything, {}, refresh=True, order_by={"id": "asc"},
                             flush_mode=FlushMode.COMMIT)
        assert [e.id for e in found] == sorted(self.db)
        for key, row in self.db.items():
            t = self._by_id(key)
            if t is None or t.snap is None:
                self.tracked.append(Tracked(key, None, copy.deepcopy(row), copy.deepcopy(row)))
            else:
                t.values, t.snap = copy.deepcopy(row), copy.deepcopy(row)
        self._attach(found)
        self._read([t for t in self.tracked if t.snap and t.key in self.db])

    def refresh(self, index: int, data: st.DataObject) -> None:
        """Unflushed changes (made here, to make the refresh count) are discarded; an entity
        whose row is gone is detached (and registered again if a rollback brings the row
        back)."""
        pool = [t for t in self.tracked if t.snap is not None and not t.removed]
        t = pool[index % len(pool)]
        for p, v in data.draw(st.fixed_dictionaries({}, optional=self.values)).items():
            setattr(t.entity, p, copy.deepcopy(v))
            t.values[p] = copy.deepcopy(v)
        before = copy.deepcopy(t.snap)
        result = self.em.refresh(t.entity)
        row = self.db.get(t.key)
        if row is None:
            assert result is None and not wrap(t.entity).is_managed()
            self.tracked.remove(t)
            if self.blocks:
                self.blocks[-1].records.append((self.generation, "refresh_gone", t, before))
        else:
            assert result is t.entity
            t.values, t.snap = copy.deepcopy(row), copy.deepcopy(row)
            self._check_entity(t)
        self._read([t])

    @rule(fields=st.none() | st.lists(st.sampled_from(PROPS), min_size=1, max_size=4,
                                      unique=True))
    def clear_and_load(self, fields: list[str] | None) -> None:
        self.generation += 1
        super().clear_and_load(fields)

    @precondition(lambda self: self.db)
    @rule(index=st.integers(0, 99), data=st.data())
    def reference(self, index: int, data: st.DataObject) -> None:
        """A reference (no query) to a row this EntityManager does not hold, written to:
        only what is set is written; a load fills in the rest, keeping what was written."""
        key = sorted(self.db)[index % len(self.db)]
        if any(t.key == key for t in self.tracked):
            return
        ref = self.em.get_reference(Everything, key)
        assert not wrap(ref).is_initialized()
        written = data.draw(st.fixed_dictionaries({}, optional=self.values).filter(bool))
        for p, v in written.items():
            setattr(ref, p, copy.deepcopy(v))
        self.tracked.append(Tracked(key, ref, copy.deepcopy(written), {}))

    def _whole_deleted(self) -> list[Tracked]:
        return [t for t in self.deleted if len(t.values) == len(PROPS)]

    @precondition(lambda self: any(t.removed for t in self.tracked) or self._whole_deleted())
    @rule(index=st.integers(0, 99), data=st.data())
    def persist_again(self, index: int, data: st.DataObject) -> None:
        """A removal cancelled by persisting the entity again, or an entity whose row a
        flush deleted persisted again: inserted under its key (one loaded whole: a partial
        one has nothing to insert for what it never loaded)."""
        pool = self._whole_deleted()
        if not pool or any(t.removed for t in self.tracked) and data.draw(st.booleans()):
            super().persist_again(index)
            return
        t = pool[index % len(pool)]
        self.deleted.remove(t)
        self.em.persist(t.entity)
        t.snap, t.removed = None, False
        self.tracked.append(t)

    # -- other forks ------------------------------------------------------------------------
    @rule(data=st.data())
    def elsewhere(self, data: st.DataObject) -> None:
        """Another fork inserts a row, writes one through a reference, or deletes one
        (inside an open block it writes into the block's transaction). The EntityManager's
        entities go stale; an update of a deleted row must fail the flush rather than write
        nothing."""
        kinds = ["insert", "write", "delete"] if self.db else ["insert"]
        kind = data.draw(st.sampled_from(kinds))
        if kind == "insert":
            self.insert_elsewhere(data)
            return
        index = data.draw(st.integers(0, 99))
        if kind == "write":
            self.write_through_reference(index, data)
            return
        key = sorted(self.db)[index % len(self.db)]
        other = self.orm.em.fork()
        if data.draw(st.booleans()):
            assert other.native_delete(Everything, {"id": key}) == 1
        else:
            other.remove(other.find_one_or_fail(Everything, key)).flush()
        del self.db[key]

    # -- blocks -----------------------------------------------------------------------------
    @precondition(lambda self: len(self.blocks) < MAX_DEPTH)
    @rule(from_fork=st.booleans())
    def begin(self, from_fork: bool) -> None:
        """Open a block (a savepoint inside another), from the EntityManager under test or
        from the enclosing block's fork."""
        base = self.blocks[-1].tx if from_fork and self.blocks else self.em
        cm = base.transaction()
        tx = cm.__enter__()
        assert tx is not base and tx is not self.em
        self.blocks.append(Block(cm, tx, self.db, self.generation, self.seq))

    def _fork_flushed(self, block: Block) -> None:
        new, removed, changed, failure = self._expected_flush(block.tracked)
        assert failure is None
        self._flushed(block.tracked, new, removed, changed, None)

    def _fork_load(self, block: Block, key: int) -> Tracked | None:
        """The block's fork looks `key` up: from its identity map, or by a query that
        flushes its pending work first (FlushMode.AUTO)."""
        held = next((t for t in block.tracked if t.key == key and t.snap is not None), None)
        if held is not None:
            assert block.tx.find_one(Everything, key) is held.entity
            return held
        new, removed, changed, failure = self._expected_flush(block.tracked)
        if failure is not None:
            with pytest.raises(failure[0], match=failure[1]):
                block.tx.find_one(Everything, key)
            return None
        entity = block.tx.find_one(Everything, key)
        self._flushed(block.tracked, new, removed, changed, None)
        if key not in self.db:
            assert entity is None
            return None
        t = Tracked(key, entity, copy.deepcopy(self.db[key]), copy.deepcopy(self.db[key]))
        block.tracked.append(t)
        return t

    @precondition(lambda self: self.blocks)
    @rule(data=st.data())
    def block_fork_works(self, data: st.DataObject) -> None:
        """The block's own fork persists a new entity, or changes or removes a row it looks
        up (a query that flushes its earlier work first); written when the block ends."""
        block = self.blocks[-1]
        kind = data.draw(st.sampled_from(["persist", "change", "remove"] if self.db
                                         else ["persist"]))
        if kind == "persist":
            given = data.draw(st.fixed_dictionaries({}, optional=self.values))
            entity = Everything(**copy.deepcopy(given))
            block.tx.persist(entity)
            block.created.append(entity)
            values = {p: copy.deepcopy(given.get(p, DEFAULTS[p])) for p in PROPS}
            block.tracked.append(Tracked(None, entity, values, None))
            return
        t = self._fork_load(block, sorted(self.db)[data.draw(st.integers(0, 99)) % len(self.db)])
        if t is None or t.removed:
            return
        if kind == "remove":
            block.tx.remove(t.entity)
            t.removed = True
            return
        for p, v in data.draw(st.fixed_dictionaries({}, optional=self.values)).items():
            setattr(t.entity, p, copy.deepcopy(v))
            t.values[p] = copy.deepcopy(v)

    @precondition(lambda self: self.blocks)
    @rule(flush_first=st.booleans())
    def commit(self, flush_first: bool) -> None:
        """The block ends (after a flush of the EntityManager under test in it, often): its
        fork is flushed, then the transaction (or savepoint) commits. If the fork's flush
        fails, the block rolls back instead."""
        if flush_first:
            self.flush()
        block = self.blocks[-1]
        failure = self._expected_flush(block.tracked)[3]
        if failure is not None:
            event("a block's own flush failed at its end")
            with pytest.raises(failure[0], match=failure[1]):
                block.cm.__exit__(None, None, None)
            self.blocks.pop()
            self._rolled_back(block)
            return
        block.cm.__exit__(None, None, None)
        self.blocks.pop()
        event("committed a savepoint" if self.blocks else "committed a transaction")
        self._fork_flushed(block)
        if self.blocks:  # a savepoint: undone with the enclosing block from now on
            self.blocks[-1].records.extend(block.records)
            self.blocks[-1].reads.extend(block.reads)
        else:
            self.check_database()

    @precondition(lambda self: self.blocks)
    @rule(flush_first=st.booleans(), flush_after=st.booleans())
    def roll_back(self, flush_first: bool, flush_after: bool) -> None:
        """An exception raised inside the block rolls it back (often after a flush of the
        EntityManager under test in it, and followed by one: it writes again what the
        rollback made pending)."""
        if flush_first:
            self.flush()
        block = self.blocks.pop()
        assert block.cm.__exit__(Boom, Boom(), None) is False, "the exception propagates"
        self._rolled_back(block)
        if flush_after:
            self.the_database_holds_the_model()
            self.pending_work_matches_the_model()
            self.flush()

    def _rolled_back(self, block: Block) -> None:
        """The model of a rollback, from the contract."""
        event("rolled back a savepoint" if self.blocks else "rolled back a transaction")
        self.db = block.db
        if self.database == "sqlite":  # AUTOINCREMENT's counter is rolled back too
            self.seq = block.seq
        for t in block.tracked:  # the block's fork lets go of its entities
            assert not wrap(t.entity).is_managed()
        for entity in block.created:  # and takes back the keys generated for them
            assert entity.id is None
        generation = self.generation
        tracked = self.tracked
        for g, kind, t, before in reversed(block.records):
            if g != generation:  # cleared since: the rollback does not bring it back, but
                if kind == "insert" and before and t not in tracked:  # takes the key back
                    t.key = None
                continue
            event(f"rollback undid a flushed {kind}")
            if kind == "delete":
                if t in tracked:  # persisted again since: the row is back, and managed
                    t.snap = before
                else:  # scheduled for removal again
                    t.snap, t.removed = before, True
                    tracked.append(t)
                if t in self.deleted:
                    self.deleted.remove(t)
            elif kind == "update" and t in tracked:  # dirty again
                # what a query loaded since into a partial entity (or a reference) is no
                # change of the user's: the merge below compares it with the row
                snap, written = copy.deepcopy(before[0]), before[1]
                for p, v in t.snap.items():
                    if p not in snap and p not in written:
                        snap[p] = v
                        event("rollback undid an update of an entity filled since")
                t.snap = snap
            elif kind == "insert" and t in tracked:
                if before:  # a key the database generated for it is taken back
                    t.key = None
                if t.removed:  # a removed new entity is forgotten
                    tracked.remove(t)
                else:  # new again
                    t.snap = None
            elif kind == "refresh_gone" and t not in tracked:
                t.snap = before
                tracked.append(t)
        merged = set()
        for g, t in block.reads:  # read again: detached, or merged with the row
            if g != generation or t not in tracked or not t.snap or id(t) in merged:
                continue
            merged.add(id(t))
            row = self.db.get(t.key)
            event("rollback read an entity again" + (": gone" if row is None else ""))
            if row is None:
                assert not wrap(t.entity).is_managed()
                tracked.remove(t)
                continue
            changed = t.changed()
            for p in PROPS:
                if p not in changed:
                    t.values[p] = copy.deepcopy(row[p])
            t.snap = copy.deepcopy(row)
        if self.blocks:  # read again if the enclosing block rolls back too
            self.blocks[-1].reads.extend(block.reads)
        uow = self.em.get_unit_of_work()
        for t in tracked:
            if t.snap is None:
                assert uow.is_new(t.entity) and t.entity.id == t.key, "new again"
            else:
                assert wrap(t.entity).is_managed() and t.entity.id == t.key
        assert {id(e) for e in uow.get_removal_stack()} == {
            id(t.entity) for t in tracked if t.removed
        }, "removals scheduled again"

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def the_database_holds_the_model(self) -> None:
        """What this connection sees (a fresh fork) and what is committed (another
        connection) equal the model."""
        committed = self.blocks[0].db if self.blocks else self.db
        for orm, expected in ((self.orm, self.db), (self.reader, committed)):
            found = orm.em.fork().find(Everything, {}, order_by={"id": "asc"},
                                       disable_identity_map=True)
            assert [e.id for e in found] == sorted(expected)
            for entity in found:
                row = expected[entity.id]
                for p in PROPS:
                    assert _same(getattr(entity, p), row[p]), (entity.id, p)

    @invariant()
    def pending_work_matches_the_model(self) -> None:
        """What the Unit of Work would write is the model's pending work: inserts of the
        new entities, updates of exactly the changed properties, the scheduled removals."""
        expected = set()
        for t in self.tracked:
            if t.snap is None:
                expected.add(("create", id(t.entity), None))
            elif t.removed:
                expected.add(("delete", id(t.entity), None))
            elif t.snap == {}:  # an uninitialized reference: the preview names no columns
                if t.values:
                    expected.add(("update", id(t.entity), frozenset()))
            elif _changed(t):
                expected.add(("update", id(t.entity), frozenset(_changed(t))))
        got = {
            (c.type, id(c.entity), frozenset(c.payload) if c.type == "update" else None)
            for c in self.em.get_unit_of_work().compute_change_sets()
        }
        assert got == expected

    @invariant()
    def keys_are_the_models(self) -> None:
        for t in self.tracked:
            if t.entity is not None:
                assert t.entity.id == t.key


SCALE = float(os.environ.get("ORM_PROOF_SCALE", "1"))

MACHINE_SETTINGS = settings(
    max_examples=max(1, int(70 * SCALE)),
    stateful_step_count=50,
    deadline=None,
    derandomize=IN_CI,
    database=None if IN_CI else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.filterwarnings(  # the PostgreSQL pool's threads draw jitter from `random`
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)
def test_transactions_match_the_model(connect, database):
    run_state_machine_as_test(lambda: TransactionMachine(connect, database),
                              settings=MACHINE_SETTINGS)

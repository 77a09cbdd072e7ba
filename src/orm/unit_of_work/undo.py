"""Undoing a flush in memory when the transaction around it is rolled back.

A flush inside an explicit transaction (or an auto-flushing query inside one) writes through
a savepoint and, once the savepoint is released, updates the entities: keys, snapshots,
identity map. If the enclosing transaction is later rolled back, the database forgets those
writes, so the Unit of Work must forget them too, or an entity would look stored while its
row does not exist (and SQLite would hand its key to the next row). SQLAlchemy restores its
Session on rollback; this is our equivalent.

`FlushUndo.capture` records, before the flush's results are applied, what the entities looked
like; the connection runs `FlushUndo.run` if the transaction (or any enclosing one) is rolled
back. Afterwards everything that flush wrote is pending again: inserted entities are new
again (keys the database generated are removed), updated ones dirty again (their previous
snapshot restored), removed ones scheduled for removal again. Only flushes inside a
transaction pay for the record; a stand-alone flush commits at once and needs none.

`UpsertUndo` does the same for `em.upsert()`, and `LoadUndo` for what queries read inside the
transaction (entities it may have shown data that is now rolled back): they are read again.
"""

from __future__ import annotations

from .._backend import core
from .._markers import DELETED, MISSING, REFERENCE, UNLOADED
from .._typing import TYPE_CHECKING
from .unit_of_work import map_key

if TYPE_CHECKING:
    from typing import Any

    from ..metadata.model import EntityMetadata
    from .unit_of_work import UnitOfWork, _FlushPlan

__all__ = ["FlushUndo", "LoadUndo", "UpsertUndo", "changed_columns", "map_key", "restore_value"]

_object_setattr = object.__setattr__


def _held(entity: Any, name: str) -> Any:
    """The value `entity` holds itself for `name` (MISSING: none, the class's default
    shows through)."""
    values = getattr(entity, "__dict__", None)
    return values.get(name, MISSING) if values is not None else getattr(entity, name, MISSING)


def restore_value(entity: Any, name: str, before: Any) -> None:
    """Put back an attribute value the flush or its handlers set (MISSING: it had none).
    Never a relation's: the flush generates none, and the handlers' are not put back (see
    lifecycle._prune_journal), as their other sides would not be with them."""
    if before is MISSING:
        try:
            object.__delattr__(entity, name)
        except AttributeError:
            pass
    else:
        _object_setattr(entity, name, before)


def _stored_state(
    meta: EntityMetadata, entities: list[Any]
) -> tuple[EntityMetadata, list[Any], list[Any], list[Any]]:
    """(meta, entities, their snapshots, their identity-map keys), before a flush applies.
    A snapshot taken on write is taken here: what is put back must not depend on the
    attributes staying as they are until then."""
    snaps = [core.snapshot(e) for e in entities]
    return meta, entities, snaps, [map_key(meta, e) for e in entities]


def _loaded_since(before: tuple, current: tuple, written: Any) -> tuple:
    """The snapshot an entity had before a flush (`before`) for the columns the flush wrote,
    and for the others what is known of them now (`current`): the same values, unless a
    query read them since (a refresh, or one filling in a partial entity). Restoring
    `before` for those would make the values read look like the user's own writes, so the
    re-read after the rollback would keep them, values read in the rolled-back transaction,
    and the next flush would write them back."""
    return tuple(
        now if now is not UNLOADED and i not in written else old
        for i, (old, now) in enumerate(zip(before, current, strict=True))
    )


class FlushUndo:
    """What one committed-to-a-savepoint flush changed, and how to take it back."""

    __slots__ = ("uow", "generation", "inserts", "updates", "references", "deletes", "assigned",
                 "journal", "sealed", "pivots", "cascaded", "left")  # fmt: skip

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.generation = uow.generation
        #: (meta, entities, generated keys?)
        self.inserts: list[tuple[EntityMetadata, list[Any], bool]] = []
        #: (meta, entities, their snapshots before the flush, identity-map keys before,
        #: the columns written)
        self.updates: list[
            tuple[EntityMetadata, list[Any], list[Any], list[Any], tuple[int, ...]]
        ] = []
        #: (meta, an uninitialized reference written to, the columns written)
        self.references: list[tuple[EntityMetadata, Any, set[int]]] = []
        #: (meta, entities, snapshots, identity-map keys)
        self.deletes: list[tuple[EntityMetadata, list[Any], list[Any], list[Any]]] = []
        #: values the flush generated: (entity, name, before, after)
        self.assigned: list[tuple[Any, str, Any, Any]] = []
        #: the flush plan's `undo` list: (entity, name, value before) of every assignment
        #: the flush or its handlers made, in order; `assigned` covers the first `sealed`
        self.journal: list[tuple[Any, str, Any]] = []
        self.sealed = 0
        #: many-to-many collections and the pairs written from each
        self.pivots: list[tuple[Any, dict[int, tuple[Any, bool]]]] = []
        #: ids of the entities deleted by Cascade.REMOVE / orphan_removal, not by em.remove()
        self.cascaded: set[int] = set()
        #: the inverse sides the deleted entities left, filled as the results are applied
        #: (many-to-many collections too: name None, see pivots.forget)
        self.left: list[tuple[Any, Any, str | None, Any]] = []

    @classmethod
    def capture(cls, uow: UnitOfWork, plan: _FlushPlan) -> FlushUndo:
        """Call after the statements ran and before their results are applied."""
        undo = cls(uow)
        for ins in plan.inserts:
            undo.inserts.append((ins.meta, ins.entities, ins.skip_pk))
        undo.updates = [(*_stored_state(u.meta, u.entities), u.changed) for u in plan.updates]
        undo.references = [
            (ref.meta, ref.entity, {ref.meta.properties[n].column_index for n in ref.names})
            for ref in plan.reference_updates
        ]
        undo.deletes = [_stored_state(d.meta, d.entities) for d in plan.deletes]
        undo.cascaded = {id(entity) for _, entity in plan.cascaded}
        undo.left = plan.left  # the same list: `_apply` fills it after this
        # the list itself: the after_* handlers, which run after this, add to it
        undo.journal = plan.undo
        undo.seal()
        undo.pivots = list(plan.collections)
        return undo

    def seal(self, final: bool = False) -> None:
        """The values the flush leaves, read when it ends (and at capture: a flush without
        handlers after it ends there). Each attribute once: the value it had before the
        flush, the one it has at the end (a handler may assign it several times:
        `post.count += 1` per comment); undone only while it still holds that one.
        `final`: the flush has ended, its journal is let go of."""
        first: dict[tuple[int, str], tuple[Any, str, Any]] = {}
        for entity, name, before in self.journal:
            first.setdefault((id(entity), name), (entity, name, before))
        self.sealed = len(self.journal)
        self.assigned = [
            (entity, name, before, _held(entity, name))
            for entity, name, before in first.values()
        ]
        if final:
            self.journal, self.sealed = [], 0

    def run(self) -> None:
        """The transaction was rolled back: make what the flush wrote pending again, in
        the reverse order of the flush. Nothing happens if the Unit of Work was cleared
        since (`em.clear()` drops pending work)."""
        uow = self.uow
        if uow.generation != self.generation:
            self._forget_generated()
            return
        cascaded = self.cascaded
        for meta, entities, snaps, keys in reversed(self.deletes):
            im = uow.map_for(meta.cls)
            removed = uow.removed.setdefault(meta.cls, {})
            new = uow.new.get(meta.cls)
            for entity, snap, key in zip(entities, snaps, keys, strict=True):
                owner = entity._orm_uow
                if owner is uow and entity._orm_snap is None and new and id(entity) in new:
                    # persisted again after its removal (and that insert undone first): the
                    # row is back, so it is managed again, its removal cancelled by the
                    # persist, and what differs from the row is dirty
                    del new[id(entity)]
                    _object_setattr(entity, "_orm_snap", snap)
                    im[key] = entity
                    uow.dirty[id(entity)] = entity
                    continue
                if owner is not None:
                    continue  # managed by another EntityManager since: leave it there
                _object_setattr(entity, "_orm_uow", uow)
                _object_setattr(entity, "_orm_snap", snap)
                im[key] = entity
                if id(entity) in cascaded:
                    # the next flush cascades again from what em.remove() was given, as
                    # things are then: moved to another owner meanwhile, it stays
                    uow.dirty[id(entity)] = entity
                else:
                    removed[id(entity)] = entity
        if self.left:
            from ..entity.collection import _unwrap
            from .pivots import restore
        for held, partner, name, value in reversed(self.left):
            # the rows are back: so are the entities in the inverse sides they left, where
            # they still point (one moved to another owner since stays there)
            if name is None:  # a many-to-many collection (pivots.forget)
                restore(uow, held, *value)
            elif held is not None:
                if _unwrap(value.__dict__.get(name)) is partner:
                    held._link(value)
            elif partner.__dict__.get(name) is None:
                _object_setattr(partner, name, value)
        for meta, entities, snaps, keys, written in reversed(self.updates):
            self._undo_updates(meta, entities, snaps, keys, written)
        for meta, entity, written in reversed(self.references):
            if entity._orm_uow is uow:
                self._undo_reference(meta, entity, written)
        for meta, entities, skip_pk in reversed(self.inserts):
            self._undo_inserts(meta, entities, skip_pk)
        if self.pivots:
            from .pivots import undo as undo_pivots

            undo_pivots(uow, self.pivots)
        self._undo_unsealed()
        for entity, name, before, after in reversed(self.assigned):
            if _held(entity, name) is after:  # else the user's later value stays
                restore_value(entity, name, before)

    def _undo_unsealed(self) -> None:
        """What the after handlers assigned before the flush's own transaction failed (no
        user code ran since: all of it goes)."""
        for entity, name, before in reversed(self.journal[self.sealed :]):
            restore_value(entity, name, before)

    def _forget_generated(self) -> None:
        """The Unit of Work was cleared since, so its bookkeeping is gone; the entities it
        let go of still must not keep keys and values of rows that were rolled back, nor
        count as written the pairs of an owner whose row was rolled back (persisted again,
        it would be inserted without them); and one whose delete was rolled back is a
        detached entity again, not a deleted one (its row is back)."""
        for _, entities, _, _ in self.deletes:
            for entity in entities:
                if entity._orm_uow is None and entity._orm_snap is DELETED:
                    _object_setattr(entity, "_orm_snap", None)
        for meta, entities, skip_pk in self.inserts:
            if skip_pk:
                for entity in entities:
                    if entity._orm_uow is None and entity._orm_snap is None:
                        _object_setattr(entity, meta.pk.name, None)
        self._undo_unsealed()
        for entity, name, before, after in reversed(self.assigned):
            if entity._orm_uow is None and _held(entity, name) is after:
                restore_value(entity, name, before)
        if self.pivots:
            # an owner this flush inserted is new again, its pairs rolled back with it: all
            # its items are pairs to write, should it be persisted again
            from ..entity.collection import UNSTORED

            inserted = {id(e) for _, entities, _ in self.inserts for e in entities}
            for collection, _ in self.pivots:
                owner = collection.owner
                if (
                    id(owner) in inserted and owner._orm_uow is None
                    and owner._orm_snap is None and collection._items is not None
                ):
                    collection._delta = UNSTORED
                    collection._dirty = True

    def _undo_reference(self, meta: EntityMetadata, entity: Any, written: set[int]) -> None:
        """An uninitialized reference with writes again; or, if a query has loaded its row
        into it since, a partial entity whose written columns count as written where
        nothing was loaded (the re-read after the rollback compares the rest)."""
        uow = self.uow
        current = core.snapshot(entity)  # a refresh since may have left it "taken on write"
        if type(current) is tuple:
            snap = tuple(UNLOADED if i in written else v for i, v in enumerate(current))
            if any(v is not UNLOADED for i, v in enumerate(snap) if i != meta.pk_index):
                _object_setattr(entity, "_orm_snap", snap)
                uow.partial.add(id(entity))
                uow.dirty[id(entity)] = entity
                return
        _object_setattr(entity, "_orm_snap", REFERENCE)
        uow.partial.discard(id(entity))
        uow.dirty[id(entity)] = entity

    def _undo_updates(
        self,
        meta: EntityMetadata,
        entities: list[Any],
        snaps: list[Any],
        keys: list[Any],
        written: tuple[int, ...],
    ) -> None:
        uow = self.uow
        im = uow.map_for(meta.cls)
        version = meta.version
        # what goes back to the values before the flush: the columns it wrote, and the
        # version it counted up
        taken_back = set(written)
        if version is not None:
            taken_back.add(version.column_index)
        for entity, snap, key in zip(entities, snaps, keys, strict=True):
            if entity._orm_uow is not uow:
                continue
            current = core.snapshot(entity)
            if version is not None:
                if getattr(entity, version.name, None) == current[version.column_index]:
                    _object_setattr(entity, version.name, snap[version.column_index])
            held_under = map_key(meta, entity)
            if held_under != key and im.get(held_under) is entity:
                del im[held_under]  # the key change is undone: back under the old key
                im[key] = entity
            if type(current) is tuple and len(current) == len(snap):
                partial = UNLOADED in snap
                snap = _loaded_since(snap, current, taken_back)
                if partial:
                    if UNLOADED in snap:
                        uow.partial.add(id(entity))
                    else:
                        uow.partial.discard(id(entity))
            _object_setattr(entity, "_orm_snap", snap)
            uow.dirty[id(entity)] = entity

    def _undo_inserts(self, meta: EntityMetadata, entities: list[Any], skip_pk: bool) -> None:
        uow = self.uow
        cls = meta.cls
        im = uow.identity_map.get(cls)
        pk_name = meta.pk.name
        new = uow.new.setdefault(cls, {})
        removed = uow.removed.get(cls)
        for entity in entities:
            if entity._orm_uow is not uow:
                continue
            key = map_key(meta, entity)
            if im is not None and im.get(key) is entity:
                del im[key]
            _object_setattr(entity, "_orm_snap", None)
            uow.dirty.pop(id(entity), None)
            uow.partial.discard(id(entity))
            if skip_pk and getattr(entity, pk_name, None) == key:
                _object_setattr(entity, pk_name, None)  # the database's key is gone
            if removed is not None and removed.pop(id(entity), None) is not None:
                # removed after it was inserted: as a removal of a new entity, it is
                # simply forgotten
                _object_setattr(entity, "_orm_uow", None)
                continue
            new[id(entity)] = entity


class UpsertUndo:
    """`em.upsert()` inside a transaction that is rolled back: the entity it returned goes
    back to what it was before (dirty again with its previous snapshot if it was managed;
    new again, or unmanaged, if the upsert is what made it managed)."""

    __slots__ = ("uow", "generation", "meta", "key", "entity", "snapshot", "was_managed",
                 "was_new", "generated")  # fmt: skip

    def __init__(
        self,
        uow: UnitOfWork,
        meta: EntityMetadata,
        key: Any,
        previous: Any,
        was_new: bool,
        generated: bool = False,
    ) -> None:
        """Call before the upserted row is hydrated: `previous` is the entity the identity
        map held for its key (None if none); set `entity` to the result afterwards."""
        self.uow = uow
        self.generation = uow.generation
        self.meta = meta
        self.key = key
        self.entity = previous
        self.was_managed = previous is not None
        self.snapshot = core.snapshot(previous) if previous is not None else None
        self.was_new = was_new
        #: the database generated the key (the data held none): taken back on rollback
        self.generated = generated

    def run(self) -> None:
        uow = self.uow
        entity = self.entity
        if entity is None:
            return
        if uow.generation != self.generation or entity._orm_uow is not uow:
            if not self.was_managed and entity._orm_uow is None:
                self._forget_key(entity)  # dropped by clear() since: still no key of its own
            return
        if self.was_managed:
            _object_setattr(entity, "_orm_snap", self.snapshot)
            uow.dirty[id(entity)] = entity
            return
        im = uow.identity_map.get(self.meta.cls)
        if im is not None and im.get(self.key) is entity:
            del im[self.key]
        _object_setattr(entity, "_orm_snap", None)
        uow.dirty.pop(id(entity), None)
        if self.was_new:
            uow.new.setdefault(self.meta.cls, {})[id(entity)] = entity
        else:
            _object_setattr(entity, "_orm_uow", None)
        self._forget_key(entity)

    def _forget_key(self, entity: Any) -> None:
        name = self.meta.pk.name
        if self.generated and getattr(entity, name, None) == self.key:
            _object_setattr(entity, name, None)


def changed_columns(plan: Any, entity: Any) -> set[int]:
    """The columns whose value the user changed since the entity's snapshot, column by
    column (an invalid value marks only its own column; the rollback path, no hurry)."""
    snap = core.snapshot(entity)
    changed = set()
    for i, name in enumerate(plan.names):
        try:
            current = getattr(entity, name)
        except Exception:  # not loaded, never written
            continue
        old = snap[i]
        if current is old:
            continue
        if old is UNLOADED:
            changed.add(i)  # written where nothing was loaded
            continue
        try:
            if plan.kinds[i] in (1, 2, 3):  # the snapshot holds the Python value
                same = bool(current == old)
            else:
                conv = plan.to_db[i]
                new = conv(current) if conv is not None and current is not None else current
                cmp = plan.compare[i]
                same = bool(new == old) if cmp is None else bool(cmp(new, old))
        except Exception:  # a value its type refuses: the user's, kept for the flush to say
            same = False
        if not same:
            changed.add(i)
    return changed


class LoadUndo:
    """Entities a query added to an identity map inside a transaction that is then rolled
    back were read from what that transaction saw: perhaps another fork's uncommitted insert
    (a row that is gone now, and whose key the database hands out again) or its uncommitted
    update. Left as they are, a later write could reach an unrelated row, or write back
    values that were rolled back. So on rollback their rows are read again: an entity whose
    row is gone is detached (as SQLAlchemy expunges it); one whose row exists is merged with
    it, as a refresh that keeps the user's own changes: the columns the user changed since
    the load keep their values (and are written at the next flush), the others and the
    snapshot take the row's. Only queries inside a transaction pay for the record."""

    __slots__ = ("uow", "generation", "meta", "entities", "reread")

    #: keys per query
    CHUNK = 500
    #: what `reread` gives for a row that exists but that the types cannot read
    KEEP: Any = object()
    #: run after the flush and upsert undo records of the same rollback (see
    #: Connection._run_undo): the merge must compare with the snapshots from before them
    late = True

    def __call__(self) -> None:
        self.run()

    def __init__(self, uow: UnitOfWork, meta: EntityMetadata, entities: list[Any], reread: Any):
        self.uow = uow
        self.generation = uow.generation
        self.meta = meta
        self.entities = entities
        #: keys (Python values) -> {key: an unregistered entity loaded from its row now}
        self.reread = reread

    def run(self) -> None:
        uow = self.uow
        if uow.generation != self.generation:
            return
        meta = self.meta
        held = [
            e for e in self.entities if e._orm_uow is uow and type(core.snapshot(e)) is tuple
        ]
        if not held:
            return
        keys = [map_key(meta, e) for e in held]
        try:
            rows: dict[Any, Any] = {}
            for start in range(0, len(keys), self.CHUNK):
                rows.update(self.reread(keys[start : start + self.CHUNK]))
        except Exception:  # cannot read at all (the ORM is closing): leave them as they are
            return
        im = uow.identity_map.get(meta.cls)
        for entity, key in zip(held, keys, strict=True):
            fresh = rows.get(key)
            if fresh is self.KEEP:
                continue  # the row is there but unreadable: the entity stays as it is
            if fresh is not None:
                self._merge(entity, fresh)
                continue
            if im is not None and im.get(key) is entity:
                del im[key]
            for pending in (uow.dirty, uow.watched, uow.removed.get(meta.cls) or {}):
                pending.pop(id(entity), None)
            uow.partial.discard(id(entity))
            _object_setattr(entity, "_orm_uow", None)
            _object_setattr(entity, "_orm_snap", None)

    def _merge(self, entity: Any, fresh: Any) -> None:
        """The row's values where the user changed nothing since the load; the user's own
        changes stay, to be written against the row's snapshot."""
        plan = self.meta.plan
        changed = changed_columns(plan, entity)
        for i, name in enumerate(plan.names):
            if i not in changed:
                _object_setattr(entity, name, getattr(fresh, name))
        # a tuple, never "taken on write": the user's changes kept above differ from the row
        _object_setattr(entity, "_orm_snap", core.snapshot(fresh))
        self.uow.partial.discard(id(entity))
        if changed:
            self.uow.dirty[id(entity)] = entity

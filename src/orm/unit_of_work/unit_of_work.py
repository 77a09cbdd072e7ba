"""The Unit of Work: what an EntityManager holds and how a flush writes it.

It keeps the identity map (one instance per row), the new entities waiting for an INSERT, the
entities written to since their snapshot (`dirty`, filled by the entities' `__setattr__`) and
those marked for removal. A flush:

1. computes the change sets: INSERT rows for new entities, the changed columns of dirty
   entities (and of every entity holding a mutable JSON value), the keys to DELETE;
2. runs nothing at all when there is nothing to write;
3. otherwise writes them in one transaction, batched: one executemany per INSERT shape and
   per set of changed columns, `where pk in (...)` deletes;
4. only after the commit updates the entities (generated keys, snapshots, identity map), so a
   failed flush leaves the Unit of Work exactly as it was, ready to retry.
"""

from __future__ import annotations

import gc

from .._backend import core
from .._markers import DELETED, MISSING, REFERENCE, UNLOADED, is_set
from .._typing import TYPE_CHECKING, lazy_module
from ..errors import (
    DriverException,
    OptimisticLockError,
    ORMError,
    ValidationError,
    _own_table,
    _short,
)
from ..metadata.model import EntityMetadata
from ..types import holds_changeable

if TYPE_CHECKING:
    from typing import Any

    from .. import _retry
    from ..entity_manager import EntityManager
    from . import cascade_remove as _cascade
    from . import commit_order, pivots
    from . import undo as _undo
else:
    # relations, removals, collections and nested transactions only: a flush of plain
    # entities never imports them
    commit_order = lazy_module(f"{__package__}.commit_order", globals(), "commit_order")
    pivots = lazy_module(f"{__package__}.pivots", globals(), "pivots")
    _cascade = lazy_module(f"{__package__}.cascade_remove", globals(), "_cascade")
    _undo = lazy_module(f"{__package__}.undo", globals(), "_undo")
    # the pause before a retry: only a flush the database asked to run again needs it
    _retry = lazy_module("orm._retry", globals(), "_retry")

__all__ = ["UnitOfWork", "ChangeSet"]

#: how often a flush outside any transaction is run again after a retryable failure
FLUSH_RETRIES = 3

_object_setattr = object.__setattr__


def map_key(meta: EntityMetadata, entity: Any) -> Any:
    """The key the identity map holds `entity` under: the primary key it was loaded or
    last written with (its snapshot's), which differs from the attribute while a new key
    assigned by the user is not flushed yet."""
    snap = entity._orm_snap
    if type(snap) is not tuple:
        return getattr(entity, meta.pk.name, None)
    key = snap[meta.pk_index]
    conv = meta.plan.to_python[meta.pk_index]
    if conv is not None and key is not None and meta.plan.kinds[meta.pk_index] not in _PYTHON_VALUED:
        key = conv(key)
    return key

#: rows per multi-row INSERT statement (bounded further by SQLite's variable limit)
INSERT_CHUNK = 500
#: keys per `delete ... where pk in (...)` (measured: 500 a statement beat 5,000)
DELETE_CHUNK = 500
#: rows per `update ... from (values ...)` statement (measured: 100 beat 500)
UPDATE_CHUNK = 100
#: the diff core's column kinds whose snapshot holds the Python value (see orm._diff_py)
_PYTHON_VALUED = (1, 2, 3)


# Plain classes rather than dataclasses: `dataclasses` imports `inspect`, which a script
# would pay for at `import orm`.


class ChangeSet:
    """One pending write, as `get_unit_of_work().compute_change_sets()` reports it."""

    type: str  # "create" | "update" | "delete"
    entity: Any
    name: str
    payload: dict[str, Any]

    def __init__(
        self, type: str, entity: Any, name: str, payload: dict[str, Any] | None = None  # noqa: A002
    ) -> None:
        self.type = type
        self.entity = entity
        self.name = name
        self.payload = {} if payload is None else payload

    def __repr__(self) -> str:
        return (
            f"ChangeSet(type={self.type!r}, entity={self.entity!r}, name={self.name!r}, "
            f"payload={self.payload!r})"
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.type, self.entity, self.name, self.payload) == (
            other.type, other.entity, other.name, other.payload  # type: ignore[attr-defined]
        )

    __hash__ = None  # type: ignore[assignment] - mutable, compared by value (as a dataclass)


def _nothing_written(exc: BaseException) -> None:
    """A flush failed and its transaction was rolled back: say so in the error's message,
    or, for an exception of the application's own (an event handler's, a custom type's),
    in a note, which leaves its type and message as they were."""
    if isinstance(exc, (DriverException, OptimisticLockError)) and exc.args:
        # a retryable error already says to run the whole transaction again
        then = "" if getattr(exc, "retryable", False) else "; fix the cause and call flush() again"
        exc.args = (
            f"{str(exc.args[0]).rstrip('.')}. Nothing of this flush was written{then}.",
            *exc.args[1:],
        )
    elif isinstance(exc, Exception) and not isinstance(exc, ORMError):
        exc.add_note("Nothing of this flush was written; fix the cause and call flush() again.")


def advance_keys(em: EntityManager, meta: EntityMetadata, given: list[Any]) -> None:
    """Keys the user gave were written into a column whose keys the database generates from
    a sequence (PostgreSQL): move the sequence past the largest, so that a generated key never
    collides with one of them. (SQLite's rowids follow the largest key by themselves.)"""
    platform = em.sql.platform
    if (
        platform.keys_returned
        and meta.pk.autoincrement
        and given
        and all(type(k) is int for k in given)
    ):
        em.connection.query(
            platform.advance_keys(),  # type: ignore[attr-defined]
            (em.sql.quote(meta.table), meta.pk.field_name, max(given)),
        )


class _Insert:
    def __init__(
        self,
        meta: EntityMetadata,
        skip_pk: bool,
        entities: list[Any],
        flat: list[Any],
        snapshots: list[tuple],
        first_id: int = 0,
    ) -> None:
        self.meta = meta
        self.skip_pk = skip_pk
        self.entities = entities
        #: the parameters of every row, flat, and the snapshots (see core.insert_rows)
        self.flat = flat
        self.snapshots = snapshots
        #: the generated keys: consecutive from `first_id`, or (where the database returns
        #: or reserves them) one per entity in `keys`
        self.first_id = first_id
        self.keys: list[Any] | None = None


class _Update:
    def __init__(
        self,
        meta: EntityMetadata,
        changed: tuple[int, ...],
        entities: list[Any],
        snapshots: list[tuple],
        params: list[tuple],
    ) -> None:
        self.meta = meta
        self.changed = changed
        self.entities = entities
        self.snapshots = snapshots
        self.params = params
        #: run before the inserts (see commit_order.unlink_first)
        self.early = False
        #: on a versioned table: check and count the version (not the second half of a
        #: split key update, see commit_order.rekey_first)
        self.versioned = True


class _ReferenceUpdate:
    def __init__(
        self,
        meta: EntityMetadata,
        entity: Any,
        fields: list[str],
        params: list[Any],
        names: list[str],
    ) -> None:
        self.meta = meta
        self.entity = entity
        self.fields = fields
        #: the written values in database form, then the key
        self.params = params
        #: the properties written
        self.names = names


class _Delete:
    def __init__(self, meta: EntityMetadata, entities: list[Any], keys: list[Any]) -> None:
        self.meta = meta
        self.entities = entities
        self.keys = keys


class _FlushPlan:
    def __init__(self, preview: bool = False) -> None:
        self.inserts: list[_Insert] = []
        self.updates: list[_Update] = []
        self.reference_updates: list[_ReferenceUpdate] = []
        self.deletes: list[_Delete] = []
        #: hook and version values written to entities while planning: (entity, name, before)
        self.undo: list[tuple[Any, str, Any]] = []
        #: a preview (compute_change_sets) runs no hooks and changes no entity
        self.preview = preview
        #: relations (see orm.unit_of_work.commit_order): parameter slots waiting for a key
        #: generated in this flush, by holder (indexes, target entities, holder, key
        #: converter), snapshot slots to complete after the commit (snapshots, rows, column,
        #: targets, key converter), references written by a later UPDATE (meta, entity,
        #: column index, target, key converter), and the keys of the rows inserted so far
        #: (id(entity) -> key)
        self.pending: list[tuple[list[int], list[Any], list[Any], Any]] = []
        self.snapshot_slots: list[tuple[list[tuple], list[int], int, list[Any], Any]] = []
        self.fixups: list[tuple[EntityMetadata, Any, int, Any, Any]] = []
        self.keys: dict[int, Any] = {}
        #: many-to-many: pivot table -> the pairs to delete and insert; and the
        #: collections written with the changes written (see orm.unit_of_work.pivots)
        self.pivots: dict[Any, Any] = {}
        self.collections: list[tuple[Any, dict[int, tuple[Any, bool]]]] = []
        #: removals added by Cascade.REMOVE / orphan_removal (see cascade_remove):
        #: (the removed group, entity), and the new entities not inserted because of them
        #: (their group, entity, Unit of Work), taken back if the flush fails
        self.cascaded: list[tuple[dict[int, Any], Any]] = []
        self.forgotten: list[tuple[dict[int, Any], Any, Any]] = []
        #: the new entities before this flush persisted enrolled ones (lifecycle._Pending),
        #: to take back what they brought if it fails: they are enrolled again
        self.before_enrolled: Any = None
        #: what deleted entities left (see _leave_inverse_sides), for a rollback: (the
        #: owner's collection, the owner, the entity's ManyToOne, the entity), or (None, the
        #: one-to-one partner, its inverse property, what it held), or (a many-to-many
        #: collection, None, None, (the items taken out, the changes dropped)): see
        #: pivots.forget
        self.left: list[tuple[Any, Any, str | None, Any]] = []
        #: whether the transaction was begun while planning (to load what a removal
        #: cascades to), and what to run just before it begins
        self.began = False
        self.before_begin: Any = None

    def assign(self, entity: Any, name: str, value: Any) -> None:
        """Set a value the flush generates (hook, version), remembering the old one."""
        try:
            before = getattr(entity, name)
        except Exception:
            before = MISSING
        self.undo.append((entity, name, before))
        _object_setattr(entity, name, value)

    def revert(self) -> None:
        """The flush failed: give the entities back the values they had before it."""
        for entity, name, before in reversed(self.undo):
            _undo.restore_value(entity, name, before)
        self.undo.clear()
        for group, entity in self.cascaded:
            group.pop(id(entity), None)
        self.cascaded.clear()
        for group, entity, uow in self.forgotten:
            if entity._orm_uow is None:
                group[id(entity)] = entity
                _object_setattr(entity, "_orm_uow", uow)
        self.forgotten.clear()
        if self.before_enrolled is not None:
            # whether the retry persists them (and what they bring along) depends on what
            # they hold then, as before this flush
            self.before_enrolled.drop()
            self.before_enrolled = None

    def __bool__(self) -> bool:
        return bool(
            self.inserts or self.updates or self.reference_updates or self.deletes
            or self.pivots
        )


class UnitOfWork:
    def __init__(self, em: EntityManager) -> None:
        self.em = em
        self.identity_map: dict[type, dict[Any, Any]] = {}
        #: new entities by class, in persist order
        self.new: dict[type, dict[int, Any]] = {}
        #: managed entities written to since their snapshot (id -> entity)
        self.dirty: dict[int, Any] = {}
        self.removed: dict[type, dict[int, Any]] = {}
        self._inited: Any = None
        #: ids of managed entities a partial load (`fields=`) left incomplete: a lookup by
        #: key must query for them instead of answering from the identity map
        self.partial: set[int] = set()
        #: increased by clear(): undo records of older flushes no longer apply
        self.generation = 0
        #: managed entities holding a value that can change in place without a write (a
        #: bytearray in a bytes property): compared at every flush, like JSON holders
        self.watched: dict[int, Any] = {}
        #: a flush with event handlers is running (they may query, never flush again)
        self.flushing = False
        #: many-to-many owning collections changed since the last flush (id -> collection):
        #: registered by the collection when it changes, so a flush never scans for them
        self.collections: dict[int, Any] = {}
        #: new entities that took a managed entity into a many-to-many collection whose
        #: inverse side cascades persist (id -> (entity, the names of those collections of
        #: the entity)): the next flush persists those still holding one (see
        #: collection._enroll)
        self.enrolled: dict[int, tuple[Any, tuple[str, ...]]] = {}
        #: the links of enrolled entities to an entity when it was marked for removal
        #: ((id of the enrolled one, its collection, id of the removed one) -> both): the
        #: removal came last, so the flush drops them with its row; a link made after the
        #: removal is refused (see persist_enrolled). The entities are held so that their
        #: ids stay theirs
        self.links_removed: dict[tuple[int, str, int], tuple[Any, Any]] = {}

    # -- state ------------------------------------------------------------------------------
    def map_for(self, cls: type) -> dict[Any, Any]:
        im = self.identity_map.get(cls)
        if im is None:
            im = self.identity_map[cls] = {}
        return im

    def get_identity_map(self) -> dict[type, dict[Any, Any]]:
        return self.identity_map

    def get_persist_stack(self) -> list[Any]:
        return [e for group in self.new.values() for e in group.values()]

    def get_removal_stack(self) -> list[Any]:
        return [e for group in self.removed.values() for e in group.values()]

    def is_new(self, entity: Any) -> bool:
        group = self.new.get(type(entity))
        return group is not None and id(entity) in group

    @property
    def inited(self) -> Any:
        """The references whose on_init fired (made by get_reference, or filled by their
        first load), so that it fires once per instance: a WeakSet made on first use (only
        entity types with on_init listeners ask for it)."""
        if self._inited is None:
            import weakref

            self._inited = weakref.WeakSet()
        return self._inited

    def is_removed(self, entity: Any) -> bool:
        group = self.removed.get(type(entity))
        return group is not None and id(entity) in group

    def persist(self, entity: Any, meta: EntityMetadata) -> None:
        """A new entity joins this Unit of Work at once (`_orm_uow` set, no snapshot yet):
        another EntityManager then refuses it, instead of both inserting it. `meta` must be
        the entity's own: the flush inserts it into `meta`'s table (a cascade passes its
        relation's target, which the relation's checks made sure the entity is of)."""
        if type(entity) is not meta.cls:
            raise ValidationError(
                f"Cannot persist {type(entity).__name__} {_short(entity, 60)} as a "
                f"{meta.class_name}{_own_table(meta.cls, entity, meta.table)}.",
                entity=entity,
            )
        owner = entity._orm_uow
        if owner is self:
            group = self.removed.get(meta.cls)
            if group is not None and group.pop(id(entity), None) is not None:
                # persist after remove cancels the removal, and so what it noted
                if self.links_removed:
                    self.forget_links_removed(None, None, entity)
            return
        if owner is not None:
            state = "new in" if entity._orm_snap is None else "managed by"
            raise ValidationError(
                f"{meta.class_name} {_short(entity, 80)} is already {state} another EntityManager "
                f"(id {owner.em.id}){_joined_through(entity, meta, owner)}; an entity belongs "
                f"to one EntityManager: persist and flush it there, or load the row in this "
                f"one (em.find_one).",
                entity=entity,
            )
        if entity._orm_snap is DELETED:
            _revive(entity, meta)
        if not meta.generated_init:
            self._apply_defaults(entity, meta)
        group = self.new.get(meta.cls)
        if group is None:
            group = self.new[meta.cls] = {}
        core.join_new(entity, self, group)  # in C: a third of what object.__setattr__ costs

    def refuse_removed_items(self, entities: list[Any], meta: EntityMetadata) -> None:
        """New entities whose collections hold an entity this Unit of Work is about to
        delete: the flush would drop those links with the row, so persisting them after
        `remove()` is refused rather than lost, as `Collection.add` refuses it. (Persisting
        an entity the Unit of Work holds already changes nothing: its links were there
        before the removal, which wins, or were checked as they were made.) So are the
        new entities they bring along through Cascade.PERSIST (`Writer(posts=[Post(tags=
        [removed])])`), which the flush would take in without a word. Asked by
        `em.persist()` and by a new entity joining a managed owner, only while something is
        marked for removal; not by the flush's cascade, which cannot tell whether the link
        or the removal came last (the last call wins: removing after persisting deletes)."""
        self.refuse_removed_graph([(meta, entities)])

    def refuse_removed_graph(
        self, roots: list[tuple[EntityMetadata, list[Any]]], noted_ok: bool = False
    ) -> None:
        """`refuse_removed_items` for several roots at once (`em.persist()` of a list): an
        entity reached from several of them is read once. Only the collections that can
        hold a class with entities marked for removal are read, and only the relations
        leading to such collections are followed (see `_reached_targets`): a graph that
        cannot hold one costs nothing. The links noted at a removal (`links_removed`) are
        let through for the entities brought along by cascade, and for the roots too with
        `noted_ok` (joining by cascade): `em.persist()` of an entity after a removal is the
        last call for its own links."""
        removed = self.removed
        removing = {cls for cls, group in removed.items() if group}
        if not removing:
            return  # (a removal cancelled by persist() leaves its class's group empty)
        from ..entity.collection import _unwrap

        metas = self.em.metadata
        seen = {id(e) for _, batch in roots for e in batch}
        # persist() cancels the removal of what it is given: those may be held
        cancelled = {key for key in seen if any(key in removed[cls] for cls in removing)}
        # an entity this Unit of Work holds already is not read itself: its links were there
        # before the removal (which wins) or were checked as they were made. The new ones it
        # holds are: `Article(tags=[held, removed])` fills `held.articles` without a check
        # (meta, entities, side not to walk back through, read their collections, whether
        # they are roots: a root's links noted at a removal count only with `noted_ok`)
        work: list[tuple[EntityMetadata, list[Any], str | None, bool, bool]] = []
        for meta, batch in roots:
            if not removing.isdisjoint(_reached_targets(metas, meta)):
                joining = [e for e in batch if e._orm_uow is not self]
                if joining:
                    work.append((meta, joining, None, True, True))
                if len(joining) < len(batch):
                    work.append(
                        (meta, [e for e in batch if e._orm_uow is self], None, False, True)
                    )

        def bring(item: Any, back: str | None) -> None:
            """A new entity the flush's cascade would persist with them: checked too, but
            not back through `back`, the side it was reached from (see `skip`)."""
            item = _unwrap(item)
            if (
                item is not None and item._orm_snap is None and item._orm_uow is None
                and id(item) not in seen
            ):
                found = metas.find(type(item))
                if found is not None:
                    seen.add(id(item))
                    work.append((found, [item], back, True, False))

        def leads(prop: Any) -> bool:
            """Whether the flush's cascade through `prop` may bring a collection that can
            hold an entity marked for removal."""
            relation = prop.relation
            return bool(relation.persist_cascade) and not removing.isdisjoint(
                _reached_targets(metas, relation.target_meta)
            )

        def skip(meta: EntityMetadata, prop: Any) -> str | None:
            """The side of `prop`'s target not to walk back through. A single entity there
            is the one it was reached from. A collection there holds that one's siblings
            (from a post up to its new writer, the writer's posts): those are skipped only
            where nothing they reach apart from the writer can hold an entity marked for
            removal, so that posts persisted one by one do not each read all the others;
            the siblings' tags, say, are read (the flush brings the siblings too)."""
            back = _back_side(meta, prop)
            kind = prop.relation.kind
            if back is None or kind in ("1:m", "1:1"):
                return back
            past = _reached_past(metas, meta, prop.name if kind == "m:1" else None)
            return back if removing.isdisjoint(past) else None

        plans: dict[type, tuple[list[Any], list[Any], list[Any]]] = {}
        while work:
            meta, batch, back, read_them, root = work.pop()
            plan = plans.get(meta.cls)
            if plan is None:
                plan = plans[meta.cls] = (
                    [
                        (prop, removed[prop.relation.target])  # type: ignore[union-attr]
                        for prop in meta.collections if prop.relation.target in removing  # type: ignore[union-attr]
                    ],
                    [(prop, skip(meta, prop)) for prop in meta.collections if leads(prop)],
                    [
                        (prop, skip(meta, prop))
                        for prop in (*meta.relations, *meta.inverse_ones) if leads(prop)
                    ],
                )
            read, many, one = plan
            if not read_them:
                read = []
            for entity in batch:
                values = entity.__dict__
                for prop, group in read:
                    items = getattr(values.get(prop.name), "_items", None)
                    if items and not group.keys().isdisjoint(items.keys()):  # both by id
                        # an entity persisted in the same call is kept after all
                        held = group.keys() & items.keys()
                        if (noted_ok or not root) and self.links_removed:
                            held = {
                                key for key in held
                                if (id(entity), prop.name, key) not in self.links_removed
                            }
                        if not held <= cancelled:
                            self.refuse_removed(
                                meta, entity, prop.name,
                                [items[key] for key in held - cancelled],
                            )
                for prop, side in many:
                    if prop.name == back:
                        continue
                    items = getattr(values.get(prop.name), "_items", None)
                    if items:
                        # those this Unit of Work holds already are not read again
                        for item in core.not_held(list(items.values()), self).values():
                            bring(item, side)
                for prop, side in one:
                    if prop.name != back:
                        bring(values.get(prop.name), side)

    def refuse_removed(
        self, meta: EntityMetadata, entity: Any, name: str, items: Any, why: str = ""
    ) -> None:
        """`refuse_removed_items` for one collection's items (`entity` None: the entity
        `em.create()` is about to build); `why` says why it is being persisted, if the
        user did not ask."""
        for item in items:
            if self.is_removed(item):
                what = f"persist {meta.class_name} {_short(entity, 60)}{why}" if entity is not None else (
                    f"create {meta.class_name}"
                )
                raise ValidationError(
                    f"Cannot {what}: {meta.class_name}.{name} holds {type(item).__name__} "
                    f"{_short(item, 60)}, which is marked for removal in this EntityManager "
                    f"(em.remove()). Call em.persist() on that one first to keep it, or take "
                    f"it out of the collection.",
                    entity=entity if entity is not None else meta.cls,
                    property=name,
                )

    @staticmethod
    def _apply_defaults(entity: Any, meta: EntityMetadata) -> None:
        """A custom `__init__` may leave properties unset: defaults fill them (new entities
        only, as the generated `__init__` would)."""
        for prop in meta.properties.values():
            if is_set(entity, prop.name):
                continue
            if prop.default_factory is not None:
                _object_setattr(entity, prop.name, prop.default_factory())
            elif prop.default is not MISSING:
                import copy  # here, not at module level: `import orm` does not load copy

                _object_setattr(entity, prop.name, copy.deepcopy(prop.default))
            elif prop.nullable or prop.primary or prop.version:
                _object_setattr(entity, prop.name, None)

    def remove(self, entity: Any, meta: EntityMetadata) -> None:
        group = self.new.get(meta.cls)
        if group is not None and id(entity) in group:
            del group[id(entity)]  # never written: simply forgotten
            self.dirty.pop(id(entity), None)
            _object_setattr(entity, "_orm_uow", None)
            # out of its owners' loaded collections too, or a later flush of an owner would
            # persist it again by cascade: the removal was the last word
            _leave_inverse_sides(meta, [entity], [])
            if self.em.metadata.m2m_holders.get(meta.cls):
                pivots.forget(self, meta, [entity], [])  # and out of the many-to-many ones
            if meta.remove_cascades:
                _cascade.forget_new_items(self, meta, entity)
            return
        if self.enrolled.pop(id(entity), None) is not None and entity._orm_uow is None:
            # a new entity the next flush would have persisted: it will not, and it leaves
            # the loaded many-to-many collections that listed it
            pivots.forget(self, meta, [entity], [])
            return
        if entity._orm_uow is not self:
            raise ValidationError(
                f"Cannot remove {meta.class_name} {_short(entity, 80)}: it is not managed by this "
                f"EntityManager. Load it (find_one / get_reference) first, or use "
                f"em.native_delete().",
                entity=entity,
            )
        group = self.removed.get(meta.cls)
        if group is None:
            group = self.removed[meta.cls] = {}
        if id(entity) in group:
            return  # marked already: the links made since came after that removal
        group[id(entity)] = entity
        if self.enrolled:
            self._note_links_removed(entity)

    def _note_links_removed(self, entity: Any) -> None:
        """`entity`, now marked for removal, may be in the collections of new entities the
        next flush persists (`enrolled`): those links were made before the removal, which
        wins, so the flush may drop them (see `links_removed`)."""
        key = id(entity)
        metas = self.em.metadata
        for owner, _ in self.enrolled.values():
            values = owner.__dict__
            for prop in metas.get(type(owner)).collections:
                items = getattr(values.get(prop.name), "_items", None)
                if items and key in items:
                    self.links_removed[(id(owner), prop.name, key)] = (owner, entity)

    def forget_links_removed(self, owner: Any, name: str | None, item: Any) -> None:
        """The link of `owner`'s collection `name` (owner None: of every owner) to `item`
        noted at its removal is gone: taken out of the collection (taken again, it is a new
        link), or the removal cancelled."""
        if owner is not None:
            self.links_removed.pop((id(owner), name, id(item)), None)  # type: ignore[arg-type]
            return
        for key in [k for k, (_, held) in self.links_removed.items() if held is item]:
            del self.links_removed[key]

    def note_partial(self, entities: list[Any]) -> None:
        """After a query: remember which of its entities are still partially loaded."""
        partial = self.partial
        for entity in entities:
            snap = entity._orm_snap
            if type(snap) is tuple and UNLOADED in snap:
                partial.add(id(entity))
            else:
                partial.discard(id(entity))

    def clear(self) -> None:
        """Forget everything; the entities become detached."""
        for im in self.identity_map.values():
            core.detach(im.values())
        for group in self.new.values():
            core.detach(group.values())
        self.generation += 1
        self.watched = {}
        self.identity_map = {}
        self.new = {}
        self.dirty = {}
        self.removed = {}
        self.partial = set()
        self.collections = {}
        self.enrolled = {}
        self.links_removed = {}

    def unregister(self, entity: Any, meta: EntityMetadata) -> None:
        im = self.identity_map.get(meta.cls)
        if im is not None:
            pk = map_key(meta, entity)
            if im.get(pk) is entity:
                del im[pk]
        self.dirty.pop(id(entity), None)
        core.detach([entity])

    def persist_enrolled(self, plan: _FlushPlan | None = None) -> None:
        """Persist the new entities enrolled by the managed entities they took into a
        many-to-many collection (see `enrolled`), those that still hold one this Unit of
        Work is not about to delete (an entity being removed cascades nothing, as in
        commit_order.cascade_persist). Called by the flush before anything reads the new
        entities: the event path before `on_flush` and the `before_create` handlers. With
        the flush's `plan` (the path without handlers), a failed flush enrolls them again
        (the event path's `_Pending` does that for its own).

        One that took an entity after it was marked for removal (`em.remove(x);
        Article(tags=[z, x])`) is refused, all of them checked before any is persisted:
        the flush would drop that link with the row, as `em.persist()` refuses it. A link
        made before the removal is dropped: the removal came last (`links_removed`)."""
        enrolled = self.enrolled
        metas = self.em.metadata
        removed = self.removed
        joining = []
        for entity, names in enrolled.values():
            if entity._orm_snap is not None or entity._orm_uow is not None:
                continue  # persisted (or loaded) since
            values = entity.__dict__
            for name in names:
                held = getattr(values.get(name), "_items", None)
                if held and any(
                    item._orm_uow is self
                    and not ((group := removed.get(type(item))) and id(item) in group)
                    for item in held.values()
                ):
                    joining.append((entity, names))
                    break
        if any(removed.values()):
            for entity, _ in joining:
                self._refuse_links_after_removal(entity)
        if plan is not None and joining:
            from .lifecycle import _Pending  # imports this module

            plan.before_enrolled = _Pending(self)
        self.enrolled = {}
        for entity, _ in joining:
            self.persist(entity, metas.get(type(entity)))

    def _refuse_links_after_removal(self, entity: Any) -> None:
        """Every collection of `entity`, not only those it was enrolled through: the flush
        persists it whole."""
        meta = self.em.metadata.get(type(entity))
        values = entity.__dict__
        for prop in meta.collections:
            held = getattr(values.get(prop.name), "_items", None)
            if held:
                self.refuse_removed(
                    meta, entity, prop.name,
                    [
                        item for key, item in held.items()
                        if (id(entity), prop.name, key) not in self.links_removed
                    ],
                    " (new, persisted by the flush because it holds an entity this "
                    "EntityManager manages, through Cascade.PERSIST)",
                )

    def has_changes_for(self, meta: EntityMetadata) -> bool:
        """Whether a query over `meta` could miss unflushed work (FlushMode.AUTO)."""
        cls = meta.cls
        if self.enrolled and any(type(e) is cls for e, _ in self.enrolled.values()):
            return True
        if self.new.get(cls) or self.removed.get(cls):
            return True
        metas = self.em.metadata
        if metas.removal_cascade and self.removed:
            # a pending removal that cascades to this type
            sources = metas.removed_by.get(cls)
            if sources and any(self.removed.get(source) for source in sources):
                return True
        referrers = metas.referrers.get(cls) if metas.has_relations else None
        if referrers:
            # a new or changed entity may reference a new one of this type that the flush
            # will persist by cascade
            if any(self.new.get(other) for other in referrers):
                return True
            for entity in self.dirty.values():
                if type(entity) is cls or type(entity) in referrers:
                    return True
            return self._mutable_changes(meta)
        for entity in self.dirty.values():
            if type(entity) is cls:
                return True
        return self._mutable_changes(meta)

    def has_pivot_changes_for(self, meta: EntityMetadata) -> bool:
        """Whether unwritten many-to-many pairs involve `meta` (a query over it may read
        the pivot table: populate, a filter across the relation), those of an enrolled new
        entity included. Not a change of its rows, so a refresh under a lock loses nothing."""
        pending = self.collections or self.enrolled
        return bool(pending) and pivots.touches(self.em.metadata, meta.cls)

    def _mutable_changes(self, meta: EntityMetadata) -> bool:
        cls = meta.cls
        if meta.has_mutable or meta.presumed:
            im = self.identity_map.get(cls)
            held = _holding_changeable(meta, im.values()) if im else ()
            if held and core.compute_changes(meta.plan, held):
                return True
        if self.watched:
            held = [e for e in self.watched.values() if type(e) is cls and e._orm_uow is self]
            if held and core.compute_changes(meta.plan, held):
                return True
        return False

    def _mutable_metas(self) -> list[EntityMetadata]:
        metas = self.em.metadata
        return [
            m
            for cls in self.identity_map
            if (m := metas.find(cls)) and (m.has_mutable or m.presumed)
        ]

    # -- change sets ------------------------------------------------------------------------
    def _plan_inserts(self, plan: _FlushPlan) -> None:
        metas = self.em.metadata
        for cls, group in self.new.items():
            if not group:
                continue
            meta = metas.get(cls)
            entities = list(group.values())
            if (meta.has_hooks or meta.version is not None) and not plan.preview:
                self._before_create(plan, meta, entities)
            pk_name = meta.pk.name
            if meta.pk.autoincrement:
                # one pass; the common case (every key generated) builds no second list
                given = core.with_key(entities, pk_name)
                if given:
                    generated = [e for e in entities if getattr(e, pk_name, None) is None]
                else:
                    generated = entities
            else:
                generated, given = [], entities
                for e in entities:
                    if getattr(e, pk_name, None) is None:
                        raise ValidationError(
                            f"{meta.class_name}.{pk_name} has no value and the database does "
                            f"not generate it: set it, or declare "
                            f"PrimaryKey(default_factory=...). Nothing of this flush was "
                            f"written.",
                            entity=e,
                            property=pk_name,
                        )
            if given and not plan.preview:
                self._check_free_keys(meta, given)
            for skip_pk, batch in ((True, generated), (False, given)):
                if not batch:
                    continue
                if plan.preview:  # the change sets read the entities; nothing is bound
                    plan.inserts.append(_Insert(meta, skip_pk, batch, [], []))
                    continue
                flat, snapshots = core.insert_rows(meta.plan, batch, skip_pk)
                plan.inserts.append(_Insert(meta, skip_pk, batch, flat, snapshots))

    def _check_free_keys(self, meta: EntityMetadata, entities: list[Any]) -> None:
        """New entities with keys of their own must not take the key of another instance
        the identity map holds (one whose row was deleted elsewhere, say): both would then
        stand for the new row, and the stale one's writes would land on it; were it being
        removed, the DELETE, run after the INSERT, would delete the new row."""
        im = self.identity_map.get(meta.cls)
        if not im:
            return
        pk_name = meta.pk.name
        for entity in entities:
            key = getattr(entity, pk_name)
            held = im.get(key)
            if held is None:
                try:
                    key = meta.python_key(key)  # "1" for an int key, a UUID's text
                except ValidationError:
                    continue  # refused with its reason when the row is built
                held = im.get(key)
            if held is not None and held is not entity:
                raise ValidationError(
                    f"A new {meta.class_name} with {pk_name} = {key!r} cannot be inserted: "
                    f"this EntityManager already holds another instance for that key "
                    f"({_short(held, 80)}). If its row was deleted elsewhere, em.refresh() it (it "
                    f"returns None and lets it go); if the new one replaces it, remove it "
                    f"and flush first. Nothing of this flush was written.",
                    entity=entity,
                    property=pk_name,
                )

    @staticmethod
    def _before_create(plan: _FlushPlan, meta: EntityMetadata, entities: list[Any]) -> None:
        for prop in meta.columns:
            if prop.on_create is not None:
                for e in entities:
                    if getattr(e, prop.name, None) is None:
                        plan.assign(e, prop.name, prop.on_create(e))
            if prop.version:
                for e in entities:
                    if getattr(e, prop.name, None) is None:
                        plan.assign(e, prop.name, 1)

    def _update_candidates(self, only: frozenset[type] | None = None) -> dict[type, list[Any]]:
        """The entities a flush must compare, by class: those written to since their
        snapshot, plus every managed entity of a type holding mutable (JSON) values, less
        those about to be deleted (`only`: of these classes)."""
        removed = {key for group in self.removed.values() for key in group}
        candidates = core.group_by_type(self.dirty.values(), removed)
        mutable = self._mutable_metas()
        if only is not None:
            candidates = {cls: found for cls, found in candidates.items() if cls in only}
            mutable = [m for m in mutable if m.cls in only]
        for meta in mutable:
            im = self.identity_map.get(meta.cls)
            if im:
                skip = removed | self.dirty.keys()
                extra = core.group_by_type(im.values(), skip).get(meta.cls, [])
                candidates.setdefault(meta.cls, []).extend(_holding_changeable(meta, extra))
        if self.watched:
            covered = {m.cls for m in mutable}
            skip = removed | self.dirty.keys()
            held = [e for e in self.watched.values() if e._orm_uow is self]
            for cls, extra in core.group_by_type(held, skip).items():
                if cls not in covered and (only is None or cls in only):
                    candidates.setdefault(cls, []).extend(extra)
        return candidates

    def _plan_updates(self, plan: _FlushPlan) -> None:
        metas = self.em.metadata
        for cls, entities in self._update_candidates().items():
            meta = metas.get(cls)
            refs: list[Any] = []
            groups = core.compute_changes(meta.plan, entities, refs)
            if refs:
                self._plan_reference_updates(plan, meta, refs)
            hooked = [p for p in meta.columns if p.on_update is not None]
            if groups and hooked and not plan.preview:
                changed = [e for g in groups.values() for e in g[0]]
                for prop in hooked:
                    for e in changed:
                        plan.assign(e, prop.name, prop.on_update(e))
                groups = core.compute_changes(meta.plan, changed)
            for changed_cols, (ents, snaps, params) in groups.items():
                if meta.version is not None:
                    vi = meta.version.column_index
                    params = [p + (e._orm_snap[vi],) for p, e in zip(params, ents, strict=True)]
                    snaps = [s[:vi] + (s[vi] + 1,) + s[vi + 1 :] for s in snaps]
                plan.updates.append(_Update(meta, changed_cols, ents, snaps, params))

    def _plan_reference_updates(
        self, plan: _FlushPlan, meta: EntityMetadata, refs: list[Any]
    ) -> None:
        """A reference (only its key known) that was written to: update what was set."""
        for ref in refs:
            self._check_reference_key(meta, ref)
            written = {
                p.name: getattr(ref, p.name)
                for p in meta.columns
                if not p.primary and is_set(ref, p.name)
            }
            if not written:
                continue
            if meta.version is not None:
                raise ValidationError(
                    f"{meta.class_name} is versioned: an uninitialized reference does not know "
                    f"its version, so it cannot be updated safely. Load it first "
                    f"(wrap(entity).init()). Nothing of this flush was written.",
                    entity=ref,
                )
            fields, params = meta.to_db_columns(written, ref, pending=bool(meta.relations))
            key = core.primary_keys(meta.plan, [ref])[0]
            params.append(key)
            if meta.relations and not plan.preview:
                commit_order.pending_reference(self, plan, meta, ref, list(written), params)
            plan.reference_updates.append(
                _ReferenceUpdate(meta, ref, fields, params, list(written))
            )

    def _check_reference_key(self, meta: EntityMetadata, ref: Any) -> None:
        """A reference has no snapshot to remember the key its row has: a new key assigned
        to it cannot be told from the old one, so it is refused rather than guessed."""
        im = self.identity_map.get(meta.cls)
        if im is None or im.get(getattr(ref, meta.pk.name, None)) is not ref:
            raise ValidationError(
                f"The primary key of an uninitialized {meta.class_name} reference was changed; "
                f"load it first (wrap(entity).init()), then assign the new key. Nothing of "
                f"this flush was written.",
                entity=ref,
                property=meta.pk.name,
            )

    def _plan_deletes(self, plan: _FlushPlan) -> None:
        metas = self.em.metadata
        for cls, group in self.removed.items():
            if not group:
                continue
            meta = metas.get(cls)
            for written in self.dirty.keys() & group.keys():
                if group[written]._orm_snap is REFERENCE:
                    self._check_reference_key(meta, group[written])
            entities = list(group.values())
            plan.deletes.append(_Delete(meta, entities, core.primary_keys(meta.plan, entities)))

    def _compute(self, plan: _FlushPlan) -> _FlushPlan:
        metadata = self.em.metadata
        relations = metadata.has_relations
        ordered = False
        if self.enrolled and not plan.preview:
            self.persist_enrolled(plan)
        if self.collections and not plan.preview:
            pivots.cascade(self)
        if relations and (self.new or self.dirty):
            ordered = commit_order.cascade_persist(self)
        if relations and self.removed or metadata.orphans and self.dirty:
            _cascade.cascade_remove(self, plan)
        if self.new:
            self._plan_inserts(plan)
            if ordered and not plan.preview:
                commit_order.order_inserts(self, plan)
        if self.dirty or self.watched or any(m.has_mutable or m.presumed for m in metadata):
            self._plan_updates(plan)
            if relations and plan.updates and not plan.preview:
                commit_order.unlink_first(plan)
                commit_order.release_taken(plan)
                commit_order.rekey_first(plan)
                commit_order.pending_updates(self, plan)
        if self.removed:
            self._plan_deletes(plan)
            if relations and len(plan.deletes) > 1:
                commit_order.order_deletes(plan, metadata.fk_rank)
        if self.collections and not plan.preview:
            pivots.plan(self, plan)
        return plan

    def compute_change_sets(self) -> list[ChangeSet]:
        """What a flush would write now, without writing it (nor running its hooks)."""
        plan = _FlushPlan(preview=True)
        try:
            self._compute(plan)
        finally:
            plan.revert()  # removals found by cascade are planned, not scheduled
        out: list[ChangeSet] = []
        for ins in plan.inserts:
            for e in ins.entities:
                payload = {
                    p.name: getattr(e, p.name, None)
                    for p in ins.meta.columns
                    if not (ins.skip_pk and p.primary)
                }
                out.append(ChangeSet("create", e, ins.meta.class_name, payload))
        for upd in plan.updates:
            for e in upd.entities:
                payload = {upd.meta.columns[i].name: getattr(e, upd.meta.columns[i].name)
                           for i in upd.changed}
                out.append(ChangeSet("update", e, upd.meta.class_name, payload))
        for ref in plan.reference_updates:
            out.append(ChangeSet("update", ref.entity, ref.meta.class_name, {}))
        for dele in plan.deletes:
            for e in dele.entities:
                out.append(ChangeSet("delete", e, dele.meta.class_name, {}))
        if self.collections:
            self._collection_change_sets(plan, out)
        return out

    def _collection_change_sets(self, plan: _FlushPlan, out: list[ChangeSet]) -> None:
        """The pivot pairs a flush would write, under the owning collection's name in its
        owner's change set (`{"added": [...], "removed": [...]}`; an "update" with only that
        when the owner's columns did not change). An owner or item being removed takes its
        pairs with it (`on delete cascade`), so those are left out, as the flush does."""
        removed = {id(e) for dele in plan.deletes for e in dele.entities}
        by_owner = {id(cs.entity): cs for cs in out if cs.type != "delete"}
        metas = self.em.metadata
        for collection in self.collections.values():
            owner = collection.owner
            if owner._orm_uow is not self or id(owner) in removed:
                continue
            added, gone = [], []
            for item, add in collection._changes():
                if not add:
                    gone.append(item)
                elif id(item) not in removed:
                    added.append(item)
            if not added and not gone:
                continue
            change_set = by_owner.get(id(owner))
            if change_set is None:
                name = metas.get(type(owner)).class_name
                change_set = by_owner[id(owner)] = ChangeSet("update", owner, name, {})
                out.append(change_set)
            change_set.payload[collection.prop] = {"added": added, "removed": gone}

    # -- flush ------------------------------------------------------------------------------
    def commit(self) -> None:
        """Write every pending change in one transaction (see the module docstring).

        A flush that is its own transaction is run again, up to `FLUSH_RETRIES` times after
        a jittered pause, when the database reports a conflict it asks the client to retry
        (a serialization failure or a deadlock: `retryable` errors; PostgreSQL and the
        engines built on it raise them under contention). Such a flush only writes what the
        Unit of Work holds, and a failed one is rolled back with the Unit of Work restored,
        so running it again is safe. Inside a transaction the caller drives the error is
        raised: their earlier reads cannot be replayed (`transactional(fn, retries=N)`
        reruns the whole function)."""
        if self.flushing:
            raise ValidationError(
                "flush() was called while this EntityManager is flushing, from a lifecycle "
                "hook or an event subscriber: entities persisted or changed in before_* "
                "hooks, before_flush and on_flush are written by the running flush; after "
                "it (after_* hooks, after_flush), flush again once it returned, or use "
                "after_transaction_commit."
            )
        # The cyclic garbage collector is paused while the flush runs, and the collection it
        # owes happens afterwards, as usual: writing tens of thousands of entities allocates
        # as many containers, and each allocation burst triggers collections that walk every
        # tracked object (all the entities already loaded included), which cost more than
        # the work itself (finishing a 50,000-row INSERT: 57 ms with collections, 21 ms
        # without). Nothing the flush allocates is garbage. Pausing costs two C calls, so
        # it is done for every flush, query and populate (entity_manager, entity.loader).
        collecting = gc.isenabled()
        gc.disable()
        try:
            attempt = 0
            while True:
                own = not self.em.connection.in_own_transaction
                try:
                    self._commit()
                    return
                except DriverException as exc:
                    if not (exc.retryable and own and attempt < FLUSH_RETRIES):
                        raise
                    attempt += 1
                    _retry.pause(attempt)
        finally:
            if collecting:
                gc.enable()

    def _commit(self) -> None:
        events = self.em._orm._events  # None while nothing listens (see ORM.events)
        if events is not None and events.flush_active:
            from .lifecycle import commit_with_events  # imports this module

            commit_with_events(self, events)
            return
        plan = _FlushPlan()
        conn = self.em.connection
        try:
            self._compute(plan)  # may begin the transaction (see cascade_remove)
            if plan and not plan.began:
                conn.begin()
        except BaseException:
            try:
                if plan.began:
                    conn.rollback()
            finally:
                plan.revert()
            raise
        if not plan:
            if plan.began:
                conn.commit()
            self.dirty.clear()
            self.collections = {}
            return
        # inside the caller's transaction: what this flush writes is undone with it
        nested = conn.depth > 1
        try:
            self._write(plan)
            conn.commit()
        except BaseException as exc:
            try:
                conn.rollback()
            finally:
                plan.revert()
            _nothing_written(exc)
            raise
        undo = _undo.FlushUndo.capture(self, plan) if nested else None
        self._apply(plan)
        if undo is not None:
            conn.on_rollback(undo.run)

    def _write(self, plan: _FlushPlan) -> None:
        """Run the flush's statements (in the transaction the caller began)."""
        conn = self.em.connection
        sql = self.em.sql
        for upd in plan.updates:
            if upd.early:
                self._update(upd)
        if plan.pending or plan.fixups or plan.pivots:
            self._write_inserts_in_order(plan)  # (records the generated keys)
        else:
            for ins in plan.inserts:
                self._insert(ins)
                if ins.skip_pk:
                    self._check_generated_keys(ins, plan)
        for upd in plan.updates:
            if not upd.early:
                self._update(upd)
        for ref in plan.reference_updates:
            if conn.execute(sql.update_by_key(ref.meta, ref.fields), ref.params).rowcount != 1:
                raise OptimisticLockError(
                    f"{ref.meta.class_name} {ref.params[-1]!r}, written through a "
                    f"reference, has no row: it was deleted, or never existed. Use "
                    f"em.find_one() to check, or persist a new entity",
                    entity=ref.entity,
                )
        if plan.pivots:
            pivots.write(self, plan)
        for dele in plan.deletes:
            self._delete(dele)

    def _write_inserts_in_order(self, plan: _FlushPlan) -> None:
        """Inserts whose parameters wait for keys generated by earlier ones: each statement
        gets the keys known by then (see orm.unit_of_work.commit_order); then the references
        that had to wait for their rows (inserted as NULL) are written."""
        keys = plan.keys
        for ins in plan.inserts:
            if plan.pending:
                commit_order.resolve(plan)
            self._insert(ins)
            if ins.skip_pk:
                self._check_generated_keys(ins, plan)
            pk_name = ins.meta.pk.name
            if not ins.skip_pk:
                keys.update((id(e), getattr(e, pk_name)) for e in ins.entities)
            else:
                keys.update(zip(map(id, ins.entities), self._generated_keys(ins), strict=True))
        if plan.pending:
            commit_order.resolve(plan)
        conn = self.em.connection
        for meta, entity, column, target, conv in plan.fixups:
            key = keys[id(target)]
            own = keys[id(entity)]
            if meta.pk.type.converts:
                own = meta.pk.type.to_db(own)
            statement = self.em.sql.update(meta, (column,), False)
            conn.execute(statement, (key if conv is None else conv(key), own))

    @staticmethod
    def _generated_keys(ins: _Insert) -> Any:
        return ins.keys if ins.keys is not None else range(
            ins.first_id, ins.first_id + len(ins.entities)
        )

    def _check_generated_keys(self, ins: _Insert, plan: _FlushPlan) -> None:
        """The database has just generated these keys, so no row had them: an entity the
        identity map holds under one of them stands for a row that is gone (deleted, or
        inserted by a transaction that was rolled back, whose key SQLite hands out again;
        a reference made meanwhile is never re-read). Its pending write or removal would
        reach the new row instead: the flush fails, nothing written. An entity with nothing
        pending is let go once the flush commits (see `_apply`)."""
        im = self.identity_map.get(ins.meta.cls)
        if not im:
            return
        for key in self._generated_keys(ins):
            held = im.get(key)
            if held is None:
                continue
            removed = self.removed.get(ins.meta.cls) or {}
            written = {id(e) for upd in plan.updates for e in upd.entities}
            written.update(id(ref.entity) for ref in plan.reference_updates)
            if id(held) in written or id(held) in removed:
                raise OptimisticLockError(
                    f"{ins.meta.class_name} {key!r}, held by this EntityManager, has no row: "
                    f"the database has just given its key to a new row (it was deleted, or "
                    f"inserted by a transaction that was rolled back). Its pending "
                    f"{'removal' if id(held) in removed else 'update'} would reach that new "
                    f"row. em.refresh(entity) lets it go (it returns None); or clear the "
                    f"EntityManager",
                    entity=held,
                )

    def _insert(self, ins: _Insert) -> None:
        """Multi-row INSERT statements of up to INSERT_CHUNK rows (measured faster than
        executemany: 55 ms against 93 ms for 50,000 rows), within SQLite's variable limit.
        The rows get consecutive keys, in VALUES order, ending at last_insert_rowid()."""
        if self.em.sql.platform.keys_returned:
            self._insert_with_keys(ins)
            return
        conn = self.em.connection
        count = len(ins.entities)
        width = len(ins.flat) // count
        if width == 0:  # nothing but a generated key
            statement = self.em.sql.insert_default_values(ins.meta)
            for _ in range(count):
                cursor = conn.execute(statement)
            ins.first_id = self.em.sql.platform.first_generated_key(cursor, count)
            return
        chunk = max(1, min(INSERT_CHUNK, conn.max_variables // width))
        cursor = None
        for start in range(0, count, chunk):
            rows = min(chunk, count - start)
            statement = self.em.sql.insert(ins.meta, ins.skip_pk, rows)
            cursor = conn.execute(statement, ins.flat[start * width : (start + rows) * width])
        if ins.skip_pk and cursor is not None:
            ins.first_id = self.em.sql.platform.first_generated_key(cursor, count)

    def _insert_with_keys(self, ins: _Insert) -> None:
        """Where the database's keys are never guessed (PostgreSQL: concurrent writers
        interleave sequence values): one row is inserted `returning` its key; more rows
        first reserve their keys from the sequence (`nextval` over `generate_series`), then
        go in with them, through COPY from `copy_threshold` rows on (measured 2-3x faster
        than any INSERT for 50,000 rows, and ahead from about 100), else multi-row VALUES."""
        conn = self.em.connection
        sql = self.em.sql
        platform = sql.platform
        meta = ins.meta
        count = len(ins.entities)
        width = len(ins.flat) // count
        flat = ins.flat
        if ins.skip_pk:
            if count == 1:
                ins.keys = [conn.query(sql.insert_returning_key(meta), flat)[0][0]]
                return
            keys = [
                r[0]
                for r in conn.query(
                    platform.reserve_keys(),  # type: ignore[attr-defined]
                    (sql.quote(meta.table), meta.pk.field_name, count),
                )
            ]
            ins.keys = keys
            at = meta.pk_index
            flat = []
            for k, key in enumerate(keys):
                row = ins.flat[k * width : (k + 1) * width]
                row.insert(at, key)
                flat.extend(row)
            width += 1
        threshold = platform.copy_threshold
        if threshold is not None and count >= threshold:
            conn.copy_rows(  # type: ignore[attr-defined]
                sql.copy(meta), (flat[k * width : (k + 1) * width] for k in range(count))
            )
        else:
            chunk = max(1, min(INSERT_CHUNK, conn.max_variables // width))
            for start in range(0, count, chunk):
                rows = min(chunk, count - start)
                conn.execute(
                    sql.insert(meta, False, rows), flat[start * width : (start + rows) * width]
                )
        if not ins.skip_pk and meta.pk.autoincrement:
            advance_keys(self.em, meta, [getattr(e, meta.pk.name) for e in ins.entities])

    def _update(self, upd: _Update) -> None:
        """Rows sharing a set of changed columns: `update ... from (values ...)` statements
        of up to UPDATE_CHUNK rows (measured 10% faster than executemany), executemany where
        SQLite is older than 3.33, one statement per row for versioned entities (each must
        report its row, or the optimistic lock failed)."""
        conn = self.em.connection
        sql = self.em.sql
        meta = upd.meta
        if meta.pk_index in upd.changed and meta.pk.autoincrement:
            advance_keys(self.em, meta, [getattr(e, meta.pk.name) for e in upd.entities])
        if meta.version is not None and upd.versioned:
            statement = sql.update(meta, upd.changed, True)
            for e, params in zip(upd.entities, upd.params, strict=True):
                if conn.execute(statement, params).rowcount != 1:
                    raise OptimisticLockError(
                        f"The optimistic lock on {meta.class_name} "
                        f"{getattr(e, meta.pk.name)!r} failed: the row was changed or removed "
                        f"since it was loaded. Refresh it (em.refresh(entity)) and apply your "
                        f"change again.",
                        entity=e,
                    )
            return
        count = len(upd.params)
        if count == 1:
            matched = conn.execute(sql.update(meta, upd.changed, False), upd.params[0]).rowcount
        elif not sql.platform.supports_update_from:
            matched = conn.executemany(sql.update(meta, upd.changed, False), upd.params)
        else:
            matched = 0
            width = len(upd.changed) + 1
            chunk = max(1, min(UPDATE_CHUNK, conn.max_variables // width))
            for start in range(0, count, chunk):
                rows = upd.params[start : start + chunk]
                flat = [value for row in rows for value in row]
                statement = sql.update_from_values(meta, upd.changed, len(rows))
                matched += conn.execute(statement, flat).rowcount
        if matched != count:
            self._rows_gone(upd, count, matched)

    def _rows_gone(self, upd: _Update, expected: int, matched: int) -> None:
        """An UPDATE matched fewer rows than entities: their rows were deleted since they
        were loaded (by another EntityManager, a native query, or a transaction that was
        rolled back after they were read). Writing nothing there silently would lose the
        change, so the flush fails (and is rolled back) instead."""
        meta = upd.meta
        keys = [params[-1] for params in upd.params]
        sql, found = self.em.sql.select(meta, {meta.pk.name: {"$in": keys}}, props=[meta.pk])
        present = {row[0] for row in self.em.connection.query(sql, found)}
        gone = [e for e, k in zip(upd.entities, keys, strict=True) if k not in present]
        shown = ", ".join(repr(k) for k in keys if k not in present)
        raise OptimisticLockError(
            f"Updating {expected} {meta.class_name} row(s) matched only {matched}: the row(s) "
            f"with {meta.pk.name} {shown or '?'} were deleted after their entities were "
            f"loaded (by another EntityManager or a native query). Refresh them "
            f"(em.refresh(entity) returns None for a row that is gone) or clear the "
            f"EntityManager",
            entity=gone[0] if gone else None,
        )

    def _delete(self, dele: _Delete) -> None:
        conn = self.em.connection
        if self.em.sql.platform.supports_any_array:
            conn.execute(self.em.sql.delete_by_keys(dele.meta, len(dele.keys)), [dele.keys])
            return
        chunk = max(1, min(conn.max_variables, DELETE_CHUNK))
        for start in range(0, len(dele.keys), chunk):
            keys = dele.keys[start : start + chunk]
            conn.execute(self.em.sql.delete_by_keys(dele.meta, len(keys)), keys)

    def _rekey(self, upd: _Update) -> None:
        """Primary keys changed by the user were written: the identity map follows (run
        before the new snapshots are applied, while the old keys are still known)."""
        meta = upd.meta
        im = self.map_for(meta.cls)
        moves = [(map_key(meta, e), e) for e in upd.entities]
        for old, entity in moves:
            if im.get(old) is entity:
                del im[old]
        for _, entity in moves:
            im[getattr(entity, meta.pk.name)] = entity

    def _watch(self, meta: EntityMetadata, entities: list[Any]) -> None:
        """Note which just-written entities hold a value that can change in place."""
        watched = self.watched
        for entity in entities:
            for name, kinds in meta.watched:
                try:
                    value = getattr(entity, name)
                except Exception:  # not loaded (a partial entity): nothing held
                    continue
                if isinstance(value, kinds):
                    watched[id(entity)] = entity
                    break
            else:
                watched.pop(id(entity), None)

    def _written_reference(self, ref: _ReferenceUpdate) -> None:
        """A reference whose writes were flushed now knows those columns as stored: it gets
        a partial snapshot (the rest UNLOADED, as after a `fields=` load), so the next flush
        writes only what changes after this one, and a later load fills in the rest."""
        meta, entity = ref.meta, ref.entity
        kinds = meta.plan.kinds
        snap = [UNLOADED] * len(meta.columns)
        pk = meta.pk
        key = getattr(entity, pk.name)
        if kinds[pk.column_index] not in _PYTHON_VALUED and pk.type.converts:
            key = pk.type.to_db(key)
        snap[pk.column_index] = key
        for name, db_value in zip(ref.names, ref.params, strict=False):
            i = meta.properties[name].column_index
            snap[i] = getattr(entity, name) if kinds[i] in _PYTHON_VALUED else db_value
        _object_setattr(entity, "_orm_snap", tuple(snap))
        self.partial.add(id(entity))

    def _apply(self, plan: _FlushPlan) -> None:
        """The transaction committed: make the entities reflect the database."""
        if plan.snapshot_slots:
            commit_order.patch_snapshots(plan)
        for ins in plan.inserts:
            if ins.skip_pk:
                im = self.identity_map.get(ins.meta.cls)
                if im:  # entities of rows that are gone, under keys given out again
                    for key in self._generated_keys(ins):
                        held = im.get(key)
                        if held is not None:
                            self.unregister(held, ins.meta)
                            self.partial.discard(id(held))
                            self.watched.pop(id(held), None)
            core.finish_inserts(
                ins.meta.plan,
                ins.entities,
                ins.snapshots,
                ins.skip_pk,
                ins.first_id,
                self,
                self.map_for(ins.meta.cls),
                ins.keys,
            )
        for upd in plan.updates:
            if upd.meta.pk_index in upd.changed:
                self._rekey(upd)
            core.apply_snapshots(upd.entities, upd.snapshots)
            if upd.meta.version is not None:
                vi = upd.meta.version.column_index
                name = upd.meta.version.name
                for e, snap in zip(upd.entities, upd.snapshots, strict=True):
                    _object_setattr(e, name, snap[vi])
        for ref in plan.reference_updates:
            self._written_reference(ref)
        if self.collections or plan.collections:
            pivots.applied(self, plan)
        if self.em.metadata.m2m_holders:
            for dele in plan.deletes:
                pivots.forget(self, dele.meta, dele.entities, plan.left)
        for dele in plan.deletes:
            core.forget(dele.meta.plan, dele.entities, self.identity_map.get(dele.meta.cls))
        for dele in plan.deletes:
            _leave_inverse_sides(dele.meta, dele.entities, plan.left)
        for ins in plan.inserts:
            if ins.meta.watched:
                self._watch(ins.meta, ins.entities)
        for upd in plan.updates:
            if upd.meta.watched:
                self._watch(upd.meta, upd.entities)
        if self.watched:
            for dele in plan.deletes:
                for entity in dele.entities:
                    self.watched.pop(id(entity), None)
        self.new = {}
        self.removed = {}
        self.links_removed = {}
        self.dirty.clear()


def _reached_targets(metas: Any, meta: EntityMetadata) -> frozenset[type]:
    """The classes the collections of `meta`'s entities hold, and those of every entity
    class they may bring along through Cascade.PERSIST (transitively): where an entity
    marked for removal could be held in a graph of new entities (`refuse_removed_graph`).
    Computed once per class and metadata."""
    cache: dict[type, frozenset[type]] = metas.reached_targets
    found = cache.get(meta.cls)
    if found is not None:
        return found
    targets: set[type] = set()
    seen = {meta.cls}
    todo = [meta]
    while todo:
        current = todo.pop()
        for prop in current.collections:
            targets.add(prop.relation.target)  # type: ignore[union-attr]
        for prop in (*current.collections, *current.relations, *current.inverse_ones):
            relation: Any = prop.relation
            if relation.persist_cascade and relation.target not in seen:
                seen.add(relation.target)
                todo.append(relation.target_meta)
    found = cache[meta.cls] = frozenset(targets)
    return found


def _reached_past(metas: Any, meta: EntityMetadata, past: str | None) -> frozenset[type]:
    """`_reached_targets` for entities of `meta` reached back through their property `past`
    (a ManyToOne, whose target they were reached from: not walked), not counting the
    single entity a one-to-many or one-to-one leads back to either, transitively: what
    the siblings of a new post bring that its writer does not (`refuse_removed_graph`)."""
    cache: dict[tuple[type, str | None], frozenset[type]] = metas.reached_past
    found = cache.get((meta.cls, past))
    if found is not None:
        return found
    targets: set[type] = set()
    seen = {(meta.cls, past)}
    todo = [(meta, past)]
    while todo:
        current, skipped = todo.pop()
        for prop in (*current.collections, *current.relations, *current.inverse_ones):
            relation: Any = prop.relation
            if prop.name == skipped:
                continue
            if prop in current.collections:
                targets.add(relation.target)
            if not relation.persist_cascade:
                continue
            # the single entity on the other side of a 1:m or 1:1 is the current one
            back = _back_side(current, prop) if relation.kind in ("1:m", "1:1") else None
            if (relation.target, back) not in seen:
                seen.add((relation.target, back))
                todo.append((relation.target_meta, back))
    found = cache[(meta.cls, past)] = frozenset(targets)
    return found


def _back_side(meta: EntityMetadata, prop: Any) -> str | None:
    """The property of `prop`'s target that points back at `meta`'s entity through the same
    relation, or None: the ManyToOne an inverse side is mapped by, the other side of a
    many-to-many, the collection or inverse one-to-one mapped by a ManyToOne or OneToOne."""
    relation = prop.relation
    if not relation.owner:
        return relation.mapped_by
    if relation.kind == "m:n":
        return getattr(relation, "other", None) or relation.inversed_by
    back = (meta.cls.__dict__.get("_orm_inverses") or {}).get(prop.name)
    if back is None:
        one = (meta.cls.__dict__.get("_orm_inverse_ones") or {}).get(prop.name)
        back = one[0] if one else None
    return back or relation.inversed_by


def _revive(entity: Any, meta: EntityMetadata) -> None:
    """`em.persist()` of an entity whose row a flush deleted: a new entity again, to be
    inserted as a new row, its many-to-many items all pairs to write (their pivot rows went
    with the row; on an inverse side, through the items' owning side), and back in the
    loaded inverse sides of the owners it points at (which the delete took it out of)."""
    from ..entity.collection import UNSTORED
    from ..entity.collection import _unwrap as _target

    _object_setattr(entity, "_orm_snap", None)
    values = entity.__dict__
    own = meta.cls.__dict__  # not a base entity's: see orm.entity.collection.inverse_setattr
    for name, collection_name in (own.get("_orm_inverses") or {}).items():
        owner = _target(values.get(name))
        held = None if owner is None else owner.__dict__.get(collection_name)
        if held is not None:
            held._link(entity)
    for name, (inverse_name, _) in (own.get("_orm_inverse_ones") or {}).items():
        partner = _target(values.get(name))
        if partner is not None and partner.__dict__.get(inverse_name) is None:
            _object_setattr(partner, inverse_name, entity)
    for prop in meta.collections:
        held = entity.__dict__.get(prop.name)
        relation: Any = prop.relation
        if held is None or not held._items or relation.pivot is None:
            continue
        if relation.owner:
            held._delta = UNSTORED
            held._dirty = True
            continue
        # the inverse side: its pairs are written by the items' owning side, which the
        # delete took it out of; the items still stored take it back (and so write them)
        for item in list(held._items.values()):
            if item._orm_uow is not None and item._orm_snap is not DELETED:
                held._other(item, relation.other)._pair(entity, True)


def _leave_inverse_sides(meta: EntityMetadata, entities: list[Any], left: list) -> None:
    """Deleted entities leave the in-memory inverse sides that held them: the loaded
    collection of the owner their ManyToOne points at, the inverse one-to-one of their
    partner. Left there, the next flush would find them through it. (An owner deleted by
    the same flush keeps them: it is gone too, and shows what went with it.)"""
    cls = meta.cls
    inverses = cls.__dict__.get("_orm_inverses") or {}  # the class's own (see _revive)
    ones = cls.__dict__.get("_orm_inverse_ones") or {}
    if not inverses and not ones:
        return
    from ..entity.collection import _unwrap as _target

    for entity in entities:
        values = entity.__dict__
        for name, collection_name in inverses.items():
            owner = _target(values.get(name))
            if owner is None or owner._orm_snap is DELETED:
                continue
            held = owner.__dict__.get(collection_name)
            if held is not None and held._items is not None and id(entity) in held._items:
                held._unlink(entity)
                left.append((held, owner, name, entity))
        for name, (inverse_name, _) in ones.items():
            partner = _target(values.get(name))
            if partner is None or partner._orm_snap is DELETED:
                continue
            if _target(partner.__dict__.get(inverse_name)) is entity:
                left.append((None, partner, inverse_name, partner.__dict__[inverse_name]))
                _object_setattr(partner, inverse_name, None)


def _joined_through(entity: Any, meta: EntityMetadata, owner: UnitOfWork) -> str:
    """For a new entity that joined another Unit of Work without an `em.persist()` of its
    own, the link it joined through (a relation to an entity managed there), as a clause
    of the message; "" if none is found."""
    if entity._orm_snap is not None:
        return ""
    from ..entity.collection import _unwrap

    values = entity.__dict__
    for prop in meta.columns:
        if prop.relation is None:
            continue
        target = _unwrap(values.get(prop.name))
        if target is not None and target._orm_uow is owner and target._orm_snap is not None:
            return (
                f", which it may have joined when {meta.class_name}.{prop.name} was set to "
                f"{_short(target, 60)}, managed there (a new entity joins the EntityManager "
                f"of a managed one it is linked to)"
            )
    return ""


#: per value class: whether it is not one of the immutable built-ins (types.holds_changeable)
_CHANGEABLE: dict[type, bool] = {}


def _holding_changeable(meta: EntityMetadata, entities: Any) -> Any:
    """The entities a flush compares although nobody assigned to them: all of them (as
    given, not copied) for a type declaring mutable values (JSON), else those whose column
    of a custom type that never said (`EntityMetadata.presumed`) holds a value of a mutable
    class."""
    if meta.has_mutable:
        return entities
    names = meta.presumed
    found = []
    changeable = _CHANGEABLE
    for entity in entities:
        held = entity.__dict__
        for name in names:
            value = held.get(name)
            kind = type(value)
            answer = changeable.get(kind)
            if answer is None:
                answer = changeable[kind] = value is not UNLOADED and holds_changeable(value)
            if answer:
                found.append(entity)
                break
    return found

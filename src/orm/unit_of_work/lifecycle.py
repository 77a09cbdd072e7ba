"""A flush with event handlers: lifecycle hooks and subscribers (SPEC section 12,
docs/events.md).

The Unit of Work takes this path only when the ORM's EventManager says something listens
(`flush_active`); otherwise its plain path runs, untouched. Here a flush:

1. fires `before_flush`, then `on_flush`: handlers may persist, change or remove entities,
   which join this flush;
2. fires `before_create`, `before_update` and `before_delete` for the entities about to be
   written (types with listeners only), round after round until no handler adds work: what
   they change is then seen by change detection like any user change;
3. computes the change sets and, when there is anything to write, begins the transaction
   (`before_transaction_start` when it is the flush's own), runs the statements;
4. if anything listens to `after_*` or `after_flush`: updates the entities (keys,
   snapshots, identity map) and fires them, still inside the transaction; then commits
   (`after_transaction_commit`).

An exception anywhere rolls everything back (`after_transaction_rollback`) and leaves the
Unit of Work as it was before the flush, ready for a retry that runs the handlers again:
what the handlers assigned to any entity is put back (`core.track_assignments` notes it),
entities the handlers of this flush made are dropped, and unlinked from the entities made
before it (the retry's handlers make them again), removals they scheduled are cancelled;
entities the flush had already updated are pending again (FlushUndo).
"""

from __future__ import annotations

from .._backend import core
from .._markers import MISSING, is_set
from .._typing import TYPE_CHECKING
from ..entity.collection import Collection
from ..entity.reference import _unwrap
from ..errors import ValidationError
from ..events.manager import fire
from . import commit_order
from .cascade_remove import cascade_remove
from .undo import FlushUndo
from .unit_of_work import ChangeSet, _back_side, _FlushPlan, _nothing_written

if TYPE_CHECKING:
    from typing import Any

    from ..entity_manager import EntityManager
    from ..events.manager import EventManager, Listeners
    from ..metadata.model import EntityMetadata
    from .unit_of_work import UnitOfWork

__all__ = ["commit_with_events", "MAX_ROUNDS"]

#: rounds of before_* handlers that keep adding entities before the flush gives up
MAX_ROUNDS = 100

_object_setattr = object.__setattr__


class _Pending:
    """The new and removed entities before a flush's handlers ran, to take back what they
    added if the flush fails (copies of the groups: a dict copy costs a fraction of
    building a set of their keys). The enrolled entities too (`uow.enrolled`): the flush
    persists them, so dropping those it must enroll them again, or the retry would leave
    them out (and only those: what the handlers built, they build again); and the links
    noted at removals (`uow.links_removed`), which a flush forgets as it writes."""

    __slots__ = ("uow", "new", "removed", "enrolled", "links_removed")

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.new = {cls: group.copy() for cls, group in uow.new.items() if group}
        self.removed = {cls: group.copy() for cls, group in uow.removed.items() if group}
        self.enrolled = uow.enrolled.copy()
        self.links_removed = uow.links_removed.copy()

    def drop(self, births: set[int] | None = None) -> None:
        """Take back what the flush added. `births`: the entities made during it (by its
        handlers, which make them again on the retry); one made before it that a
        handler's link made join (`article.tags.add(managed_tag)` in `on_flush`) is
        enrolled again, or the retry, whose handler finds the link made, would leave it
        out."""
        uow = self.uow
        rejoin = []
        born = []
        for cls, group in uow.new.items():
            before = self.new.get(cls, {})
            for key in [k for k in group if k not in before]:
                entity = group.pop(key)
                uow.dirty.pop(key, None)
                if entity._orm_uow is uow:
                    _object_setattr(entity, "_orm_uow", None)
                if births is None:
                    continue
                (born if key in births else rejoin).append(entity)
        if births:
            born += [entity for key, (entity, _) in uow.enrolled.items() if key in births]
            self._forget_births(born, births)
        if births is not None:
            # enrolled during the flush and not persisted yet (the flush failed first)
            rejoin += [
                entity for key, (entity, _) in uow.enrolled.items()
                if key not in births and key not in self.enrolled
            ]
        for cls, group in uow.removed.items():
            before = self.removed.get(cls, {})
            for key in [k for k in group if k not in before]:
                del group[key]
        # those enrolled before the flush, still new; not those its handlers built (the
        # retry's handlers build them again)
        uow.enrolled = {
            key: entry for key, entry in self.enrolled.items()
            if entry[0]._orm_uow is None and entry[0]._orm_snap is None
        }
        for entity in rejoin:
            if entity._orm_uow is not None or entity._orm_snap is not None:
                continue
            names = _held_managed(uow, entity)
            if names and id(entity) not in uow.enrolled:
                uow.enrolled[id(entity)] = (entity, names)
        uow.links_removed = self.links_removed

    def _forget_births(self, born: list[Any], births: set[int]) -> None:
        """Take the entities the failed flush made (`births`) out of the collections (and
        inverse one-to-ones) of those made before it, which the handlers linked them into
        (`on_flush` persisting `Comment(article=new_article)`, a `before_create` adding to
        `article.tags`): left
        there, the retry would write them and the ones its handlers make again, twice
        the rows. Looked for in the collections with unwritten changes, those of the new
        entities, and the other sides of the relations of the `born` entities."""
        uow = self.uow
        metas = uow.em.metadata
        held: dict[int, Any] = dict(uow.collections)
        for group in self.new.values():
            for entity in group.values():
                meta = metas.find(type(entity))
                if meta is not None and meta.collections:
                    values = entity.__dict__
                    for prop in meta.collections:
                        if (found := values.get(prop.name)) is not None:
                            held[id(found)] = found
        for entity in born:
            meta = metas.find(type(entity))
            if meta is None:
                continue
            values = entity.__dict__
            own = meta.cls.__dict__
            for name, collection_name in (own.get("_orm_inverses") or {}).items():
                owner = _unwrap(values.get(name))
                found = None if owner is None else owner.__dict__.get(collection_name)
                if found is not None:
                    held[id(found)] = found
            for name, (inverse_name, _) in (own.get("_orm_inverse_ones") or {}).items():
                # `user.profile = Profile(user=user)` in a handler: the partner lets go of
                # it (the retry's handler links another; left, the two would fight over it)
                partner = _unwrap(values.get(name))
                if (
                    partner is not None and id(partner) not in births
                    and _unwrap(partner.__dict__.get(inverse_name)) is entity
                ):
                    _object_setattr(partner, inverse_name, None)
            for prop in meta.collections:
                mine = values.get(prop.name)
                back = _back_side(meta, prop)
                if mine is None or not mine._items or back is None:
                    continue
                for item in mine._items.values():
                    found = item.__dict__.get(back)
                    if id(item) not in births and isinstance(found, Collection):
                        held[id(found)] = found
        for found in held.values():
            found._forget(births)


def _prune_journal(uow: UnitOfWork, plan: _FlushPlan, births: set[int]) -> None:
    """Keep, of the assignments the flush noted (`plan.undo`), those a failure or a
    rollback puts back: not those to the entities the flush made (dropped with it, or,
    written, new again with what they hold), nor to entities another EntityManager manages
    (its own work, which may be committed), nor to relations (their other sides, inverse
    collections and one-to-ones, are not put back with them: as the handlers left them,
    the retry's handlers find them made)."""
    undo = plan.undo
    if not undo:
        return
    metas = uow.em.metadata
    kept = []
    for entry in undo:
        entity, name = entry[0], entry[1]
        if id(entity) in births:
            continue
        owner = getattr(entity, "_orm_uow", None)
        if owner is not None and owner is not uow:
            continue
        meta = metas.find(type(entity))
        prop = None if meta is None else meta.properties.get(name)
        if prop is not None and prop.relation is not None:
            continue
        kept.append(entry)
    if len(kept) != len(undo):
        undo[:] = kept


def _held_managed(uow: UnitOfWork, entity: Any) -> tuple[str, ...]:
    """The many-to-many collections of a new `entity` that hold an entity `uow` manages:
    those through which it is enrolled (see `UnitOfWork.enrolled`)."""
    meta = uow.em.metadata.find(type(entity))
    if meta is None:
        return ()
    values = entity.__dict__
    names = []
    for prop in meta.collections:
        if prop.relation.kind != "m:n":  # type: ignore[union-attr]
            continue
        held = getattr(values.get(prop.name), "_items", None)
        if held and any(item._orm_uow is uow for item in held.values()):
            names.append(prop.name)
    return tuple(names)


def _value(entity: Any, name: str) -> Any:
    try:
        return getattr(entity, name)
    except Exception:  # not set, or not loaded (a reference)
        return MISSING


def _payload(meta: EntityMetadata, entity: Any, names: Any) -> dict[str, Any]:
    return {name: _value(entity, name) for name in names}


def _create_set(meta: EntityMetadata, entity: Any) -> ChangeSet:
    payload = {}
    for prop in meta.columns:
        value = _value(entity, prop.name)
        if not (prop.primary and value is None) and value is not MISSING:
            payload[prop.name] = value
    return ChangeSet("create", entity, meta.class_name, payload)


def _fire_tracked(
    plan: _FlushPlan,
    meta: EntityMetadata,
    entry: Listeners,
    entity: Any,
    em: EntityManager,
    change_set: Any,
) -> None:
    """Fire a before_* event for one entity, noting the property values its handlers
    assign, so that a failed flush puts them back (`plan.revert`, or FlushUndo)."""
    names = meta.plan.names
    before = [_value(entity, name) for name in names]
    try:
        fire(entry, entity, em, change_set() if entry[1] else None)
    finally:
        for name, old in zip(names, before, strict=True):
            if _value(entity, name) is not old:
                plan.undo.append((entity, name, old))


def _run_before_events(uow: UnitOfWork, plan: _FlushPlan) -> None:
    em = uow.em
    metas = em.metadata
    created: set[int] = set()
    updated: set[int] = set()
    deleted: set[int] = set()
    updates = frozenset(m.cls for m in metas if "before_update" in m.listeners)
    for _ in range(MAX_ROUNDS):
        ran = False
        if uow.enrolled:  # those built by a handler: their handlers run too
            uow.persist_enrolled()
        if metas.has_relations:
            # the new entities reached by cascade persist are created too: their handlers run
            commit_order.cascade_persist(uow)
            if metas.removal_cascade:
                # the removals reached by Cascade.REMOVE / orphan_removal: deleted too
                cascade_remove(uow, plan)
        for cls, group in list(uow.new.items()):
            meta = metas.get(cls)
            entry = meta.listeners.get("before_create")
            if entry is None:
                continue
            batch = [e for key, e in list(group.items()) if key not in created]
            if not batch:
                continue
            created.update(id(e) for e in batch)
            if meta.has_hooks or meta.version is not None:
                uow._before_create(plan, meta, batch)  # the properties' on_create values
            for e in batch:
                _fire_tracked(plan, meta, entry, e, em, lambda m=meta, e=e: _create_set(m, e))
            ran = True
        if updates:
            for cls, candidates in uow._update_candidates(updates).items():
                meta = metas.get(cls)
                entry = meta.listeners.get("before_update")
                if entry is None:
                    continue
                candidates = [e for e in candidates if id(e) not in updated]
                if not candidates:
                    continue
                refs: list[Any] = []
                changed = [
                    (e, [meta.columns[i].name for i in cols])
                    for cols, (ents, _, _) in core.compute_changes(
                        meta.plan, candidates, refs
                    ).items()
                    for e in ents
                ]
                for ref in refs:
                    names = [p.name for p in meta.columns if not p.primary and is_set(ref, p.name)]
                    if names:
                        changed.append((ref, names))
                for e, names in changed:
                    updated.add(id(e))
                    _fire_tracked(
                        plan, meta, entry, e, em,
                        lambda m=meta, e=e, n=names: ChangeSet(
                            "update", e, m.class_name, _payload(m, e, n)
                        ),
                    )  # fmt: skip
                    ran = True
        for cls, group in list(uow.removed.items()):
            meta = metas.get(cls)
            entry = meta.listeners.get("before_delete")
            if entry is None:
                continue
            batch = [e for key, e in list(group.items()) if key not in deleted]
            for e in batch:
                deleted.add(id(e))
                _fire_tracked(
                    plan, meta, entry, e, em,
                    lambda m=meta, e=e: ChangeSet("delete", e, m.class_name, {}),
                )  # fmt: skip
                ran = True
        if not ran:
            return
    raise ValidationError(
        f"The before_create / before_update / before_delete handlers kept adding entities "
        f"to write for {MAX_ROUNDS} rounds: a handler must not persist a new entity every "
        f"time it runs. Nothing of this flush was written."
    )


def _wants_after(plan: _FlushPlan, events: EventManager) -> bool:
    if events.has_listeners("after_flush"):
        return True
    return (
        any("after_create" in ins.meta.listeners for ins in plan.inserts)
        or any("after_update" in upd.meta.listeners for upd in plan.updates)
        or any("after_update" in ref.meta.listeners for ref in plan.reference_updates)
        or any("after_delete" in dele.meta.listeners for dele in plan.deletes)
    )


def _run_after_events(uow: UnitOfWork, plan: _FlushPlan) -> None:
    """after_create, after_update, after_delete in the order the statements ran; the
    entities already reflect what was written."""
    em = uow.em
    for ins in plan.inserts:
        meta = ins.meta
        entry = meta.listeners.get("after_create")
        if entry is not None:
            for e in ins.entities:
                fire(entry, e, em, _create_set(meta, e) if entry[1] else None)
    for upd in plan.updates:
        meta = upd.meta
        entry = meta.listeners.get("after_update")
        if entry is not None:
            names = [meta.columns[i].name for i in upd.changed]
            for e in upd.entities:
                cs = ChangeSet("update", e, meta.class_name, _payload(meta, e, names))
                fire(entry, e, em, cs if entry[1] else None)
    for ref in plan.reference_updates:
        meta = ref.meta
        entry = meta.listeners.get("after_update")
        if entry is not None:
            e = ref.entity
            cs = ChangeSet("update", e, meta.class_name, _payload(meta, e, ref.names))
            fire(entry, e, em, cs if entry[1] else None)
    for dele in plan.deletes:
        meta = dele.meta
        entry = meta.listeners.get("after_delete")
        if entry is not None:
            for e in dele.entities:
                fire(entry, e, em, ChangeSet("delete", e, meta.class_name, {}) if entry[1] else None)


def commit_with_events(uow: UnitOfWork, events: EventManager) -> None:
    """UnitOfWork._commit when something listens (see the module docstring)."""
    em = uow.em
    conn = em.connection
    pending = _Pending(uow)
    births: set[int] = set()
    previous_births = core.track_births(births)
    plan = _FlushPlan()
    # what handlers assign to any entity is put back with the rest if the flush fails (or
    # a transaction around it rolls back): the retry's handlers assign it again
    previous_journal = core.track_assignments(plan.undo)
    tx_events = not conn.in_own_transaction and events.has_transaction_handlers()
    if tx_events:
        plan.before_begin = lambda: events.transaction_event("before_transaction_start", em)
    uow.flushing = True
    try:
        try:
            events.flush_event("before_flush", em, uow)
            if uow.enrolled:  # on_flush's change sets list them
                uow.persist_enrolled()
            events.flush_event("on_flush", em, uow)
            _run_before_events(uow, plan)
            uow._compute(plan)
            if not plan:
                if plan.began:
                    conn.commit()
                uow.dirty.clear()
                uow.collections = {}
                events.flush_event("after_flush", em, uow)
                return
            late = _wants_after(plan, events)
            if not plan.began:
                if tx_events:
                    events.transaction_event("before_transaction_start", em)
                conn.begin()
        except BaseException as exc:
            _prune_journal(uow, plan, births)
            try:
                if plan.began:
                    conn.rollback()
            finally:
                plan.revert()
                pending.drop(births)
            _nothing_written(exc)
            raise
        nested = conn.depth > 1
        applied = False
        try:
            uow._write(plan)
            if late:
                # the entities reflect the statements before the after_* handlers see
                # them; should the transaction roll back, FlushUndo takes it back
                _prune_journal(uow, plan, births)
                undo = FlushUndo.capture(uow, plan)
                conn.on_rollback(undo.run)
                uow._apply(plan)
                applied = True
                _run_after_events(uow, plan)
                events.flush_event("after_flush", em, uow)
                # what the after handlers assigned is the flush's too: a rollback of the
                # transaction (this one failing, or one around it) puts it back
                _prune_journal(uow, plan, births)
                undo.seal(final=True)
            conn.commit()
        except BaseException as exc:
            _prune_journal(uow, plan, births)
            try:
                conn.rollback()
            finally:
                if not applied:
                    plan.revert()
                pending.drop(births)
                uow.flushing = False
            _nothing_written(exc)
            if tx_events:
                events.transaction_event("after_transaction_rollback", em)
            raise
        if not late:
            if nested:
                _prune_journal(uow, plan, births)
            undo = FlushUndo.capture(uow, plan) if nested else None
            uow._apply(plan)
            if undo is not None:
                undo.seal(final=True)
                conn.on_rollback(undo.run)
    finally:
        uow.flushing = False
        core.track_births(previous_births)
        core.track_assignments(previous_journal)
    if tx_events:
        events.transaction_event("after_transaction_commit", em)

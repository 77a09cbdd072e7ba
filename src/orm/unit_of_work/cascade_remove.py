"""Cascade.REMOVE and orphan_removal: the entities a flush removes besides those given to
`em.remove()`.

Removing an entity removes the items of its inverse sides declared with Cascade.REMOVE (or
orphan_removal, which implies it), transitively; an entity unlinked from an inverse side
with orphan_removal (its owning relation set to None, by hand or by the collection's
`remove` / `set` / `remove_all`) is removed too, while one moved to another owner is not.

An inverse side that is not loaded (an uninitialized collection, an unknown inverse
one-to-one) still has its items removed: they are loaded with one `where fk in (...)` query
per level and relation, inside the flush's transaction (begun for it), never one per row;
the entities that point at a removed owner in memory only (not flushed yet) count too.

What is added here is recorded in the flush plan, so a failed flush takes it back
(`_FlushPlan.revert`) and the Unit of Work is left as it was; once written, the added
removals are ordinary deletes, which a rolled-back transaction makes pending again
(`FlushUndo`). Entity types without such relations pay nothing: the whole step is skipped
unless discovery found one (`MetadataStorage.removal_cascade`).
"""

from __future__ import annotations

from .._markers import MISSING, UNLOADED
from .._typing import TYPE_CHECKING
from ..entity.reference import _unwrap as _target_of

if TYPE_CHECKING:
    from typing import Any

    from ..metadata.model import EntityMetadata, PropertyMetadata
    from .unit_of_work import UnitOfWork, _FlushPlan

__all__ = ["cascade_remove", "forget_new_items"]

#: owner keys per `where fk in (...)` query (also bounded by the connection's variable limit)
CHUNK = 1000

_object_setattr = object.__setattr__


def cascade_remove(uow: UnitOfWork, plan: _FlushPlan) -> None:
    """Schedule the removals that Cascade.REMOVE and orphan_removal imply (see the module
    docstring). Safe to run more than once per flush (the event path runs it each round of
    before_* handlers): what is already scheduled is skipped, and loaded sides are not
    queried again."""
    metas = uow.em.metadata
    if not metas.removal_cascade:
        return
    frontier: dict[Any, dict[int, Any]] = {}
    if metas.orphans and uow.dirty:
        for entity in list(uow.dirty.values()):
            props = metas.orphans.get(type(entity))
            if props and entity._orm_uow is uow and _orphaned(entity, props):
                meta = metas.get(type(entity))
                _schedule(uow, plan, meta, entity)
    for cls, group in list(uow.removed.items()):
        meta = metas.get(cls)
        if meta.remove_cascades and group:
            frontier[meta] = dict(group)
    while frontier:
        following: dict[Any, dict[int, Any]] = {}
        for meta, parents in frontier.items():
            for prop in meta.remove_cascades:
                for child in _items(uow, plan, meta, list(parents.values()), prop):
                    child_meta = metas.find(type(child)) or prop.relation.target_meta
                    if _schedule(uow, plan, child_meta, child) and child_meta.remove_cascades:
                        following.setdefault(child_meta, {})[id(child)] = child
        frontier = following


def _orphaned(entity: Any, props: list[PropertyMetadata]) -> bool:
    """Whether a stored entity's owning relation (one whose inverse side has
    orphan_removal) pointed at a row when loaded and is None now."""
    snap = entity._orm_snap
    if type(snap) is not tuple:
        return False  # a reference: its former owner is not known
    values = entity.__dict__
    for prop in props:
        was = snap[prop.column_index]
        if was is not None and was is not UNLOADED and values.get(prop.name, MISSING) is None:
            return True
    return False


def _schedule(uow: UnitOfWork, plan: _FlushPlan, meta: EntityMetadata, entity: Any) -> bool:
    """Mark `entity` for removal in this flush; whether it was not already. A new entity
    is simply not inserted (as `em.remove()` of a new entity forgets it)."""
    if entity._orm_uow is not uow:
        return False  # not managed here (forgotten already, or never persisted)
    new = uow.new.get(meta.cls)
    if new is not None and id(entity) in new:
        del new[id(entity)]
        _object_setattr(entity, "_orm_uow", None)
        plan.forgotten.append((new, entity, uow))
        return True
    group = uow.removed.get(meta.cls)
    if group is None:
        group = uow.removed[meta.cls] = {}
    if id(entity) in group:
        return False
    group[id(entity)] = entity
    plan.cascaded.append((group, entity))
    return True


def _items(
    uow: UnitOfWork, plan: _FlushPlan, meta: EntityMetadata, parents: list[Any],
    prop: PropertyMetadata,
) -> list[Any]:
    """What the inverse side `prop` of each parent holds: from memory where it is loaded,
    else (for stored parents) loaded from the database."""
    name = prop.name
    one = prop.relation.kind == "1:1"  # type: ignore[union-attr]
    out: list[Any] = []
    unknown: list[Any] = []
    for parent in parents:
        held = parent.__dict__.get(name, MISSING)
        if one:
            if held is MISSING:
                if parent._orm_snap is not None:
                    unknown.append(parent)
            elif held is not None:
                out.append(_target_of(held))
        elif held is not MISSING and held._items is not None:
            out.extend(held._items.values())
        elif parent._orm_snap is not None:
            unknown.append(parent)
    if unknown:
        out.extend(_load(uow, plan, meta, unknown, prop))
    return out


def _load(
    uow: UnitOfWork, plan: _FlushPlan, meta: EntityMetadata, parents: list[Any],
    prop: PropertyMetadata,
) -> list[Any]:
    """The items of the parents' unloaded inverse side `prop`: the rows whose foreign key
    holds a parent's key, less those moved to another owner in memory, plus the entities
    pointed at a parent in memory only. The sides are filled as `populate` would."""
    em = uow.em
    begin(uow, plan)
    relation = prop.relation
    target = relation.target_meta  # type: ignore[union-attr]
    mapped_by = relation.mapped_by  # type: ignore[union-attr]
    pk_name = meta.pk.name
    keys = [getattr(parent, pk_name) for parent in parents]
    found: list[Any] = []
    flushing = uow.flushing
    uow.flushing = True  # the queries must not flush (this is the flush)
    try:
        chunk = max(1, min(CHUNK, em.connection.max_variables))
        for start in range(0, len(keys), chunk):
            found.extend(em.find(target.cls, {mapped_by: {"$in": keys[start : start + chunk]}}))
    finally:
        uow.flushing = flushing
    owners = {id(parent): parent for parent in parents}
    seen = {id(child) for child in found}
    unflushed = [e for e in uow.dirty.values() if type(e) is target.cls]
    unflushed.extend((uow.new.get(target.cls) or {}).values())
    found.extend(e for e in unflushed if id(e) not in seen)
    items: dict[int, list[Any]] = {key: [] for key in owners}
    for child in found:
        owner = _target_of(child.__dict__.get(mapped_by))
        if owner is not None and id(owner) in items:
            items[id(owner)].append(child)
    one = relation.kind == "1:1"  # type: ignore[union-attr]
    for key, parent in owners.items():
        if one:
            _object_setattr(parent, prop.name, items[key][0] if items[key] else None)
        else:
            getattr(parent, prop.name)._fill(items[key])
    return [child for held in items.values() for child in held]


def begin(uow: UnitOfWork, plan: _FlushPlan) -> None:
    """Begin the flush's transaction now, before its first query (a preview runs none)."""
    if plan.preview or plan.began:
        return
    if plan.before_begin is not None:
        plan.before_begin()
    uow.em.connection.begin()
    plan.began = True


def forget_new_items(uow: UnitOfWork, meta: EntityMetadata, entity: Any) -> None:
    """`em.remove()` of a new entity forgets it; the items its Cascade.REMOVE sides hold go
    with it: new ones forgotten, stored ones (moved to it in memory) removed. Else they would
    be written pointing at it, and persist it again by cascade."""
    metas = uow.em.metadata
    for prop in meta.remove_cascades:
        held = entity.__dict__.get(prop.name)
        if held is None:
            continue
        items = [_target_of(held)] if prop.relation.kind == "1:1" else (  # type: ignore[union-attr]
            list(held._items.values()) if held._items is not None else []
        )
        for item in items:
            if item._orm_uow is uow:
                uow.remove(item, metas.find(type(item)) or prop.relation.target_meta)  # type: ignore[union-attr]

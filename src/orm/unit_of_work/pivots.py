"""What many-to-many relations add to a flush: the pivot rows to insert and delete.

Each owning collection keeps its unwritten changes (`Collection._delta`: the difference
between the pairs stored when it was loaded or last flushed and its items) and registers
itself in `UnitOfWork.collections` when it changes, so a flush with nothing changed looks at
nothing. A flush turns those changes into one multi-row `delete` and one multi-row `insert`
per pivot table (chunked under the variable limit), run after every entity insert and
update (both ends' keys exist then) and before the entity deletes. Only once the
transaction commits are the changes marked written (`applied`); a failed flush leaves them
pending, and a rolled-back transaction makes them pending again (`FlushUndo`).
"""

from __future__ import annotations

from itertools import repeat

from .._backend import core
from .._markers import DELETED
from .._typing import TYPE_CHECKING
from ..entity.collection import UNSTORED
from ..errors import ValidationError, _short

if TYPE_CHECKING:
    from typing import Any

    from ..metadata.discovery import MetadataStorage
    from ..metadata.model import EntityMetadata
    from .unit_of_work import UnitOfWork, _FlushPlan

__all__ = ["cascade", "plan", "write", "applied", "forget", "touches", "undo", "PIVOT_CHUNK"]

#: pairs per pivot statement (bounded further by the connection's variable limit)
PIVOT_CHUNK = 500
#: pairs per pivot INSERT statement while that many are left. Each statement in a
#: transaction keeps a journal of the pages it changes (to undo itself alone), and the pivot's
#: index on the target column spreads the rows over many pages: past 64 KiB, SQLite writes
#: that journal to a temporary file, once per statement. Measured on 150,000 pairs (W8):
#: 437 ms in statements of 500, 337 ms of 2,000 (4,000 gained nothing more). Larger ones
#: cost their compiled form in sqlite3's statement cache (about 0.5 MB at 2,000 pairs)
PIVOT_INSERT_CHUNK = 2000


def touches(metas: MetadataStorage, cls: type) -> bool:
    """Whether `cls` is at either end of a many-to-many (its queries may read pivot rows)."""
    return any(cls is p.owner_meta.cls or cls is p.target_meta.cls for p in metas.pivots)


def _property(uow: UnitOfWork, collection: Any) -> Any:
    return uow.em.metadata.get(type(collection.owner)).properties[collection.prop]


def cascade(uow: UnitOfWork) -> None:
    """New items added to a managed owner's collection while the item was not managed
    (through the other side, say) are persisted by the relation's Cascade.PERSIST, before
    the flush plans its inserts."""
    for collection in list(uow.collections.values()):
        delta = collection._delta
        if not delta or collection.owner._orm_uow is not uow:
            continue
        prop = None
        for item, added in collection._changes():
            if added and item._orm_uow is None and item._orm_snap is None:
                prop = prop or _property(uow, collection)
                if prop.relation.persist_cascade:
                    uow.persist(item, prop.relation.target_meta)


def _removed(uow: UnitOfWork, entity: Any) -> bool:
    group = uow.removed.get(type(entity))
    return group is not None and id(entity) in group


class Pairs:
    """The pairs one flush writes to one pivot table, as runs: an owning entity and the
    items paired with it, a list, or the collection's own id -> item dict where its items
    are exactly the pairs (nothing changes it between the plan and the statements; the
    keys are read when the statements are built). `fresh`: the
    pairs of owners inserted by this flush, which cannot be stored yet (plain inserts);
    `inserts`: pairs that may be (a pair added to a collection never loaded)."""

    __slots__ = ("fresh", "inserts", "deletes")

    def __init__(self) -> None:
        self.fresh: tuple[list[Any], list[Any]] = ([], [])
        self.inserts: tuple[list[Any], list[Any]] = ([], [])
        self.deletes: tuple[list[Any], list[list[Any]]] = ([], [])


def plan(uow: UnitOfWork, flush: _FlushPlan) -> None:
    """The pairs each changed owning collection adds and removes, grouped by pivot table.
    An entity being removed takes its pairs with it (`on delete cascade`), so its pending
    pairs are skipped; an added item that is neither stored nor persisted is refused."""
    removing = any(uow.removed.values())
    props: dict[tuple[type, str], Any] = {}
    pivots = flush.pivots
    written = flush.collections
    collections: Any = uow.collections.values()
    if not removing:
        # the common shape of a new graph, sorted out by the core: new owners whose pairs
        # are their items (UNSTORED), all managed
        groups, collections = core.fresh_runs(collections, uow, UNSTORED)
        for (cls, name), (owners, runs, held) in groups.items():
            prop = props[(cls, name)] = uow.em.metadata.get(cls).properties[name]
            pairs = pivots.get(prop.relation.pivot)
            if pairs is None:
                pairs = pivots[prop.relation.pivot] = Pairs()
            pairs.fresh[0].extend(owners)
            pairs.fresh[1].extend(runs)
            written.extend(zip(held, repeat(UNSTORED)))
    for collection in collections:
        delta = collection._delta
        owner = collection.owner
        if not delta or owner._orm_uow is not uow or (removing and _removed(uow, owner)):
            continue
        at = (type(owner), collection.prop)
        prop = props.get(at)
        if prop is None:
            prop = props[at] = _property(uow, collection)
        pairs = pivots.get(prop.relation.pivot)
        if pairs is None:
            pairs = pivots[prop.relation.pivot] = Pairs()
        if delta is UNSTORED:
            added = list(collection._items.values())
        else:
            added = [item for item, add in delta.values() if add]
            if len(added) != len(delta):
                pairs.deletes[0].append(owner)
                pairs.deletes[1].append([item for item, add in delta.values() if not add])
        if added:
            unmanaged = core.not_managed(added, uow)
            if unmanaged is not None:
                raise _not_managed(uow, owner, prop, unmanaged)
            if removing:
                added = [item for item in added if not _removed(uow, item)]
        if added:
            # an owner inserted by this flush has no stored pairs: nothing to skip
            runs = pairs.fresh if owner._orm_snap is None else pairs.inserts
            runs[0].append(owner)
            runs[1].append(added)
        written.append((collection, delta))  # the very dict: see `applied`


def _not_managed(uow: UnitOfWork, owner: Any, prop: Any, item: Any) -> ValidationError:
    cls = type(owner).__name__
    if item._orm_snap is DELETED:
        why = (f"{type(item).__name__} {_short(item, 60)}, whose row was deleted by a flush: "
               f"em.persist() it to insert it again as a new row, or leave it out")
    elif item._orm_uow is None:
        why = (f"a new {type(item).__name__} that is not persisted: persist it too (or keep "
               f"Cascade.PERSIST on the relation)")
    else:
        why = (f"a {type(item).__name__} of another EntityManager: load it in this one and "
               f"add that instance")
    return ValidationError(
        f"{cls}.{prop.name} holds {why}. Nothing of this flush was written.",
        entity=owner,
        property=prop.name,
    )


def _params(flush: _FlushPlan, pivot: Any, runs: tuple[list[Any], list[Any]]) -> list[Any]:
    """The pairs' keys in database form, flat (owner, item, owner, item, ...): generated in
    this flush, or their own."""
    flat: list[Any] = core.pair_keys(
        runs[0], runs[1], flush.keys, pivot.owner_meta.pk.name, pivot.target_meta.pk.name
    )
    for start, meta in ((0, pivot.owner_meta), (1, pivot.target_meta)):
        pk_type = meta.pk.type
        if pk_type.converts:
            flat[start::2] = [pk_type.to_db(k) for k in flat[start::2]]
    return flat


def write(uow: UnitOfWork, flush: _FlushPlan) -> None:
    """Per pivot table: the removed pairs deleted, then the added ones inserted, as one
    statement of two arrays where the platform takes them, else multi-row statements. An
    added pair of an owner stored before this flush may be stored already (its collection
    was changed without being loaded): the database skips it; those of owners this flush
    inserted are plain inserts."""
    conn = uow.em.connection
    platform = uow.em.sql.platform
    most = conn.max_variables // 2
    for pivot, pairs in flush.pivots.items():
        columns = (pivot.owner_column.field_name, pivot.target_column.field_name)
        for runs, verb, stored in (
            (pairs.deletes, "delete", True),
            (pairs.inserts, "insert", True),
            (pairs.fresh, "insert", False),
        ):
            if not runs[0]:
                continue
            flat = _params(flush, pivot, runs)
            arrays = platform.pivot_arrays(
                verb, pivot.table, (pivot.owner_column, pivot.target_column), stored
            )
            if arrays is not None:
                conn.execute(arrays, [flat[0::2], flat[1::2]])
                continue
            start = 0
            big = PIVOT_INSERT_CHUNK if verb == "insert" else PIVOT_CHUNK
            for rows in _chunk_sizes(len(flat) // 2, big, PIVOT_CHUNK, most):
                if verb == "delete":
                    sql = platform.pivot_delete(pivot.table, columns, rows)
                else:
                    sql = platform.pivot_insert(pivot.table, columns, rows, stored)
                conn.execute(sql, flat[2 * start : 2 * (start + rows)])
                start += rows


def _chunk_sizes(count: int, big: int, small: int, most: int) -> list[int]:
    """Rows per statement for `count` rows: statements of `big` rows while that many are
    left, then of `small` rows, then one of the rest; none of more than `most` (the
    variable limit). Few distinct sizes: each is a statement sqlite3 compiles and caches."""
    big, small = max(1, min(big, most)), max(1, min(small, most))
    sizes = [big] * (count // big)
    left = count - big * len(sizes)
    sizes += [small] * (left // small)
    if left % small:
        sizes.append(left % small)
    return sizes


def applied(uow: UnitOfWork, flush: _FlushPlan) -> None:
    """The transaction committed: the changes written are the stored state now. Nothing
    can change a collection between the plan and this point but the flush itself, so a
    collection still holding the dict the plan read is simply clean; the dict stays with
    the undo record (FlushUndo), untouched."""
    for collection, written in core.settle(flush.collections):  # the others: clean now
        delta = collection._delta
        if delta and written is not UNSTORED:  # pragma: no cover - defensive
            for key, change in written.items():
                if delta.get(key) == change:
                    del delta[key]
    uow.collections = {}


def forget(uow: UnitOfWork, meta: EntityMetadata, entities: list[Any], left: list) -> None:
    """Deleted entities leave the many-to-many collections held in memory (their pivot rows
    went with them, `on delete cascade`), and their own unwritten pairs are dropped; so do
    new entities `em.remove()` forgets (their pairs were never written). What
    was taken out is noted in `left` (as `(collection, None, None, (items, changes))`) for
    a rollback, which brings the rows back: see `restore`."""
    metas = uow.em.metadata
    holders = metas.m2m_holders.get(meta.cls)
    gone = {id(e) for e in entities}
    for entity in entities:
        for prop in meta.collections:
            held = entity.__dict__.get(prop.name)
            if held is not None and held._delta:
                left.append((held, None, None, ((), held._delta)))
                held._delta = None
    if not holders:
        return
    for cls, name in holders:
        groups = [uow.identity_map.get(cls) or {}, uow.new.get(cls) or {}]
        for group in groups:
            for holder in group.values():
                held = holder.__dict__.get(name)
                if held is None:
                    continue
                items = held._items
                taken = [items.pop(key) for key in gone & items.keys()] if items else []
                delta = held._delta
                dropped: dict[int, Any] = {}
                if delta and delta is not UNSTORED:  # (UNSTORED: the items are the pairs)
                    dropped = {key: delta.pop(key) for key in gone & delta.keys()}
                if taken or dropped:
                    left.append((held, None, None, (taken, dropped)))


def restore(uow: UnitOfWork, collection: Any, taken: Any, dropped: Any) -> None:
    """A rollback undid a flush that deleted entities: their pivot rows are back, so they
    are back in the collections `forget` took them out of, and the unwritten changes it
    dropped are pending again (of collections still of this Unit of Work)."""
    if collection.owner._orm_uow is not uow:
        return
    items = collection._items
    if items is not None:
        for item in taken:
            items.setdefault(id(item), item)
    _pending_again(uow, collection, dropped)


def undo(uow: UnitOfWork, written: list[tuple[Any, Any]]) -> None:
    """The transaction around a flush was rolled back: the pairs it wrote are pending
    again, composed with what changed since (added then removed again: nothing to do).
    A collection that had no stored pairs has none again: all its items are pending."""
    for collection, changes in written:
        if collection.owner._orm_uow is uow:
            _pending_again(uow, collection, changes)


def _pending_again(uow: UnitOfWork, collection: Any, changes: Any) -> None:
    """`changes` (UNSTORED: all the items; else id -> (item, added)) are to be written
    again by `collection`, composed with what it recorded since."""
    if changes is UNSTORED:
        collection._delta = UNSTORED
        collection._dirty = True
        uow.collections[id(collection)] = collection
        return
    for item, added in changes.values():
        collection._record(item, added)

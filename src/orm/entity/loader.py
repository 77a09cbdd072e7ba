"""`populate`: loading the targets of relations for entities already loaded, with one
select-in query per relation and level (on PostgreSQL the keys are one array parameter;
elsewhere the lists are chunked under the database's variable limit), never one per row.

The targets are already in the identity map as uninitialized references (hydration put
them there); the query fills those very instances, so every entity pointing at a row sees
it loaded.
"""

from __future__ import annotations

import gc

from .._backend import core
from .._markers import REFERENCE
from .._typing import TYPE_CHECKING
from ..errors import ValidationError
from ..query.sql import ALIAS
from .collection import Collection, _unwrap
from .reference import Ref

if TYPE_CHECKING:
    from typing import Any

    from ..entity_manager import EntityManager
    from ..metadata.model import EntityMetadata

__all__ = ["populate_tree", "populate"]

#: keys per `where pk in (...)` query, bounded further by the connection's variable limit
#: (32,766 on SQLite, 65,535 on PostgreSQL): as many as hand-written select-in SQL would
#: send, so loading 50,000 rows' relations is one or two queries, not fifty
CHUNK = 30000


def populate_tree(meta: EntityMetadata, paths: Any) -> dict[str, Any]:
    """`["author", "author.team"]` -> `{"author": {"team": {}}}`, every step checked to be
    a relation of the entity it starts from (ValidationError naming entity and path).
    `"*"` stands for every relation, followed through the targets' relations (each
    relation once per path)."""
    if isinstance(paths, str):
        paths = [paths]
    tree: dict[str, Any] = {}
    for path in paths or ():
        if not isinstance(path, str):
            raise ValidationError(
                f"populate on {meta.class_name} takes relation names (str), got {path!r}",
                entity=meta.cls,
            )
        if path == "*":
            _all(meta, tree, frozenset())
            continue
        current, node = meta, tree
        for step in path.split("."):
            prop = current.properties.get(step)
            if prop is None or prop.relation is None:
                relations = [*current.relations, *current.collections, *current.inverse_ones]
                reason = "does not exist" if prop is None else "is not a relation"
                relations = ", ".join(p.name for p in relations) or "none"
                raise ValidationError(
                    f"Cannot populate {meta.class_name}.{path}: {current.class_name}.{step} "
                    f"{reason}; relations of {current.class_name}: {relations}",
                    entity=meta.cls,
                    property=path,
                )
            node = node.setdefault(step, {})
            current = prop.relation.target_meta
    return tree


def _all(meta: EntityMetadata, node: dict[str, Any], seen: frozenset[Any]) -> None:
    for prop in [*meta.relations, *meta.collections, *meta.inverse_ones]:
        if prop in seen:
            continue
        child = node.setdefault(prop.name, {})
        _all(prop.relation.target_meta, child, seen | {prop})  # type: ignore[union-attr]


def populate(em: EntityManager, meta: EntityMetadata, entities: list[Any], tree: dict) -> None:
    """Load the targets named by `tree` for `entities` (all of type `meta`), level by
    level. The collector is paused throughout, as for a flush (see UnitOfWork.commit):
    filling the collections of N owners allocates 2N containers, none of them garbage."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        _populate(em, meta, entities, tree)
    finally:
        if collecting:
            gc.enable()


def _populate(em: EntityManager, meta: EntityMetadata, entities: list[Any], tree: dict) -> None:
    for name, subtree in tree.items():
        prop = meta.properties[name]
        target = prop.relation.target_meta  # type: ignore[union-attr]
        if prop.relation.kind == "m:n":  # type: ignore[union-attr]
            children = _populate_pivot(em, meta, entities, prop, bool(subtree))
            if subtree and children:
                _populate(em, target, children, subtree)
            continue
        if not prop.relation.owner:  # type: ignore[union-attr]
            if prop.relation.kind == "1:1":  # type: ignore[union-attr]
                from .one_to_one import populate_inverse_one

                children = populate_inverse_one(em, meta, entities, prop)
            else:
                children = _populate_collection(em, meta, entities, prop)
            if subtree and children:
                _populate(em, target, children, subtree)
            continue
        # skipped: an entity not loaded itself (a reference, a partial entity)
        targets, keys = core.relation_targets(entities, name, target.pk.name, Ref)
        if keys:
            em._auto_flush(target, None)
            head = em.sql.select(target, None)[0]
            column = f"{em.sql.quote(ALIAS)}.{em.sql.quote(target.pk.field_name)}"
            _select_in(em, target, f"{head} where ", column, target.pk.type, keys, None)
        if subtree:
            loaded = [t for t in targets if t._orm_snap is not REFERENCE]
            _populate(em, target, loaded, subtree)


def _select_in(
    em: EntityManager,
    target: EntityMetadata,
    head: str,
    column: str,
    key_type: Any,
    keys: list[Any],
    extra: list[Any] | None,
) -> list[Any]:
    """Hydrate the `target` rows of `head` (a select ending in `where `) whose `column`
    holds one of `keys` (Python values of the mapped type `key_type`): one array
    parameter where the platform binds one (PostgreSQL: `= any(%s)`, one statement
    whatever the count), else `in (...)` lists of at most CHUNK keys (and the connection's
    variable limit). With `extra`, see EntityManager._load."""
    if key_type.converts:
        to_db = key_type.to_db
        keys = [to_db(k) for k in keys]
    platform = em.sql.platform
    identity_map = em._uow.map_for(target.cls)
    if platform.supports_any_array:
        sql = head + platform.keys_condition(column, len(keys))
        return em._load(target, sql, [keys], None, identity_map, False, extra)
    found: list[Any] = []
    chunk = max(1, min(CHUNK, em.connection.max_variables))
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        sql = head + platform.keys_condition(column, len(part))
        found += em._load(target, sql, part, None, identity_map, False, extra)
    return found


def _populate_collection(
    em: EntityManager, meta: EntityMetadata, entities: list[Any], prop: Any
) -> list[Any]:
    """Fill `prop` (a OneToMany) of every entity with one `where <fk> in (...)` query per
    chunk of owners; every collection ends up initialized, the empty ones too.

    An owner not written yet keeps its collection as it is: it was initialized when the
    entity was made, and no row can point at it yet (nor can `fk in (null)` find one)."""
    target = prop.relation.target_meta
    mapped_by = prop.relation.mapped_by
    pk_name = meta.pk.name
    owners = core.loaded_by_key(meta.plan, entities)
    keys = list(owners)
    found: dict[Any, list[Any]] = {key: [] for key in keys}
    children: list[Any] = []
    chunk = max(1, min(CHUNK, em.connection.max_variables))
    for start in range(0, len(keys), chunk):
        rows = em.find(target.cls, {mapped_by: {"$in": keys[start : start + chunk]}})
        for child in rows:
            parent = getattr(child, mapped_by)
            parent = parent.entity if type(parent) is Ref else parent
            if parent is None:
                continue
            key = getattr(parent, pk_name)
            if key in found:
                found[key].append(child)
                children.append(child)
    column = target.properties[mapped_by].column_index
    key_to_db = meta.pk.type.to_db if meta.pk.type.converts else None
    for key, entity in owners.items():
        held = getattr(entity, prop.name)
        items = found[key]
        if held._items is not None:
            # unflushed links (FlushMode.COMMIT): what points at the owner in memory, and
            # not in its row yet, stays (one whose row points here but was not read is gone:
            # another writer deleted or moved it)
            have = {id(i) for i in items}
            stored = key if key_to_db is None else key_to_db(key)
            items += [
                i for i in held._items.values()
                if id(i) not in have
                and _unwrap(i.__dict__.get(mapped_by)) is entity
                and _not_stored_here(i, column, stored)
            ]
        held._fill(items)
    return children


def _not_stored_here(item: Any, column: int, key: Any) -> bool:
    """Whether `item`'s row does not hold `key` in `column` yet: a new item, or one whose
    foreign key was changed since it was read (its snapshot holds the stored value)."""
    snap = item._orm_snap
    if snap is None or snap is REFERENCE:  # new, or a reference: its row was not read
        return True
    return type(snap) is tuple and snap[column] != key


def _populate_pivot(
    em: EntityManager, meta: EntityMetadata, entities: list[Any], prop: Any, items_wanted: bool
) -> list[Any]:
    """Fill `prop` (a ManyToMany, either side) of every entity with one query per chunk of
    owners (one in all on PostgreSQL), joining the pivot table: `select t.*, p.<own key>
    from <target> t join <pivot> p on p.<item key> = t.<key> where p.<own key> in (...)`.
    Every collection ends up initialized; unwritten changes (FlushMode.COMMIT) stay applied
    on top of what was read. Returns the items (each once) if `items_wanted` (a nested
    populate goes on from them), else nothing.

    Per row, only compiled loops run: hydration (the owner's key rides along as an extra
    column), grouping by owner, and creating the owners' collections."""
    target = prop.relation.target_meta
    owners = core.loaded_by_key(meta.plan, entities)
    if not owners:
        return []
    em._auto_flush(target, None)
    cache = ("populate", prop.name)
    sql = meta.sql.get(cache)
    if sql is None:
        sql = meta.sql[cache] = _pivot_select(em, target, prop)
    pk_type = meta.pk.type
    owned: list[Any] = []
    items = _select_in(em, target, sql[0], sql[1], pk_type, list(owners), owned)
    groups, children = core.group_by_key(
        items, owned, pk_type.to_python if pk_type.converts else None, items_wanted
    )
    core.fill_collections(owners, groups, prop.name, Collection)
    if not prop.relation.owner:
        _pending_on_inverse(em, prop, owners)
    return children or []


def _pivot_select(em: EntityManager, target: EntityMetadata, prop: Any) -> tuple[str, str]:
    """`select <target's columns>, p.<own key> from <target> join <pivot> ... where `, and
    the pivot's column of the owners' keys (`p.<own key>`)."""
    own, other = prop.relation.pivot.columns(prop)
    quote = em.sql.quote
    alias = quote(ALIAS)
    owned = f"{quote('p1')}.{quote(own.field_name)}"
    return (
        f"select {em.sql.select_list(target)}, {owned} from {quote(target.table)} as {alias} "
        f"join {quote(prop.relation.pivot.table)} as {quote('p1')} on {quote('p1')}."
        f"{quote(other.field_name)} = {alias}.{quote(target.pk.field_name)} where ",
        owned,
    )


def _pending_on_inverse(em: EntityManager, prop: Any, owners: dict[Any, Any]) -> None:
    """Unwritten changes of the owning collections (FlushMode.COMMIT) shown on the inverse
    collections just read from the pivot table: those registered with the Unit of Work,
    and those of new owning entities (registered when the flush sees them)."""
    other = prop.relation.other
    owning = prop.relation.target
    filled = {id(e) for e in owners.values()}
    uow = em._uow
    changed = [c for c in uow.collections.values() if c.prop == other]
    for entity in (uow.new.get(owning) or {}).values():
        held = entity.__dict__.get(other)
        if held is not None and id(held) not in uow.collections:
            changed.append(held)
    for collection in changed:
        if not collection._delta or type(collection.owner) is not owning:
            continue
        for item, added in collection._changes():
            if id(item) in filled:
                items = getattr(item, prop.name)._items
                if added:
                    items[id(collection.owner)] = collection.owner
                else:
                    items.pop(id(collection.owner), None)

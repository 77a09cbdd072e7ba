"""`populate`: loading the targets of relations for entities already loaded, with one
select-in query per relation and level (chunked under the database's variable limit),
never one per row.

The targets are already in the identity map as uninitialized references (hydration put
them there); the query fills those very instances, so every entity pointing at a row sees
it loaded.
"""

from __future__ import annotations

from .._markers import REFERENCE
from .._typing import TYPE_CHECKING
from ..errors import ValidationError
from ..query.sql import ALIAS
from .collection import _unwrap
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
    level."""
    for name, subtree in tree.items():
        prop = meta.properties[name]
        target = prop.relation.target_meta  # type: ignore[union-attr]
        if prop.relation.kind == "m:n":  # type: ignore[union-attr]
            children = _populate_pivot(em, meta, entities, prop)
            if subtree and children:
                populate(em, target, children, subtree)
            continue
        if not prop.relation.owner:  # type: ignore[union-attr]
            if prop.relation.kind == "1:1":  # type: ignore[union-attr]
                from .one_to_one import populate_inverse_one

                children = populate_inverse_one(em, meta, entities, prop)
            else:
                children = _populate_collection(em, meta, entities, prop)
            if subtree and children:
                populate(em, target, children, subtree)
            continue
        seen: set[int] = set()
        targets: list[Any] = []
        keys: list[Any] = []
        pk_name = target.pk.name
        for entity in entities:
            try:
                value = getattr(entity, name)
            except Exception:  # not loaded itself (a reference, a partial entity)
                continue
            if value is None:
                continue
            found = value.entity if type(value) is Ref else value
            if id(found) in seen:
                continue
            seen.add(id(found))
            targets.append(found)
            if found._orm_snap is REFERENCE:
                keys.append(getattr(found, pk_name))
        if keys:
            chunk = max(1, min(CHUNK, em.connection.max_variables))
            for start in range(0, len(keys), chunk):
                em.find(target.cls, {pk_name: {"$in": keys[start : start + chunk]}})
        if subtree:
            loaded = [t for t in targets if t._orm_snap is not REFERENCE]
            populate(em, target, loaded, subtree)


def _stored(entities: list[Any], pk_name: str) -> dict[Any, Any]:
    """The loaded entities by key (a collection is filled for those only: a reference's is
    not read, and no row can point at an entity not written yet)."""
    owners: dict[Any, Any] = {}
    for entity in entities:
        if entity._orm_snap is REFERENCE or entity._orm_snap is None:
            continue
        owners.setdefault(getattr(entity, pk_name), entity)
    return owners


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
    owners = _stored(entities, pk_name)
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
    for key, entity in owners.items():
        held = getattr(entity, prop.name)
        items = found[key]
        if held._items is not None:
            # unflushed links (FlushMode.COMMIT): what points at the owner in memory stays
            have = {id(i) for i in items}
            items += [
                i for i in held._items.values()
                if id(i) not in have and _unwrap(i.__dict__.get(mapped_by)) is entity
            ]
        held._fill(items)
    return children


def _populate_pivot(
    em: EntityManager, meta: EntityMetadata, entities: list[Any], prop: Any
) -> list[Any]:
    """Fill `prop` (a ManyToMany, either side) of every entity with one query per chunk of
    owners, joining the pivot table: `select t.*, p.<own key> from <target> t join <pivot> p
    on p.<item key> = t.<key> where p.<own key> in (...)`. Every collection ends up
    initialized; unwritten changes (FlushMode.COMMIT) stay applied on top of what was read.
    Returns the items (each once)."""
    target = prop.relation.target_meta
    pivot = prop.relation.pivot
    own, other = pivot.columns(prop)
    owners = _stored(entities, meta.pk.name)
    keys = list(owners)
    found: dict[Any, list[Any]] = {key: [] for key in keys}
    children: dict[int, Any] = {}
    if keys:
        em._auto_flush(target, None)
    sql = em.sql
    quote = sql.quote
    alias = quote(ALIAS)
    pv = quote("p1")
    head = (
        f"select {sql.select_list(target)}, {pv}.{quote(own.field_name)} from "
        f"{quote(target.table)} as {alias} join {quote(pivot.table)} as {pv} on "
        f"{pv}.{quote(other.field_name)} = {alias}.{quote(target.pk.field_name)} where "
        f"{pv}.{quote(own.field_name)} in "
    )
    pk_type = meta.pk.type
    to_db = pk_type.to_db if pk_type.converts else None
    to_python = pk_type.to_python if pk_type.converts else None
    identity_map = em._uow.map_for(target.cls)
    chunk = max(1, min(CHUNK, em.connection.max_variables))
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        params = [to_db(k) for k in part] if to_db is not None else list(part)
        statement = f"{head}({sql.platform.params(len(part))})"
        owned: list[Any] = []
        items = em._load(target, statement, params, None, identity_map, False, owned)
        for item, key in zip(items, owned, strict=True):
            if to_python is not None:
                key = to_python(key)
            found[key].append(item)
            children[id(item)] = item
    inverse = not prop.relation.owner
    for key, entity in owners.items():
        held = getattr(entity, prop.name)
        held._fill(found[key])
    if inverse:
        _pending_on_inverse(em, prop, owners)
    return list(children.values())


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
        if not collection._delta or not isinstance(collection.owner, owning):
            continue
        for item, added in collection._changes():
            if id(item) in filled:
                items = getattr(item, prop.name)._items
                if added:
                    items[id(collection.owner)] = collection.owner
                else:
                    items.pop(id(collection.owner), None)

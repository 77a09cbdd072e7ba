"""What relations add to a flush: cascade persist, the order of the writes, and the keys a
statement needs from a row written before it in the same flush.

A flush computes every parameter before it writes anything (so a failed flush leaves the
Unit of Work as it was). A foreign key to a new entity whose key the database generates is
not known then: its slot holds a `PendingKey` (see `RelationType.to_db`). Here the new
entities are put in layers (a row after the rows it references), the slots are recorded,
and while the flush writes, each layer's generated keys are filled into the slots of the
layers after it. A reference the order cannot satisfy (a cycle among new entities) goes
through a nullable foreign key: the row is inserted with NULL and updated once the
referenced row exists; a cycle without a nullable foreign key cannot be written and is a
ValidationError before anything runs.
"""

from __future__ import annotations

from .._backend import core
from .._typing import TYPE_CHECKING
from ..entity.collection import UNSTORED
from ..entity.reference import Ref
from ..entity.reference import _unwrap as _target_of
from ..errors import ValidationError, _short
from ..metadata.model import EntityMetadata, PendingKey

if TYPE_CHECKING:
    from typing import Any

    from .unit_of_work import UnitOfWork, _FlushPlan, _Insert

__all__ = [
    "cascade_persist", "order_inserts", "pending_updates", "pending_reference", "order_deletes",
    "resolve", "patch_snapshots", "unlink_first", "release_taken", "rekey_first",
]


def cascade_persist(uow: UnitOfWork) -> bool:
    """Persist the new entities that new or changed entities reference through a relation
    with Cascade.PERSIST, transitively (also when the relation was assigned after
    `persist`); a new entity referenced through a relation without it is a ValidationError.
    Values of the wrong class are left for the flush's check to refuse. Returns whether a
    new entity references another new one (only then must the inserts be ordered).

    Works by entity type and relation, a column at a time (the core walks the entities):
    the entities found new are persisted, then looked at in turn as a batch of their own."""
    metas = uow.em.metadata
    ordered = False
    work: list[tuple[EntityMetadata, list[Any], bool]] = []
    for cls, group in uow.new.items():
        meta = metas.find(cls)
        if meta is not None and group and _walks(meta):
            work.append((meta, list(group.values()), True))
    if uow.dirty:
        # an entity being removed cascades nothing: its relations are not written (else a
        # new owner removed before the flush, that a removed child still points at, would
        # be persisted again and inserted, while the child is deleted)
        removed = {key for group in uow.removed.values() for key in group}
        for cls, found in core.group_by_type(uow.dirty.values(), removed).items():
            meta = metas.find(cls)
            if meta is not None and _walks(meta):
                work.append((meta, found, False))
    new = uow.new
    while work:
        meta, entities, is_new = work.pop()
        if meta.collections or meta.inverse_ones:
            _cascade_collections(uow, meta, entities, work, is_new)
        for prop in meta.relations:
            relation = prop.relation
            positions, targets, _ = core.new_targets(entities, prop.name, relation.target, Ref)
            if not targets:
                continue
            fresh = core.not_held(targets, uow)
            if fresh:
                if not relation.persist_cascade:  # type: ignore[union-attr]
                    for k, target in zip(positions, targets, strict=True):
                        if id(target) in fresh:
                            raise _not_persisted(meta, entities[k], prop, target)
                target_meta = relation.target_meta  # type: ignore[union-attr]
                persist = uow.persist
                for target in fresh.values():
                    persist(target, target_meta)  # refuses one new in another EntityManager
                if _walks(target_meta):
                    work.append((target_meta, list(fresh.values()), True))
            if is_new and not ordered:
                ordered = any(
                    (group := new.get(type(t))) is not None and id(t) in group for t in targets
                )
    return ordered


def _walks(meta: EntityMetadata) -> bool:
    return bool(meta.relations or meta.collections or meta.inverse_ones)


def _cascade_collections(
    uow: UnitOfWork, meta: EntityMetadata, entities: list[Any], work: list, is_new: bool
) -> None:
    """The new items of the entities' initialized collections (and the new entities on
    their inverse one-to-one sides) with Cascade.PERSIST; a many-to-many collection changed
    before its owner was managed joins the flush. New entities of a generated `__init__`
    hold every collection (made by it), so theirs are read as attributes."""
    direct = is_new and meta.generated_init
    for prop in meta.collections:
        relation: Any = prop.relation
        cascade = bool(relation.persist_cascade)
        # a new owner's pairs are all its items, whatever its collection recorded before
        owning = relation.kind == "m:n" and relation.owner
        unstored = UNSTORED if is_new and owning else None
        unpaired: list[Any] | None = [] if unstored is not None and relation.other else None
        found = core.collection_items(
            entities, prop.name, uow, uow.collections, cascade, direct, unstored, unpaired
        )
        if unpaired:
            _pair_inverse_sides(unpaired, relation.other)
        if found:
            target_meta = relation.target_meta
            for item in found:
                uow.persist(item, target_meta)
            work.append((target_meta, found, True))
    for prop in meta.inverse_ones:
        if not prop.relation.persist_cascade:  # type: ignore[union-attr]
            continue
        target_meta = prop.relation.target_meta  # type: ignore[union-attr]
        found = {}
        for entity in entities:
            item = entity.__dict__.get(prop.name)
            if item is not None and item._orm_snap is None and item._orm_uow is not uow:
                found[id(item)] = item
        if found:
            for item in found.values():
                uow.persist(item, target_meta)
            work.append((target_meta, list(found.values()), True))


def _pair_inverse_sides(collections: list[Any], inverse: str) -> None:
    """Owning collections of new owners whose items are now all pairs to write, though the
    items were never told (a copy of a loaded entity holds the original's items): their
    loaded inverse sides list the owner, as they list one built with those items, so a
    change made through them is computed with it."""
    for collection in collections:
        owner = collection.owner
        for item in collection._items.values():
            back = item.__dict__.get(inverse)
            if back is not None:
                back._link(owner)


def _not_persisted(meta: EntityMetadata, entity: Any, prop: Any, target: Any) -> ValidationError:
    return ValidationError(
        f"{meta.class_name}.{prop.name} references a new {type(target).__name__} "
        f"{_short(target, 60)} that is not persisted: persist it too (or keep Cascade.PERSIST on "
        f"the relation). Nothing of this flush was written.",
        entity=entity,
        property=prop.name,
    )


class _Edge:
    """A new entity referencing another new one through `prop`."""

    __slots__ = ("entity", "meta", "prop", "target", "nullable")

    def __init__(self, entity: Any, meta: EntityMetadata, prop: Any, target: Any) -> None:
        self.entity = entity
        self.meta = meta
        self.prop = prop
        self.target = target
        self.nullable = prop.nullable


def order_inserts(uow: UnitOfWork, plan: _FlushPlan) -> None:
    """Split and order `plan.inserts` so every row comes after the new rows it references,
    and record the parameter slots to fill with keys generated during the flush (see the
    module docstring). The references are found a relation at a time (the core walks the
    entities); the common shape, new rows referencing new rows that reference none, makes
    two layers without building the reference graph."""
    from .unit_of_work import _Insert

    new_ids: set[int] | None = None
    new_groups: dict[type, dict[int, Any]] | None = uow.new
    if any(ins.meta.has_hooks for ins in plan.inserts):
        # an on_create value may have persisted or removed entities after the inserts were
        # planned: the inserts' own entities
        new_ids, new_groups = set(), None
        for ins in plan.inserts:
            new_ids.update(map(id, ins.entities))
    # else the entities the flush inserts are exactly the Unit of Work's new ones: the core
    # looks a target up in its class's group (no set of every inserted entity's id)
    found: list[tuple[_Insert, Any, list[int], list[Any]]] = []
    for ins in plan.inserts:
        meta = ins.meta
        for prop in meta.relations:
            positions, targets, strays = core.new_targets(
                ins.entities, prop.name, prop.relation.target, Ref, new_ids, new_groups
            )
            for k in strays:
                target = _target_of(getattr(ins.entities[k], prop.name))
                if getattr(target, prop.type.pk_name, None) is None:
                    raise _not_persisted(meta, ins.entities[k], prop, target)
            if targets:
                found.append((ins, prop, positions, targets))
    if not found:
        _pending_in_inserts(plan, set())
        return
    deferred: list[_Edge] = []
    level: dict[int, int] | None = None
    if not _targets_are_sources(found):
        # no target references a new row: two layers, the rows referencing new rows (at
        # the positions found, by insert) after the others, no graph by entity
        referencing: dict[int, list[list[int]]] = {}
        for ins, _, positions, _ in found:
            referencing.setdefault(id(ins), []).append(positions)
    else:
        edges: dict[int, list[_Edge]] = {}
        for ins, prop, positions, targets in found:
            for k, target in zip(positions, targets, strict=True):
                entity = ins.entities[k]
                edges.setdefault(id(entity), []).append(_Edge(entity, ins.meta, prop, target))
        level, deferred = _layers(edges)
    deferred_slots = {(id(e.entity), e.prop.column_index) for e in deferred}
    ordered: list[tuple[int, int, _Insert]] = []
    for position, ins in enumerate(plan.inserts):
        if level is None:
            depths = _two_layers(len(ins.entities), referencing.get(id(ins)))
        else:
            get = level.get
            depths = [get(id(entity), 0) for entity in ins.entities]
        if not depths or min(depths) == max(depths):
            ordered.append((depths[0] if depths else 0, position, ins))
            continue
        count = len(ins.entities)
        width = len(ins.flat) // count
        layers: dict[int, list[int]] = {}
        for k, depth in enumerate(depths):
            layers.setdefault(depth, []).append(k)
        for depth, rows in layers.items():
            part = _Insert(
                ins.meta, ins.skip_pk, [ins.entities[k] for k in rows],
                [v for k in rows for v in ins.flat[k * width : (k + 1) * width]],
                [ins.snapshots[k] for k in rows],
            )
            ordered.append((depth, position, part))
    ordered.sort(key=lambda item: (item[0], item[1]))
    plan.inserts = [part for _, _, part in ordered]
    for edge in deferred:
        conv = edge.prop.type.pk_to_db
        plan.fixups.append((edge.meta, edge.entity, edge.prop.column_index, edge.target, conv))
    _pending_in_inserts(plan, deferred_slots)


def _targets_are_sources(found: list[tuple[Any, Any, list[int], list[Any]]]) -> bool:
    """Whether a new entity referenced by a new row may itself reference a new row. By
    class first: a target is an entity of exactly its relation's target class, so where
    none of the classes of the inserts' entities is a target class (authors referenced by
    articles, say) no target can be among them; else by identity."""
    inserts = {id(ins): ins for ins, _, _, _ in found}
    sources = {cls for ins in inserts.values() for cls in set(map(type, ins.entities))}
    if not any(prop.relation.target in sources for _, prop, _, _ in found):
        return False
    ids = {id(ins.entities[k]) for ins, _, positions, _ in found for k in positions}
    return not all(ids.isdisjoint(map(id, targets)) for _, _, _, targets in found)


def _two_layers(count: int, referencing: list[list[int]] | None) -> list[int]:
    """The layer of each of an insert's `count` rows when targets reference nothing new: 1
    at the positions referencing a new row (a list per relation), else 0. A single value
    when all rows share it."""
    if not referencing or not count:
        return [0] if count else []
    if any(len(positions) == count for positions in referencing):
        return [1]  # (positions are distinct rows, so one list of all of them: every row)
    rows = set().union(*referencing)
    return [1 if k in rows else 0 for k in range(count)]


def _layers(edges: dict[int, list[_Edge]]) -> tuple[dict[int, int], list[_Edge]]:
    """Each new entity's layer (one more than the deepest new entity it references) and the
    references no order can honour: the nullable ones inside a cycle (among strongly
    connected entities, looked for only when there is a cycle), written later by an UPDATE.
    A cycle left after those (NOT NULL foreign keys only) cannot be inserted:
    ValidationError naming it. Iterative, so long chains need no deep recursion."""
    if not any(id(edge.target) in edges for out in edges.values() for edge in out):
        # the common shape: new rows referencing new rows that reference none: two layers
        return dict.fromkeys(edges, 1), []
    level, stuck = _sorted(edges, frozenset())
    if not stuck:
        return level, []
    component = _components({source: edges[source] for source in stuck})
    deferred = [
        edge
        for source in stuck
        for edge in edges[source]
        if edge.nullable and component.get(id(edge.target)) == component[source]
    ]
    skip = frozenset(id(edge) for edge in deferred)
    level, stuck = _sorted(edges, skip)
    if stuck:
        raise _cycle([
            edge
            for source in stuck
            for edge in edges[source]
            if id(edge) not in skip and id(edge.target) in stuck
        ])
    return level, deferred


def _sorted(
    edges: dict[int, list[_Edge]], skip: frozenset[int]
) -> tuple[dict[int, int], set[int]]:
    """Kahn's topological sort, ignoring the edges in `skip`: the layers, and the entities
    left in (or behind) a cycle."""
    deps: dict[int, int] = {}
    dependents: dict[int, list[int]] = {}
    level: dict[int, int] = {}
    for source, out in edges.items():
        level[source] = 0
        for edge in out:
            target = id(edge.target)
            level[target] = 0
            if skip and id(edge) in skip:
                continue
            deps[source] = deps.get(source, 0) + 1
            dependents.setdefault(target, []).append(source)
    ready = [node for node in level if node not in deps]
    while ready:
        node = ready.pop()
        depth = level[node] + 1
        for dependent in dependents.get(node, ()):
            if level[dependent] < depth:
                level[dependent] = depth
            left = deps[dependent] - 1
            deps[dependent] = left
            if not left:
                ready.append(dependent)
    return level, {node for node, left in deps.items() if left}


def _components(edges: dict[int, list[_Edge]]) -> dict[int, int]:
    """Tarjan's strongly connected components of the reference graph, iteratively:
    entity id -> component number."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    component: dict[int, int] = {}
    counter = 0
    components = 0
    nodes = list(edges)
    for out in edges.values():
        nodes.extend(id(edge.target) for edge in out)
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, 0)]
        while work:
            node, i = work[-1]
            out = edges.get(node, ())
            if i < len(out):
                work[-1] = (node, i + 1)
                nxt = id(out[i].target)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = components
                    if member == node:
                        break
                components += 1
    return component


def _cycle(path: list[_Edge]) -> ValidationError:
    shown = ", ".join(
        f"{e.meta.class_name}.{e.prop.name} -> {type(e.target).__name__}" for e in path
    )
    first = path[0] if path else None
    return ValidationError(
        f"New entities reference each other in a cycle of NOT NULL foreign keys ({shown}): "
        f"no insert order can write them. Make one of these relations nullable (it is then "
        f"written with a later UPDATE), or flush the entities in two steps. Nothing of this "
        f"flush was written.",
        entity=first.entity if first else None,
        property=first.prop.name if first else None,
    )


def _flat_position(ins: Any, column: int) -> int:
    """Where column `column` is in each row of an insert's flat parameters (a generated
    key is left out of them)."""
    return column - 1 if ins.skip_pk and column > ins.meta.pk_index else column


def _pending_in_inserts(plan: _FlushPlan, deferred: set[tuple[int, int]]) -> None:
    """Record the slots of the insert parameters that wait for a generated key, a relation
    column at a time (the core finds them); slots of deferred references get NULL (the
    fixup UPDATE writes them)."""
    for ins in plan.inserts:
        meta = ins.meta
        if not meta.relations or not ins.entities:
            continue
        flat = ins.flat
        width = len(flat) // len(ins.entities)
        for prop in meta.relations:
            c = prop.column_index
            position = _flat_position(ins, c)
            rows, targets = core.pending_slots(flat, width, position, PendingKey)
            if not rows:
                continue
            conv = prop.type.pk_to_db
            plan.snapshot_slots.append((ins.snapshots, rows, c, targets, conv))
            if deferred:
                kept = [
                    i for i, k in enumerate(rows) if (id(ins.entities[k]), c) not in deferred
                ]
                for k in rows:
                    if (id(ins.entities[k]), c) in deferred:
                        flat[k * width + position] = None  # written by the fixup UPDATE
                rows = [rows[i] for i in kept]
                targets = [targets[i] for i in kept]
            if rows:
                plan.pending.append(([k * width + position for k in rows], targets, flat, conv))


def pending_updates(uow: UnitOfWork, plan: _FlushPlan) -> None:
    """Updates re-pointing a relation to a new entity: their parameters wait for its key
    (updates run after every insert)."""
    for upd in plan.updates:
        meta = upd.meta
        if not meta.relations:
            continue
        for j, c in enumerate(upd.changed):
            prop = meta.columns[c]
            if prop.relation is None:
                continue
            for row, params in enumerate(upd.params):
                value = params[j]
                if type(value) is not PendingKey:
                    continue
                if not uow.is_new(value.entity):
                    raise _not_persisted(meta, upd.entities[row], prop, value.entity)
                if type(params) is not list:
                    params = upd.params[row] = list(params)
                conv = prop.type.pk_to_db
                plan.pending.append(([j], [value.entity], params, conv))
                plan.snapshot_slots.append((upd.snapshots, [row], c, [value.entity], conv))


def _unique_keys(upd: Any) -> list[int]:
    """Where, among an update's changed columns, its unique foreign keys (owning
    one-to-ones) are."""
    columns = upd.meta.columns
    return [
        j for j, c in enumerate(upd.changed)
        if columns[c].unique and columns[c].relation is not None
    ]


def unlink_first(plan: _FlushPlan) -> None:
    """Rows whose unique foreign key (an owning OneToOne) is set to NULL are updated before
    the rows of the same table that take a value: a profile moved to a member whose own
    profile is unlinked in the same flush must not hold that member twice in between (a
    unique constraint is checked row by row). Updates that only unlink run before the
    inserts too (a new profile for a member whose old one is unlinked). Only updates of
    such columns are looked at."""
    from .unit_of_work import _Update

    out: list[_Update] = []
    for upd in plan.updates:
        meta = upd.meta
        unique = _unique_keys(upd) if meta.relations else None
        if not unique:
            out.append(upd)
            continue
        first = [k for k, params in enumerate(upd.params) if any(params[j] is None for j in unique)]
        if not first:
            out.append(upd)
            continue
        if len(first) == len(upd.params):
            upd.early = len(unique) == len(upd.changed) and meta.version is None
            out.append(upd)
            continue
        chosen = set(first)
        for rows in (first, [k for k in range(len(upd.params)) if k not in chosen]):
            out.append(_Update(
                meta, upd.changed, [upd.entities[k] for k in rows],
                [upd.snapshots[k] for k in rows], [upd.params[k] for k in rows],
            ))  # fmt: skip
        # only unlinking: run before the inserts too (a new profile for the same member)
        out[-2].early = len(unique) == len(upd.changed) and meta.version is None
    plan.updates = out


def rekey_first(plan: _FlushPlan) -> None:
    """Updates that change a row's primary key run before the inserts: a new row may
    reference the entity by its new key (`article.id = 99; Comment(article=article)`), which
    the row must hold by then (the insert failed on the foreign key, on every retry). A
    row that also points a relation at a new entity is written in two: the key and the
    other columns before the inserts (the version counted and checked there, on a
    versioned table), the reference after the insert that gives its key, `where` the new
    key (the row is this transaction's by then: no version to check or count again)."""
    if not plan.inserts:
        return
    from .unit_of_work import _Update

    out: list[_Update] = []
    for upd in plan.updates:
        meta = upd.meta
        out.append(upd)
        if upd.early or meta.pk_index not in upd.changed:
            continue
        width = len(upd.changed)
        waiting: dict[tuple[int, ...], list[int]] = {}
        for k, params in enumerate(upd.params):
            at = tuple(j for j in range(width) if type(params[j]) is PendingKey)
            if at:
                waiting.setdefault(at, []).append(k)
        if not waiting:
            upd.early = True
            continue
        out.pop()
        pk_at = upd.changed.index(meta.pk_index)
        ready = [k for k in range(len(upd.params)) if not any(k in r for r in waiting.values())]
        if ready:
            whole = _part(upd, ready, range(width))
            whole.early = True
            out.append(whole)
        for at, rows in waiting.items():
            now = [j for j in range(width) if j not in at]
            early = _part(upd, rows, now)
            early.early = True
            late = _part(upd, rows, at)
            late.versioned = False
            for k, params in zip(rows, late.params, strict=True):
                # `where` the row's key by then, the new one (and no version)
                params[len(at):] = [upd.params[k][pk_at]]
            out += [early, late]  # in this order: the late one's snapshots are completed
    plan.updates = out


def _part(upd: Any, rows: list[int], columns: Any) -> Any:
    """An UPDATE of some of `upd`'s rows and changed columns (positions in `upd.changed`),
    `where` the key (and version) it had (its parameters a list: the pending keys are
    filled in it)."""
    from .unit_of_work import _Update

    columns = list(columns)
    width = len(upd.changed)
    return _Update(
        upd.meta, tuple(upd.changed[j] for j in columns), [upd.entities[k] for k in rows],
        [upd.snapshots[k] for k in rows],
        [[*(upd.params[k][j] for j in columns), *upd.params[k][width:]] for k in rows],
    )  # fmt: skip


def release_taken(plan: _FlushPlan) -> None:
    """Partners swapped in one flush (`p1.member = m2; p2.member = m1`): each row takes the
    value another row of the same table gives up, and a unique constraint is checked row by
    row, so whichever is written first would collide; so would a new row inserted with the
    value an updated row gives up (`bob.profile = ann.profile; ann.profile = Profile(...)`).
    The rows whose stored value another row takes have that column set to NULL first, in an
    update of its own run before the others and the inserts (the rows still get their new
    value in their own update). Only nullable unique
    foreign keys, of tables without a version column, are released so; otherwise the
    database's unique error stands."""
    from .unit_of_work import _Update

    taken: dict[tuple[type, int], set[Any]] = {}
    candidates: list[tuple[_Update, list[int]]] = []
    for upd in plan.updates:
        meta = upd.meta
        if not meta.relations or meta.version is not None or meta.pk_index in upd.changed:
            continue
        at = [j for j in _unique_keys(upd) if meta.columns[upd.changed[j]].nullable]
        if not at:
            continue
        candidates.append((upd, at))
        for j in at:
            values = taken.setdefault((meta.cls, upd.changed[j]), set())
            values.update(params[j] for params in upd.params if params[j] is not None)
    if not candidates:
        return
    for ins in plan.inserts:
        # a new row taking the value an updated row gives up (`bob.profile = ann.profile;
        # ann.profile = Profile(...)`): inserted before the updates run, it would collide
        if not ins.entities:
            continue
        width = len(ins.flat) // len(ins.entities)
        for (cls, column), values in taken.items():
            if cls is not ins.meta.cls:
                continue
            at = _flat_position(ins, column)
            for start in range(0, len(ins.flat), width):
                value = ins.flat[start + at]
                if value is not None and type(value) is not PendingKey:
                    values.add(value)
    first: list[_Update] = []
    for upd, at in candidates:
        meta = upd.meta
        release: dict[tuple[int, ...], list[int]] = {}
        for k, entity in enumerate(upd.entities):
            snap = entity._orm_snap
            if type(snap) is not tuple:
                continue
            columns = tuple(
                upd.changed[j] for j in at
                if snap[upd.changed[j]] is not None
                and snap[upd.changed[j]] != upd.params[k][j]
                and snap[upd.changed[j]] in taken[(meta.cls, upd.changed[j])]
            )
            if columns:
                release.setdefault(columns, []).append(k)
        for columns, rows in release.items():
            nulls = (None,) * len(columns)
            early = _Update(
                meta, columns, [upd.entities[k] for k in rows],
                [upd.snapshots[k] for k in rows], [nulls + (upd.params[k][-1],) for k in rows],
            )
            early.early = True
            first.append(early)
    if first:
        plan.updates[:0] = first


def pending_reference(
    uow: UnitOfWork, plan: _FlushPlan, meta: EntityMetadata, ref: Any, names: list[str],
    params: list[Any],
) -> None:
    """An uninitialized reference whose relation was pointed at a new entity: its UPDATE
    waits for that entity's key, like any other update."""
    for at, (name, value) in enumerate(zip(names, params, strict=False)):
        if type(value) is not PendingKey:
            continue
        prop = meta.properties[name]
        if not uow.is_new(value.entity):
            raise _not_persisted(meta, ref, prop, value.entity)
        plan.pending.append(([at], [value.entity], params, prop.type.pk_to_db))


def order_deletes(plan: _FlushPlan, ranks: dict[type, int]) -> None:
    """Children first: a table's rows are deleted before those of the tables it
    references."""
    plan.deletes.sort(key=lambda d: -ranks.get(d.meta.cls, 0))


def resolve(plan: _FlushPlan) -> None:
    """Fill in the slots whose keys are now known (called before each statement that may
    need them)."""
    keys = plan.keys
    remaining = []
    for slots, targets, holder, conv in plan.pending:
        waiting = core.fill_keys(holder, slots, targets, keys, conv)
        if waiting is not None:
            remaining.append((waiting[0], waiting[1], holder, conv))
    plan.pending = remaining


def patch_snapshots(plan: _FlushPlan) -> None:
    """After the commit: the snapshots hold the keys written, not the placeholders."""
    keys = plan.keys
    for snapshots, rows, c, targets, conv in plan.snapshot_slots:
        core.patch_keys(snapshots, rows, c, targets, keys, conv)

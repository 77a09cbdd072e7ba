"""The pure-Python twin of `orm._diff`: same functions, same results, no compiler needed.

The compiled module is what ships and what is optimised; this one exists so the package works
where no C compiler is available (and `ORM_PURE_PYTHON=1` selects it for testing). Keep the two
line-for-line equivalent: the core test suite runs against both.

Terms used by both:

- *plan*: per entity type, built once at discovery: the attribute names in column order, the
  primary key's position and, per column, the converters, comparator, accepted Python types
  and nullability.
- *snapshot*: a tuple, in column order, of the database values the entity was last loaded
  with or written as (for a loaded entity, the very row tuple `sqlite3` returned).
"""

from __future__ import annotations

from typing import Any

from ._markers import REFERENCE, UNLOADED

BACKEND = "python"

_object_setattr = object.__setattr__
_object_new = object.__new__


class Plan:
    """What the hot loops need to know about one entity type, computed once."""

    __slots__ = (
        "cls",
        "names",
        "n",
        "pk_index",
        "to_python",
        "to_db",
        "compare",
        "accepts",
        "nullable",
        "has_mutable",
        "on_invalid",
        "kinds",
    )

    def __init__(
        self,
        cls: type,
        names: tuple[str, ...],
        pk_index: int,
        to_python: tuple[Any, ...],
        to_db: tuple[Any, ...],
        compare: tuple[Any, ...],
        accepts: tuple[Any, ...],
        nullable: tuple[bool, ...],
        has_mutable: bool,
        on_invalid: Any,
        kinds: tuple[int, ...] | None = None,
    ) -> None:
        self.cls = cls
        self.names = names
        self.n = len(names)
        self.pk_index = pk_index
        self.to_python = to_python
        self.to_db = to_db
        self.compare = compare
        self.accepts = accepts
        self.nullable = nullable
        self.has_mutable = has_mutable
        self.on_invalid = on_invalid
        #: the compiled core converts these column kinds in C; here the types' own
        #: converters do the same work
        self.kinds = kinds


def tracked_setattr(self: Any, name: str, value: Any) -> None:
    """`__setattr__` of every entity class: records a managed entity as dirty, so that a flush
    compares only what was written to."""
    _object_setattr(self, name, value)
    uow = self._orm_uow
    if uow is not None:
        uow.dirty[id(self)] = self


def init_entity(entity: Any, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
    """The body of every generated `__init__`: set the properties of a new entity, without
    the dirty tracking (a new entity is not managed yet)."""
    for name, value in zip(names, values, strict=True):
        _object_setattr(entity, name, value)


def _fill(plan: Plan, entity: Any, row: tuple) -> None:
    names = plan.names
    to_python = plan.to_python
    for i in range(plan.n):
        value = row[i]
        if value is UNLOADED:
            continue
        conv = to_python[i]
        if conv is not None and value is not None:
            value = conv(value)
        _object_setattr(entity, names[i], value)


def hydrate(
    plan: Plan,
    rows: list[tuple],
    identity_map: dict | None,
    uow: Any,
    refresh: bool,
) -> list[Any]:
    """Rows (in plan column order) to entities, snapshot taken in the same pass.

    A row whose primary key the identity map already holds returns that instance: untouched,
    unless `refresh` is set or the instance is an uninitialized reference, in which case it is
    filled from the row. `identity_map=None` builds detached instances.
    """
    out: list[Any] = []
    append = out.append
    cls = plan.cls
    pk_index = plan.pk_index
    pk_conv = plan.to_python[pk_index]
    dirty = uow.dirty if uow is not None else None
    for row in rows:
        if identity_map is not None:
            pk = row[pk_index]
            if pk_conv is not None and pk is not None:
                pk = pk_conv(pk)
            existing = identity_map.get(pk)
            if existing is not None:
                if refresh or existing._orm_snap is REFERENCE:
                    _fill(plan, existing, row)
                    _object_setattr(existing, "_orm_snap", row)
                    dirty.pop(id(existing), None)
                append(existing)
                continue
        entity = _object_new(cls)
        _fill(plan, entity, row)
        if identity_map is not None:
            _object_setattr(entity, "_orm_snap", row)
            _object_setattr(entity, "_orm_uow", uow)
            identity_map[pk] = entity
        append(entity)
    return out


def _db_value(plan: Plan, entity: Any, i: int, value: Any) -> Any:
    """Validate `value` for column `i` and convert it to its database form."""
    if value is None:
        if not plan.nullable[i]:
            plan.on_invalid(entity, i, value)
        return None
    accepts = plan.accepts[i]
    if accepts is not None and not isinstance(value, accepts):
        plan.on_invalid(entity, i, value)
    conv = plan.to_db[i]
    return value if conv is None else conv(value)


def insert_rows(plan: Plan, entities: list[Any], skip_pk: bool) -> list[tuple]:
    """The INSERT parameters of new entities (all columns in plan order, the primary key left
    out when the database generates it), every value validated."""
    names = plan.names
    pk_index = plan.pk_index
    rows = []
    for entity in entities:
        values = []
        for i in range(plan.n):
            if i == pk_index and skip_pk:
                continue
            values.append(_db_value(plan, entity, i, getattr(entity, names[i], None)))
        rows.append(tuple(values))
    return rows


def finish_inserts(
    plan: Plan,
    entities: list[Any],
    rows: list[tuple],
    skip_pk: bool,
    first_id: int,
    uow: Any,
    identity_map: dict,
) -> None:
    """After a committed INSERT: set generated keys (consecutive from `first_id`), take the
    snapshots, attach the entities to the Unit of Work and enter them in its identity map."""
    pk_index = plan.pk_index
    pk_name = plan.names[pk_index]
    for k, entity in enumerate(entities):
        row = rows[k]
        if skip_pk:
            pk = first_id + k
            _object_setattr(entity, pk_name, pk)
            row = row[:pk_index] + (pk,) + row[pk_index:]
        else:
            pk = getattr(entity, pk_name)
        _object_setattr(entity, "_orm_snap", row)
        _object_setattr(entity, "_orm_uow", uow)
        identity_map[pk] = entity


def apply_snapshots(entities: list[Any], snapshots: list[tuple]) -> None:
    """After a committed UPDATE: the written values become the new snapshots."""
    for k, entity in enumerate(entities):
        _object_setattr(entity, "_orm_snap", snapshots[k])


def detach(entities: Any) -> None:
    """Entities leave their Unit of Work: no more tracking, no snapshot."""
    for entity in entities:
        _object_setattr(entity, "_orm_uow", None)
        _object_setattr(entity, "_orm_snap", None)


def compute_changes(plan: Plan, entities: Any) -> dict[tuple[int, ...], list[list]]:
    """Compare each managed entity with its snapshot.

    Returns the entities that changed, grouped by the set of changed columns (so each group is
    one UPDATE statement run with executemany): ``{changed_column_indexes: [entities,
    new_snapshots, params]}`` where params are the changed values then the primary key, in
    database form. Entities without changes are left out; new entities and references are
    skipped (they have no snapshot to compare with).
    """
    groups: dict[tuple[int, ...], list[list]] = {}
    names = plan.names
    pk_index = plan.pk_index
    to_db = plan.to_db
    compare = plan.compare
    n = plan.n
    for entity in entities:
        snap = entity._orm_snap
        if snap is None or snap is REFERENCE:
            continue
        changed: list[int] | None = None
        values: list[Any] | None = None
        for i in range(n):
            if i == pk_index:
                continue
            old = snap[i]
            if old is UNLOADED:
                continue
            current = getattr(entity, names[i], UNLOADED)
            if current is UNLOADED:
                continue
            if to_db[i] is not None:
                new = _db_value(plan, entity, i, current)
            else:
                new = current
            if new is old:
                continue
            cmp = compare[i]
            if (new == old) if cmp is None else cmp(new, old):
                continue
            if to_db[i] is None:
                _db_value(plan, entity, i, current)
            if changed is None:
                changed = []
                values = list(snap)
            changed.append(i)
            values[i] = new
        if changed is None:
            continue
        key = tuple(changed)
        group = groups.get(key)
        if group is None:
            group = groups[key] = [[], [], []]
        group[0].append(entity)
        group[1].append(tuple(values))
        group[2].append(tuple([values[i] for i in changed]) + (snap[pk_index],))
    return groups


def snapshot(plan: Plan, entity: Any) -> tuple:
    """The entity's current state in database form (no validation), in column order."""
    names = plan.names
    to_db = plan.to_db
    out = []
    for i in range(plan.n):
        value = getattr(entity, names[i], None)
        conv = to_db[i]
        out.append(value if conv is None or value is None else conv(value))
    return tuple(out)

"""The pure-Python twin of `orm._diff`: same functions, same results, no compiler needed.

The compiled module is what ships and what is optimised; this one exists so the package works
where no C compiler is available (and `ORM_PURE_PYTHON=1` selects it for testing). Keep the two
equivalent: the core test suite runs against both, and tests/core/test_diff_differential.py
feeds both the same random operations and compares results, errors and entity state. Bad
input raises the same errors in both (the compiled core checks it so as not to crash).

Terms used by both:

- *plan*: per entity type, built once at discovery: the attribute names in column order, the
  primary key's position and, per column, the converters, comparator, accepted Python types,
  nullability and kind.
- *kind* of a column: 0 (generic) columns keep their *database* value in the snapshot and are
  compared in database form (with the type's `compare` when it has one): that is how JSON
  documents changed in place and custom types are detected. Columns of the immutable built-in
  value types (1 datetime, 2 boolean, 3 date, time, Decimal, UUID, Enum) keep the *Python*
  value in the snapshot and are compared by equality, so a loaded entity does not hold its
  value twice (the compiled core also converts kinds 1 and 2 in C). 4 (blob) columns are
  generic ones whose `bytes` values the compiled core passes through without calling the
  type's to_db (which snapshots an immutable copy of a bytearray or memoryview).
- *targets* (optional, per column): for a relation's foreign key column, what hydration
  needs to turn the key into the target entity (see `_reference`); such a column is generic
  (kind 0) and its snapshot keeps the key, its to_db turns the entity back into the key.
- *snapshot*: a tuple, in column order, of the values the entity was last loaded with or
  written as. For a loaded entity it is the very row tuple `sqlite3` returned (the compiled
  core patches the converted values into it).
- *taken on write* (`Plan.lazy_snapshot`): where every column's held value is its snapshot
  value (no relation, nothing changeable in place, no conversion but to an immutable
  built-in value), a complete row loaded into the identity map keeps no tuple: the entity's
  `_orm_snap` is its plan, which says "the attributes are the snapshot". The first write
  (`tracked_setattr`) takes the tuple from the attributes before it changes them, and
  `snapshot()` builds it for whoever asks. That saves the row tuple of every entity only
  read (80 bytes for 5 columns), as SQLAlchemy keeps committed values only for what changed.
  It holds while nothing writes a column of such an entity without `tracked_setattr`: the
  ORM's own writes take the snapshot first (or set a tuple). An inserted entity keeps the
  tuple `insert_rows` took: what the INSERT bound may differ from the attributes (a type's
  `to_db`, a default read through the class, a handler's write during the flush).
"""

from __future__ import annotations

import operator
from _thread import get_ident

from ._markers import DELETED, MISSING, REFERENCE, UNLOADED, is_set
from ._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

BACKEND = "python"

_INT64_MIN = -(2**63)  # the integers sqlite3 can bind (orm.types.INT64_MIN / MAX)
_INT64_MAX = 2**63 - 1

_object_setattr = object.__setattr__
_object_new = object.__new__

#: column kinds whose snapshot keeps the Python value (see "kind" above)
_PYTHON_VALUED = (1, 2, 3)
_MAX_KIND = 4

# Bad input raises what the compiled core raises (which checks it so as not to crash): the
# same exception types, and these messages
_UNINITIALIZED = "this Plan was never initialized: build it with Plan(...)"


def _expect(value: Any, expected: type, name: str) -> None:
    """The check (and message) of a typed argument of the compiled core."""
    if type(value) is not expected:
        raise TypeError(
            f"Argument '{name}' has incorrect type (expected {expected.__name__}, got "
            f"{type(value).__name__})"
        )


def _expect_plan(plan: Any) -> None:
    if type(plan) is not Plan:
        raise TypeError(
            f"Argument 'plan' has incorrect type (expected {__name__}.Plan, got "
            f"{type(plan).__name__})"
        )
    if not hasattr(plan, "n"):
        raise ValueError(_UNINITIALIZED)


def _expect_identity_map(identity_map: Any) -> None:
    if identity_map is not None and type(identity_map) is not dict:
        raise TypeError(
            f"Argument 'identity_map' has incorrect type (expected dict or None, got "
            f"{type(identity_map).__name__})"
        )


def _name_of(cls: Any) -> str:
    return getattr(cls, "__name__", None) or repr(cls)


def _check_snapshot(plan: Plan, snap: Any, where: str) -> None:
    """A snapshot must be a tuple of the plan's width (anything else would be read out of
    bounds by the compiled core)."""
    if type(snap) is not tuple:
        raise TypeError(
            f"{where}: the snapshot of a {_name_of(plan.cls)} is a {type(snap).__name__}, "
            f"not a tuple"
        )
    if len(snap) != plan.n:
        raise ValueError(
            f"{where}: the snapshot of a {_name_of(plan.cls)} has {len(snap)} values, its "
            f"plan has {plan.n} columns"
        )


class Plan:
    """What the hot loops need to know about one entity type, computed once.

    Validated when built and read-only afterwards (as the compiled one, whose loops index
    its tuples without bounds checks)."""

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
        "python_valued",
        "targets",
        "keys",
        "recheck",
        "lazy_snapshot",
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
        targets: tuple[Any, ...] | None = None,
        keys: tuple[Any, ...] | None = None,
        recheck: tuple[Any, ...] | None = None,
        lazy_snapshot: bool = False,
    ) -> None:
        _expect(names, tuple, "names")
        pk_index = operator.index(pk_index)
        columns = {
            "to_python": to_python,
            "to_db": to_db,
            "compare": compare,
            "accepts": accepts,
            "nullable": nullable,
        }
        for field, column in columns.items():
            _expect(column, tuple, field)
        if kinds is not None:
            _expect(kinds, tuple, "kinds")
        has_mutable = bool(has_mutable)
        n = len(names)
        where = f"Plan of {_name_of(cls)}"
        if n > 512:
            raise ValueError("an entity may have at most 512 columns")
        for name in names:
            if type(name) is not str:
                raise TypeError(
                    f"{where}: column names must be str, got {type(name).__name__} {name!r}"
                )
        if kinds is None:
            kinds = (0,) * n
        columns["kinds"] = kinds
        for field, column in columns.items():
            if len(column) != n:
                raise ValueError(f"{where}: {field} has {len(column)} entries for {n} columns")
        for i, kind in enumerate(kinds):
            if type(kind) is not int or not 0 <= kind <= _MAX_KIND:
                raise ValueError(
                    f"{where}: the kind of column {names[i]} is {kind!r}, not one of 0 to 4"
                )
        if not 0 <= pk_index < n:
            raise ValueError(f"{where}: pk_index {pk_index} is not a column index (0 to {n - 1})")
        if targets is not None:
            _check_targets(where, names, targets, to_python, kinds)
        if keys is not None:
            _check_keys(where, names, keys, to_db)
        if recheck is not None:
            _check_recheck(where, names, recheck)
        lazy_snapshot = bool(lazy_snapshot)
        if lazy_snapshot:
            _check_lazy(where, names, to_python, kinds, has_mutable, targets, recheck)
        init = _object_setattr
        init(self, "cls", cls)
        init(self, "names", names)
        init(self, "n", n)
        init(self, "pk_index", pk_index)
        init(self, "to_python", to_python)
        init(self, "to_db", to_db)
        init(self, "compare", compare)
        init(self, "accepts", accepts)
        init(self, "nullable", nullable)
        init(self, "has_mutable", has_mutable)
        init(self, "on_invalid", on_invalid)
        init(self, "kinds", kinds)
        init(self, "python_valued", tuple(k in _PYTHON_VALUED for k in kinds))
        init(self, "targets", targets)
        init(self, "keys", keys)
        init(self, "recheck", recheck)
        init(self, "lazy_snapshot", lazy_snapshot)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"attribute '{name}' of '{__name__}.Plan' objects is not writable")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError(f"type '{__name__}.Plan' is not an acceptable base type")


def _check_lazy(
    where: str,
    names: tuple[str, ...],
    to_python: tuple[Any, ...],
    kinds: tuple[int, ...],
    has_mutable: bool,
    targets: Any,
    recheck: Any,
) -> None:
    """A snapshot taken from the attributes is the loaded one only where every held value
    is its snapshot value and nothing changes in place."""
    if has_mutable or targets is not None or recheck is not None:
        raise ValueError(
            f"{where}: lazy_snapshot needs an entity without relations, mutable columns or "
            f"rechecked columns"
        )
    for i, name in enumerate(names):
        # a blob column may hold a bytearray, changed in place
        converted = to_python[i] is not None and kinds[i] not in _PYTHON_VALUED
        if kinds[i] == _MAX_KIND or converted:
            raise ValueError(
                f"{where}: lazy_snapshot needs column {name} to hold its snapshot value "
                f"(no to_python, or kind 1 to 3)"
            )


def _taken(plan: Plan, entity: Any) -> tuple:
    """The snapshot of an entity whose attributes are its snapshot (see "taken on write"):
    their values, UNLOADED for one that is not set (deleted around the entity's own
    `__delattr__`, which takes the snapshot first)."""
    held = getattr(entity, "__dict__", None)
    if held is not None:
        return tuple([held.get(name, UNLOADED) for name in plan.names])
    return tuple([getattr(entity, name, UNLOADED) for name in plan.names])


def snapshot(entity: Any) -> Any:
    """The entity's snapshot: a tuple for a loaded entity (taken from its attributes when
    nothing has written to it since the load, without keeping it); otherwise what
    `_orm_snap` holds (None for a new entity, REFERENCE, DELETED)."""
    snap = entity._orm_snap
    if type(snap) is Plan:
        return _taken(snap, entity)
    return snap


def _check_targets(
    where: str, names: tuple, targets: Any, to_python: tuple, kinds: tuple
) -> None:
    """A relation column's target: (target class, its key's attribute name, the key's
    to_python or None, a wrapper such as Ref or None); its own to_python must be None and
    its kind generic (the snapshot keeps the key as the database returned it)."""
    _expect(targets, tuple, "targets")
    if len(targets) != len(names):
        raise ValueError(f"{where}: targets has {len(targets)} entries for {len(names)} columns")
    for i, target in enumerate(targets):
        if target is None:
            continue
        if (
            type(target) is not tuple
            or len(target) != 4
            or not isinstance(target[0], type)
            or type(target[1]) is not str
        ):
            raise TypeError(
                f"{where}: the target of column {names[i]} must be a tuple (class, key "
                f"attribute, key converter or None, wrapper or None), got {target!r}"
            )
        if to_python[i] is not None or kinds[i] != 0:
            raise ValueError(
                f"{where}: column {names[i]} is a relation: its to_python must be None and "
                f"its kind 0"
            )


def _check_keys(where: str, names: tuple, keys: Any, to_db: tuple) -> None:
    """A relation column whose target's key goes to the database as it is: (target class,
    its key's attribute name, the class standing for a key still to be generated). A value
    of exactly that class is turned into its key (or a pending key) without the column's
    to_db, which still handles everything else (a Ref, a subclass, a wrong value)."""
    _expect(keys, tuple, "keys")
    if len(keys) != len(names):
        raise ValueError(f"{where}: keys has {len(keys)} entries for {len(names)} columns")
    for i, key in enumerate(keys):
        if key is None:
            continue
        if (
            type(key) is not tuple
            or len(key) != 3
            or not isinstance(key[0], type)
            or type(key[1]) is not str
            or not isinstance(key[2], type)
        ):
            raise TypeError(
                f"{where}: the keys entry of column {names[i]} must be a tuple (target "
                f"class, key attribute, pending key class), got {key!r}"
            )
        if to_db[i] is None:
            raise ValueError(
                f"{where}: column {names[i]} has a keys entry but no to_db to fall back on"
            )


def _reference(target: tuple, value: Any, maps: dict | None, uow: Any) -> Any:
    """A foreign key read from the database -> the target entity: the one the identity map
    holds, else an uninitialized reference (entered in the map; detached when `maps` is
    None), wrapped when the property holds a Ref."""
    cls, pk_name, conv, wrapper = target
    key = value if conv is None else conv(value)
    found = None
    if maps is not None:
        im = maps.get(cls)
        if im is None:
            im = maps[cls] = {}
        found = im.get(key)
    if found is None:
        found = _object_new(cls)
        _object_setattr(found, pk_name, key)
        _object_setattr(found, "_orm_snap", REFERENCE)
        _object_setattr(found, "_orm_uow", uow if maps is not None else None)
        if maps is not None:
            im[key] = found
    return found if wrapper is None else wrapper(found)


def tracked_setattr(self: Any, name: str, value: Any) -> None:
    """`__setattr__` of every entity class: records a managed entity as dirty, so that a flush
    compares only what was written to; while a flush's handlers may run, notes the value
    it replaces (see `track_assignments`)."""
    if _journals:
        journal = _journals.get(get_ident())
        if journal is not None:
            held = getattr(self, "__dict__", None)  # a class of slots only: its attribute
            old = held.get(name, MISSING) if held is not None else getattr(self, name, MISSING)
            journal.append((self, name, old))
    snap = getattr(self, "_orm_snap", None)
    if type(snap) is Plan:  # the first write: the snapshot is what the attributes hold now
        _object_setattr(self, "_orm_snap", _taken(snap, self))
    _object_setattr(self, name, value)
    uow = self._orm_uow
    if uow is not None:
        uow.dirty[id(self)] = self


def tracked_delattr(self: Any, name: str) -> None:
    """`__delattr__` of every entity class, as `tracked_setattr` for a write: `del
    entity.attr` makes a managed entity dirty (the attribute then reads as its class
    default, which the flush writes; without this a `del` alone was never compared and
    never written), takes the snapshot of an entity only read first, so the value deleted
    is still known as the stored one, and is noted in the journal of a flush's handlers,
    which a failed flush puts back."""
    if _journals:
        journal = _journals.get(get_ident())
        if journal is not None:
            held = getattr(self, "__dict__", None)
            old = held.get(name, MISSING) if held is not None else getattr(self, name, MISSING)
            journal.append((self, name, old))
    snap = getattr(self, "_orm_snap", None)
    if type(snap) is Plan:
        _object_setattr(self, "_orm_snap", _taken(snap, self))
    object.__delattr__(self, name)
    uow = self._orm_uow
    if uow is not None:
        uow.dirty[id(self)] = self


def init_entity(entity: Any, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
    """The body of every generated `__init__`: set the properties of a new entity, without
    the dirty tracking (a new entity is not managed yet).

    The ORM's own two attributes are set too, at once: CPython 3.11 keeps an instance's
    attributes inline only while it gains at most one attribute after creation; a second
    one turns them into a 464-byte dict (measured), which the flush would otherwise cause.
    """
    if type(names) is not tuple:
        _expect(names, tuple, "names")
    if type(values) is not tuple:
        _expect(values, tuple, "values")
    if len(names) != len(values):
        raise ValueError(f"init_entity: {len(names)} names but {len(values)} values")
    for name, value in zip(names, values, strict=True):
        _object_setattr(entity, name, value)
    _object_setattr(entity, "_orm_snap", None)
    _object_setattr(entity, "_orm_uow", None)
    if _births:
        births = _births.get(get_ident())
        if births is not None:
            births.add(id(entity))


#: by thread: the entities made while a flush's handlers may run (see `track_births`)
_births: dict[int, set[int]] = {}


def track_births(births: set[int] | None) -> set[int] | None:
    """From now on note in `births` (None: nowhere) the id of every entity this thread
    makes, returning what was noted in before. A flush with event handlers tracks them: a
    failed flush forgets the new entities its handlers made (they make them again when it
    is retried) and enrolls again those made before it, which a handler's link made join
    it. By thread: two threads' flushes must not note each other's entities."""
    if births is not None and type(births) is not set:
        raise TypeError(f"track_births: births must be a set or None, not {type(births).__name__}")
    ident = get_ident()
    previous = _births.pop(ident, None)
    if births is not None:
        _births[ident] = births
    return previous


#: by thread: where assignments to entities are noted while a flush's handlers may run
_journals: dict[int, list[tuple[Any, str, Any]]] = {}


def track_assignments(journal: list[Any] | None) -> list[Any] | None:
    """From now on append to `journal` (None: nowhere) `(entity, name, value it had or
    MISSING)` for every assignment to an entity's attribute in this thread, returning what
    was noted in before. A flush with event handlers notes them: a failed flush puts back
    what its handlers assigned to any entity (`post.comment_count += 1` in a comment's
    `before_create`), which the retry's handlers assign again."""
    if journal is not None and type(journal) is not list:
        raise TypeError(
            f"track_assignments: journal must be a list or None, not {type(journal).__name__}"
        )
    ident = get_ident()
    previous = _journals.pop(ident, None)
    if journal is not None:
        _journals[ident] = journal
    return previous


def _fill(plan: Plan, entity: Any, row: tuple, maps: dict | None, uow: Any) -> Any:
    """Set the entity's properties from a row; return its snapshot (the row, with the
    Python-valued columns converted), or the plan for a complete row of a plan whose
    snapshots are taken on write. A relation column's key becomes the target entity (see
    `_reference`); its snapshot keeps the key."""
    names = plan.names
    to_python = plan.to_python
    python_valued = plan.python_valued
    targets = plan.targets
    copy: list[Any] | None = None
    complete = True
    for i in range(plan.n):
        value = row[i]
        if value is UNLOADED:
            complete = False
            continue
        if targets is not None and targets[i] is not None:
            if value is not None:
                value = _reference(targets[i], value, maps, uow)
            _object_setattr(entity, names[i], value)
            continue
        conv = to_python[i]
        if conv is not None and value is not None:
            value = conv(value)
            if python_valued[i]:
                if copy is None:
                    copy = list(row)
                copy[i] = value
        _object_setattr(entity, names[i], value)
    if complete and plan.lazy_snapshot:
        return plan
    return row if copy is None else tuple(copy)


def _has_unloaded(snap: Any) -> bool:
    return type(snap) is tuple and any(v is UNLOADED for v in snap)


def _refill(
    plan: Plan, entity: Any, row: tuple, refresh: bool, dirty: dict, maps: dict | None, uow: Any
) -> None:
    """A row for an entity the identity map already holds.

    With `refresh`, the row overwrites what it read (unflushed changes to those columns are
    discarded). Otherwise only what was not loaded yet is filled (an uninitialized
    reference, or the columns a partial load left out), and a value the user already wrote
    there is kept, so it is still written at the next flush. Columns the row did not read
    keep their previous snapshot values."""
    old_snap = snapshot(entity)
    old_is_tuple = type(old_snap) is tuple
    if old_is_tuple and len(old_snap) != plan.n:
        _check_snapshot(plan, old_snap, "hydrate")
    reference = old_snap is REFERENCE
    complete = True
    snap: list[Any] = []
    for i in range(plan.n):
        value = row[i]
        before = old_snap[i] if old_is_tuple else UNLOADED
        if value is UNLOADED:
            snap.append(before)
            complete = False
            continue
        conv = plan.to_python[i]
        if conv is not None and value is not None:
            value = conv(value)
        elif plan.targets is not None and plan.targets[i] is not None and value is not None:
            value = _reference(plan.targets[i], value, maps, uow)
        name = plan.names[i]
        if refresh:
            _object_setattr(entity, name, value)
        elif reference or before is UNLOADED:
            if i == plan.pk_index or not is_set(entity, name):
                _object_setattr(entity, name, value)
        else:
            snap.append(before)
            continue
        snap.append(value if plan.python_valued[i] else row[i])
    if refresh and complete:
        # every column read again: the attributes are the snapshot
        _object_setattr(entity, "_orm_snap", plan if plan.lazy_snapshot else tuple(snap))
        dirty.pop(id(entity), None)
    else:
        _object_setattr(entity, "_orm_snap", tuple(snap))


def hydrate(
    plan: Plan,
    rows: list[tuple],
    identity_map: dict | None,
    uow: Any,
    refresh: bool,
    extra: list[Any] | None = None,
) -> list[Any]:
    """Rows (in plan column order) to entities, snapshot taken in the same pass.

    A row whose primary key the identity map already holds returns that instance, untouched
    unless `refresh` is set or it was not fully loaded (see `_refill`). `identity_map=None`
    builds detached instances; with an identity map, `uow` is the unit of work whose `dirty`
    the entities report to (None is a TypeError: they would be managed but never flushed).
    The rows are consumed: they become the snapshots. Every row must be a tuple of the
    plan's width (TypeError / ValueError naming the row; the rows before it are hydrated).
    A relation column (the plan's `targets`) becomes the target entity from `uow`'s identity
    maps (`uow.identity_map`, by class), or a reference to it entered there, in this same
    pass; detached (`identity_map=None`) rows get detached references.

    With `extra` (a list), every row has one more value after the plan's columns (the
    owner's key in a populate query): appended to `extra`, in row order, and left out of
    the entity and its snapshot.
    """
    _expect_plan(plan)
    _expect(rows, list, "rows")
    _expect_identity_map(identity_map)
    if extra is not None:
        _expect(extra, list, "extra")
    out: list[Any] = []
    append = out.append
    cls = plan.cls
    pk_index = plan.pk_index
    pk_conv = plan.to_python[pk_index]
    n = plan.n
    width = n if extra is None else n + 1
    dirty = None
    maps = None
    if identity_map is not None:
        if uow is None:
            raise TypeError(
                "hydrate: an identity map needs the unit of work that tracks its entities "
                "(uow is None)"
            )
        dirty = uow.dirty
        if plan.targets is not None:
            maps = uow.identity_map
    for k, row in enumerate(rows):
        if type(row) is not tuple:
            raise TypeError(f"hydrate: row {k} is a {type(row).__name__}, not a tuple")
        if len(row) != width:
            raise ValueError(
                f"hydrate: row {k} has {len(row)} values, the plan of {_name_of(cls)} has "
                f"{n} columns" + ("" if extra is None else " and one extra value")
            )
        if extra is not None:
            extra.append(row[n])
            row = row[:n]
        if identity_map is not None:
            pk = row[pk_index]
            if pk_conv is not None and pk is not None:
                pk = pk_conv(pk)
            existing = identity_map.get(pk)
            if existing is not None:
                old = existing._orm_snap
                if refresh or old is REFERENCE or _has_unloaded(old):
                    _refill(plan, existing, row, refresh, dirty, maps, uow)
                append(existing)
                continue
        entity = _object_new(cls)
        snap = _fill(plan, entity, row, maps, uow)
        if identity_map is not None:
            _object_setattr(entity, "_orm_snap", snap)
            _object_setattr(entity, "_orm_uow", uow)
            identity_map[pk] = entity
        append(entity)
    return out


def _check(plan: Plan, entity: Any, i: int, value: Any) -> None:
    """Raise (through plan.on_invalid) unless `value` is acceptable for column i."""
    if value is None:
        if not plan.nullable[i]:
            plan.on_invalid(entity, i, value)
        return
    accepts = plan.accepts[i]
    if accepts is not None and (
        not isinstance(value, accepts)
        # True is an int to isinstance, not a number to PostgreSQL (see value_problem)
        or (type(value) is bool and bool not in accepts)
    ):
        plan.on_invalid(entity, i, value)
    elif plan.to_db[i] is None and (
        value != value  # NaN: sqlite3 would store NULL
        if isinstance(value, float)
        else isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX
    ):
        plan.on_invalid(entity, i, value)  # see orm.types.unstorable


def _db_value(plan: Plan, entity: Any, i: int, value: Any) -> Any:
    """Validate `value` for column `i` and convert it to its database form."""
    _check(plan, entity, i, value)
    if value is None:
        return None
    keys = plan.keys
    if keys is not None:
        direct = keys[i]
        if direct is not None and type(value) is direct[0]:
            key = getattr(value, direct[1], None)
            if key is not None:
                return key
            pending = object.__new__(direct[2])  # as the compiled core: no __init__ call
            pending.entity = value
            return pending
    conv = plan.to_db[i]
    if conv is None:
        return value
    try:
        return conv(value)
    except (TypeError, ValueError, OverflowError):
        plan.on_invalid(entity, i, value)  # a converter refused it: a ValidationError
        raise


def insert_rows(
    plan: Plan, entities: list[Any], skip_pk: bool
) -> tuple[list[Any], list[tuple]]:
    """The INSERT parameters of new entities, every value validated, and their snapshots
    (taken now, while the values are at hand).

    The parameters are one flat list in database form, row after row, each row all columns
    in plan order (the primary key left out when the database generates it): flat, because
    multi-row INSERT statements bind it in slices. A generated key's snapshot slot is None
    until finish_inserts fills it in.
    """
    _expect_plan(plan)
    _expect(entities, list, "entities")
    names = plan.names
    pk_index = plan.pk_index
    python_valued = plan.python_valued
    flat: list[Any] = []
    snapshots: list[tuple] = []
    for entity in entities:
        snap = []
        for i in range(plan.n):
            if i == pk_index and skip_pk:
                snap.append(None)  # generated: the entity's value (None) is neither bound nor read
                continue
            value = getattr(entity, names[i], None)
            db = _db_value(plan, entity, i, value)
            flat.append(db)
            snap.append(value if python_valued[i] else db)
        snapshots.append(tuple(snap))
    return flat, snapshots


def finish_inserts(
    plan: Plan,
    entities: list[Any],
    snapshots: list[tuple],
    skip_pk: bool,
    first_id: int,
    uow: Any,
    identity_map: dict,
    keys: list[Any] | None = None,
) -> None:
    """After a committed INSERT: set generated keys (`keys`, one per entity, or consecutive
    from `first_id`), attach the entities with the snapshots `insert_rows` took, and enter
    them in the identity map.

    A completed snapshot (its generated key filled in) replaces the one in `snapshots`; no
    other tuple is changed. Nothing is done unless every snapshot is a tuple of the plan's
    width, one per entity."""
    _expect_plan(plan)
    _expect(entities, list, "entities")
    _expect(snapshots, list, "snapshots")
    _expect(identity_map, dict, "identity_map")
    if len(snapshots) != len(entities):
        raise ValueError(
            f"finish_inserts: {len(entities)} entities but {len(snapshots)} snapshots"
        )
    for snap in snapshots:
        _check_snapshot(plan, snap, "finish_inserts")
    if keys is not None:
        _expect(keys, list, "keys")
        if len(keys) != len(entities):
            raise ValueError(f"finish_inserts: {len(entities)} entities but {len(keys)} keys")
    pk_index = plan.pk_index
    pk_name = plan.names[pk_index]
    for k, entity in enumerate(entities):
        snap = snapshots[k]
        if skip_pk:
            pk = first_id + k if keys is None else keys[k]
            _object_setattr(entity, pk_name, pk)
            snap = snapshots[k] = (*snap[:pk_index], pk, *snap[pk_index + 1 :])
        else:
            pk = getattr(entity, pk_name)
        _object_setattr(entity, "_orm_snap", snap)
        _object_setattr(entity, "_orm_uow", uow)
        identity_map[pk] = entity


def apply_snapshots(entities: list[Any], snapshots: list[tuple]) -> None:
    """After a committed UPDATE: the written values become the new snapshots."""
    _expect(entities, list, "entities")
    _expect(snapshots, list, "snapshots")
    if len(snapshots) != len(entities):
        raise ValueError(
            f"apply_snapshots: {len(entities)} entities but {len(snapshots)} snapshots"
        )
    for k, entity in enumerate(entities):
        _object_setattr(entity, "_orm_snap", snapshots[k])


def join_new(entity: Any, uow: Any, group: dict) -> None:
    """A new entity joins a Unit of Work (`persist`): entered in its group of new entities
    (keyed by id) and `_orm_uow` set, without the dirty tracking."""
    if type(group) is not dict:
        _expect(group, dict, "group")
    group[id(entity)] = entity
    _object_setattr(entity, "_orm_uow", uow)


def new_targets(
    entities: list, name: str, target: type, ref: type, new_ids: Any = None,
    new_groups: dict | None = None,
) -> tuple[list[int], list[Any], list[int]]:
    """What a relation of each entity references when that is a new entity (no snapshot):
    its position in `entities` and the target, in order. An entity whose attribute cannot
    be read (not loaded) or holds something else than an entity of exactly the class
    `target` (or a `ref` around one; a subclass's entity is stored in its own table) is
    skipped. With `new_ids` (ids of the entities a flush inserts), or `new_groups` (the
    same entities by class: class -> {id: entity}, as the Unit of Work holds them, looked
    up by the target's class), targets outside them are left out, their positions listed
    apart (the third list)."""
    _expect(entities, list, "entities")
    positions: list[int] = []
    targets: list[Any] = []
    strays: list[int] = []
    for k, entity in enumerate(entities):
        try:
            value = getattr(entity, name)
        except Exception:  # not loaded (a reference, a partial entity)
            continue
        if value is None:
            continue
        if type(value) is ref:
            value = value.entity
        if type(value) is not target:
            continue
        if value._orm_snap is not None:
            continue
        if new_ids is not None and id(value) not in new_ids:
            strays.append(k)
            continue
        if new_groups is not None and id(value) not in new_groups.get(type(value), ()):
            strays.append(k)
            continue
        positions.append(k)
        targets.append(value)
    return positions, targets, strays


def not_held(entities: list, uow: Any) -> dict[int, Any]:
    """The entities `uow` does not hold, by id, in order, each once (a list referencing the
    same entity many times: the targets of a relation)."""
    _expect(entities, list, "entities")
    return {id(e): e for e in entities if e._orm_uow is not uow}


def with_key(entities: list, name: str) -> list:
    """The entities whose attribute `name` (their primary key) is set and not None."""
    _expect(entities, list, "entities")
    return [e for e in entities if getattr(e, name, None) is not None]


def collection_items(
    entities: list, name: str, uow: Any, registry: dict, cascade: bool, direct: bool = False,
    unstored: Any = None, unpaired: list | None = None,
) -> list[Any]:
    """The collections `name` of entities a flush looks at: those with unwritten pairs join
    `registry` (id -> collection) when their owner is in `uow`; with `cascade`, the new
    items of the initialized ones that `uow` does not hold yet are returned (in order, an
    item once). A collection never made is not made here (read from the instance dict),
    unless `direct`: the entities' constructor made theirs (new entities of a generated
    `__init__`), so it is read as an attribute (no instance dict made for the lookup).
    `unstored` (the UNSTORED marker) is given for the owning side of a many-to-many of new
    entities: an owner about to be inserted has no stored pairs, so all the items of its
    collection are pairs to write, whatever changes it recorded (a `copy.copy` or an
    unpickled copy of a loaded entity carries the original's). Such a collection whose
    changes did not record every item as added (so their other sides were never told: a
    copy's items) is appended to `unpaired`, when given."""
    _expect(entities, list, "entities")
    _expect(registry, dict, "registry")
    found: dict[int, Any] = {}
    for entity in entities:
        held = getattr(entity, name) if direct else entity.__dict__.get(name)
        if held is None:
            continue
        if unstored is not None and held._delta is not unstored and held._items:
            if unpaired is not None and not _all_added(held._delta, held._items):
                unpaired.append(held)
            held._delta = unstored
        if held._delta and entity._orm_uow is uow:
            registry[id(held)] = held
        items = held._items
        if not cascade or items is None:
            continue
        for item in items.values():
            if item._orm_snap is None and item._orm_uow is not uow:
                found[id(item)] = item
    return list(found.values())


def _all_added(delta: Any, items: dict) -> bool:
    """Whether the changes `delta` record every one of `items` as added."""
    if not delta or len(delta) < len(items):
        return False
    for key in items:
        change = delta.get(key)
        if change is None or change[1] is not True:
            return False
    return True


def pending_slots(flat: list, width: int, position: int, pending: type) -> tuple[list, list]:
    """The rows of flat insert parameters (`width` a row) whose slot `position` holds a
    `pending` (a PendingKey: the key of a new entity, generated later), and those entities."""
    _expect(flat, list, "flat")
    rows: list[int] = []
    targets: list[Any] = []
    if width <= 0 or not 0 <= position < width:
        raise ValueError("pending_slots: position outside the row")
    for k in range(len(flat) // width):
        value = flat[k * width + position]
        if type(value) is pending:
            rows.append(k)
            targets.append(value.entity)
    return rows, targets


def fill_keys(
    holder: list, slots: list, targets: list, keys: dict, conv: Any
) -> tuple[list, list] | None:
    """Write into `holder[slots[i]]` the key generated for `targets[i]` (`keys`: id(entity)
    -> key; `conv` to database form, if any): None when all were known, else the slots and
    targets still waiting."""
    _expect(holder, list, "holder")
    _expect(slots, list, "slots")
    _expect(targets, list, "targets")
    _expect(keys, dict, "keys")
    if len(slots) != len(targets):
        raise ValueError("fill_keys: slots and targets differ in length")
    waiting: list[int] = []
    left: list[Any] = []
    for at, target in zip(slots, targets, strict=True):
        key = keys.get(id(target))
        if key is None:
            waiting.append(at)
            left.append(target)
            continue
        holder[at] = key if conv is None else conv(key)
    return (waiting, left) if waiting else None


def patch_keys(
    snapshots: list, rows: list, column: int, targets: list, keys: dict, conv: Any
) -> None:
    """After the commit: snapshot `rows` get, in `column`, the key generated for their
    target instead of its placeholder."""
    _expect(snapshots, list, "snapshots")
    _expect(rows, list, "rows")
    _expect(targets, list, "targets")
    _expect(keys, dict, "keys")
    if len(rows) != len(targets):
        raise ValueError("patch_keys: rows and targets differ in length")
    for row, target in zip(rows, targets, strict=True):
        key = keys[id(target)]
        snap = list(snapshots[row])
        snap[column] = key if conv is None else conv(key)
        snapshots[row] = tuple(snap)


def checked_items(items: Any, target: type, ref: type) -> tuple[dict, Any]:
    """The items given to a new entity's collection, by id, in order, each once (a `ref`
    unwrapped), and the first one that is not of exactly the class `target` (None if all
    are: the items are then all there). A subclass's entity is not one: a sub-entity is
    stored in its own table."""
    found: dict[int, Any] = {}
    for item in items:
        if type(item) is ref:
            item = item.entity
        if type(item) is not target:
            return found, item
        found[id(item)] = item
    return found, None


def owning_collection(
    cls: type, owner: Any, prop: str, items: Any, ref: type, unstored: Any
) -> Any:
    """The common case of a new entity's constructor filling a many-to-many collection: the
    owning side, no inverse side to keep in step, every item a target (a `ref` unwrapped).
    A `cls` (Collection) built directly: items by id, clean, delta `unstored`. None
    otherwise (the caller takes the long way, which also words the errors)."""
    owner_cls = type(owner)
    sides = getattr(owner_cls, "_orm_many_to_many", None)
    targets = getattr(owner_cls, "_orm_collection_targets", None)
    if sides is None or targets is None:
        return None
    side = sides.get(prop)
    target = targets.get(prop)
    if side is None or target is None or not side[0] or side[1] is not None:
        return None
    if owner._orm_uow is not None:
        return None
    found, wrong = checked_items(items, target, ref)
    if wrong is not None:
        return None
    collection = _object_new(cls)
    collection.owner = owner
    collection.prop = prop
    collection._items = found
    collection._dirty = False
    collection._delta = unstored if found else None
    return collection


def new_collection(
    cls: type, owner: Any, prop: str, items: Any, ref: type, unstored: Any, slow: Any
) -> Any:
    """A new entity's collection, as its generated `__init__` makes it: no items given, an
    empty `cls` (Collection); a list or tuple of targets for the owning side of a
    many-to-many, `owning_collection`'s; anything else `slow(owner, prop, items)` (which
    also words the errors). One call per collection in the common cases."""
    if items is None:
        collection = _object_new(cls)
        collection.owner = owner
        collection.prop = prop
        collection._items = {}
        collection._dirty = False
        collection._delta = None
        return collection
    if (type(items) is not list and type(items) is not tuple) or any(i is None for i in items):
        return slow(owner, prop, items)
    made = owning_collection(cls, owner, prop, items, ref, unstored)
    return made if made is not None else slow(owner, prop, items)


def fresh_runs(collections: Any, uow: Any, unstored: Any) -> tuple[dict, list]:
    """The owning collections a flush writes whose pairs are simply their items: owner new
    in `uow` (inserted by this flush), delta `unstored`, every item held by `uow`. By
    (owner class, property): (owners, their items, the collections); the others are left
    for the caller, in order."""
    groups: dict[tuple[type, str], tuple[list, list, list]] = {}
    left: list[Any] = []
    for collection in collections:
        owner = collection.owner
        if (
            collection._delta is not unstored
            or owner._orm_uow is not uow
            or owner._orm_snap is not None
        ):
            left.append(collection)
            continue
        items = collection._items
        if type(items) is not dict:
            raise TypeError(
                f"fresh_runs: a collection's _items must be a dict, not {type(items).__name__}")
        if any(item._orm_uow is not uow for item in items.values()):
            left.append(collection)
            continue
        key = (type(owner), collection.prop)
        group = groups.get(key)
        if group is None:
            group = groups[key] = ([], [], [])
        if items:
            group[0].append(owner)
            group[1].append(items)  # the very dict: nothing changes it before the pairs are read
        group[2].append(collection)
    return groups, left


def settle(written: list) -> list:
    """After a commit: each collection still holding the very changes a flush wrote (its
    `_delta` is them) is clean (delta None, not dirty); the (collection, changes) pairs of
    the others are returned, in order."""
    _expect(written, list, "written")
    left = []
    for pair in written:
        if type(pair) is not tuple or len(pair) != 2:
            raise TypeError("settle: (collection, changes) pairs expected")
        collection, changes = pair
        if collection._delta is changes:
            collection._delta = None
            collection._dirty = False
        else:
            left.append(pair)
    return left


def not_managed(entities: list, uow: Any) -> Any:
    """The first entity that `uow` does not hold (None if it holds them all): the items a
    flush pairs with an owner must be stored or persisted in it."""
    _expect(entities, list, "entities")
    for entity in entities:
        if entity._orm_uow is not uow:
            return entity
    return None


def pair_keys(owners: list, runs: list, generated: dict, owner_pk: str, item_pk: str) -> list:
    """Many-to-many pairs as flat parameters (owner key, item key, ...): `runs[k]` holds the
    items paired with `owners[k]` (a list, or a collection's id -> item dict). A key is the
    entity's own, or the one generated in this flush (`generated`: id(entity) -> key) while
    its own is None."""
    _expect(owners, list, "owners")
    _expect(runs, list, "runs")
    _expect(generated, dict, "generated")
    if len(owners) != len(runs):
        raise ValueError("pair_keys: owners and runs differ in length")
    get = generated.get
    flat: list[Any] = []
    for owner, run in zip(owners, runs, strict=True):
        if type(run) is dict:
            run = run.values()
        else:
            _expect(run, list, "runs[k]")
        # an owner is most often new in this flush (its key generated), an item most often
        # stored (its key its own): each is looked for where it most likely is first; an
        # entity never has both (a new one's key attribute is None until the flush ends)
        key = get(id(owner))
        if key is None:
            key = getattr(owner, owner_pk)
        for item in run:
            item_key = getattr(item, item_pk)
            flat.append(key)
            flat.append(get(id(item)) if item_key is None else item_key)
    return flat


def join_new_run(entities: list, start: int, cls: type, uow: Any, group: dict) -> int:
    """`join_new` for the entities from `start` on while they are of class `cls` exactly
    and in no Unit of Work: returns the position of the first one that is not (or the
    length), for the caller to persist it the long way."""
    _expect(entities, list, "entities")
    _expect(group, dict, "group")
    k = start
    count = len(entities)
    while k < count:
        entity = entities[k]
        if type(entity) is not cls or entity._orm_uow is not None:
            break
        if entity._orm_snap is DELETED:
            break  # persisted again after its row was deleted: the long way
        group[id(entity)] = entity
        _object_setattr(entity, "_orm_uow", uow)
        k += 1
    return k


def detach(entities: Any) -> None:
    """Entities leave their Unit of Work: no more tracking, no snapshot."""
    for entity in entities:
        _object_setattr(entity, "_orm_uow", None)
        _object_setattr(entity, "_orm_snap", None)


def primary_keys(plan: Plan, entities: list[Any]) -> list[Any]:
    """The keys the database holds the entities' rows under, in database form (for
    `delete ... where pk in (...)`): the snapshot's, since a key the user assigned is not
    written yet; the attribute for references (no snapshot)."""
    _expect_plan(plan)
    _expect(entities, list, "entities")
    pk_index = plan.pk_index
    name = plan.names[pk_index]
    conv = plan.to_db[pk_index]
    python_valued = plan.python_valued[pk_index]
    n = plan.n
    keys = []
    for entity in entities:
        snap = entity._orm_snap
        if type(snap) is tuple and len(snap) == n:
            key = snap[pk_index]
            if python_valued and conv is not None and key is not None:
                key = conv(key)
        else:
            key = getattr(entity, name)
            if conv is not None:
                key = conv(key)
        keys.append(key)
    return keys


def _stored_key(plan: Plan, entity: Any) -> Any:
    """The identity-map key of a managed entity: its snapshot's key, as a Python value."""
    pk_index = plan.pk_index
    snap = entity._orm_snap
    if type(snap) is not tuple or len(snap) != plan.n:
        return getattr(entity, plan.names[pk_index])
    key = snap[pk_index]
    conv = plan.to_python[pk_index]
    if not plan.python_valued[pk_index] and conv is not None and key is not None:
        key = conv(key)
    return key


def forget(plan: Plan, entities: list[Any], identity_map: dict | None) -> None:
    """After a committed DELETE: the entities leave the identity map and are detached,
    their snapshot `DELETED` (no cascade takes them for new entities)."""
    _expect_plan(plan)
    _expect(entities, list, "entities")
    _expect_identity_map(identity_map)
    if identity_map is not None:
        for entity in entities:
            key = _stored_key(plan, entity)
            if identity_map.get(key) is entity:
                del identity_map[key]
    for entity in entities:
        _object_setattr(entity, "_orm_uow", None)
        _object_setattr(entity, "_orm_snap", DELETED)


def group_by_type(entities: Any, exclude: Any) -> dict[type, list[Any]]:
    """Entities by class, in order, leaving out those whose id() is in `exclude`."""
    groups: dict[type, list[Any]] = {}
    for entity in entities:
        if exclude and id(entity) in exclude:
            continue
        cls = type(entity)
        bucket = groups.get(cls)
        if bucket is None:
            bucket = groups[cls] = []
        bucket.append(entity)
    return groups


# -- populate (orm.entity.loader): the per-row loops of loading relations ----------------


def loaded_by_key(plan: Plan, entities: list[Any]) -> dict[Any, Any]:
    """The loaded entities by primary key, the first of each key (references and new
    entities left out: a reference's relations are not read, and no row points at an entity
    not written yet)."""
    _expect_plan(plan)
    _expect(entities, list, "entities")
    name = plan.names[plan.pk_index]
    out: dict[Any, Any] = {}
    for entity in entities:
        snap = entity._orm_snap
        if snap is REFERENCE or snap is None:
            continue
        key = getattr(entity, name)
        if key not in out:
            out[key] = entity
    return out


def relation_targets(
    entities: list[Any], name: str, key_name: str, ref_type: type
) -> tuple[list[Any], list[Any]]:
    """What the entities' ManyToOne / OneToOne `name` points at, each target once (a `Ref`
    unwrapped), and the keys of those that are uninitialized references. An entity whose
    attribute cannot be read (itself a reference, or a partial load) is skipped."""
    _expect(entities, list, "entities")
    targets: list[Any] = []
    keys: list[Any] = []
    seen: set[int] = set()
    for entity in entities:
        try:
            value = getattr(entity, name)
        except Exception:
            continue
        if value is None:
            continue
        if type(value) is ref_type:
            value = value.entity
        if id(value) in seen:
            continue
        seen.add(id(value))
        targets.append(value)
        if value._orm_snap is REFERENCE:
            keys.append(getattr(value, key_name))
    return targets, keys


def group_by_key(
    items: list[Any], keys: list[Any], conv: Any, distinct: bool = True
) -> tuple[dict[Any, dict[int, Any]], list[Any] | None]:
    """Rows of a select-in query, each an item and the key of the owner it belongs to
    (`conv`, if not None, turns the database's key into the Python one): the items per
    owner key as a collection's storage (id(item) -> item, in row order), and, if
    `distinct`, every item once, in order of first appearance (else None)."""
    _expect(items, list, "items")
    _expect(keys, list, "keys")
    if len(keys) != len(items):
        raise ValueError(f"group_by_key: {len(items)} items but {len(keys)} keys")
    groups: dict[Any, dict[int, Any]] = {}
    seen: dict[int, Any] = {}
    for k, item in enumerate(items):
        key = keys[k]
        if conv is not None and key is not None:
            key = conv(key)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {}
        group[id(item)] = item
        if distinct:
            seen[id(item)] = item
    return groups, list(seen.values()) if distinct else None


def fill_collections(
    owners: dict[Any, Any], groups: dict[Any, dict[int, Any]], name: str, make: Any
) -> None:
    """Collection `name` of every owner (by key) gets the group of its key (none: empty).
    An owner without that collection yet gets `make(owner, name, group)` written straight
    into its instance dict; one that has it is `_fill`ed (which keeps unwritten changes).
    Each group must be handed to one owner only: it becomes that collection's storage.

    `make` may be the collection class itself: its `_loaded` is used (the compiled core
    sets the slots that `Collection._loaded` sets directly, when the class has exactly
    those)."""
    _expect(owners, dict, "owners")
    _expect(groups, dict, "groups")
    if isinstance(make, type):
        make = make._loaded
    for key, owner in owners.items():
        items = groups.get(key)
        if items is None:
            items = {}
        values = owner.__dict__
        held = values.get(name)
        if held is None:
            values[name] = make(owner, name, items)
        else:
            held._fill(items.values())


def _check_recheck(where: str, names: tuple[str, ...], recheck: Any) -> None:
    """`recheck`: per column a callable or None (see `compute_changes`)."""
    _expect(recheck, tuple, "recheck")
    if len(recheck) != len(names):
        raise ValueError(f"{where}: recheck has {len(recheck)} entries for {len(names)} columns")
    for i, check in enumerate(recheck):
        if check is not None and not callable(check):
            raise TypeError(
                f"{where}: the recheck of column {names[i]} must be callable or None, "
                f"got {type(check).__name__}"
            )


def _same_as_loaded(check: Any, old: Any, current: Any) -> bool:
    """Whether the held value is the one the snapshot's database value reads as (a custom
    type whose to_db is not the same twice, or not what the driver reads back): of the same
    class, equal, and with the same repr, since `==` alone takes 1 for True, Decimal("1.5")
    for Decimal("1.50") and one instant at two UTC offsets for the same, which the database
    keeps apart. A NULL on either side is never the same as a value."""
    if old is None or current is None:
        return False
    try:
        back = check(old)
        return type(back) is type(current) and bool(back == current) and (
            repr(back) == repr(current)
        )
    except Exception:  # a value its to_python cannot read: a change, as it looks
        return False


def compute_changes(
    plan: Plan, entities: Any, references: list[Any] | None = None
) -> dict[tuple[int, ...], list[list]]:
    """Compare each managed entity with its snapshot.

    Returns the entities that changed, grouped by the set of changed columns (so each group is
    one UPDATE statement run with executemany): ``{changed_column_indexes: [entities,
    new_snapshots, params]}`` where params are the changed values then the primary key, in
    database form; the key is the snapshot's, so a primary key the user changed is updated
    like any other column, `where pk = <old key>`. Entities without changes are left out;
    new entities and references are skipped (they have no snapshot to compare with);
    references are appended to `references` when it is given. A column whose database form
    differs but that has a `recheck` (its type's to_python) is unchanged when the held value
    equals what the snapshot reads as. A snapshot that is not a tuple of the plan's width is
    a TypeError / ValueError.
    """
    _expect_plan(plan)
    if references is not None:
        _expect(references, list, "references")
    groups: dict[tuple[int, ...], list[list]] = {}
    names = plan.names
    pk_index = plan.pk_index
    to_db = plan.to_db
    compare = plan.compare
    kinds = plan.kinds
    python_valued = plan.python_valued
    recheck = plan.recheck
    n = plan.n
    for entity in entities:
        snap = entity._orm_snap
        if snap is None or type(snap) is Plan:  # new, or nothing written since the load
            continue
        if snap is REFERENCE:
            if references is not None:
                references.append(entity)
            continue
        if type(snap) is not tuple or len(snap) != n:
            _check_snapshot(plan, snap, "compute_changes")
        changed: list[int] = []
        values: list[Any] = []
        db_values: list[Any] = []
        for i in range(n):
            old = snap[i]
            if old is UNLOADED:
                # a column a partial load did not read: changed if the user wrote it
                if not is_set(entity, names[i]):
                    continue
                current = getattr(entity, names[i])
                new = _db_value(plan, entity, i, current)
            else:
                current = getattr(entity, names[i], UNLOADED)
                if current is UNLOADED or current is old:
                    continue
                if python_valued[i]:
                    if current == old:
                        continue
                    new = _db_value(plan, entity, i, current)
                else:
                    if to_db[i] is not None:
                        new = _db_value(plan, entity, i, current)
                    else:
                        new = current
                    if new is old:
                        continue
                    cmp = compare[i]
                    if (new == old) if cmp is None else cmp(new, old):
                        continue
                    if recheck is not None and recheck[i] is not None:
                        if _same_as_loaded(recheck[i], old, current):
                            continue
                    if to_db[i] is None:
                        _check(plan, entity, i, current)
            if not changed:
                values = list(snap)
            changed.append(i)
            values[i] = current if python_valued[i] else new
            db_values.append(new)
        if not changed:
            continue
        pk = snap[pk_index]
        if kinds[pk_index] and pk is not None:
            pk = to_db[pk_index](pk)
        key = tuple(changed)
        group = groups.get(key)
        if group is None:
            group = groups[key] = [[], [], []]
        group[0].append(entity)
        group[1].append(tuple(values))
        group[2].append((*db_values, pk))
    return groups

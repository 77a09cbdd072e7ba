"""Lock modes (MikroORM's `LockMode`) and what `em.lock()` and `find(..., lock_mode=...)` check.

Optimistic: the caller states the version it saw (`lock_version`); the entity's version and
the database row's must both be that one, or `OptimisticLockError`. Nothing is held in the
database: the flush's `update ... where version = ?` checks again when it writes.

Pessimistic: the row is read under a lock held until the transaction ends, so only inside a
transaction. PostgreSQL locks rows (`for update`, `for share`, through the platform's
`lock_clause`). SQLite has no row locks: the transaction takes the database's write lock
(the platform's `write_lock` statement), which is what `begin immediate` takes, and keeps it
to the end. In a transaction that has not touched the database yet, that waits for another
writer (up to `busy_timeout`) exactly as `begin immediate` would; in one that has already
read, SQLite refuses at once rather than wait (waiting could deadlock, or the reads are
already stale), so pessimistic locks belong at the start of the transaction.
"""

from __future__ import annotations

import enum

from ._markers import REFERENCE
from ._typing import TYPE_CHECKING
from .errors import (
    LockWaitTimeoutException,
    NotFoundError,
    OptimisticLockError,
    ValidationError,
    _short,
)
from .unit_of_work.unit_of_work import map_key

if TYPE_CHECKING:
    from typing import Any

    from .entity_manager import EntityManager
    from .metadata.model import EntityMetadata

__all__ = [
    "LockMode",
    "PESSIMISTIC",
    "lock_mode_of",
    "lock",
    "prepare_query_lock",
    "take_write_lock",
    "find_one_lock",
    "check_version",
]


class LockMode(enum.Enum):
    """How `em.lock()` and `find(..., lock_mode=...)` lock (MikroORM's values)."""

    #: no lock
    NONE = 0
    #: check the version the caller expects (`lock_version`) against the entity and its row
    OPTIMISTIC = 1
    #: `for update` on PostgreSQL; the database write lock on SQLite
    PESSIMISTIC_WRITE = 2
    #: `for share` on PostgreSQL; the database write lock on SQLite (no shared row locks)
    PESSIMISTIC_READ = 3


PESSIMISTIC = frozenset({LockMode.PESSIMISTIC_WRITE, LockMode.PESSIMISTIC_READ})


def lock_mode_of(value: Any) -> LockMode:
    """A LockMode from a LockMode or its name ("pessimistic_write", ...); anything else is a
    ValidationError (never silently no lock)."""
    if isinstance(value, LockMode):
        return value
    if isinstance(value, str):
        try:
            return LockMode[value.upper()]
        except KeyError:
            pass
    raise ValidationError(
        f"Unknown lock mode {value!r}; use LockMode.OPTIMISTIC, LockMode.PESSIMISTIC_WRITE, "
        f"LockMode.PESSIMISTIC_READ or LockMode.NONE"
    )


def _require_version(meta: EntityMetadata) -> None:
    if meta.version is None:
        raise ValidationError(
            f"Cannot take an optimistic lock on {meta.class_name}: it has no version "
            f"property to compare. Declare one, e.g. `version: int = Property(version=True)`.",
            entity=meta.cls,
        )


def _require_transaction(em: EntityManager, meta: EntityMetadata, mode: LockMode) -> None:
    if not em.connection.in_own_transaction:
        raise ValidationError(
            f"LockMode.{mode.name} on {meta.class_name} needs a transaction: the lock is held "
            f"until the transaction ends, and outside one it would end with the statement. "
            f"Use em.transaction() (with em.transaction() as tx: ...) or em.transactional(fn).",
            entity=meta.cls,
        )


def take_write_lock(em: EntityManager, meta: EntityMetadata, mode: LockMode) -> None:
    """SQLite: take the database write lock for the rest of the transaction (no statement
    on a database with row locks)."""
    quote = em.sql.quote
    statement = em.sql.platform.write_lock(quote(meta.table), quote(meta.pk.field_name))
    if statement is None:
        return
    try:
        em.connection.execute(statement)
    except LockWaitTimeoutException as exc:
        raise LockWaitTimeoutException(
            f"LockMode.{mode.name} on {meta.class_name} could not take the database write "
            f"lock: another connection holds it. SQLite waits for it (up to busy_timeout) "
            f"only in a transaction that has not read yet; once the transaction has read, it "
            f"refuses at once (waiting could deadlock, or what was read is already stale). "
            f"Lock before the transaction's first query, and run the transaction again. "
            f"({exc})",
            sql=exc.sql,
            params=exc.params,
            entity=meta.class_name,
        ) from exc


def prepare_query_lock(em: EntityManager, meta: EntityMetadata, lock_mode: Any) -> LockMode | None:
    """Check a query's `lock_mode`: the mode whose lock the SQL builder appends (None for
    none). The caller takes the write lock (`take_write_lock`) once the SQL is built."""
    mode = lock_mode_of(lock_mode)
    if mode is LockMode.NONE:
        return None
    if mode is LockMode.OPTIMISTIC:
        _require_version(meta)
        raise ValidationError(
            f"LockMode.OPTIMISTIC checks one entity against the version the caller expects: "
            f"use find_one({meta.class_name}, ..., lock_mode=LockMode.OPTIMISTIC, "
            f"lock_version=v) or em.lock(entity, LockMode.OPTIMISTIC, v).",
            entity=meta.cls,
        )
    _require_transaction(em, meta, mode)
    return mode


def find_one_lock(
    em: EntityManager, meta: EntityMetadata, lock_mode: Any, expected: Any
) -> tuple[LockMode | None, int | None]:
    """Check `find_one`'s `lock_mode` and `lock_version` before it queries: the mode (None
    for none) and the version the caller expects (None for no check)."""
    mode = None if lock_mode is None else lock_mode_of(lock_mode)
    if mode is LockMode.NONE:
        mode = None
    if expected is not None and mode is None:
        raise ValidationError(
            f"lock_version is the version of {meta.class_name} the caller expects: pass it "
            f"with lock_mode=LockMode.OPTIMISTIC (or a pessimistic mode)",
            entity=meta.cls,
        )
    expected = _versions(meta, mode, expected)
    if mode in PESSIMISTIC:
        _require_transaction(em, meta, mode)  # type: ignore[arg-type]
    return mode, expected


def _versions(meta: EntityMetadata, mode: LockMode | None, expected: Any) -> int | None:
    """The expected version, checked: an int, on a versioned entity, given for OPTIMISTIC."""
    if mode is LockMode.OPTIMISTIC or expected is not None:
        _require_version(meta)
    if expected is None:
        if mode is LockMode.OPTIMISTIC:
            raise ValidationError(
                f"LockMode.OPTIMISTIC needs the version of {meta.class_name} the caller "
                f"expects: em.lock(entity, LockMode.OPTIMISTIC, version), or find_one(..., "
                f"lock_mode=LockMode.OPTIMISTIC, lock_version=version)",
                entity=meta.cls,
            )
        return None
    if not isinstance(expected, int) or isinstance(expected, bool):
        raise ValidationError(
            f"lock_version for {meta.class_name} must be the version (an int) the caller "
            f"expects, got {expected!r}",
            entity=meta.cls,
        )
    return expected


def lock(em: EntityManager, entity: Any, lock_mode: Any, lock_version: Any = None) -> None:
    """`em.lock(entity, mode, lock_version)`: see the module's docstring."""
    mode = lock_mode_of(lock_mode)
    meta = em.metadata.of_instance(entity)
    expected = _versions(meta, mode, lock_version)
    if entity._orm_uow is not em._uow or entity._orm_snap is None:
        raise ValidationError(
            f"Cannot lock {meta.class_name} {_short(entity, 80)}: it is not managed by this "
            f"EntityManager (load it here, or persist and flush it, first).",
            entity=entity,
        )
    if mode is LockMode.NONE:
        return
    if mode is LockMode.OPTIMISTIC:
        if entity._orm_snap is REFERENCE:
            from .entity import wrap

            wrap(entity).init()  # the version is needed (MikroORM loads it too)
        held = getattr(entity, meta.version.name)  # type: ignore[union-attr]
        if held != expected:
            raise OptimisticLockError(
                f"The optimistic lock on {meta.class_name} {map_key(meta, entity)!r} failed: "
                f"version {expected} was expected, but the entity holds version {held}.",
                entity=entity,
            )
        _check_row(em, meta, entity, expected, None)
        return
    _require_transaction(em, meta, mode)
    take_write_lock(em, meta, mode)
    _check_row(em, meta, entity, expected, mode)


def _check_row(
    em: EntityManager, meta: EntityMetadata, entity: Any, expected: int | None,
    mode: LockMode | None,
) -> None:
    """Read the entity's row (under `mode`'s lock when pessimistic): it must exist, and a
    versioned entity's row must hold the version the entity holds (and `expected`)."""
    key = map_key(meta, entity)
    column = meta.version if meta.version is not None else meta.pk
    sql, params = em.sql.select(meta, {meta.pk.name: key}, props=[column], lock_mode=mode)
    rows = em.connection.query(sql, params)
    if not rows:
        if mode is None:
            raise OptimisticLockError(
                f"The optimistic lock on {meta.class_name} {key!r} failed: its row was "
                f"deleted since it was loaded.",
                entity=entity,
            )
        raise NotFoundError(
            f"Cannot lock {meta.class_name} {key!r}: its row was deleted since it was loaded.",
            entity=meta.class_name,
            where=key,
        )
    if meta.version is None:
        return
    stored = rows[0][0]
    if expected is not None and stored != expected:
        raise OptimisticLockError(
            f"The optimistic lock on {meta.class_name} {key!r} failed: version {expected} "
            f"was expected, but the database row holds version {stored} (it was changed "
            f"since it was loaded).",
            entity=entity,
        )
    if entity._orm_snap is not REFERENCE:
        held = getattr(entity, meta.version.name)
        if held != stored:
            raise OptimisticLockError(
                f"{meta.class_name} {key!r} is stale: it holds version {held}, its row "
                f"version {stored} (changed since it was loaded). Read it again under the "
                f"lock: em.refresh(entity), or find_one(..., lock_mode=...).",
                entity=entity,
            )


def check_version(meta: EntityMetadata, entity: Any, expected: int) -> None:
    """The version of an entity just read (under a pessimistic lock) is the one expected."""
    held = getattr(entity, meta.version.name)  # type: ignore[union-attr]
    if held != expected:
        raise OptimisticLockError(
            f"The optimistic lock on {meta.class_name} {map_key(meta, entity)!r} failed: "
            f"version {expected} was expected, but the database row holds version {held}.",
            entity=entity,
        )

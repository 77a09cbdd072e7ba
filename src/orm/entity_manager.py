"""EntityManager: the user-facing facade over the Unit of Work, the query compiler and the
connection (MikroORM's `EntityManager`).

Each EntityManager owns a Unit of Work (identity map, pending changes). The global one,
`orm.em`, refuses context-specific work unless a request context is active or
`allow_global_context` is set: sharing one identity map across unrelated work is the classic
way to serve stale data. `fork()` gives a fresh one.
"""

from __future__ import annotations

import gc
import itertools
import sys
from collections.abc import Callable, Iterator, Mapping

from ._backend import core
from ._markers import MISSING, REFERENCE, UNLOADED
from ._typing import TYPE_CHECKING, TypeVar, contextmanager, lazy_module, overload
from .entity.reference import Ref, _unwrap
from .errors import DriverException, NotFoundError, ORMError, ValidationError, _short
from .metadata.model import EntityMetadata, PropertyMetadata
from .query.filters import compile_where, normalize_where
from .unit_of_work import UnitOfWork
from .unit_of_work.unit_of_work import advance_keys, map_key

if TYPE_CHECKING:
    from typing import Any

    from typing_extensions import TypeVar as _TypeVarWithDefault

    from . import _retry, locking
    from .core import ORM
    from .entity import loader as _loader
    from .events import manager as _dispatch
    from .events.manager import EventManager
    from .flush_mode import FlushMode
    from .locking import LockMode
    from .unit_of_work import undo as _undo
else:
    # locks, upserts and loads inside a transaction only
    locking = lazy_module(f"{__package__}.locking", globals(), "locking")
    # relations' populate only
    _loader = lazy_module(f"{__package__}.entity.loader", globals(), "_loader")
    _undo = lazy_module(f"{__package__}.unit_of_work.undo", globals(), "_undo")
    # the pause before a retry: only a transaction the database asked to rerun needs it
    _retry = lazy_module(f"{__package__}._retry", globals(), "_retry")
    # the listeners' calls: only an entity type something listens to reaches them
    _dispatch = lazy_module(f"{__package__}.events.manager", globals(), "_dispatch")

__all__ = ["EntityManager", "FlushMode"]

if TYPE_CHECKING:
    # `find_one(User, 1)` is `User | None`; `find_one("User", 1)` (an entity named by a
    # string) leaves T unsolved, and unsolved means Any, not `None` (PEP 696 default).
    T = _TypeVarWithDefault("T", default=Any)
    R = TypeVar("R")

_ids = itertools.count(1)
#: pause before the n-th retry of a transaction: BASE * 2**n seconds (capped), jittered
_object_setattr = object.__setattr__
_object_new = object.__new__
_SCALAR_KEYS = frozenset({int, str})


def _is_uuid(value: Any) -> bool:
    """A `uuid.UUID` key: whoever made one imported uuid (`import orm` does not)."""
    uuid = sys.modules.get("uuid")
    return uuid is not None and value.__class__ is uuid.UUID

_FIND_OPTIONS = frozenset(
    {"order_by", "limit", "offset", "fields", "populate", "disable_identity_map", "refresh",
     "flush_mode", "lock_mode", "lock_version"}
)  # fmt: skip


#: the flush modes by value (see orm.flush_mode)
_FLUSH_MODES = frozenset({"auto", "commit", "always"})


def __getattr__(name: str) -> Any:
    # `orm.entity_manager.FlushMode`, as before it moved to orm.flush_mode
    if name == "FlushMode":
        from .flush_mode import FlushMode

        return FlushMode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _request_fork(orm: Any) -> EntityManager | None:
    """The EntityManager `orm.em` routes to: its innermost request context's fork (or
    transaction's). None while orm.context is not imported: no request context can have
    been entered, and a script that never enters one does not import it (nor contextvars)."""
    context = sys.modules.get("orm.context")
    return None if context is None else context.current_entity_manager(orm)  # type: ignore[no-any-return]


def flush_mode_of(value: Any) -> str | None:
    """A flush mode's value ("auto", "commit", "always") from a FlushMode or its name; None
    stays None. Anything else is a ValidationError (never silently another mode)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.lower() in _FLUSH_MODES:
            return value.lower()
    else:
        module = sys.modules.get("orm.flush_mode")  # a FlushMode exists only once imported
        if module is not None and isinstance(value, module.FlushMode):
            return value.value  # type: ignore[no-any-return]
    raise ValidationError(
        f"Unknown flush mode {value!r}; use FlushMode.AUTO, FlushMode.COMMIT or "
        f"FlushMode.ALWAYS (or 'auto', 'commit', 'always')"
    )


class EntityManager:
    """See SPEC section 3 for the table of calls."""

    def __init__(self, orm: ORM, *, is_global: bool, flush_mode: str) -> None:
        self._orm = orm
        self.id: int = next(_ids)
        self._global = is_global
        self._flush_mode = flush_mode
        self.metadata = orm.metadata
        self.connection = orm.connection
        self.sql = orm.sql
        self._metas = orm.metadata._by_class
        self._uow = UnitOfWork(self)

    def __repr__(self) -> str:
        kind = "global " if self._global else ""
        return f"<{kind}EntityManager id={self.id}>"

    # -- context ----------------------------------------------------------------------------
    def _ctx(self) -> EntityManager:
        """The EntityManager that does the work: self, or for the global one the active
        request context's fork."""
        if not self._global:
            return self
        em = _request_fork(self._orm)
        if em is not None:
            return em
        if self._orm.config.allow_global_context:
            return self
        self._orm._check_open()
        raise ValidationError(
            "Using the global EntityManager (orm.em) for context-specific work (persist, "
            "flush, find, ...) is not allowed: its identity map would be shared by all the "
            "program's work. Use a fork (em = orm.em.fork()), a request context "
            "(with orm.request_context(): ...), or set allow_global_context=True in the "
            "configuration."
        )

    def fork(
        self, *, clear: bool = True, flush_mode: FlushMode | None = None
    ) -> EntityManager:
        """A fresh EntityManager with its own Unit of Work and identity map (and a higher
        `id`). `clear=False` starts it with the same managed entities *detached from this
        one*: not supported, as an entity belongs to exactly one Unit of Work."""
        self._orm._check_open()
        if not clear:
            raise ValidationError(
                "fork(clear=False) is not supported: an entity belongs to exactly one "
                "EntityManager. Load what you need in the fork."
            )
        return EntityManager(
            self._orm, is_global=False, flush_mode=flush_mode_of(flush_mode) or self._flush_mode
        )

    @property
    def flush_mode(self) -> FlushMode:
        """When this EntityManager's queries flush first (a FlushMode; set it to one or to
        its name)."""
        from .flush_mode import FlushMode

        return FlushMode(self._flush_mode)

    @flush_mode.setter
    def flush_mode(self, value: FlushMode | str) -> None:
        mode = flush_mode_of(value)
        if mode is None:
            raise ValidationError(
                "flush_mode cannot be None; use FlushMode.AUTO, FlushMode.COMMIT or "
                "FlushMode.ALWAYS (or 'auto', 'commit', 'always')"
            )
        self._flush_mode = mode

    def get_unit_of_work(self) -> UnitOfWork:
        return self._ctx()._uow

    def get_metadata(self, entity: Any) -> EntityMetadata:
        return self.metadata.get(entity)

    def get_event_manager(self) -> EventManager:
        """The ORM's EventManager (shared by all its EntityManagers): register subscribers
        there (`register_subscriber(s)`)."""
        return self._orm.events

    # -- unit of work -----------------------------------------------------------------------
    def persist(self, entity: Any) -> EntityManager:
        """Mark new entities for INSERT at the next flush (a list works too). Returns the
        EntityManager, so `em.persist(u).flush()` reads as one step."""
        em = self._ctx() if self._global else self
        meta = em._metas.get(type(entity))
        if meta is None:
            if isinstance(entity, (list, tuple, set, frozenset)):
                em._persist_many(entity)
                return em
            meta = em.metadata.of_instance(entity)
        if em._uow.removed:
            em._uow.refuse_removed_items([entity], meta)
        em._uow.persist(entity, meta)
        return em

    def _persist_many(self, entities: Any) -> None:
        """`persist` of a list in one loop: the metadata lookup and the Unit of Work's method
        resolved once, not one `persist` call per item (nested lists recurse); a run of new
        entities of one class joins the Unit of Work in one call to the core."""
        metas = self._metas
        uow = self._uow
        persist = uow.persist
        items = entities if type(entities) is list else list(entities)
        if uow.removed:  # all of them checked before any joins (see refuse_removed_items)
            uow.refuse_removed_graph([
                (metas.get(type(item)) or self.metadata.of_instance(item), [item])
                for item in _flat(items)
            ])
        k, count = 0, len(items)
        while k < count:
            item = items[k]
            meta = metas.get(type(item))
            if meta is None:
                if isinstance(item, (list, tuple, set, frozenset)):
                    self._persist_many(item)
                    k += 1
                    continue
                meta = self.metadata.of_instance(item)
            elif meta.generated_init and item._orm_uow is None and meta.cls is type(item):
                group = uow.new.get(meta.cls)
                if group is None:
                    group = uow.new[meta.cls] = {}
                k = core.join_new_run(items, k, meta.cls, uow, group)
                continue
            persist(item, meta)
            k += 1

    def remove(self, entity: Any) -> EntityManager:
        """Mark an entity (or a list) for DELETE at the next flush."""
        em = self._ctx()
        if isinstance(entity, (list, tuple, set, frozenset)):
            for item in entity:
                em.remove(item)
            return em
        em._uow.remove(entity, em.metadata.of_instance(entity))
        return em

    def flush(self) -> None:
        """Write all pending changes in one transaction; a flush with nothing to write runs
        no SQL at all."""
        em = self._ctx() if self._global else self
        em._uow.commit()

    def clear(self) -> None:
        """Detach every entity and forget pending changes."""
        self._ctx()._uow.clear()

    def _auto_flush(
        self, meta: EntityMetadata, flush_mode: Any, where: Any = None, order_by: Any = None
    ) -> None:
        """FlushMode.AUTO: flush first when the query could miss unflushed work, in the
        queried type's table or in those its filter and ordering reach through relations
        (`{"author": {"name": ...}}` reads the author table)."""
        if self._uow.flushing:
            return  # a query from an event handler of a flush: it must not flush again
        mode = flush_mode_of(flush_mode) or self._flush_mode
        if mode == "auto":
            uow = self._uow
            if uow.has_changes_for(meta) or uow.has_pivot_changes_for(meta):
                _flush_before_query(uow, mode)
                return
            if (isinstance(where, Mapping) or order_by) and (
                meta.relations or meta.collections or meta.inverse_ones
            ):
                for joined in _joined_metas(meta, where, order_by):
                    if uow.has_changes_for(joined) or uow.has_pivot_changes_for(joined):
                        _flush_before_query(uow, mode)
                        return
        elif mode == "always":
            _flush_before_query(self._uow, mode)

    # -- queries ----------------------------------------------------------------------------
    def _check_populate(self, meta: EntityMetadata, populate: Any) -> dict[str, Any] | None:
        """The populate paths as a tree, checked before any query runs."""
        if not populate:
            return None
        return _loader.populate_tree(meta, populate)

    def populate(self, entities: Any, populate: Any) -> Any:
        """Load the relations named in `populate` (`["author", "author.team"]`, `["*"]`)
        for entities already loaded: one query per relation and level. Returns what it
        was given."""
        em = self._ctx() if self._global else self
        items = list(entities) if isinstance(entities, (list, tuple, set, frozenset)) else [
            entities
        ]
        if not items:
            return entities
        groups: dict[type, list[Any]] = {}
        for item in items:
            groups.setdefault(type(item), []).append(item)
        for group in groups.values():
            meta = em.metadata.of_instance(group[0])
            tree = _loader.populate_tree(meta, populate)
            _loader.populate(em, meta, group, tree)
        return entities

    def find(
        self,
        entity: type[T] | str,
        where: Any = None,
        *,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        fields: list[str] | None = None,
        populate: list[str] | None = None,
        disable_identity_map: bool = False,
        refresh: bool = False,
        flush_mode: FlushMode | None = None,
        lock_mode: LockMode | None = None,
    ) -> list[T]:
        """Entities matching `where` (a filter dict, a PK, a list of PKs, or None for all).

        A pessimistic `lock_mode` (inside a transaction) reads the rows under a lock held
        until the transaction ends, and so as they are now: entities this EntityManager
        already holds are refreshed from them (see orm.locking)."""
        em = self._ctx() if self._global else self
        meta = em.metadata.get(entity)
        tree = em._check_populate(meta, populate)
        props = em._field_props(meta, fields, tree)
        lock = None if lock_mode is None else locking.prepare_query_lock(em, meta, lock_mode)
        sql, params = em.sql.select(
            meta, where, props=props, order_by=order_by, limit=limit, offset=offset,
            lock_mode=lock,
        )
        if lock is not None:
            em._locked_read(meta, lock, flush_mode, where, order_by)
            refresh = True  # the rows as they are now, under the lock
        else:
            em._auto_flush(meta, flush_mode, where, order_by)
        identity_map = None if disable_identity_map else em._uow.map_for(meta.cls)
        found = em._load(meta, sql, params, props, identity_map, refresh)
        if tree and found:
            _loader.populate(em, meta, found, tree)
        return found

    def _load(
        self,
        meta: EntityMetadata,
        sql: str,
        params: list[Any],
        props: list[PropertyMetadata] | None,
        identity_map: dict[Any, Any] | None,
        refresh: bool,
        extra: list[Any] | None = None,
    ) -> list[Any]:
        """Run a select of `meta`'s columns and hydrate its rows into entities (in the
        identity map unless None), noting them for a rollback and firing on_init/on_load.
        With `extra`, each row carries one more column after the entity's (a pivot's key,
        see orm.entity.loader): collected there, in row order."""
        em = self
        found: list[Any] = []
        uow = em._uow
        hydrate = core.hydrate
        plan = meta.plan
        #: with on_init / on_load listeners: (entities, how each was loaded) per chunk
        loaded: list[tuple[list[Any], list[int]]] | None = [] if meta.loads else None

        def consume(rows: list[tuple]) -> None:
            keyed = extra  # hydrate takes the extra column off itself, in the same pass
            if extra is not None and (props is not None or loaded is not None):
                extra.extend(row[-1] for row in rows)
                rows = [row[:-1] for row in rows]
                keyed = None
            if props is not None:
                rows = _pad_rows(meta, props, rows)
            states = None if loaded is None else _load_states(meta, rows, identity_map, refresh)
            try:
                batch = hydrate(plan, rows, identity_map, uow, refresh, keyed)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise _unreadable(meta, rows, exc) from exc
            found.extend(batch)
            if states is not None:
                loaded.append((batch, states))  # type: ignore[union-attr]

        conn = em.connection
        noted = identity_map is not None and conn.in_own_transaction
        collecting = gc.isenabled()
        gc.disable()  # the collector is paused as for a flush (see UnitOfWork.commit)
        try:
            conn.query_chunks(sql, params, consume)
        finally:
            if collecting:
                gc.enable()
        if identity_map is not None and (props is not None or uow.partial):
            uow.note_partial(found)
        if noted and found:
            em._note_loaded(meta, found)
        if loaded:
            em._fire_loaded(meta, loaded)
        return found

    def _locked_read(
        self, meta: EntityMetadata, lock: LockMode, flush_mode: Any, where: Any = None,
        order_by: Any = None,
    ) -> None:
        """Before a query under a pessimistic lock: the database write lock where the
        database has no row locks, the auto flush, and the check that refreshing the
        entities read loses no unflushed change."""
        locking.take_write_lock(self, meta, lock)
        self._auto_flush(meta, flush_mode, where, order_by)
        if self._uow.has_changes_for(meta):
            raise ValidationError(
                f"A query under LockMode.{lock.name} reads the {meta.class_name} rows as they "
                f"are now and refreshes the entities this EntityManager holds, which would "
                f"discard the unflushed changes to {meta.class_name} entities (the flush mode "
                f"did not write them first): call flush() before locking.",
                entity=meta.cls,
            )

    def _fire_loaded(self, meta: EntityMetadata, loaded: list[tuple[list[Any], list[int]]]) -> None:
        """After a query: `on_init` for the instances it created, and for the references
        it filled that had none yet (one a relation's value made, not `get_reference`),
        then `on_load` for every entity it filled from its row (created, a reference or
        partial entity completed, or refreshed), in row order; entities the identity map
        already held fully loaded are returned untouched and get neither."""
        init = meta.listeners.get("on_init")
        load = meta.listeners.get("on_load")
        if init is not None:
            inited = self._uow.inited
            for batch, states in loaded:
                for entity, state in zip(batch, states, strict=True):
                    if state == _CREATED or (state == _REFILLED and entity not in inited):
                        inited.add(entity)
                        _dispatch.fire(init, entity, self, None)
        if load is not None:
            for batch, states in loaded:
                for entity, state in zip(batch, states, strict=True):
                    if state != _UNTOUCHED:
                        _dispatch.fire(load, entity, self, None)

    def _note_loaded(self, meta: EntityMetadata, entities: list[Any]) -> None:
        """Entities a query returned inside a transaction (added to the identity map, or
        filled or refreshed from what the transaction saw): read again if it is rolled
        back (see LoadUndo)."""
        pk = meta.pk.name

        def reread(keys: list[Any]) -> dict[Any, Any]:
            sql, params = self.sql.select(meta, {pk: {"$in": keys}})
            rows = self.connection.query(sql, params)
            # hydrated into a map of their own: snapshots taken, nothing registered; a row
            # the types cannot read is there (KEEP: its entity stays as it is), not gone
            try:
                fresh = core.hydrate(meta.plan, rows, {}, self._uow, False)
                return {map_key(meta, e): e for e in fresh}
            except (ValueError, TypeError, ArithmeticError):
                out: dict[Any, Any] = {}
                for row in rows:
                    key = meta.row_key(row)
                    try:
                        out[key] = core.hydrate(meta.plan, [row], {}, self._uow, False)[0]
                    except (ValueError, TypeError, ArithmeticError):
                        out[key] = _undo.LoadUndo.KEEP
                return out

        self.connection.on_rollback(_undo.LoadUndo(self._uow, meta, list(entities), reread))

    def _field_props(
        self, meta: EntityMetadata, fields: list[str] | None, tree: dict[str, Any] | None = None
    ) -> Any:
        if fields is None:
            return None
        wanted = {meta.pk.name} | {meta.prop(f).name for f in fields}
        if meta.version is not None:
            wanted.add(meta.version.name)  # an UPDATE must know the version it replaces
        if tree:
            # a populated ManyToOne / owning OneToOne is read through its own column: left
            # out, the populate found no key and loaded nothing, without a word
            wanted.update(p.name for p in meta.columns if p.relation and p.name in tree)
        return [p for p in meta.columns if p.name in wanted]

    def _hydrate(
        self, meta: EntityMetadata, rows: list[tuple], *, refresh: bool, detached: bool
    ) -> list[Any]:
        uow = self._uow
        identity_map = None if detached else uow.map_for(meta.cls)
        try:
            return core.hydrate(meta.plan, rows, identity_map, uow, refresh)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise _unreadable(meta, rows, exc) from exc

    def find_one(self, entity: type[T] | str, where: Any, **options: Any) -> T | None:
        """The entity matching `where`, or None. A lookup by primary key of a managed entity
        is answered from the identity map: no query, and so no flush."""
        em = self._ctx() if self._global else self
        if not options and (where.__class__ in _SCALAR_KEYS or _is_uuid(where)):
            uow = em._uow
            im = uow.identity_map.get(entity)  # type: ignore[call-overload]
            if im is not None:
                found = im.get(where)
                if (
                    found is not None
                    and found._orm_snap is not REFERENCE
                    and not (uow.partial and id(found) in uow.partial)
                ):
                    return found  # type: ignore[no-any-return]
        unknown = set(options) - _FIND_OPTIONS
        if unknown:
            raise TypeError(f"find_one() got unexpected keyword argument(s): {sorted(unknown)}")
        meta = em.metadata.get(entity)
        mode = expected = None
        lock_mode = options.pop("lock_mode", None)
        lock_version = options.pop("lock_version", None)
        if lock_mode is not None or lock_version is not None:
            mode, expected = locking.find_one_lock(em, meta, lock_mode, lock_version)
        cond = normalize_where(meta, where)
        pk_name = meta.pk.name
        key = cond.get(pk_name) if len(cond) == 1 else None
        by_key = key is not None and not isinstance(key, (Mapping, list, tuple, set, frozenset))
        if not cond or (not by_key and _matches_any_row(em, meta, cond)):
            raise ValidationError(
                f"find_one({meta.class_name}, {where!r}) has no condition: it would return "
                f"whichever row comes first. Pass a primary key or a filter dict (a missing id "
                f"must not return someone else's row); for any row use find(..., limit=1).",
                entity=meta.cls,
            )
        if len(cond) == 1 and pk_name in cond:
            key = cond[pk_name]
            if not isinstance(key, (Mapping, list, tuple, set, frozenset)):
                key = meta.python_key(key)
                where = {pk_name: key}
                if not (
                    options.get("refresh") or options.get("disable_identity_map")
                    or (mode is not None and mode in locking.PESSIMISTIC)
                ):
                    im = em._uow.identity_map.get(meta.cls)
                    found = im.get(key) if im is not None else None
                    if (
                        found is not None
                        and found._orm_snap is not REFERENCE
                        and id(found) not in em._uow.partial
                    ):
                        if mode is not None and mode is locking.LockMode.OPTIMISTIC:
                            locking.lock(em, found, mode, expected)
                        if options.get("populate"):
                            em.populate([found], options["populate"])
                        return found  # type: ignore[no-any-return]
        options.pop("limit", None)
        if mode is not None and mode in locking.PESSIMISTIC:
            options["lock_mode"] = mode
        result = em.find(meta.cls, where, limit=1, **options)
        found = result[0] if result else None
        if found is not None and mode is not None:
            if mode is locking.LockMode.OPTIMISTIC:
                locking.lock(em, found, mode, expected)
            elif expected is not None:
                locking.check_version(meta, found, expected)
        return found

    def find_one_or_fail(self, entity: type[T] | str, where: Any, **options: Any) -> T:
        """Like find_one, but a missing row raises NotFoundError naming entity and filter."""
        found = self.find_one(entity, where, **options)
        if found is None:
            meta = self.metadata.get(entity)
            raise NotFoundError(
                f"{meta.class_name} not found ({where!r})", entity=meta.class_name, where=where
            )
        return found

    def find_all(self, entity: type[T] | str, where: Any = None, **options: Any) -> list[T]:
        return self.find(entity, where, **options)

    def count(self, entity: type[T] | str, where: Any = None, **options: Any) -> int:
        em = self._ctx()
        meta = em.metadata.get(entity)
        sql, params = em.sql.count(meta, where)
        em._auto_flush(meta, options.get("flush_mode"), where)
        return int(em.connection.query(sql, params)[0][0])

    def find_and_count(
        self, entity: type[T] | str, where: Any = None, **options: Any
    ) -> tuple[list[T], int]:
        """(entities, total), the total ignoring limit and offset."""
        found = self.find(entity, where, **options)
        total = self.count(entity, where, flush_mode=options.get("flush_mode"))
        return found, total

    def refresh(self, entity: T) -> T | None:
        """Reload from the database, discarding unflushed changes; None if the row is gone
        (the entity is then detached)."""
        em = self._ctx()
        meta = em.metadata.of_instance(entity)
        if entity._orm_uow is not em._uow or entity._orm_snap is None:  # type: ignore[attr-defined]
            raise ValidationError(
                f"Cannot refresh {meta.class_name} {_short(entity, 80)}: it is not managed by this "
                f"EntityManager (persist and flush it, or load it here first).",
                entity=entity,
            )
        pk = map_key(meta, entity)
        sql, params = em.sql.select(meta, {meta.pk.name: pk}, limit=1)
        rows = em.connection.query(sql, params)
        if not rows:
            if em.connection.in_own_transaction:
                # the row may be back if the transaction rolls back: register it again then
                em.connection.on_rollback(_reregister(em._uow, meta, entity, pk))
                em._note_loaded(meta, [entity])
            em._uow.unregister(entity, meta)
            return None
        em._hydrate(meta, rows, refresh=True, detached=False)
        if meta.collections or meta.inverse_ones:
            loaded = _forget_relation_sides(em._uow, meta, entity)
            if loaded:
                # read as FlushMode.COMMIT reads: a refresh writes nothing (an auto flush
                # would commit changes pending elsewhere, a note moved to this post); the
                # pending links show on top of what is read, as they do there
                mode, em._flush_mode = em._flush_mode, "commit"
                try:
                    em.populate([entity], loaded)
                finally:
                    em._flush_mode = mode
        if em.connection.in_own_transaction:
            em._note_loaded(meta, [entity])
        if meta.loads:
            em._fire_loaded(meta, [([entity], [_FILLED])])
        return entity

    def get_reference(self, entity: type[T] | str, pk: Any) -> T:
        """An entity holding only its primary key, from the identity map if present; no
        query. Reading its other properties raises until it is initialized."""
        em = self._ctx()
        meta = em.metadata.get(entity)
        pk = meta.python_key(pk)
        im = em._uow.map_for(meta.cls)
        found = im.get(pk)
        if found is not None:
            return found  # type: ignore[no-any-return]
        ref = _object_new(meta.cls)
        _object_setattr(ref, meta.pk.name, pk)
        _object_setattr(ref, "_orm_snap", REFERENCE)
        _object_setattr(ref, "_orm_uow", em._uow)
        im[pk] = ref
        if meta.loads and "on_init" in meta.listeners:
            em._uow.inited.add(ref)
            _dispatch.fire(meta.listeners["on_init"], ref, em, None)
        return ref  # type: ignore[no-any-return]

    # -- data helpers -----------------------------------------------------------------------
    def _check_data(self, meta: EntityMetadata, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"Data for {meta.class_name} must be a dict of property names to values, got "
                f"{type(data).__name__}",
                entity=meta.cls,
            )
        for key in data:
            meta.prop(key)

    def _relation_data(self, meta: EntityMetadata, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """A relation given by its target's primary key (`{"author": 3}`, and in a
        collection's list, `{"tags": [1, 2]}`, as MikroORM allows in create/assign)
        becomes a reference to that row (no query). A collection's items come back as a
        list (a generator or a set read once, here)."""
        if not meta.relations and not meta.collections:
            return data
        out = dict(data)
        for prop in meta.relations:
            value = out.get(prop.name)
            if isinstance(value, Mapping):
                raise _nested_data(meta, prop)
            if value is not None and _is_key(value):
                out[prop.name] = self.get_reference(prop.relation.target, value)  # type: ignore[union-attr]
        for prop in meta.collections:
            value = out.get(prop.name)
            if not _many(value):
                continue
            target = prop.relation.target  # type: ignore[union-attr]
            value = list(value)
            if any(isinstance(v, Mapping) for v in value):
                raise _nested_data(meta, prop)
            out[prop.name] = [self.get_reference(target, v) if _is_key(v) else v for v in value]
        return out

    def create(self, entity: type[T] | str, data: Mapping[str, Any], *, persist: bool = True) -> T:
        """A new entity from a dict (through its `__init__` when generated), persisted unless
        `persist=False`. A relation may be given as the target's primary key."""
        em = self._ctx()
        meta = em.metadata.get(entity)
        em._check_data(meta, data)
        data = em._relation_data(meta, data)
        em._refuse_removed_targets(meta, data)
        if em._uow.removed and meta.collections:
            # before the instance exists: built with a managed owner, it would join the
            # Unit of Work at once, and the refusal would come too late
            for prop in meta.collections:
                value = data.get(prop.name)
                if type(value) is list:  # (_relation_data made every collection's a list)
                    em._uow.refuse_removed(meta, None, prop.name, value)
        if meta.generated_init:
            obj = meta.cls(**data)
        else:
            obj = _object_new(meta.cls)
            for key, value in data.items():
                _object_setattr(obj, key, value)
        if meta.loads and "on_init" in meta.listeners:
            _dispatch.fire(meta.listeners["on_init"], obj, em, None)
        if persist:
            em.persist(obj)
        return obj  # type: ignore[no-any-return]

    def assign(self, entity: T, data: Mapping[str, Any]) -> T:
        """Set several properties from a dict; unknown names raise ValidationError. A
        relation may be given as the target's primary key."""
        meta = self.metadata.of_instance(entity)
        self._check_data(meta, data)
        data = self._relation_data(meta, data)
        self._refuse_removed_targets(meta, data, entity)
        for prop in meta.collections:
            # every collection's new items checked before any property changes
            value = data.get(prop.name)
            if type(value) is list:  # (_relation_data made every collection's a list)
                held = getattr(entity, prop.name)
                held._joinable(value, held._require())
        for key, value in data.items():
            setattr(entity, key, value)
        return entity

    def _refuse_removed_targets(
        self, meta: EntityMetadata, data: Mapping[str, Any], entity: Any = None,
        verb: str = "create",
    ) -> None:
        """`create`, `upsert` (`verb`) / `assign` (of `entity`): a relation given an entity
        marked for removal that it does not hold already is refused before anything
        changes, as assigning it would be (a ManyToOne without an inverse side would fail at
        the flush instead, with a foreign-key error, or lose an upserted row to the
        database's ON DELETE CASCADE): the flush deletes that row, so the link could not be
        written."""
        uow = self._uow
        if not uow.removed:
            return
        removing = entity is not None and uow.is_removed(entity)
        for prop in (*meta.relations, *meta.inverse_ones):
            if prop.name not in data:
                continue
            target = _unwrap(data[prop.name])
            if target is None:
                continue
            if _is_key(target):
                # a key (upsert data; create and assign made keys references already): the
                # entity this EntityManager holds under it, if any
                held_meta = prop.relation.target_meta  # type: ignore[union-attr]
                key = target
                try:
                    if isinstance(key, str) and int in held_meta.pk.type.python_types:
                        key = int(key)  # "1" is written as 1
                    target = uow.identity_map.get(held_meta.cls, {}).get(key, target)
                except (TypeError, ValueError):  # the write's own check names it
                    continue
            gone = getattr(target, "_orm_uow", None) is uow and uow.is_removed(target)
            if not (gone or removing):
                continue
            if entity is not None:
                held = _unwrap(entity.__dict__.get(prop.name))
                back = prop.relation.mapped_by  # type: ignore[union-attr]
                if target is held or (
                    back is not None and _unwrap(target.__dict__.get(back)) is entity
                ):
                    continue  # the link it has (an unloaded inverse side may not show it)
            what = f"{verb} {meta.class_name}" if entity is None else (
                f"assign {meta.class_name}.{prop.name} of {_short(entity, 60)}"
            )
            marked = target if gone else entity
            raise ValidationError(
                f"Cannot {what}: {type(marked).__name__} {_short(marked, 60)} is marked for "
                f"removal in this EntityManager (em.remove()), so the flush deletes its row "
                f"and the new link to {prop.name} could not be written. Call em.persist() on "
                f"it first to keep it. Nothing was changed.",
                entity=entity if entity is not None else meta.cls,
                property=prop.name,
            )

    @staticmethod
    def _insert_values(
        meta: EntityMetadata, data: Mapping[str, Any], instance: Any = None
    ) -> dict[str, Any]:
        """`data` plus what an INSERT through the Unit of Work would add for the properties
        it leaves out: defaults and default factories, `on_create` hooks (given the entity,
        or a transient one holding `data`) and the first version."""
        full = dict(data)
        for prop in meta.columns:
            if prop.name in full and not (prop.primary and full[prop.name] is None):
                continue  # an explicit value, None included, is the user's choice
            if prop.default_factory is not None:
                full[prop.name] = prop.default_factory()
            elif prop.default is not MISSING:
                import copy  # upserts only: `import orm` does not need it

                full[prop.name] = copy.deepcopy(prop.default)
        for prop in meta.columns:
            if prop.on_create is not None and full.get(prop.name) is None:
                target = instance
                if target is None:
                    target = _object_new(meta.cls)
                    for key, value in full.items():
                        _object_setattr(target, key, value)
                full[prop.name] = prop.on_create(target)
            if prop.version and full.get(prop.name) is None:
                full[prop.name] = 1
        return full

    @overload
    def upsert(self, entity: type[T], data: Mapping[str, Any]) -> T: ...
    @overload
    def upsert(self, entity: str, data: Mapping[str, Any]) -> Any: ...
    @overload
    def upsert(self, entity: T, data: None = None) -> T: ...
    def upsert(self, entity: Any, data: Mapping[str, Any] | None = None) -> Any:
        """Insert, or update the row with the same primary key (or, without one in the
        data, the same unique property); returns the managed entity (the instance itself
        when one is given). The primary key of an existing row is never changed."""
        em = self._ctx()
        instance = None
        if data is None and not isinstance(entity, (type, str)):
            instance = entity
            meta = em.metadata.of_instance(instance)
            owner = instance._orm_uow
            if owner is not None and owner is not em._uow:
                raise ValidationError(
                    f"{meta.class_name} {_short(instance, 80)} is managed by another EntityManager "
                    f"(id {owner.em.id}); upsert it there.",
                    entity=instance,
                )
            before = meta.listeners.get("before_upsert")
            if before is not None:
                _dispatch.fire(before, instance, em, None)
            # what the instance itself holds: a class-level default is not the user's value
            # and must not overwrite the stored row (reading vars() is fine on this rare path)
            own = vars(instance)
            data = {p.name: own[p.name] for p in meta.columns if p.name in own}
        else:
            meta = em.metadata.get(entity)
            if data is None:
                raise ValidationError(f"upsert({meta.class_name}, data) needs the data dict")
            before = meta.listeners.get("before_upsert")
            if before is not None:
                # no instance yet: the subscribers get (and may change) a copy of the data
                handlers = tuple(entry for entry in before[0] if entry[1] == _dispatch.HANDLER)
                if handlers:
                    em._check_data(meta, data)
                    data = dict(data)
                    _dispatch.fire((handlers, True), data, em, None)
            em._check_data(meta, data)
        data = {k: v for k, v in data.items() if not (k == meta.pk.name and v is None)}
        em._refuse_removed_targets(meta, data, verb="upsert")
        target = [meta.pk] if meta.pk.name in data else [
            p for p in meta.columns if p.unique and p.name in data
        ][:1]
        if not target:
            raise ValidationError(
                f"upsert of {meta.class_name} needs the primary key or a unique property in "
                f"the data to find an existing row; got {', '.join(data) or 'nothing'}",
                entity=meta.cls,
            )
        given = {meta.properties[name].field_name for name in data}
        fields, values = meta.to_db_columns(
            em._insert_values(meta, data, instance), operation="upsert"
        )
        sql = em.sql.upsert(meta, fields, given, target[0].field_name)
        conn = em.connection
        uow = em._uow
        after = meta.listeners.get("after_upsert")

        def apply(rows: list[tuple], undone: bool) -> Any:
            """The row written: the managed entity reflects it (`undone`: and goes back to
            what it was if the transaction around is rolled back)."""
            pk = meta.row_key(rows[0])
            im = uow.map_for(meta.cls)
            previous = im.get(pk)
            was_new = instance is not None and id(instance) in uow.new.get(meta.cls, ())
            generated = meta.pk.name not in data
            undo = _undo.UpsertUndo(uow, meta, pk, previous, was_new, generated) if undone else None
            if instance is not None and instance._orm_snap is None and previous is None:
                _object_setattr(instance, "_orm_uow", uow)
                im[pk] = instance
            # the managed entity's own unflushed changes to columns the upsert did not set
            pending = {}
            if previous is not None and type(previous._orm_snap) is tuple:
                for i in _undo.changed_columns(meta.plan, previous):
                    prop = meta.columns[i]
                    if prop.field_name not in given:
                        pending[prop.name] = getattr(previous, prop.name)
            result = em._hydrate(meta, rows, refresh=True, detached=False)[0]
            if pending:
                # the snapshot is the row just read, not what the attributes hold next
                _object_setattr(result, "_orm_snap", core.snapshot(result))
                for name, value in pending.items():
                    _object_setattr(result, name, value)
                uow.dirty[id(result)] = result
            if undo is not None:
                undo.entity = result
                conn.on_rollback(undo.run)
            if previous is None and instance is None and "on_init" in meta.listeners:
                _dispatch.fire(meta.listeners["on_init"], result, em, None)
            return result

        conn.begin()
        nested = conn.depth > 1  # inside the caller's transaction: undone with it
        try:
            rows = conn.query(sql, values)
            if meta.pk.autoincrement and meta.pk.name in data and em.sql.platform.keys_returned:
                advance_keys(em, meta, [data[meta.pk.name]])
            if after is not None:
                # after_upsert runs in the transaction, on the managed entity: an exception
                # rolls the upsert back, entity included
                result = apply(rows, True)
                _dispatch.fire(after, result, em, None)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        if after is None:
            result = apply(rows, nested)
        if instance is not None:
            if result is not instance:
                uow = em._uow
                if id(instance) in uow.new.get(meta.cls, ()) or id(instance) in uow.enrolled:
                    # it joined this EntityManager (built with a managed entity): as for
                    # em.remove() of a new entity, it is forgotten and leaves the loaded
                    # collections that listed it, or the next flush would insert the row a
                    # second time
                    uow.remove(instance, meta)
                raise ValidationError(
                    f"The {meta.class_name} row was upserted and the instance this "
                    f"EntityManager already manages for key {getattr(result, meta.pk.name)!r} was "
                    f"refreshed; this second instance of the same row stays unmanaged. Use "
                    f"the managed one.",
                    entity=instance,
                )
            group = em._uow.new.get(meta.cls)
            if group is not None:
                group.pop(id(instance), None)  # written now: no second INSERT at flush
            if meta.collections:
                # the upsert wrote the row only: the pairs its many-to-many collections
                # hold (or were changed by) are for the next flush, which a managed, clean
                # entity's collections would otherwise never reach
                for prop in meta.collections:
                    held = instance.__dict__.get(prop.name)
                    if held is not None and held._delta:
                        em._uow.collections[id(held)] = held
        return result

    # -- native queries ---------------------------------------------------------------------
    def native_insert(self, entity: type[T] | str, data: Mapping[str, Any]) -> Any:
        """One INSERT, no Unit of Work; returns the new primary key."""
        em = self._ctx()
        meta = em.metadata.get(entity)
        em._check_data(meta, data)
        full = em._insert_values(meta, data)
        fields, values = meta.to_db_columns(full, operation="native_insert")
        given = full.get(meta.pk.name)
        if fields:
            statement = em.sql.insert_data(meta, fields)
        else:  # nothing but a generated key
            statement = em.sql.insert_default_values(meta)
        if not em.sql.platform.keys_returned:
            cursor = em.connection.execute(statement, values)
            return given if given is not None else em.sql.platform.first_generated_key(cursor, 1)
        if given is not None:
            em.connection.execute(statement, values)
            if meta.pk.autoincrement:
                advance_keys(em, meta, [given])
            return given
        returning = f"{statement} returning {em.sql.quote(meta.pk.field_name)}"
        key = em.connection.query(returning, values, retry_stale=False)[0][0]
        return meta.pk.type.to_python(key) if meta.pk.type.converts else key

    def native_update(
        self, entity: type[T] | str, where: Any, data: Mapping[str, Any]
    ) -> int:
        """One UPDATE, no Unit of Work; returns the number of rows affected. `where=None` is
        refused (a missing id must not update every row): pass `{}` for every row. A
        `version` property is counted up unless `data` sets it."""
        em = self._ctx()
        meta = em.metadata.get(entity)
        _require_where(meta, where, "native_update")
        em._check_data(meta, data)
        if not data:
            raise ValidationError(
                f"native_update({meta.class_name}, ...) got no data: nothing to set",
                entity=meta.cls,
            )
        fields, values = meta.to_db_columns(data, operation="native_update")
        # a versioned row counts its version up, as a flush would, unless `data` sets it: an
        # entity loaded before then fails its flush (OptimisticLockError) rather than
        # overwrite this change
        version = meta.version
        count_up = version.field_name if version and version.name not in data else None
        sql, params = em.sql.update_where(meta, where, fields, count_up)
        return int(em.connection.execute(sql, values + params).rowcount)

    def native_delete(self, entity: type[T] | str, where: Any) -> int:
        """One DELETE, no Unit of Work; returns the number of rows affected. `where=None` is
        refused (a missing id must not delete every row): pass `{}` for every row."""
        em = self._ctx()
        meta = em.metadata.get(entity)
        _require_where(meta, where, "native_delete")
        sql, params = em.sql.delete_where(meta, where)
        return int(em.connection.execute(sql, params).rowcount)

    # -- locks ------------------------------------------------------------------------------
    def lock(self, entity: Any, lock_mode: LockMode, lock_version: int | None = None) -> None:
        """Lock a managed entity (MikroORM's `em.lock`).

        `LockMode.OPTIMISTIC` with `lock_version`, the version the caller expects (the one
        a form was built from, say): the entity's version and its row's must both be that
        one, else `OptimisticLockError`; nothing is held (the flush checks the version
        again). `LockMode.PESSIMISTIC_WRITE` / `PESSIMISTIC_READ`, inside a transaction
        only: the row is locked until the transaction ends (`for update` / `for share` on
        PostgreSQL; on SQLite the transaction takes the database write lock). It is not
        read again: a versioned entity changed since it was loaded raises
        `OptimisticLockError`; `find_one(..., lock_mode=...)` reads it under the lock."""
        em = self._ctx()
        locking.lock(em, entity, lock_mode, lock_version)

    # -- transactions -----------------------------------------------------------------------
    def transactional(self, fn: Callable[[EntityManager], R], retries: int = 0) -> R:
        """Run `fn(tx)` in a transaction with a forked EntityManager `tx`, flushed and
        committed at the end, rolled back if `fn` raises. Nested calls use savepoints.

        `retries=N` runs `fn` again, on a fresh fork, up to N more times when the database
        reports a conflict it asks the client to retry (a serialization failure or a
        deadlock: exceptions whose `retryable` is true), after a jittered, growing pause.
        Only a transaction this call begins is retried: inside one the caller drives, the
        conflict is raised (its earlier reads cannot be replayed)."""
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValidationError(f"retries must be a non-negative integer, got {retries!r}")
        attempt = 0
        while True:
            outermost = not self.connection.in_own_transaction
            try:
                with self.transaction() as tx:
                    return fn(tx)
            except DriverException as exc:
                if not (exc.retryable and outermost and attempt < retries):
                    raise
                attempt += 1
                _retry.pause(attempt)

    @contextmanager
    def transaction(self) -> Iterator[EntityManager]:
        """`with em.transaction() as tx:` — the block's work commits together or not at all.

        The fork `tx` lives as long as the block. If the block is rolled back, `tx` lets go
        of everything it held (as `tx.clear()`): entities created for the block can be
        persisted again, by a retry of the block or anywhere else, and none of them looks
        stored (their generated keys are taken back). Begun on the global EntityManager (or
        the request context's fork), the block routes `orm.em` to `tx` (a context variable:
        a generator yielding inside the block lends it to its consumer until it resumes)."""
        base = _request_fork(self._orm)
        tx = (base if base is not None and self._global else self).fork()
        if self._global or (base is not None and self is base):
            # `orm.em` inside the block is the transaction's fork: its work commits or
            # rolls back with the block's, not later through the request's fork
            from .context import routed_to

            with routed_to(tx), self._in_transaction(tx) as inner:
                yield inner
            return
        with self._in_transaction(tx) as inner:
            yield inner

    @contextmanager
    def _in_transaction(self, tx: EntityManager) -> Iterator[EntityManager]:
        conn = self.connection
        events = self._orm._events  # None while nothing listens (see ORM.events)
        # the transaction events are about database transactions: not a savepoint
        outer = (
            events is not None
            and events.has_transaction_handlers()
            and not conn.in_own_transaction
        )
        if outer:
            events.transaction_event("before_transaction_start", tx)
        conn.begin()
        try:
            yield tx
            tx.flush()
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            finally:
                tx._uow.clear()
            if outer:
                events.transaction_event("after_transaction_rollback", tx)
            raise
        if outer:
            events.transaction_event("after_transaction_commit", tx)


def _forget_relation_sides(uow: Any, meta: EntityMetadata, entity: Any) -> list[str]:
    """A refreshed entity's collections and inverse one-to-ones go back to "not loaded":
    their unflushed changes, a many-to-many's pending pairs included, are discarded with
    the columns' (not a one-to-many's: they are its items' foreign keys, not its own).
    Returns those that were loaded, for `refresh` to read again (the same Collection
    objects are filled, so references to them see it)."""
    values = entity.__dict__
    loaded = []
    for prop in meta.collections:
        held = values.get(prop.name)
        if held is not None:
            if held._items is not None:
                loaded.append(prop.name)
                if prop.relation.kind == "1:m":  # type: ignore[union-attr]
                    # its changes are the items' foreign keys, which stay unflushed: the
                    # re-read keeps those pointing here in memory (see _populate_collection)
                    continue
            held._items = None
            held._delta = None
            held._dirty = False
            uow.collections.pop(id(held), None)
    for prop in meta.inverse_ones:
        if values.pop(prop.name, MISSING) is not MISSING:
            loaded.append(prop.name)
    return loaded


def _reregister(uow: UnitOfWork, meta: EntityMetadata, entity: Any, key: Any) -> Any:
    """Undo of a refresh that found no row inside a transaction (see refresh)."""
    snapshot = core.snapshot(entity)
    generation = uow.generation

    def undo() -> None:
        im = uow.map_for(meta.cls)
        if uow.generation == generation and entity._orm_uow is None and key not in im:
            _object_setattr(entity, "_orm_uow", uow)
            _object_setattr(entity, "_orm_snap", snapshot)
            im[key] = entity

    return undo



def _require_where(meta: EntityMetadata, where: Any, call: str) -> None:
    if where is None:
        raise ValidationError(
            f"{call}({meta.class_name}, None): no condition given, which would reach every "
            f"row; pass a primary key or a filter dict, or {{}} to mean every row.",
            entity=meta.cls,
        )


def _unreadable(meta: EntityMetadata, rows: list[tuple], exc: Exception) -> ValidationError:
    """A stored value the property's type cannot read (text in a datetime column, broken
    JSON written by another program): which row and property, found on the error path."""
    for row in rows:
        for prop in meta.columns:
            value = row[prop.column_index]
            if value is None or value is UNLOADED or not prop.type.converts:
                continue
            try:
                prop.type.to_python(value)
            except (ValueError, TypeError, ArithmeticError) as err:
                key = row[meta.pk_index]
                return ValidationError(
                    f"The {meta.class_name} row with {meta.pk.name} = {key!r} holds "
                    f"{_short(value, 60)} in {prop.field_name!r}, which {meta.class_name}."
                    f"{prop.name} ({prop.type.describe()}) cannot read: {err}. Fix the stored "
                    f"value, or map the column with a type that reads it.",
                    entity=meta.cls,
                    property=prop.name,
                )
    return ValidationError(
        f"A {meta.class_name} row could not be read: {exc}", entity=meta.cls
    )


def _matches_any_row(em: EntityManager, meta: EntityMetadata, cond: dict[str, Any]) -> bool:
    """Whether a filter is true of every row (`{"$and": []}`, `{"$or": [{}]}`, `{"id":
    {"$nin": []}}`, `{"$not": {"$or": []}}`): the compiler folds such constants to no SQL
    at all, while a condition on a column, even one without parameters (`{"nickname":
    None}`), compiles to some."""
    sql, _ = compile_where(meta, cond, em.sql.platform)
    return sql == ""


#: how a query's row reached its entity (for on_init / on_load): a new instance, an entity
#: filled from it (a partial entity, a refresh), a reference filled from it, or one left as
#: it was
_CREATED, _FILLED, _UNTOUCHED, _REFILLED = 0, 1, 2, 3


def _load_states(
    meta: EntityMetadata, rows: list[tuple], identity_map: dict[Any, Any] | None, refresh: bool
) -> list[int]:
    """For each row, before it is hydrated, what hydrating it will do (core.hydrate's
    rules); only queries of a type with on_init / on_load listeners pay for it. A key
    read twice (a tag reached through the pivot rows of several articles) is created or
    filled by its first row only: the hooks fire once per entity."""
    if identity_map is None:
        return [_CREATED] * len(rows)
    states = []
    seen = set()
    for row in rows:
        key = meta.row_key(row)
        if key in seen:
            states.append(_UNTOUCHED)
            continue
        seen.add(key)
        existing = identity_map.get(key)
        if existing is None:
            states.append(_CREATED)
            continue
        snap = existing._orm_snap
        if snap is REFERENCE:
            states.append(_REFILLED)
        elif refresh or (type(snap) is tuple and UNLOADED in snap):
            states.append(_FILLED)
        else:
            states.append(_UNTOUCHED)
    return states


def _pad_rows(meta: EntityMetadata, props: list[Any], rows: list[tuple]) -> list[tuple]:
    """Rows of a partial select -> full-width rows with UNLOADED where nothing was read."""
    positions = [p.column_index for p in props]
    template = [UNLOADED] * len(meta.columns)
    out = []
    for row in rows:
        full = list(template)
        for j, i in enumerate(positions):
            full[i] = row[j]
        out.append(tuple(full))
    return out


def _is_key(value: Any) -> bool:
    """A value given for a relation in create/assign data that stands for its target's
    primary key: not None, not an entity, not a Ref (a wrong key type is the reference's
    error to raise)."""
    return (
        value is not None
        and type(value) is not Ref
        and getattr(type(value), "_orm_declaration", None) is None
    )


def _many(value: Any) -> bool:
    """A collection's value in create/assign data: an iterable of items (a list, a tuple,
    a set, a generator, another collection), not a string or a mapping."""
    return (
        value is not None
        and hasattr(value, "__iter__")
        and not isinstance(value, (str, bytes, Mapping))
    )


def _flat(items: Any) -> Iterator[Any]:
    """The entities of a (possibly nested) list given to `persist`."""
    for item in items:
        if isinstance(item, (list, tuple, set, frozenset)):
            yield from _flat(item)
        else:
            yield item


def _nested_data(meta: EntityMetadata, prop: Any) -> ValidationError:
    """A relation given a dict in create/assign/upsert data: nested data is not taken (the
    error named the target's primary key, as if the dict were a key)."""
    target = prop.relation.target.__name__
    many = prop.relation.kind in ("1:m", "m:n")
    article = "an" if target[:1].lower() in "aeiou" else "a"
    takes = f"{target} entities or their primary keys" if many else (
        f"{article} {target} entity or its primary key"
    )
    return ValidationError(
        f"{meta.class_name}.{prop.name} takes {takes}, not a dict of data: make the "
        f"{target} first (em.create({target}, {{...}}), or find it) and give that. Nothing "
        f"was changed.",
        entity=meta.cls,
        property=prop.name,
    )


def _flush_before_query(uow: UnitOfWork, mode: str) -> None:
    """The flush a query runs first. Failing, it says so: the user called a query, and the
    message of the flush's error alone sent them looking for a flush they never called."""
    try:
        uow.commit()
    except Exception as exc:
        said = (
            f"This was the flush FlushMode.{mode.upper()} runs before a query, for the query "
            f"to see the pending changes; pass flush_mode=FlushMode.COMMIT to the query to "
            f"read without it."
        )
        if not isinstance(exc, ORMError):  # the application's own: its message stays as is
            exc.add_note(said)
        elif exc.args and isinstance(exc.args[0], str):
            exc.args = (f"{exc.args[0]} ({said})", *exc.args[1:])
        raise


def _joined_metas(meta: EntityMetadata, where: Any, order_by: Any) -> list[EntityMetadata]:
    """The entity types other than `meta` whose tables a filter and an ordering read through
    relations: `{"author": {"name": "x"}}`, `{"tags": {"label": ...}}`, `{"$or": [...]}`,
    `order_by={"author": {"name": "asc"}}`, nested. A relation given a key or an entity reads
    no other table. The filter was compiled (and so checked) before this runs."""
    found: dict[int, EntityMetadata] = {}

    def walk(current: EntityMetadata, value: Any) -> None:
        if type(value) in (list, tuple):
            for item in value:
                walk(current, item)
            return
        if not isinstance(value, Mapping):
            return
        for key, inner in value.items():
            if type(key) is not str:
                continue
            if key.startswith("$"):
                walk(current, inner)  # $and / $or / $not: filters of the same type
                continue
            prop = current.properties.get(key)
            relation = None if prop is None else prop.relation
            if relation is None or not isinstance(inner, Mapping):
                continue
            target = relation.target_meta
            if target is not None:
                found[id(target)] = target
                walk(target, inner)

    walk(meta, where)
    walk(meta, order_by)
    found.pop(id(meta), None)
    return list(found.values())


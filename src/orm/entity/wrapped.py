"""`wrap(entity)`: the helper API around an entity, and `BaseEntity`, which exposes it as
methods. Nothing is stored per entity for it: the helper is made on demand."""

from __future__ import annotations

import sys
from datetime import date, datetime, time

from .._markers import REFERENCE, is_set
from .._typing import TYPE_CHECKING, Generic, TypeVar
from ..errors import NotFoundError, ValidationError, _short

if TYPE_CHECKING:
    from typing import Any, Self

    from ..entity_manager import EntityManager

__all__ = ["wrap", "WrappedEntity", "BaseEntity"]

T = TypeVar("T")


def _declaration(entity: Any) -> Any:
    decl = getattr(type(entity), "_orm_declaration", None)
    if decl is None:
        raise ValidationError(
            f"wrap() needs an entity, got {type(entity).__name__} {_short(entity, 80)}",
            entity=entity,
        )
    return decl


_JSON_ATOMS = frozenset({str, int, float, bool})


def _text_types() -> tuple[type, ...]:
    """UUID and Decimal, of the modules imported so far: a value of either exists only once
    its module is (`import orm` imports neither)."""
    found = []
    for module, name in (("uuid", "UUID"), ("decimal", "Decimal")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def _json_safe(value: Any) -> Any:
    if value is None or value.__class__ in _JSON_ATOMS:
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, _text_types()):
        return str(value)
    enum = sys.modules.get("enum")  # an Enum member exists only once enum is imported
    if enum is not None and isinstance(value, enum.Enum):
        return _json_safe(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64  # for the first bytes value: `import orm` does not load base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    return value


def _relation_value(value: Any, seen: set[int]) -> Any:
    from .reference import Ref, pk_name_of

    target = value.entity if type(value) is Ref else value
    if getattr(type(target), "_orm_declaration", None) is None:
        return value  # not an entity (refused at flush): shown as it is
    if target._orm_snap is REFERENCE or id(target) in seen:
        return getattr(target, pk_name_of(type(target)), None)
    seen.add(id(target))
    return WrappedEntity(target)._values((), seen)


class WrappedEntity(Generic[T]):
    """What `wrap(entity)` returns."""

    __slots__ = ("entity",)

    def __init__(self, entity: T) -> None:
        _declaration(entity)
        self.entity = entity

    def __repr__(self) -> str:
        return f"wrap({self.entity!r})"

    def _pk_name(self) -> str:
        decl = _declaration(self.entity)
        return next(n for n, o in decl.properties.items() if o.get("primary"))

    def is_initialized(self) -> bool:
        return self.entity._orm_snap is not REFERENCE  # type: ignore[attr-defined]

    def is_managed(self) -> bool:
        """Whether an EntityManager holds it as a stored row (loaded, flushed, or a
        reference); a persisted entity becomes managed when it is flushed."""
        entity = self.entity
        return entity._orm_uow is not None and entity._orm_snap is not None  # type: ignore[attr-defined]

    def populated(self, populated: bool = True) -> None:
        """Kept for MikroORM parity: scalar properties are always loaded together."""

    def get_primary_key(self) -> Any:
        return getattr(self.entity, self._pk_name())

    def get_entity_manager(self) -> EntityManager | None:
        uow = self.entity._orm_uow  # type: ignore[attr-defined]
        return uow.em if uow is not None else None

    def init(self) -> T:
        """Load an uninitialized reference (one query); a loaded entity is returned as is."""
        if self.is_initialized():
            return self.entity
        em = self.get_entity_manager()
        if em is None:
            raise ValidationError(
                f"Cannot initialize {type(self.entity).__name__}: it is not managed by an "
                f"EntityManager",
                entity=self.entity,
            )
        pk = self.get_primary_key()
        found = em.find_one(type(self.entity), {self._pk_name(): pk})
        if found is None:
            raise NotFoundError(
                f"{type(self.entity).__name__} not found ({pk!r})",
                entity=type(self.entity).__name__,
                where=pk,
            )
        return self.entity

    def assign(self, data: dict[str, Any]) -> T:
        decl = _declaration(self.entity)
        for key in data:
            if key not in decl.properties:
                raise ValidationError(
                    f"{type(self.entity).__name__} has no property {key!r}; known properties: "
                    f"{', '.join(decl.properties)}",
                    entity=self.entity,
                    property=key,
                )
        for key, value in data.items():
            setattr(self.entity, key, value)
        return self.entity

    def _values(
        self, exclude: tuple[str, ...] = (), seen: set[int] | None = None
    ) -> dict[str, Any]:
        """The visible properties; a relation as its target's primary key, or, when the
        target is loaded, as its nested dict. `seen` holds the entities already shown in
        this call: a repeated one (a cycle) is shown as its key."""
        decl = _declaration(self.entity)
        if seen is None:
            seen = {id(self.entity)}
        out: dict[str, Any] = {}
        for name, opts in decl.properties.items():
            if opts.get("hidden") or name in exclude or not is_set(self.entity, name):
                continue
            value = getattr(self.entity, name)
            if opts.get("relation") in ("1:m", "m:n"):
                if value._items is None:
                    continue  # uninitialized: left out, as MikroORM does
                value = [_relation_value(item, seen) for item in value._items.values()]
            elif value is not None and opts.get("relation"):
                value = _relation_value(value, seen)
            out[name] = value
        return out

    def to_object(self, *exclude: str) -> dict[str, Any]:
        """The properties as a dict of Python values, hidden ones left out (a reference
        gives only its primary key)."""
        return self._values(exclude)

    def to_pojo(self) -> dict[str, Any]:
        """Like to_object, as plain data detached from the entity (mutable values copied)."""
        import copy  # `import orm` does not load copy

        return copy.deepcopy(self._values())

    def to_json(self, *exclude: str) -> dict[str, Any]:
        """A JSON-safe dict: dates as ISO text, UUID and Decimal as strings, enums as values,
        bytes as base64."""
        return {k: _json_safe(v) for k, v in self._values(exclude).items()}


def wrap(entity: T) -> WrappedEntity[T]:
    """The helper API of an entity (SPEC section 4)."""
    return WrappedEntity(entity)


class BaseEntity:
    """Optional base class exposing `wrap()`'s API as methods on the entity itself."""

    def is_initialized(self) -> bool:
        return wrap(self).is_initialized()

    def is_managed(self) -> bool:
        return wrap(self).is_managed()

    def init(self) -> Self:
        return wrap(self).init()

    def populated(self, populated: bool = True) -> None:
        wrap(self).populated(populated)

    def get_primary_key(self) -> Any:
        return wrap(self).get_primary_key()

    def get_entity_manager(self) -> EntityManager | None:
        return wrap(self).get_entity_manager()

    def assign(self, data: dict[str, Any]) -> Self:
        return wrap(self).assign(data)

    def to_object(self, *exclude: str) -> dict[str, Any]:
        return wrap(self).to_object(*exclude)

    def to_pojo(self) -> dict[str, Any]:
        return wrap(self).to_pojo()

    def to_json(self, *exclude: str) -> dict[str, Any]:
        return wrap(self).to_json(*exclude)

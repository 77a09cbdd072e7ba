"""`Ref[T]`: a relation value that says whether its entity is loaded.

A `Ref` property holds one of these around the target entity (loaded or an uninitialized
reference), so code reading it must say what it wants: the key (`.id`, never a query), the
entity if it is loaded (`.get_entity()`), or the entity, loading it if needed (`.load()`).
"""

from __future__ import annotations

from .._markers import REFERENCE
from .._typing import TYPE_CHECKING, Generic, TypeVar
from ..errors import ValidationError, _short

if TYPE_CHECKING:
    from typing import Any

__all__ = ["Ref", "ref"]

T = TypeVar("T")

#: entity class -> primary key property name (the declaration never changes)
_PK_NAMES: dict[type, str] = {}


def pk_name_of(cls: type) -> str:
    name = _PK_NAMES.get(cls)
    if name is None:
        decl = getattr(cls, "_orm_declaration", None)
        if decl is None:
            raise ValidationError(f"{cls.__name__} is not an entity", entity=cls)
        name = next(n for n, o in decl.properties.items() if o.get("primary"))
        _PK_NAMES[cls] = name
    return name


class Ref(Generic[T]):
    """A reference to an entity of type `T` (see the module docstring). Two refs are equal
    when they hold the same entity."""

    __slots__ = ("entity",)

    def __init__(self, entity: T) -> None:
        if isinstance(entity, Ref):
            entity = entity.entity
        if getattr(type(entity), "_orm_declaration", None) is None:
            raise ValidationError(
                f"Ref() takes an entity, got {type(entity).__name__} {_short(entity, 60)}",
                entity=entity,
            )
        self.entity = entity

    @property
    def id(self) -> Any:
        """The primary key (never a query)."""
        return getattr(self.entity, pk_name_of(type(self.entity)), None)

    def is_initialized(self) -> bool:
        return self.entity._orm_snap is not REFERENCE  # type: ignore[attr-defined]

    def get_entity(self) -> T:
        """The entity, if it is loaded; a ValidationError telling to load it otherwise."""
        if not self.is_initialized():
            name = type(self.entity).__name__
            raise ValidationError(
                f"Ref<{name}> ({self.id!r}) is not loaded: call .load(), or populate the "
                f"relation in the query (populate=[...]).",
                entity=self.entity,
            )
        return self.entity

    def load(self) -> T:
        """The entity, loaded first (one query) if it is an uninitialized reference."""
        from .wrapped import wrap

        return wrap(self.entity).init()

    def unwrap(self) -> T:
        """The entity held, loaded or not (reading its properties may raise if not)."""
        return self.entity

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ref):
            return other.entity is self.entity
        return NotImplemented

    def __hash__(self) -> int:
        return id(self.entity)

    def __repr__(self) -> str:
        state = "" if self.is_initialized() else ", not loaded"
        return f"Ref<{type(self.entity).__name__}>({self.id!r}{state})"


def _unwrap(value: Any) -> Any:
    """The entity a relation value holds: a `Ref` unwrapped, anything else as it is."""
    return value.entity if type(value) is Ref else value


def ref(entity: T) -> Ref[T]:
    """A `Ref` around `entity` (an entity already wrapped is returned as it is)."""
    if isinstance(entity, Ref):
        return entity
    return Ref(entity)

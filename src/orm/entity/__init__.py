"""The entity-side API: wrap(), WrappedEntity, BaseEntity, Ref, Collection.

`Collection` is imported on first use (`__getattr__`): only entities with one-to-many or
many-to-many relations need it, and with it `collections.abc`. So are `wrap()`,
`WrappedEntity` and `BaseEntity` (a script that never calls `wrap()` does not load them).
"""

from __future__ import annotations

from .._typing import TYPE_CHECKING, lazy_names
from .reference import Ref, ref

if TYPE_CHECKING:
    from .collection import Collection
    from .wrapped import BaseEntity, WrappedEntity, wrap

__all__ = ["wrap", "WrappedEntity", "BaseEntity", "Ref", "ref", "Collection"]

_LAZY = {"Collection": "collection", "BaseEntity": "wrapped", "WrappedEntity": "wrapped", "wrap": "wrapped"}

if not TYPE_CHECKING:
    __getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

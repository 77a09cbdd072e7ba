"""The entity-side API: wrap(), WrappedEntity, BaseEntity, Ref, Collection.

`Collection` is imported on first use (`__getattr__`): only entities with one-to-many or
many-to-many relations need it, and with it `collections.abc`.
"""

from __future__ import annotations

from .._typing import TYPE_CHECKING, lazy_names
from .reference import Ref, ref
from .wrapped import BaseEntity, WrappedEntity, wrap

if TYPE_CHECKING:
    from .collection import Collection

__all__ = ["wrap", "WrappedEntity", "BaseEntity", "Ref", "ref", "Collection"]

_LAZY = {"Collection": "collection"}

if not TYPE_CHECKING:
    __getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

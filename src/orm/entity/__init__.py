"""The entity-side API: wrap(), WrappedEntity, BaseEntity, Ref, Collection."""

from .collection import Collection
from .reference import Ref, ref
from .wrapped import BaseEntity, WrappedEntity, wrap

__all__ = ["wrap", "WrappedEntity", "BaseEntity", "Ref", "ref", "Collection"]

"""The entity-side API: wrap(), WrappedEntity, BaseEntity."""

from .wrapped import BaseEntity, WrappedEntity, wrap

__all__ = ["wrap", "WrappedEntity", "BaseEntity"]

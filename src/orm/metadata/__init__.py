"""Entity declarations and their resolved metadata."""

from .declare import EntitySchema, entity
from .discovery import MetadataStorage, discover, expand_entries
from .model import EntityMetadata, PropertyMetadata
from .options import PrimaryKey, Property

__all__ = [
    "entity",
    "EntitySchema",
    "PrimaryKey",
    "Property",
    "EntityMetadata",
    "PropertyMetadata",
    "MetadataStorage",
    "discover",
    "expand_entries",
]

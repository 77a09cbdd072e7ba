"""Entity declarations and their resolved metadata."""

from .declare import EntitySchema, entity
from .discovery import MetadataStorage, discover, expand_entries
from .model import EntityMetadata, PropertyMetadata, RelationMetadata
from .options import PrimaryKey, Property
from .relations import Cascade, ManyToMany, ManyToOne, OneToMany, OneToOne

__all__ = [
    "entity",
    "EntitySchema",
    "PrimaryKey",
    "Property",
    "ManyToMany",
    "ManyToOne",
    "OneToOne",
    "OneToMany",
    "Cascade",
    "EntityMetadata",
    "RelationMetadata",
    "PropertyMetadata",
    "MetadataStorage",
    "discover",
    "expand_entries",
]

"""Entity declarations and their resolved metadata.

Declaring an entity needs `declare`, `options` and `relations`; discovery and the resolved
model are imported on first use (`__getattr__`), when an ORM starts.
"""

from __future__ import annotations

from .._typing import TYPE_CHECKING, lazy_names
from .declare import EntitySchema, entity
from .options import PrimaryKey, Property
from .relations import ManyToMany, ManyToOne, OneToMany, OneToOne

if TYPE_CHECKING:
    from .cascade import Cascade
    from .discovery import MetadataStorage, discover, expand_entries
    from .model import EntityMetadata, PropertyMetadata, RelationMetadata

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

_LAZY = {
    "Cascade": "cascade",
    "MetadataStorage": "discovery",
    "discover": "discovery",
    "expand_entries": "discovery",
    "EntityMetadata": "model",
    "PropertyMetadata": "model",
    "RelationMetadata": "model",
}


if not TYPE_CHECKING:
    __getattr__ = lazy_names(__name__, _LAZY, globals())

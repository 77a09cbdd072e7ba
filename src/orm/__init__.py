"""orm: a synchronous, embedded data-mapper ORM (Unit of Work, Identity Map) on sqlite3.

`import orm` loads what declaring entities needs (the decorators, property options, mapped
types, Ref, the errors); the rest of the public names (ORM, EntityManager, events, the schema
generator, Collection, wrap() and BaseEntity, the enums, ...) are imported on first use, through `__getattr__` below, so a module
that only declares entities does not pay for the Unit of Work, the platforms or sqlite3. The
config-file search, folder discovery, logging and the command line import their dependencies on
first use too. tests/test_startup.py guards this.

`.entity` and `.types` are imported before the names that shadow them: importing the
subpackage `orm.entity` (or the module `orm.types`) sets that attribute of the package, which
the `entity` decorator (and the `types` map) must then replace, and a later, lazy import of
them would undo that.
"""

from __future__ import annotations

from ._typing import TYPE_CHECKING, import_pause, lazy_names

# the collector rests while the package loads (see `_typing.import_pause`)
with import_pause():
    from ._backend import diff_backend
    from .entity import Ref, ref
    from .errors import (
        _DRIVER_ERRORS,
        ConnectionException,
        DriverException,
        MetadataError,
        NotFoundError,
        OptimisticLockError,
        ORMError,
        ValidationError,
    )
    from .metadata.declare import EntitySchema, entity
    from .metadata.options import PrimaryKey, Property
    from .metadata.relations import ManyToMany, ManyToOne, OneToMany, OneToOne
    from .types import Type, t, types

if TYPE_CHECKING:
    from .config import Options, define_config
    from .context import RequestContext
    from .core import ORM
    from .entity.collection import Collection
    from .entity.wrapped import BaseEntity, WrappedEntity, wrap
    from .entity_manager import EntityManager
    from .errors import (
        CheckConstraintViolationException,
        ConstraintViolationException,
        DeadlockException,
        ForeignKeyConstraintViolationException,
        InvalidFieldNameException,
        LockWaitTimeoutException,
        NotNullConstraintViolationException,
        ReadOnlyException,
        SerializationFailureException,
        SyntaxErrorException,
        TableExistsException,
        TableNotFoundException,
        UniqueConstraintViolationException,
    )
    from .events import (
        EventArgs,
        EventManager,
        EventSubscriber,
        FlushEventArgs,
        TransactionEventArgs,
        after_create,
        after_delete,
        after_update,
        after_upsert,
        before_create,
        before_delete,
        before_update,
        before_upsert,
        on_init,
        on_load,
    )
    from .flush_mode import FlushMode
    from .locking import LockMode
    from .metadata.cascade import Cascade
    from .naming import EntityCaseNamingStrategy, NamingStrategy, UnderscoreNamingStrategy
    from .query.order import QueryOrder
    from .schema import SchemaGenerator
    from .unit_of_work import ChangeSet, UnitOfWork

#: public name -> the module it is imported from on first use
_LAZY = {
    "BaseEntity": "entity.wrapped",
    "WrappedEntity": "entity.wrapped",
    "wrap": "entity.wrapped",
    "Collection": "entity.collection",
    "Cascade": "metadata.cascade",
    "Options": "config",
    "define_config": "config",
    "RequestContext": "context",
    "ORM": "core",
    "EntityManager": "entity_manager",
    "FlushMode": "flush_mode",
    "LockMode": "locking",
    "EntityCaseNamingStrategy": "naming",
    "NamingStrategy": "naming",
    "UnderscoreNamingStrategy": "naming",
    "QueryOrder": "query.order",
    "SchemaGenerator": "schema",
    "ChangeSet": "unit_of_work",
    "UnitOfWork": "unit_of_work",
    # what the database refused: created on first use (see orm.errors)
    **dict.fromkeys(sorted(_DRIVER_ERRORS), "errors"),
    **dict.fromkeys(
        [
            "EventArgs",
            "EventManager",
            "EventSubscriber",
            "FlushEventArgs",
            "TransactionEventArgs",
            "after_create",
            "after_delete",
            "after_update",
            "after_upsert",
            "before_create",
            "before_delete",
            "before_update",
            "before_upsert",
            "on_init",
            "on_load",
        ],
        "events",
    ),
}


if not TYPE_CHECKING:
    # `orm.ORM`, `from orm import EntityManager`, ...: imported on first use, then an ordinary
    # attribute of the package
    __getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "ORM",
    "Options",
    "define_config",
    "EntityManager",
    "FlushMode",
    "LockMode",
    "QueryOrder",
    "RequestContext",
    "UnitOfWork",
    "ChangeSet",
    "SchemaGenerator",
    "entity",
    "EntitySchema",
    "PrimaryKey",
    "Property",
    "ManyToMany",
    "ManyToOne",
    "OneToMany",
    "Collection",
    "OneToOne",
    "Cascade",
    "Ref",
    "ref",
    "BaseEntity",
    "WrappedEntity",
    "wrap",
    "Type",
    "t",
    "types",
    "NamingStrategy",
    "UnderscoreNamingStrategy",
    "EntityCaseNamingStrategy",
    "diff_backend",
    "EventSubscriber",
    "EventManager",
    "EventArgs",
    "FlushEventArgs",
    "TransactionEventArgs",
    "before_create",
    "after_create",
    "before_update",
    "after_update",
    "before_upsert",
    "after_upsert",
    "before_delete",
    "after_delete",
    "on_init",
    "on_load",
    "ORMError",
    "ValidationError",
    "MetadataError",
    "NotFoundError",
    "OptimisticLockError",
    "DriverException",
    "ConstraintViolationException",
    "UniqueConstraintViolationException",
    "NotNullConstraintViolationException",
    "ForeignKeyConstraintViolationException",
    "CheckConstraintViolationException",
    "TableNotFoundException",
    "TableExistsException",
    "InvalidFieldNameException",
    "SyntaxErrorException",
    "ConnectionException",
    "LockWaitTimeoutException",
    "ReadOnlyException",
    "SerializationFailureException",
    "DeadlockException",
    "__version__",
]

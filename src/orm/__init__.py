"""orm: a synchronous, embedded data-mapper ORM (Unit of Work, Identity Map) on sqlite3.

`import orm` loads what a script needs to declare entities, start the ORM and work with an
EntityManager, and nothing more: the config-file search (`orm.config`), folder discovery
(`orm.metadata.folders`), logging and the command line (`orm.cli`) import their dependencies on
first use. tests/test_startup.py guards this.

`.entity` is imported before `.metadata`: importing the subpackage `orm.entity` sets the
attribute `orm.entity`, which the `entity` decorator must then replace.
"""

from ._backend import diff_backend
from .config import Options, define_config
from .context import RequestContext
from .core import ORM
from .entity import BaseEntity, Collection, Ref, WrappedEntity, ref, wrap
from .entity_manager import EntityManager, FlushMode
from .errors import (
    CheckConstraintViolationException,
    ConnectionException,
    ConstraintViolationException,
    DeadlockException,
    DriverException,
    ForeignKeyConstraintViolationException,
    InvalidFieldNameException,
    LockWaitTimeoutException,
    MetadataError,
    NotFoundError,
    NotNullConstraintViolationException,
    OptimisticLockError,
    ORMError,
    ReadOnlyException,
    SerializationFailureException,
    SyntaxErrorException,
    TableExistsException,
    TableNotFoundException,
    UniqueConstraintViolationException,
    ValidationError,
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
from .locking import LockMode
from .metadata import (
    Cascade,
    EntitySchema,
    ManyToMany,
    ManyToOne,
    OneToMany,
    OneToOne,
    PrimaryKey,
    Property,
    entity,
)
from .naming import EntityCaseNamingStrategy, NamingStrategy, UnderscoreNamingStrategy
from .query.filters import QueryOrder
from .schema import SchemaGenerator
from .types import Type, t, types
from .unit_of_work import ChangeSet, UnitOfWork

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

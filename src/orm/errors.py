"""The exception hierarchy.

Every way a user can go wrong has its own exception, and each message says what happened,
where (entity, property, SQL) and what to do about it. Driver errors wrap the driver's error
they came from (`sqlite3`, psycopg; kept on ``__cause__``) and carry the SQL that failed.
"""

from __future__ import annotations

from ._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


class ORMError(Exception):
    """Base of every exception this package raises."""


class ValidationError(ORMError):
    """The user asked for something the ORM cannot do as asked (bad filter, wrong value type,
    unloaded reference, global context...). Raised before any SQL runs."""

    def __init__(self, message: str, *, entity: Any = None, property: str | None = None) -> None:
        super().__init__(message)
        self.entity = entity
        self.property = property


class MetadataError(ORMError):
    """An entity definition is invalid: found at `ORM.init()` or discovery, never later."""

    def __init__(self, message: str, *, entity: str | None = None, property: str | None = None):
        super().__init__(message)
        self.entity = entity
        self.property = property


class NotFoundError(ORMError):
    """`find_one_or_fail` (or `init()` of a reference) found no row."""

    def __init__(self, message: str, *, entity: str | None = None, where: Any = None) -> None:
        super().__init__(message)
        self.entity = entity
        self.where = where


class OptimisticLockError(ORMError):
    """A versioned entity was changed by someone else since it was loaded."""

    def __init__(self, message: str, *, entity: Any = None) -> None:
        super().__init__(message)
        self.entity = entity


class DriverException(ORMError):
    """The database refused a statement. ``sql`` and ``params`` say which; ``__cause__`` is the
    original driver error (`sqlite3`, psycopg)."""

    #: running the whole transaction again may succeed (it lost a race with another one);
    #: never true of an error the data or the SQL causes
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        sql: str | None = None,
        params: Any = None,
        entity: str | None = None,
        property: str | None = None,
    ) -> None:
        super().__init__(message)
        self.sql = sql
        self.params = params
        self.entity = entity
        self.property = property


class ConstraintViolationException(DriverException):
    """A constraint of the schema refused the data."""


class UniqueConstraintViolationException(ConstraintViolationException):
    pass


class NotNullConstraintViolationException(ConstraintViolationException):
    pass


class ForeignKeyConstraintViolationException(ConstraintViolationException):
    pass


class CheckConstraintViolationException(ConstraintViolationException):
    pass


class TableNotFoundException(DriverException):
    pass


class TableExistsException(DriverException):
    pass


class InvalidFieldNameException(DriverException):
    pass


class SyntaxErrorException(DriverException):
    pass


class ConnectionException(DriverException):
    pass


class LockWaitTimeoutException(DriverException):
    pass


class ReadOnlyException(DriverException):
    pass


class SerializationFailureException(DriverException):
    """PostgreSQL (SQLSTATE 40001) could not serialize this transaction with a concurrent
    one and aborted it: roll back and run the whole transaction again."""

    retryable = True


class DeadlockException(DriverException):
    """PostgreSQL (SQLSTATE 40P01) found this transaction and another waiting on each
    other's locks and aborted this one: roll back and run the whole transaction again."""

    retryable = True


__all__ = [
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
]

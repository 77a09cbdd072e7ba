"""The exception hierarchy.

Every way a user can go wrong has its own exception, and each message says what happened,
where (entity, property, SQL) and what to do about it. Driver errors wrap the driver's error
they came from (`sqlite3`, psycopg; kept on ``__cause__``) and carry the SQL that failed.
"""

from __future__ import annotations

from ._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


def _short(value: object, limit: int = 60) -> str:
    """`repr(value)` for a message, at most about `limit` characters: a long one (an entity
    with many properties) is cut after its last whole `name=value` that fits, and closed
    (`Tag(id=2, label='b', ...)`), never in the middle of a value."""
    text = repr(value)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    head = cut.find("(")
    comma = cut.rfind(", ")
    while head < comma and (cut.count("'", 0, comma) % 2 or cut.count('"', 0, comma) % 2):
        comma = cut.rfind(", ", 0, comma)  # that one is inside a quoted value
    if text.endswith(")") and 0 < head < comma:
        return f"{cut[:comma]}, ...)"
    return f"{cut}..."


def _own_table(expected: type, given: object, table: str | None = None) -> str:
    """Why an entity of a class related to `expected` by inheritance is not a value of a
    relation to `expected` (`" (Special is an entity of its own, ...)"`), or "" for any
    other value. Each @entity() class is stored in its own table, so a relation holds
    exactly one class: its target's. Only error paths call it."""
    cls = type(given)
    if cls is expected:
        return ""
    if "_orm_declaration" not in cls.__dict__:
        if not issubclass(cls, expected):
            return ""
        return (
            f" ({cls.__name__} is a subclass of {expected.__name__} but not an entity "
            f"itself: it has no table, and the relation holds {expected.__name__} entities "
            f"only)"
        )
    if not (issubclass(cls, expected) or issubclass(expected, cls)):
        return ""
    where = f"{expected.__name__}'s table {table!r}" if table else f"{expected.__name__}'s"
    return (
        f" ({cls.__name__} is an entity of its own, stored in its own table, not in "
        f"{where}: the relation holds {expected.__name__} entities only)"
    )


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


class ConnectionException(DriverException):
    pass


if TYPE_CHECKING:
    from ._driver_errors import (
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
else:

    def __getattr__(name: str) -> type[DriverException]:
        """The exceptions for what the database refused (constraints, locks, missing
        tables...) are created by the first use of one of them (orm._driver_errors): a
        script whose statements all succeed never needs these 13 classes."""
        if name not in _DRIVER_ERRORS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from . import _driver_errors

        value: type[DriverException] = getattr(_driver_errors, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_DRIVER_ERRORS))


#: the exceptions orm._driver_errors defines, given by this module on first use
_DRIVER_ERRORS = frozenset(
    [
        "ConstraintViolationException",
        "UniqueConstraintViolationException",
        "NotNullConstraintViolationException",
        "ForeignKeyConstraintViolationException",
        "CheckConstraintViolationException",
        "TableNotFoundException",
        "TableExistsException",
        "InvalidFieldNameException",
        "SyntaxErrorException",
        "LockWaitTimeoutException",
        "ReadOnlyException",
        "SerializationFailureException",
        "DeadlockException",
    ]
)

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

"""The exceptions for what the database refused, each a `DriverException`: constraints, missing
or existing tables, unknown columns, SQL syntax, lock waits, read-only databases, and the
conflicts PostgreSQL asks to retry. `orm.errors` (and `orm`) give them on first use: creating
13 exception classes costs about as much as the rest of the hierarchy, and a script whose
statements all succeed needs none. Their `__module__` is `orm.errors`, where they are
documented, pickled and shown.
"""

from __future__ import annotations

from .errors import _DRIVER_ERRORS, DriverException

#: the names orm.errors lists as given by this module (one list, there)
__all__ = sorted(_DRIVER_ERRORS)


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


class LockWaitTimeoutException(DriverException):
    pass


class ReadOnlyException(DriverException):
    pass


class SerializationFailureException(DriverException):
    """PostgreSQL (SQLSTATE 40001) could not serialize this transaction with a concurrent
    one and aborted it, or SQLite in WAL mode refused a write by a transaction whose reads
    predate another connection's commit (SQLITE_BUSY_SNAPSHOT): roll back and run the whole
    transaction again."""

    retryable = True


class DeadlockException(DriverException):
    """PostgreSQL (SQLSTATE 40P01) found this transaction and another waiting on each
    other's locks and aborted this one: roll back and run the whole transaction again."""

    retryable = True


for _name in __all__:  # each name orm.errors lists must be defined above
    globals()[_name].__module__ = "orm.errors"
del _name

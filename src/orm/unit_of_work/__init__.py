"""Identity map, change sets and flush."""

from .unit_of_work import ChangeSet, UnitOfWork

__all__ = ["UnitOfWork", "ChangeSet"]

"""What event handlers receive: `EventArgs` for the events of one entity, `FlushEventArgs`
for a flush, `TransactionEventArgs` for a database transaction (MikroORM's names)."""

from __future__ import annotations

from .._typing import TYPE_CHECKING, Generic, TypeVar
from ..errors import _short

if TYPE_CHECKING:
    from ..entity_manager import EntityManager
    from ..unit_of_work import ChangeSet, UnitOfWork

__all__ = ["EventArgs", "FlushEventArgs", "TransactionEventArgs"]

T = TypeVar("T")


class EventArgs(Generic[T]):
    """The entity an event is about, the EntityManager doing the work, and for the events
    of a flush the entity's `ChangeSet` (`type` "create" / "update" / "delete", `payload`:
    the values written, by property name; for `before_update` the changed properties as they
    are when the handlers are called). `change_set` is None for `on_init`, `on_load` and
    the upsert events; for `before_upsert` given a data dict, `entity` is that dict (there is
    no instance yet)."""

    __slots__ = ("entity", "em", "change_set")

    def __init__(self, entity: T, em: EntityManager, change_set: ChangeSet | None = None) -> None:
        self.entity = entity
        self.em = em
        self.change_set = change_set

    def __repr__(self) -> str:
        return f"EventArgs(entity={_short(self.entity, 80)}, em={self.em!r}, change_set={self.change_set!r})"


class FlushEventArgs:
    """`before_flush`, `on_flush`, `after_flush`: the flushing EntityManager and its Unit of
    Work (`uow.compute_change_sets()` shows what the flush is about to write)."""

    __slots__ = ("em", "uow")

    def __init__(self, em: EntityManager, uow: UnitOfWork) -> None:
        self.em = em
        self.uow = uow

    def __repr__(self) -> str:
        return f"FlushEventArgs(em={self.em!r})"


class TransactionEventArgs:
    """`before_transaction_start`, `after_transaction_commit`, `after_transaction_rollback`:
    the EntityManager whose transaction it is (the fork `tx` of `em.transaction()`, or the
    flushing EntityManager for a flush's own transaction)."""

    __slots__ = ("em",)

    def __init__(self, em: EntityManager) -> None:
        self.em = em

    def __repr__(self) -> str:
        return f"TransactionEventArgs(em={self.em!r})"

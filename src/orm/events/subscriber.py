"""`EventSubscriber`: a class listening to the events of many entity types, or of flushes
and transactions, without methods on the entities (MikroORM's `EventSubscriber`)."""

from __future__ import annotations

from .._typing import TYPE_CHECKING, Generic, TypeVar
from .args import EventArgs, FlushEventArgs, TransactionEventArgs

if TYPE_CHECKING:
    from typing import Any

__all__ = ["EventSubscriber"]

T = TypeVar("T")


class EventSubscriber(Generic[T]):
    """Subclass it and override the events you want; register an instance with
    `define_config(subscribers=[...])` or `em.get_event_manager().register_subscriber(s)`.

    `get_subscribed_entities()` limits the entity events to some entity classes (None or an
    empty list: every entity). The flush and transaction events are not about one entity
    and reach every subscriber that defines them. Only the methods a subclass overrides are
    called: the ORM looks them up once, at registration."""

    def get_subscribed_entities(self) -> list[Any] | None:
        return None

    # -- the events of one entity (before the subscribers, the entity's own hooks run) ------
    def on_init(self, args: EventArgs[T]) -> None:
        """The ORM created the instance: loaded from a row, a reference, `em.create()`."""

    def on_load(self, args: EventArgs[T]) -> None:
        """A query (or refresh) filled the entity from its row."""

    def before_create(self, args: EventArgs[T]) -> None:
        """Before its INSERT; changes are written by this flush."""

    def after_create(self, args: EventArgs[T]) -> None:
        """After its INSERT, in the flush's transaction (its key is set)."""

    def before_update(self, args: EventArgs[T]) -> None:
        """Before its UPDATE; changes are written by this flush."""

    def after_update(self, args: EventArgs[T]) -> None:
        """After its UPDATE, in the flush's transaction."""

    def before_upsert(self, args: EventArgs[T]) -> None:
        """Before `em.upsert()` writes it (`args.entity`: the instance, or the data dict)."""

    def after_upsert(self, args: EventArgs[T]) -> None:
        """After `em.upsert()` wrote it, in its transaction: the managed entity."""

    def before_delete(self, args: EventArgs[T]) -> None:
        """Before its DELETE."""

    def after_delete(self, args: EventArgs[T]) -> None:
        """After its DELETE, in the flush's transaction (it is detached)."""

    # -- the events of a flush --------------------------------------------------------------
    def before_flush(self, args: FlushEventArgs) -> None:
        """A flush starts; nothing is computed yet."""

    def on_flush(self, args: FlushEventArgs) -> None:
        """Before the change sets are computed: entities persisted, changed or removed here
        are part of this flush."""

    def after_flush(self, args: FlushEventArgs) -> None:
        """The flush's statements ran, still inside its transaction."""

    # -- the events of a database transaction -----------------------------------------------
    def before_transaction_start(self, args: TransactionEventArgs) -> None:
        """Before `begin` of a transaction of `em.transaction()`, `em.transactional()` or a
        flush's own."""

    def after_transaction_commit(self, args: TransactionEventArgs) -> None:
        """After that transaction committed: the data is stored."""

    def after_transaction_rollback(self, args: TransactionEventArgs) -> None:
        """After that transaction was rolled back."""

"""Events and lifecycle hooks (SPEC section 12; docs/events.md)."""

from .args import EventArgs, FlushEventArgs, TransactionEventArgs
from .hooks import (
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
from .manager import EventManager
from .subscriber import EventSubscriber

__all__ = [
    "EventArgs",
    "FlushEventArgs",
    "TransactionEventArgs",
    "EventManager",
    "EventSubscriber",
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
]

"""Events and lifecycle hooks (SPEC section 12; docs/events.md).

The names are imported from their modules on first use (`__getattr__`): discovery needs only
`hooks`, an ORM only `manager`, and the event arguments and subscribers are for the entities
and ORMs that have listeners.
"""

from __future__ import annotations

from .._typing import TYPE_CHECKING, lazy_names

if TYPE_CHECKING:
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

_LAZY = {
    **dict.fromkeys(["EventArgs", "FlushEventArgs", "TransactionEventArgs"], "args"),
    "EventManager": "manager",
    "EventSubscriber": "subscriber",
    **dict.fromkeys(__all__[5:], "hooks"),
}


if not TYPE_CHECKING:
    __getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

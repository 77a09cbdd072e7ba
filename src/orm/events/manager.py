"""`EventManager`: the subscribers of one ORM, and who listens to what, worked out once.

Each entity type's metadata carries its listener table, `meta.listeners`: per entity event,
the entity's own hooks (first, in the order of the class hierarchy) and then the subscribers
interested in that type, as `((function, mode), ...)` with `needs_args` (whether any of them
takes an `EventArgs`, which is then built once per entity). The tables are rebuilt when a
subscriber is registered, never looked up per entity, and an entity type nobody listens to
has an empty table: the Unit of Work checks `flush_active` once per flush and runs its plain
path when there is nothing to call.
"""

from __future__ import annotations

import _thread
from collections.abc import Iterable

from .._typing import TYPE_CHECKING, lazy_module
from ..errors import ValidationError, _short
from .hooks import ENTITY_EVENTS, FLUSH_EVENTS, TRANSACTION_EVENTS

if TYPE_CHECKING:
    from typing import Any

    from ..entity_manager import EntityManager
    from ..metadata.discovery import MetadataStorage
    from ..unit_of_work import ChangeSet, UnitOfWork
    from . import args as _args
    from . import subscriber as _subscriber
    from .subscriber import EventSubscriber
else:
    # for the entities and ORMs that have listeners
    _args = lazy_module(f"{__package__}.args", globals(), "_args")
    _subscriber = lazy_module(f"{__package__}.subscriber", globals(), "_subscriber")

__all__ = ["EventManager", "fire", "HOOK", "HOOK_WITH_ARGS", "HANDLER"]

#: how a listener is called: an entity hook `fn(entity)` or `fn(entity, args)`, a
#: subscriber's bound method `fn(args)`
HOOK, HOOK_WITH_ARGS, HANDLER = 0, 1, 2

#: the entity events a flush dispatches (the others are queries' and upsert's)
_FLUSH_ENTITY_EVENTS = frozenset(
    {"before_create", "after_create", "before_update", "after_update", "before_delete",
     "after_delete"}
)  # fmt: skip
_ALL_EVENTS = ENTITY_EVENTS + FLUSH_EVENTS + TRANSACTION_EVENTS


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


#: MikroORM's method names, a likely slip when porting a subscriber
_CAMEL_NAMES = {_camel(name): name for name in _ALL_EVENTS}

if TYPE_CHECKING:
    Listeners = tuple[tuple[tuple[Any, int], ...], bool]


def fire(entry: Listeners, entity: Any, em: EntityManager, change_set: ChangeSet | None) -> None:
    """Call the listeners of one event for one entity (hooks, then subscribers)."""
    listeners, needs_args = entry
    args = _args.EventArgs(entity, em, change_set) if needs_args else None
    for fn, mode in listeners:
        if mode == HOOK:
            fn(entity)
        elif mode == HOOK_WITH_ARGS:
            fn(entity, args)
        else:
            fn(args)


class _Registration:
    __slots__ = ("subscriber", "handlers", "classes")

    def __init__(
        self, subscriber: Any, handlers: dict[str, Any], classes: tuple[type, ...] | None
    ) -> None:
        self.subscriber = subscriber
        self.handlers = handlers
        #: the entity classes it listens to (subclasses included); None: all of them
        self.classes = classes


class EventManager:
    """The subscribers of one ORM, shared by all its EntityManagers
    (`em.get_event_manager()`)."""

    def __init__(self, metadata: MetadataStorage) -> None:
        self._metadata = metadata
        self._registrations: list[_Registration] = []
        #: held by a registration: two threads registering at once would each rebuild the
        #: listener tables from their own list, and one subscriber's handlers would be lost
        #: (re-entrant: a subscriber's `get_subscribed_entities()` may register another)
        self._registering = _thread.RLock()
        #: whether a flush has anything to call (entity hooks of a flush event, any
        #: subscriber handler of a flush or transaction event)
        self.flush_active = False
        self._flush: dict[str, tuple[Any, ...]] = {}
        self._transaction: dict[str, tuple[Any, ...]] = {}
        self._rebuild()

    def __repr__(self) -> str:
        return f"<EventManager subscribers={len(self._registrations)}>"

    # -- registration -----------------------------------------------------------------------
    def register_subscriber(self, subscriber: EventSubscriber[Any]) -> None:
        """Add a subscriber (an instance); registering the same one again does nothing."""
        with self._registering:
            if any(r.subscriber is subscriber for r in self._registrations):
                return
            self._registrations.append(self._inspect(subscriber))
            self._rebuild()

    def get_subscribers(self) -> list[EventSubscriber[Any]]:
        return [r.subscriber for r in self._registrations]

    def has_listeners(self, event: str, entity: Any = None) -> bool:
        """Whether anything listens to `event` (of entity class `entity`, for an entity
        event)."""
        if event in self._flush:
            return bool(self._flush[event])
        if event in self._transaction:
            return bool(self._transaction[event])
        if entity is not None:
            return event in self._metadata.get(entity).listeners
        return any(event in meta.listeners for meta in self._metadata)

    def _inspect(self, subscriber: Any) -> _Registration:
        shown = type(subscriber).__name__
        if isinstance(subscriber, type):
            raise ValidationError(
                f"register_subscriber() takes a subscriber instance, got the class "
                f"{subscriber.__name__}: register {subscriber.__name__}() instead."
            )
        cls = type(subscriber)
        camel = [name for name in _CAMEL_NAMES if callable(getattr(cls, name, None))]
        if camel:
            wanted = ", ".join(f"{name} -> {_CAMEL_NAMES[name]}" for name in camel)
            raise ValidationError(
                f"Subscriber {shown} defines MikroORM's camelCase event method(s); the "
                f"Python names are snake_case: rename {wanted}."
            )
        handlers: dict[str, Any] = {}
        for name in _ALL_EVENTS:
            impl = getattr(cls, name, None)
            if impl is None or impl is getattr(_subscriber.EventSubscriber, name):
                continue
            handler = getattr(subscriber, name)
            if not callable(handler):
                raise ValidationError(
                    f"Subscriber {shown}.{name} is not a method ({type(handler).__name__})"
                )
            handlers[name] = handler
        if not handlers:
            raise ValidationError(
                f"Subscriber {shown} handles no event: define one or more of "
                f"{', '.join(_ALL_EVENTS)} (each takes one argument, the event's args)."
            )
        return _Registration(subscriber, handlers, self._subscribed(subscriber, shown))

    def _subscribed(self, subscriber: Any, shown: str) -> tuple[type, ...] | None:
        get = getattr(subscriber, "get_subscribed_entities", None)
        wanted = get() if callable(get) else None
        if not wanted:
            return None
        if isinstance(wanted, (str, type)) or not isinstance(wanted, Iterable):
            raise ValidationError(
                f"{shown}.get_subscribed_entities() must return a list of entity classes "
                f"(or None for all), got {_short(wanted, 80)}"
            )
        classes = []
        for item in wanted:
            meta = self._metadata.find(item)
            if meta is not None:
                classes.append(meta.cls)
            elif isinstance(item, type) and any(issubclass(m.cls, item) for m in self._metadata):
                classes.append(item)  # a base class: its registered subclasses
            else:
                known = ", ".join(m.class_name for m in self._metadata) or "none"
                named = item.__qualname__ if isinstance(item, type) else f"{_short(item, 60)}"
                raise ValidationError(
                    f"{shown}.get_subscribed_entities() names {named}, which is not an "
                    f"entity of this ORM nor a base class of one (known: {known}); its "
                    f"handlers would never run."
                )
        return tuple(classes)

    def _rebuild(self) -> None:
        """The listener table of every entity type, and the flush and transaction handlers
        (run at start-up and at each registration, never during work)."""
        regs = self._registrations
        active = False
        for meta in self._metadata:
            table: dict[str, Listeners] = {}
            for event in ENTITY_EVENTS:
                entries: list[tuple[Any, int]] = [
                    (fn, HOOK_WITH_ARGS if takes else HOOK)
                    for fn, takes in meta.hooks.get(event, ())
                ]
                for reg in regs:
                    handler = reg.handlers.get(event)
                    if handler is not None and (
                        reg.classes is None or issubclass(meta.cls, reg.classes)
                    ):
                        entries.append((handler, HANDLER))
                if entries:
                    table[event] = (tuple(entries), any(mode != HOOK for _, mode in entries))
            meta.listeners = table
            meta.loads = "on_init" in table or "on_load" in table
            active = active or not _FLUSH_ENTITY_EVENTS.isdisjoint(table)
        self._flush = {
            name: tuple(r.handlers[name] for r in regs if name in r.handlers)
            for name in FLUSH_EVENTS
        }
        self._transaction = {
            name: tuple(r.handlers[name] for r in regs if name in r.handlers)
            for name in TRANSACTION_EVENTS
        }
        self.flush_active = (
            active or any(self._flush.values()) or any(self._transaction.values())
        )

    # -- dispatch ---------------------------------------------------------------------------
    def flush_event(self, name: str, em: EntityManager, uow: UnitOfWork) -> None:
        handlers = self._flush[name]
        if handlers:
            args = _args.FlushEventArgs(em, uow)
            for handler in handlers:
                handler(args)

    def transaction_event(self, name: str, em: EntityManager) -> None:
        handlers = self._transaction[name]
        if handlers:
            args = _args.TransactionEventArgs(em)
            for handler in handlers:
                handler(args)

    def has_transaction_handlers(self) -> bool:
        return any(self._transaction.values())

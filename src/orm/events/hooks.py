"""Lifecycle hooks: the decorators that mark entity methods, and finding them at discovery.

`@before_create` (or `@before_create()`, MikroORM's spelling) only marks the function; nothing
wraps it, so calling the method yourself is an ordinary call. Discovery collects the marked
methods of an entity class and of its bases once (`collect_hooks`), and the metadata keeps
them as tuples per event: a flush never searches a class for hooks, and an entity type
without any has nothing to run.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FunctionType

from .._typing import TYPE_CHECKING, TypeVar, overload
from ..errors import MetadataError, _short

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ENTITY_EVENTS",
    "FLUSH_EVENTS",
    "TRANSACTION_EVENTS",
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
    "collect_hooks",
    "LifecycleHook",
]

if TYPE_CHECKING:
    F = TypeVar("F", bound=Callable[..., Any])

#: the events of one entity, in the order of its life
ENTITY_EVENTS: tuple[str, ...] = (
    "on_init",
    "on_load",
    "before_create",
    "after_create",
    "before_update",
    "after_update",
    "before_upsert",
    "after_upsert",
    "before_delete",
    "after_delete",
)
#: the events of a flush as a whole (subscribers only)
FLUSH_EVENTS: tuple[str, ...] = ("before_flush", "on_flush", "after_flush")
#: the events of a database transaction (subscribers only)
TRANSACTION_EVENTS: tuple[str, ...] = (
    "before_transaction_start",
    "after_transaction_commit",
    "after_transaction_rollback",
)

#: the attribute a decorator sets on the function: the events it was marked for
_MARK = "_orm_hook_events"
#: CPython's code flag for a `*args` parameter (inspect.CO_VARARGS, without importing inspect)
_CO_VARARGS = 0x04


class LifecycleHook:
    """The decorator of one event: `@before_create` or `@before_create()` on an entity
    method. It marks the function and returns it unchanged."""

    __slots__ = ("event",)

    def __init__(self, event: str) -> None:
        self.event = event

    def __repr__(self) -> str:
        return f"<lifecycle hook decorator @{self.event}>"

    def _mark(self, fn: F) -> F:
        if not isinstance(fn, FunctionType):
            raise TypeError(
                f"@{self.event} marks an entity method (a plain `def` in the class body), "
                f"not a {type(fn).__name__}: {_short(fn, 80)}"
            )
        events = getattr(fn, _MARK, ())
        if self.event not in events:
            setattr(fn, _MARK, (*events, self.event))
        return fn

    @overload
    def __call__(self, fn: F, /) -> F: ...
    @overload
    def __call__(self, fn: None = None, /) -> Callable[[F], F]: ...
    def __call__(self, fn: Any = None, /) -> Any:
        if fn is None:  # @before_create(), as MikroORM's @BeforeCreate()
            return self._mark
        return self._mark(fn)


def _hook(event: str) -> LifecycleHook:
    return LifecycleHook(event)


before_create = _hook("before_create")
after_create = _hook("after_create")
before_update = _hook("before_update")
after_update = _hook("after_update")
before_upsert = _hook("before_upsert")
after_upsert = _hook("after_upsert")
before_delete = _hook("before_delete")
after_delete = _hook("after_delete")
on_init = _hook("on_init")
on_load = _hook("on_load")


def _takes_args(cls: type, name: str, event: str, fn: Any) -> bool:
    """Whether the hook wants the `EventArgs` (a second positional parameter, or `*args`);
    a MetadataError when it cannot be called with the entity alone or with the arguments."""
    code = getattr(fn, "__code__", None)
    if code is None:  # not a plain function (wrapped by something else): the entity only
        return False
    positional = code.co_argcount
    required = positional - len(fn.__defaults__ or ())
    varargs = bool(code.co_flags & _CO_VARARGS)
    if (positional == 0 and not varargs) or required > 2 or code.co_kwonlyargcount > len(
        fn.__kwdefaults__ or {}
    ):
        raise MetadataError(
            f"{cls.__name__}.{name} is a @{event} hook, which is called as "
            f"`entity.{name}()` or `entity.{name}(args)`: give it the signature "
            f"`def {name}(self)` or `def {name}(self, args)`.",
            entity=cls.__name__,
            property=name,
        )
    return positional >= 2 or varargs


def collect_hooks(cls: type) -> dict[str, tuple[tuple[Any, bool], ...]]:
    """The hooks of an entity class, by event: `(function, takes_args)` tuples, base classes'
    hooks first, each method name once. The function called is the one the class resolves
    the name to, so an override in a subclass runs instead of the base's method (setting the
    name to None in a subclass turns the hook off)."""
    names: dict[str, list[str]] = {}
    for base in reversed(cls.__mro__):
        if base is object:
            continue
        for name, value in base.__dict__.items():
            events = getattr(value, _MARK, None) if isinstance(value, FunctionType) else None
            for event in events or ():
                listed = names.setdefault(event, [])
                if name not in listed:
                    listed.append(name)
    hooks: dict[str, tuple[tuple[Any, bool], ...]] = {}
    for event in ENTITY_EVENTS:
        found = []
        for name in names.get(event, ()):
            fn = getattr(cls, name, None)
            if fn is None:
                continue
            if not callable(fn):
                raise MetadataError(
                    f"{cls.__name__}.{name} is declared as a @{event} hook in a base class "
                    f"but is not callable in {cls.__name__} ({type(fn).__name__}).",
                    entity=cls.__name__,
                    property=name,
                )
            found.append((fn, _takes_args(cls, name, event, fn)))
        if found:
            hooks[event] = tuple(found)
    return hooks

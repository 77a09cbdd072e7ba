"""RequestContext: a forked EntityManager per request (or job, or UI action), on `contextvars`.

Inside a request context, calls made on the global `orm.em` are routed to that context's
fork, so code that only has `orm.em` at hand still gets its own Unit of Work. Works across
threads and asyncio tasks alike, as `contextvars` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from typing import Any

    from .entity_manager import EntityManager

__all__ = ["RequestContext"]

if TYPE_CHECKING:
    R = TypeVar("R")

#: the EntityManagers the global ones route to, innermost first: a request context's fork,
#: a transaction's; of one ORM or several (each `orm.em` takes the innermost of its own)
_current: ContextVar[tuple[EntityManager, ...]] = ContextVar("orm_request_context", default=())


def current_entity_manager(orm: Any = None) -> EntityManager | None:
    """The innermost EntityManager routed to (of `orm`, when given), or None."""
    stack = _current.get()
    if orm is None:
        return stack[0] if stack else None
    for em in stack:
        if em._orm is orm:
            return em
    return None


@contextmanager
def routed_to(em: EntityManager) -> Iterator[None]:
    """Calls on the global `orm.em` go to `em` for the block (a transaction's fork, as
    MikroORM's transaction context): work done through `orm.em` inside
    `with orm.em.transaction():` commits or rolls back with the block's. Another ORM's
    `em` keeps going where it went."""
    token = _current.set((em, *_current.get()))
    try:
        yield
    finally:
        _current.reset(token)


class RequestContext:
    """`RequestContext.create(orm.em, fn)` runs `fn` with a fresh fork of `orm.em` as the
    context's EntityManager; `with RequestContext.enter(orm.em) as em:` does the same for a
    block (also `with orm.request_context():`)."""

    @staticmethod
    def create(em: EntityManager, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        with RequestContext.enter(em):
            return fn(*args, **kwargs)

    @staticmethod
    @contextmanager
    def enter(em: EntityManager) -> Iterator[EntityManager]:
        fork = em.fork()
        token = _current.set((fork, *_current.get()))
        try:
            yield fork
        finally:
            _current.reset(token)

    @staticmethod
    def get_entity_manager() -> EntityManager | None:
        """The EntityManager of the active request context, if any (inside a transaction
        block of the global EntityManager, the transaction's fork)."""
        return current_entity_manager()

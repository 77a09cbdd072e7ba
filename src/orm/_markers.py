"""Sentinels shared by both diff backends and the rest of the package, and the one test of
whether an entity attribute is set.

They live in their own module so that the compiled and the pure-Python core hand out the very
same objects, whichever is loaded.
"""

from __future__ import annotations

from ._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


#: `_orm_snap` of an uninitialized reference: only its primary key is known.
REFERENCE = _Marker("REFERENCE")
#: `_orm_snap` of an entity whose row a flush deleted: detached, as after `em.clear()`, but
#: never taken for a new entity, so no cascade inserts it again behind the user's back (an
#: explicit `em.persist()` does, as a new row).
DELETED = _Marker("DELETED")
#: a snapshot slot for a column that a partial load (`fields=`) did not read.
UNLOADED = _Marker("UNLOADED")
#: "no value given" in generated `__init__`s and options.
MISSING = _Marker("MISSING")


def is_set(entity: Any, name: str) -> bool:
    """Whether `name` holds a value on the instance. An unset property of a reference or of
    a partial load raises through its class-level slot; an unset one of a new entity raises
    AttributeError. (Asking `entity.__dict__` instead would cost CPython 3.11 a dict per
    entity.)"""
    try:
        getattr(entity, name)
    except Exception:
        return False
    return True

"""Cascade, the relation cascades as an enum.

A module of its own because an enum class costs a few hundred microseconds to create, and
`import orm` would otherwise import `enum` for it: entities without relations never need it.
A relation's default cascade is the text "persist", which discovery reads as
`Cascade.PERSIST`.
"""

from __future__ import annotations

import enum

__all__ = ["Cascade"]


class Cascade(enum.StrEnum):
    """Which operations on an entity also apply to the entities its relation holds (as in
    MikroORM). `PERSIST` is the default: persisting an entity persists the new entities it
    references."""

    PERSIST = "persist"
    MERGE = "merge"
    REMOVE = "remove"
    ALL = "all"

"""FlushMode, when queries flush pending changes first, as an enum.

A module of its own, created on first use (`orm.FlushMode`, `em.flush_mode`): an enum class,
and the `enum` module itself, cost a tiny script about as much as its own SQL does.
EntityManagers keep the mode as its value ("auto", "commit", "always").
"""

from __future__ import annotations

import enum

__all__ = ["FlushMode"]


class FlushMode(enum.Enum):
    """When queries flush pending changes first (see SPEC section 3)."""

    AUTO = "auto"
    COMMIT = "commit"
    ALWAYS = "always"

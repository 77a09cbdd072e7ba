"""QueryOrder, the order_by directions as an enum.

A module of its own because an enum class costs a few hundred microseconds to create: a
script that never orders a query (or names a direction as text) does not import it.
"""

from __future__ import annotations

import enum

__all__ = ["QueryOrder"]


class QueryOrder(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"
    ASC_NULLS_FIRST = "asc nulls first"
    ASC_NULLS_LAST = "asc nulls last"
    DESC_NULLS_FIRST = "desc nulls first"
    DESC_NULLS_LAST = "desc nulls last"

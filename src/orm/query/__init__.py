"""Filter dicts and statements -> SQL.

The names are imported from their modules on first use (`__getattr__`): a query that is not
ordered does not need QueryOrder (see orm.query.order).
"""

from __future__ import annotations

from .._typing import TYPE_CHECKING, lazy_names

if TYPE_CHECKING:
    from .filters import OPERATORS, compile_where
    from .order import QueryOrder
    from .sql import SqlBuilder

__all__ = ["compile_where", "OPERATORS", "QueryOrder", "SqlBuilder"]

_LAZY = {
    "compile_where": "filters",
    "OPERATORS": "filters",
    "QueryOrder": "order",
    "SqlBuilder": "sql",
}

if not TYPE_CHECKING:
    __getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

"""Filter dicts and statements -> SQL."""

from .filters import OPERATORS, QueryOrder, compile_where
from .sql import SqlBuilder

__all__ = ["compile_where", "OPERATORS", "QueryOrder", "SqlBuilder"]

"""One module per database. `PostgresConnection` is imported on first use, since its module
is the one place psycopg is imported from."""

from typing import Any

from .postgresql import PostgresPlatform
from .sqlite import SqlitePlatform

__all__ = ["SqlitePlatform", "PostgresPlatform", "PostgresConnection"]


def __getattr__(name: str) -> Any:
    if name == "PostgresConnection":
        from .postgresql_connection import PostgresConnection

        return PostgresConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

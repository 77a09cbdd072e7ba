"""One module per database. The PostgreSQL modules are imported on first use: a script on
SQLite never pays for them (and `postgresql_connection` is the one place psycopg is imported
from)."""

from __future__ import annotations

from .._typing import TYPE_CHECKING
from .sqlite import SqlitePlatform

if TYPE_CHECKING:
    from typing import Any

__all__ = ["SqlitePlatform", "PostgresPlatform", "PostgresConnection"]


def __getattr__(name: str) -> Any:
    if name == "PostgresPlatform":
        from .postgresql import PostgresPlatform

        return PostgresPlatform
    if name == "PostgresConnection":
        from .postgresql_connection import PostgresConnection

        return PostgresConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

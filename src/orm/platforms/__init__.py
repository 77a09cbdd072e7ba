"""One module per database."""

from .sqlite import SqlitePlatform

__all__ = ["SqlitePlatform"]

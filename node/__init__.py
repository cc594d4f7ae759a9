"""uoc's node runtime: the SQLite store and the `uocd` command line (network and API to come)."""

from .errors import NodeError
from .store import SqliteStore

__all__ = ["NodeError", "SqliteStore"]

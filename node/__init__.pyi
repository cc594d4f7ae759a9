"""The re-exports of `node` for type checkers; `node/__init__.py` loads each on first use (lazy_loader)."""

from .errors import NodeError
from .store import SqliteStore

__all__ = ["NodeError", "SqliteStore"]

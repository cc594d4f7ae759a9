"""uoc's node runtime: Tendermint consensus (`node.consensus`) over gRPC (`node.network`), the mempool,
the SQLite store, block sync, the `Node` that owns them (`node.node`) and the `uocd` command line.

`node.node` is not imported here: it pulls in gRPC, which the other commands do not need."""

from .errors import NodeError
from .store import SqliteStore

__all__ = ["NodeError", "SqliteStore"]

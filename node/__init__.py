"""uoc's node runtime: Tendermint consensus (`node.consensus`) over gRPC (`node.network`), the mempool,
the SQLite store, block sync, the `Node` that owns them (`node.node`), the HTTP API and its client
(the `uocd` command line is its own package, `uocd`, on the floor above `devnet`).

`node.node` is not imported here: it pulls in gRPC, which the client and the store do not need."""

from .errors import NodeError
from .store import SqliteStore

__all__ = ["NodeError", "SqliteStore"]

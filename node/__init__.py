"""uoc's node runtime: Tendermint consensus (`node.consensus`) over gRPC (`node.network`), the mempool,
the SQLite store, block sync, the `Node` that owns them (`node.node`), the HTTP API and its client
(the `uocd` command line is its own package, `uocd`, on the floor above `devnet`).

`node.node` is not imported here: it pulls in gRPC, which the client and the store do not need.

The names below are re-exported lazily (`lazy_loader`, from `__init__.pyi`): importing one submodule,
such as `node.errors`, does not load the others, so the command line starts without what it does not
run."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)

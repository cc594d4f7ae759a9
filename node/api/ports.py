"""What the HTTP API needs from the node: `ApiNode`, a structural type the node satisfies (as
`node.network.NodeApi` is for the gRPC handlers), so the API never imports the node itself.

The parts the metrics read (the committed state's height, the mempool's size, the engine's round, the
gRPC server's rejection counters) are described by the few attributes read from them; each may be None
while the node is not running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from fractions import Fraction
from typing import Any, Protocol

from chain.app import TxResult

from ..config import Home, NodeConfig
from ..errors import MempoolError
from ..feeder import PriceFeeder
from ..metrics import NodeMetrics
from ..outcomes import TxOutcome


class Committed(Protocol):
    """The committed application state, as far as the API reads it."""

    @property
    def height(self) -> int: ...


class Signer(Protocol):
    """The operator's validator key, as far as the API reads it."""

    @property
    def address(self) -> str: ...


class Engine(Protocol):
    """The consensus engine, as far as the metrics read it."""

    @property
    def round(self) -> int: ...


class RejectCounters(Protocol):
    """The gRPC handlers' rejected calls per method."""

    @property
    def rejected(self) -> dict[str, int]: ...


class GrpcServer(Protocol):
    """The node's gRPC server, as far as the metrics read it."""

    @property
    def handlers(self) -> RejectCounters: ...


class ApiNode(Protocol):
    """What the HTTP API needs from the node (all called on the event loop)."""

    @property
    def config(self) -> NodeConfig: ...

    @property
    def home(self) -> Home: ...

    @property
    def signer(self) -> Signer | None: ...

    @property
    def app(self) -> Committed | None: ...

    @property
    def mempool(self) -> Sized | None: ...

    @property
    def consensus(self) -> Engine | None: ...

    @property
    def server(self) -> GrpcServer | None: ...

    @property
    def metrics(self) -> NodeMetrics: ...

    @property
    def syncing(self) -> bool: ...

    @property
    def feeder(self) -> PriceFeeder | None: ...

    @property
    def reachable_peers(self) -> int: ...

    @property
    def recent_blocks(self) -> Sequence[dict[str, Any]]: ...  # the latest applied blocks' summaries, oldest first

    def query(self, path: str, **params: Any) -> Any: ...

    def submit_txs(self, raws: list[bytes]) -> list[str | MempoolError]: ...

    def submit_own(self, msgs: list[Any]) -> str: ...

    def simulate_tx(self, raw: bytes) -> TxResult: ...

    def get_gas_price(self) -> Fraction: ...

    async def wait_for_commit(self, tx_hash: str, timeout_s: float) -> TxOutcome | None: ...

    def get_tx_outcome(self, tx_hash: str) -> TxOutcome | None: ...

    def get_tx_raw(self, tx_hash: str) -> bytes | None: ...

    def get_sender_txs(
        self, sender: str, start: str | None, limit: int, reverse: bool
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def get_block_time_ms(self, height: int) -> int | None: ...
    def get_block_doc(self, height: int) -> dict[str, Any] | None: ...

    def add_commit_listener(self, listener: Callable[[int], None]) -> None: ...


__all__ = ["ApiNode", "Committed", "Engine", "GrpcServer", "RejectCounters", "Signer"]

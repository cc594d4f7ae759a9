"""The exception tree of the `node` package."""

from __future__ import annotations

from chain.errors import StoreError


class NodeError(Exception):
    """Base class of node runtime errors."""


class ConsensusError(NodeError):
    """Base class of consensus errors."""


class InvalidMessage(ConsensusError):
    """A proposal, vote, block or commit that is malformed, badly signed or not plausible."""


class InvalidCommit(ConsensusError):
    """A commit that does not carry +2/3 valid precommits for its block from the given set."""


class DoubleSignRefused(ConsensusError):
    """Signing would conflict with what this validator already signed at the same (h, r, step)."""


class MempoolError(NodeError):
    """Base class of mempool rejections; `code` names the rule, `tx_hash` the transaction ("" if unknown)."""

    code = "mempool"

    def __init__(self, message: str, *, tx_hash: str = "") -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class TxRejected(MempoolError):
    """A transaction that fails `check_tx` against the mempool's check state."""

    def __init__(self, message: str, *, tx_hash: str = "", code: str = "rejected") -> None:
        super().__init__(message, tx_hash=tx_hash)
        self.code = code


class TxAlreadyKnown(MempoolError):
    """A transaction already in the mempool (deduplicated by hash)."""

    code = "already_known"


class MempoolFull(MempoolError):
    """The mempool is at its limit on transactions or bytes."""

    code = "mempool_full"


class SenderQuotaExceeded(MempoolFull):
    """The sender already has its quota of transactions or bytes in the mempool's ordinary lane."""

    code = "sender_quota_exceeded"


class FeeTooLow(MempoolFull):
    """The mempool is full and the transaction pays no more per gas than the cheapest pending one."""

    code = "fee_too_low"


class RequestTooLarge(NodeError):
    """A request with more entries than one call may carry (answered `RESOURCE_EXHAUSTED`, nothing done)."""


class ConfigError(NodeError):
    """A node home, config.toml or genesis.json that is missing or invalid."""


class ApiRequestError(NodeError):
    """A request the HTTP API refuses: `status` is the HTTP status, `code` the snake_case error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class PeerIdentityError(NodeError):
    """A peer's TLS certificate that is not bound to the node id expected of it (or to any)."""


class SyncError(NodeError):
    """Block sync received a block or commit that does not verify, or no peer could serve it."""


__all__ = [
    "ApiRequestError",
    "ConfigError",
    "MempoolError",
    "MempoolFull",
    "FeeTooLow",
    "SenderQuotaExceeded",
    "SyncError",
    "TxAlreadyKnown",
    "TxRejected",
    "ConsensusError",
    "DoubleSignRefused",
    "InvalidCommit",
    "InvalidMessage",
    "NodeError",
    "PeerIdentityError",
    "StoreError",
]

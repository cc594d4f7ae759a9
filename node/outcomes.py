"""What became of a transaction the node was asked to wait for (shared by the node and its HTTP API)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TxOutcome:
    """What became of a transaction: committed at `height` (index, code, log, the epoch it ran in), or
    dropped from the mempool (height None) with the code and log of the re-check that refused it."""

    tx_hash: str
    height: int | None
    index: int
    code: str
    log: str
    epoch: int | None = None

    @property
    def committed(self) -> bool:
        return self.height is not None


__all__ = ["TxOutcome"]

"""The mempool: signed transactions admitted by `check_tx`, waiting for a block.

- **Admission** runs `app.check_txs` against the app's check state (the committed state plus the
  transactions already admitted), so a transaction is admitted only if it applies on top of the
  pool. A rejection is a typed `MempoolError` (`TxRejected` with the chain's code,
  `TxAlreadyKnown`, `MempoolFull`) and changes nothing.
- **Dedup** by the chain's tx hash (and by the exact raw bytes before any work).
- **Limits** on the number of transactions and their total bytes.
- **Order**: admission order. `check_tx` admits a sender's transaction only with the next sequence,
  so the pool (and every block reaped from it) holds each sender's transactions in sequence order.
- **Re-check after each commit** (`update`): the app resets its check state at commit, so the pool
  drops the committed transactions and re-runs `check_txs` on the rest, in order, dropping those
  that no longer apply.
- **Relay**: only admitted transactions are handed to the `on_admit` callback (the network relays
  them to peers).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chain.app import Application

from .errors import MempoolError, MempoolFull, TxAlreadyKnown, TxRejected

log = logging.getLogger(__name__)

DEFAULT_MAX_TXS = 20_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class MempoolTx:
    """An admitted transaction: its chain hash, canonical raw bytes and size."""

    hash: str
    raw: bytes


def compute_raw_digest(raw: bytes) -> bytes:
    """The sha256 of a transaction's exact bytes (dedup before decoding)."""
    return hashlib.sha256(raw).digest()


class Mempool:
    """Admitted transactions in admission order, bounded in count and bytes."""

    def __init__(
        self,
        app: Application,
        *,
        max_txs: int = DEFAULT_MAX_TXS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_admit: Callable[[list[bytes]], None] | None = None,
        on_drop: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.on_admit = on_admit
        self.on_drop = on_drop  # (hash, code, log) of a tx dropped by the re-check after a commit
        self._txs: OrderedDict[str, MempoolTx] = OrderedDict()  # hash -> tx, admission order
        self._raw_index: dict[bytes, str] = {}  # digest of the submitted bytes -> hash
        self.total_bytes = 0

    # -- reads ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: str) -> bool:
        return tx_hash in self._txs

    def get_hashes(self) -> list[str]:
        """The hashes of the pool's transactions, in order."""
        return list(self._txs)

    def reap(self, max_txs: int, max_bytes: int) -> list[bytes]:
        """The first transactions of the pool (in order) within the block limits; they stay in the pool."""
        out: list[bytes] = []
        size = 0
        for tx in self._txs.values():
            if len(out) >= max_txs or size + len(tx.raw) > max_bytes:
                break
            out.append(tx.raw)
            size += len(tx.raw)
        return out

    # -- admission --------------------------------------------------------------------------
    def add(self, raw: bytes) -> str:
        """Admit one transaction and return its hash, or raise a MempoolError; relays it when admitted."""
        result = self.add_batch([raw])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def add_batch(self, raws: Iterable[bytes]) -> list[str | MempoolError]:
        """Admit transactions in order: each entry is the admitted hash or the MempoolError refusing it."""
        raws = [bytes(r) for r in raws]
        out: list[str | MempoolError | None] = [None] * len(raws)
        fresh: list[int] = []
        seen: set[bytes] = set()
        count, size = len(self._txs), self.total_bytes
        for i, raw in enumerate(raws):
            digest = compute_raw_digest(raw)
            known = self._raw_index.get(digest)
            if known is not None or digest in seen:
                what = f"transaction {known}" if known else "this transaction"
                out[i] = TxAlreadyKnown(f"{what} is already in the mempool", tx_hash=known or "")
                continue
            if count + 1 > self.max_txs:
                out[i] = MempoolFull(f"the mempool holds its limit of {self.max_txs} transactions")
                continue
            if size + len(raw) > self.max_bytes:
                out[i] = MempoolFull(f"the mempool holds {size} of its {self.max_bytes} bytes; this tx is {len(raw)}")
                continue
            seen.add(digest)
            fresh.append(i)
            count, size = count + 1, size + len(raw)
        admitted: list[bytes] = []
        if fresh:
            results = self.app.check_txs([raws[i] for i in fresh])
            for i, result in zip(fresh, results):
                if not result.ok:
                    out[i] = TxRejected(result.log or result.code, tx_hash=result.hash, code=result.code)
                    continue
                if result.hash in self._txs:  # another encoding of a pooled tx (cannot pass check_tx twice)
                    out[i] = TxAlreadyKnown(f"transaction {result.hash} is already in the mempool", tx_hash=result.hash)
                    continue
                self._insert(result.hash, raws[i])
                admitted.append(raws[i])
                out[i] = result.hash
        for outcome in out:
            if isinstance(outcome, MempoolError):
                log.debug("mempool rejected tx %s: %s", outcome.tx_hash, outcome)
        if admitted and self.on_admit is not None:
            self.on_admit(admitted)
        return out  # type: ignore[return-value]

    def _insert(self, tx_hash: str, raw: bytes) -> None:
        self._txs[tx_hash] = MempoolTx(tx_hash, raw)
        self._raw_index[compute_raw_digest(raw)] = tx_hash
        self.total_bytes += len(raw)

    def _remove(self, tx_hash: str) -> None:
        tx = self._txs.pop(tx_hash, None)
        if tx is not None:
            self._raw_index.pop(compute_raw_digest(tx.raw), None)
            self.total_bytes -= len(tx.raw)

    # -- after a commit ---------------------------------------------------------------------
    def update(self, committed_hashes: Iterable[str]) -> int:
        """After a block is committed: drop its transactions, re-check the rest in order against the
        fresh check state, drop those that fail; return how many were dropped as invalid."""
        for tx_hash in committed_hashes:
            self._remove(tx_hash)
        remaining = list(self._txs.values())
        if not remaining:
            return 0
        results = self.app.check_txs([tx.raw for tx in remaining])
        dropped = 0
        for tx, result in zip(remaining, results):
            if not result.ok:
                self._remove(tx.hash)
                dropped += 1
                if self.on_drop is not None:
                    self.on_drop(tx.hash, result.code, result.log)
                log.debug("mempool dropped tx %s after commit: %s", tx.hash, result.code)
        return dropped

"""Transactions that wait for their commit, and the listeners called after each applied block.

The HTTP API submits a transaction, then awaits `CommitWaiters.wait(hash, timeout)`: a future keyed by
the tx hash, resolved when a block that holds the tx is applied (by consensus or by block sync) with
its height, index, code, log and epoch, or when the mempool's re-check after a commit drops it. At
shutdown `release()` answers every waiting request "pending" (None).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from chain.app import TxResult

from .outcomes import TxOutcome

log = logging.getLogger(__name__)


class CommitWaiters:
    """The futures of transactions awaiting their commit, and the commit listeners."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future[TxOutcome | None]]] = {}
        self.listeners: list[Callable[[int], None]] = []

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(height)` after each applied block."""
        self.listeners.append(listener)

    def is_waiting_for(self, tx_hashes: Iterable[str]) -> bool:
        """True if a request waits for one of `tx_hashes`."""
        return any(h in self._waiters for h in tx_hashes)

    async def wait(self, tx_hash: str, timeout_s: float) -> TxOutcome | None:
        """The outcome of a tx once it is committed (or dropped); None after `timeout_s` or at shutdown."""
        future: asyncio.Future[TxOutcome | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_hash, []).append(future)
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for, which can swallow a cancellation (node/sync.py)
                return await asyncio.shield(future)
        except TimeoutError:
            return None
        finally:
            futures = self._waiters.get(tx_hash)
            if futures is not None and future in futures:
                futures.remove(future)
                if not futures:
                    del self._waiters[tx_hash]

    def on_block(self, height: int, tx_results: tuple[TxResult, ...], epoch: Callable[[], int]) -> None:
        """A block was applied: resolve its transactions' waiters (with `epoch()`, read only if one
        waits), then call the listeners; a listener's failure is logged, never raised."""
        if self.is_waiting_for(r.hash for r in tx_results):
            ran_in = epoch()
            for index, r in enumerate(tx_results):
                self._resolve(TxOutcome(r.hash, height, index, r.code, r.log, ran_in))
        for listener in self.listeners:
            try:
                listener(height)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the chain
                log.exception("commit listener failed at height %d", height)

    def on_drop(self, tx_hash: str, code: str, reason: str) -> None:
        """The mempool dropped a tx that no longer applies after a commit: its waiters learn why."""
        self._resolve(TxOutcome(tx_hash, None, -1, code, reason))

    def release(self) -> None:
        """Answer every waiting request None ("pending"): the node stops."""
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()

    def _resolve(self, outcome: TxOutcome) -> None:
        for future in self._waiters.pop(outcome.tx_hash, ()):
            if not future.done():
                future.set_result(outcome)

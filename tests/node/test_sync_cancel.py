"""Block sync stops when its task is cancelled, even when the cancellation comes as a peer's call fails:
Python 3.11's `asyncio.wait_for` returned the failure instead, which the sync took for the peer's fault, and
the task ran on; the node's stop then waited for it forever (a hang of tests/devnet/test_adversary_node.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import grpc
import pytest

from node.sync import BlockSync

pytestmark = pytest.mark.asyncio


class FailingPeer:
    """A peer claiming height 10 whose block stream fails when `fail` is set."""

    address = "peer@127.0.0.1:1"
    status = SimpleNamespace(height=10)

    def __init__(self) -> None:
        self.fail: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def get_blocks(self, first: int, last: int):
        await self.fail
        yield  # never reached: the stream fails first


async def test_a_cancellation_that_comes_as_the_peers_stream_fails_stops_the_sync():
    peer = FailingPeer()
    ledger = SimpleNamespace(height=1)
    sync = BlockSync(ledger, [peer], status_interval_s=60, apply=lambda b, c: None, genesis_time_ms=0)  # type: ignore[arg-type,list-item]
    task = asyncio.ensure_future(sync._sync_range(peer, 2, 3))  # type: ignore[arg-type]
    for _ in range(3):
        await asyncio.sleep(0)  # it waits for the stream
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(), "the peer stopped"
    )
    peer.fail.set_exception(error)  # the stream fails …
    task.cancel()  # … in the same turn of the loop as the node stops
    with pytest.raises(asyncio.CancelledError):
        await task

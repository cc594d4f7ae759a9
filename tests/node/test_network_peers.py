"""Peer clients: a deadline on every call, exponential backoff for an unreachable or silent peer,
gossip dropped while a peer is backed off; the server's graceful stop."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest

from node import network
from node.network import BACKOFF_MAX_S, PEER_BAN_S, PEER_MAX_STRIKES, PeerClient, compute_backoff_s
from node.pb import services_pb2 as spb
from tests.node.netutil import add_tls_port, free_port, make_identity

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    "failures, seconds", [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.4), (6, 3.2), (7, BACKOFF_MAX_S), (99, BACKOFF_MAX_S)]
)
async def test_backoff_doubles_from_a_tenth_of_a_second_up_to_a_cap(failures, seconds):
    assert compute_backoff_s(failures) == pytest.approx(seconds)


async def test_an_unreachable_peer_is_backed_off_and_its_gossip_dropped(tmp_path):
    client = make_identity(tmp_path / "client", "client")
    peer = PeerClient(f"{'ab' * 20}@127.0.0.1:{free_port()}", identity=client, rpc_timeout_s=1.0)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await peer.get_status()
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert peer.failures == 1 and peer.is_backed_off()
        peer.send("SendConsensus", b"")
        assert peer.dropped == 1
    finally:
        await peer.close()


async def test_a_silent_peer_hits_the_deadline_and_recovers_when_it_answers(tmp_path):
    answer = asyncio.Event()

    async def get_status(request: bytes, context) -> spb.StatusResponse:
        if not answer.is_set():
            await asyncio.sleep(5)
        return spb.StatusResponse(height=7)

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(get_status, response_serializer=lambda m: m.SerializeToString())
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("uoc.v1.Status", {"GetStatus": handler})])
    client = make_identity(tmp_path / "client", "client")
    address = add_tls_port(server, tmp_path / "server", client)
    await server.start()
    peer = PeerClient(address, identity=client, rpc_timeout_s=0.3)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await peer.get_status()
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert peer.failures == 1
        answer.set()
        assert (await peer.get_status()).height == 7
        assert peer.failures == 0 and not peer.is_backed_off()
    finally:
        await peer.close()
        await server.stop(0)


async def test_consensus_gossip_to_a_slow_peer_is_pipelined_and_tx_batches_keep_their_order(tmp_path):
    consensus_seen: list[bytes] = []
    batches_seen: list[bytes] = []

    async def send_consensus(request: bytes, context) -> spb.Ack:
        await asyncio.sleep(0.2)  # a 200 ms round trip
        consensus_seen.append(request)
        return spb.Ack()

    async def broadcast_txs(request: bytes, context) -> spb.TxBatchAck:
        await asyncio.sleep(0.01 * (5 - len(batches_seen) % 5))  # earlier batches answer slower
        batches_seen.append(request)
        return spb.TxBatchAck()

    def unary(fn):
        return grpc.unary_unary_rpc_method_handler(fn, response_serializer=lambda m: m.SerializeToString())

    server = grpc.aio.server()
    methods = {"SendConsensus": unary(send_consensus), "BroadcastTxs": unary(broadcast_txs)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("uoc.v1.Gossip", methods)])
    client = make_identity(tmp_path / "client", "client")
    address = add_tls_port(server, tmp_path / "server", client)
    await server.start()
    peer = PeerClient(address, identity=client, rpc_timeout_s=2.0)
    try:
        start = asyncio.get_running_loop().time()
        for i in range(16):
            peer.send("SendConsensus", bytes([i]))
        for i in range(10):
            peer.send("BroadcastTxs", bytes([i]))
        deadline = start + 10
        while (len(consensus_seen) < 16 or len(batches_seen) < 10) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        took = asyncio.get_running_loop().time() - start
        assert sorted(consensus_seen) == [bytes([i]) for i in range(16)]
        assert took < 1.6, f"16 messages at one per 200 ms round trip would take 3.2 s; took {took:.2f} s"
        assert batches_seen == [bytes([i]) for i in range(10)]  # one at a time: a sender's sequences stay in order
    finally:
        await peer.close()
        await server.stop(0)


async def test_an_outgoing_lane_is_bounded_in_bytes_not_only_in_messages(tmp_path, monkeypatch):
    """Regression: a lane held up to 10,000 messages whatever their size (10,000 × 16 MiB)."""
    monkeypatch.setattr(network, "PEER_LANE_BYTES", 1024 * 1024)
    client = make_identity(tmp_path / "client", "client")
    peer = PeerClient(f"{'ab' * 20}@127.0.0.1:{free_port()}", identity=client, rpc_timeout_s=1.0)
    try:
        for i in range(30):  # no await in between: nothing leaves the lane meanwhile
            peer.send("BroadcastTxs", bytes([i]) * 100 * 1024)
        assert peer.get_queued_bytes("txs") == 10 * 100 * 1024 and peer.dropped == 20
        peer.send("SendConsensus", b"v" * 1000)  # the other lane has its own bound
        assert peer.get_queued_bytes("consensus") == 1000 and peer.dropped == 20
    finally:
        await peer.close()


async def test_a_peer_that_fails_to_serve_is_backed_off_then_dropped_as_a_sync_source_and_credit_clears_it(
    tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="node.network")
    client = make_identity(tmp_path / "client", "client")
    peer = PeerClient(f"{'ab' * 20}@127.0.0.1:{free_port()}", identity=client)
    try:
        waits = []
        for strike in range(1, PEER_MAX_STRIKES):
            peer.penalize(f"stalled ({strike})")
            assert peer.is_penalized() and peer.strikes == strike
            waits.append(peer.penalized_until - time.monotonic())
        assert waits == sorted(waits) and waits[0] < PEER_BAN_S / 10
        peer.credit()
        assert peer.strikes == 0 and peer.is_penalized()  # credit forgets faults; the wait already set runs out
        for _ in range(PEER_MAX_STRIKES):
            peer.penalize("lied")
        assert PEER_BAN_S - 1 < peer.penalized_until - time.monotonic() <= PEER_BAN_S
        assert not peer.is_backed_off()  # gossip to it goes on: penalties concern block sync only
        lines = [r.getMessage() for r in caplog.records]
        assert sum("backed off as a sync source" in line for line in lines) == 2 * (PEER_MAX_STRIKES - 1)
        assert [line for line in lines if "dropped as a sync source" in line] == [
            f"peer {peer.address} dropped as a sync source for {PEER_BAN_S:.0f} s: lied"
        ]
    finally:
        await peer.close()

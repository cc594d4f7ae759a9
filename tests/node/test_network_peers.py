"""Peer clients: a deadline on every call, exponential backoff for an unreachable or silent peer,
gossip dropped while a peer is backed off; the server's graceful stop."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from node.network import BACKOFF_MAX_S, PeerClient, compute_backoff_s
from node.pb import services_pb2 as spb
from tests.node.netutil import free_port

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    "failures, seconds", [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.4), (6, 3.2), (7, BACKOFF_MAX_S), (99, BACKOFF_MAX_S)]
)
async def test_backoff_doubles_from_a_tenth_of_a_second_up_to_a_cap(failures, seconds):
    assert compute_backoff_s(failures) == pytest.approx(seconds)


async def test_an_unreachable_peer_is_backed_off_and_its_gossip_dropped():
    peer = PeerClient(f"127.0.0.1:{free_port()}", rpc_timeout_s=1.0)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await peer.get_status()
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert peer.failures == 1 and peer.is_backed_off()
        peer.send("SendConsensus", b"")
        assert peer.dropped == 1
    finally:
        await peer.close()


async def test_a_silent_peer_hits_the_deadline_and_recovers_when_it_answers():
    answer = asyncio.Event()

    async def get_status(request: bytes, context) -> spb.StatusResponse:
        if not answer.is_set():
            await asyncio.sleep(5)
        return spb.StatusResponse(height=7)

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(get_status, response_serializer=lambda m: m.SerializeToString())
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("uoc.v1.Status", {"GetStatus": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    peer = PeerClient(f"127.0.0.1:{port}", rpc_timeout_s=0.3)
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

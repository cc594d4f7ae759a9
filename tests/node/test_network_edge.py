"""Bad input at the gRPC edge of a real node on loopback: each is rejected with a proper status, logged,
and the node keeps running. Also: health and reflection are served, and Status/GetEvidence answer."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chain.crypto import PrivateKey
from chain.tx import MsgSend, sign_tx
from node import codec
from node.blocks import sign_vote
from node.config import load_home
from node.network import MAX_BATCH_TXS
from node.node import Node
from node.pb import services_pb2 as spb
from node.pb import types_pb2 as pb
from tests.node.netutil import aio_self_channel, make_homes

pytestmark = pytest.mark.asyncio

H = "ab" * 32


@pytest_asyncio.fixture
async def node(tmp_path):
    """A one-validator node committing blocks every ~100 ms, with a 64 KiB message limit."""
    (home,) = make_homes(tmp_path, 1, max_message_bytes=64 * 1024, block_max_bytes=16 * 1024)
    node = Node(load_home(home))
    await node.start()
    yield node
    await node.stop(0.1)


@pytest_asyncio.fixture
async def channel(node):
    async with aio_self_channel(node.home.path, f"127.0.0.1:{node.port}") as ch:
        yield ch


def raw_call(channel, path: str, response=spb.Ack):
    return channel.unary_unary(path, request_serializer=None, response_deserializer=response.FromString)


async def send_consensus(channel, payload: bytes):
    return await raw_call(channel, "/uoc.v1.Gossip/SendConsensus")(payload, timeout=5)


async def wait_height(node: Node, height: int) -> None:
    for _ in range(200):
        if node.app.height >= height:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"node stuck at height {node.app.height}")


async def assert_still_running(node: Node, channel) -> None:
    """The node answers Status and health, and keeps committing blocks."""
    status = await raw_call(channel, "/uoc.v1.Status/GetStatus", spb.StatusResponse)(b"", timeout=5)
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    await wait_height(node, status.height + 2)


def vote_msg(key: PrivateKey, node: Node, *, height: int | None = None, round: int = 0) -> pb.ConsensusMessage:
    vote = sign_vote(key, node.chain_id, "prevote", height or node.consensus.height, round, H, 1)
    return codec.consensus_message_to_pb(vote)


async def expect_rejected(call, code: grpc.StatusCode, match: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code
    assert match in info.value.details()


async def test_malformed_protobuf_is_invalid_argument(node, channel, caplog):
    caplog.set_level(logging.INFO, logger="node.network")
    await expect_rejected(send_consensus(channel, b"\xff\xff\xff\x01"), grpc.StatusCode.INVALID_ARGUMENT, "malformed")
    assert any("SendConsensus" in r.message and "rejected" in r.message for r in caplog.records)
    await expect_rejected(
        raw_call(channel, "/uoc.v1.Gossip/BroadcastTx", spb.TxAck)(b"\x0a\xff", timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed",
    )
    await assert_still_running(node, channel)


async def test_bad_signature_is_invalid_argument(node, channel):
    msg = vote_msg(node.signer, node)
    msg.vote.signature = bytes(64)
    await expect_rejected(
        send_consensus(channel, msg.SerializeToString()), grpc.StatusCode.INVALID_ARGUMENT, "bad signature"
    )
    await assert_still_running(node, channel)


async def test_vote_from_a_non_validator_is_invalid_argument(node, channel):
    stranger = PrivateKey.from_name("stranger")
    await expect_rejected(
        send_consensus(channel, vote_msg(stranger, node).SerializeToString()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a validator",
    )
    await assert_still_running(node, channel)


async def test_vote_for_a_wrong_height_or_round_is_invalid_argument(node, channel):
    far = vote_msg(node.signer, node, height=node.consensus.height + 50)
    await expect_rejected(send_consensus(channel, far.SerializeToString()), grpc.StatusCode.INVALID_ARGUMENT, "height")
    await wait_height(node, 5)
    stale = vote_msg(node.signer, node, height=1)
    await expect_rejected(send_consensus(channel, stale.SerializeToString()), grpc.StatusCode.INVALID_ARGUMENT, "stale")
    wild = vote_msg(node.signer, node, round=node.consensus.round + 1000)
    await expect_rejected(send_consensus(channel, wild.SerializeToString()), grpc.StatusCode.INVALID_ARGUMENT, "round")
    await assert_still_running(node, channel)


async def test_oversized_message_is_resource_exhausted(node, channel):
    huge = spb.TxBatch(txs=[b"x" * 1024] * 100).SerializeToString()
    await expect_rejected(
        raw_call(channel, "/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck)(huge, timeout=5),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "",
    )
    await assert_still_running(node, channel)


async def test_a_broadcast_txs_call_over_the_entry_cap_is_refused_whole(node, channel):
    call = raw_call(channel, "/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck)
    good = sign_tx(node.signer, node.chain_id, 0, [MsgSend(to=PrivateKey.from_name("r").address, amount=1)])
    over = spb.TxBatch(txs=[good] + [bytes([i % 251]) for i in range(MAX_BATCH_TXS)])  # cap + 1 entries
    assert len(over.SerializeToString()) < 64 * 1024  # under the message limit: the entry cap refuses it
    await expect_rejected(call(over.SerializeToString(), timeout=5), grpc.StatusCode.RESOURCE_EXHAUSTED, "at most")
    assert len(node.mempool) == 0  # none admitted
    at_cap = spb.TxBatch(txs=[good] + [bytes([i % 251]) for i in range(MAX_BATCH_TXS - 1)])
    ack = await call(at_cap.SerializeToString(), timeout=5)
    assert len(ack.acks) == MAX_BATCH_TXS and ack.acks[0].accepted
    await assert_still_running(node, channel)


async def test_replayed_tx_is_already_exists_then_invalid_after_commit(node, channel):
    key = node.signer
    tx = sign_tx(key, node.chain_id, 0, [MsgSend(to=PrivateKey.from_name("x").address, amount=5)])
    broadcast = raw_call(channel, "/uoc.v1.Gossip/BroadcastTx", spb.TxAck)
    node.mempool.max_txs = 10**6
    ack = await broadcast(pb.Tx(raw=tx).SerializeToString(), timeout=5)
    assert ack.accepted and len(ack.hash) == 64
    if ack.hash in node.mempool:  # not yet committed: the replay is a duplicate
        await expect_rejected(
            broadcast(pb.Tx(raw=tx).SerializeToString(), timeout=5), grpc.StatusCode.ALREADY_EXISTS, "already"
        )
    for _ in range(100):
        if node.query(f"account/{key.address}")["sequence"] == 1:
            break
        await asyncio.sleep(0.05)
    assert node.query(f"account/{key.address}")["sequence"] == 1
    await expect_rejected(
        broadcast(pb.Tx(raw=tx).SerializeToString(), timeout=5), grpc.StatusCode.INVALID_ARGUMENT, "wrong_sequence"
    )
    await assert_still_running(node, channel)


async def test_mempool_full_is_resource_exhausted(node, channel):
    node.mempool.max_txs = 0
    tx = sign_tx(node.signer, node.chain_id, 0, [MsgSend(to=PrivateKey.from_name("x").address, amount=5)])
    await expect_rejected(
        raw_call(channel, "/uoc.v1.Gossip/BroadcastTx", spb.TxAck)(pb.Tx(raw=tx).SerializeToString(), timeout=5),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "mempool_full",
    )


async def test_health_and_reflection_services_are_served(node, channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "uoc.v1.Gossip", "uoc.v1.BlockSync", "uoc.v1.Status"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = [s.name async for r in replies for s in r.list_services_response.service]
    assert {"uoc.v1.Gossip", "uoc.v1.BlockSync", "uoc.v1.Status", "grpc.health.v1.Health"} <= set(names)


async def test_status_and_blocks_are_served(node, channel):
    await wait_height(node, 3)
    status = await raw_call(channel, "/uoc.v1.Status/GetStatus", spb.StatusResponse)(b"", timeout=5)
    assert status.chain_id == "uoc-nettest" and status.moniker == "node0" and status.height >= 3
    assert status.validator_address == node.signer.address and status.evidence_count == 0
    assert (status.peers, status.configured_peers) == (0, 0)
    stream = channel.unary_stream(
        "/uoc.v1.BlockSync/GetBlocks", request_serializer=None, response_deserializer=pb.BlockWithCommit.FromString
    )
    items = [i async for i in stream(spb.BlockRange(from_height=1, to_height=3).SerializeToString(), timeout=5)]
    pairs = [codec.block_with_commit_from_pb(i) for i in items]
    assert [b.height for b, _ in pairs] == [1, 2, 3]
    assert pairs[1][0].header.last_block_id == pairs[0][0].id
    with pytest.raises(grpc.aio.AioRpcError) as info:
        _ = [i async for i in stream(spb.BlockRange(from_height=0, to_height=3).SerializeToString(), timeout=5)]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bad block range" in info.value.details()
    evidence = await raw_call(channel, "/uoc.v1.Status/GetEvidence", spb.EvidenceList)(b"", timeout=5)
    assert list(evidence.evidence) == []
    await expect_rejected(
        raw_call(channel, "/uoc.v1.BlockSync/GetBlock", pb.Block)(
            spb.GetBlockRequest(height=10**6).SerializeToString(), timeout=5
        ),
        grpc.StatusCode.NOT_FOUND,
        "no block",
    )


async def test_double_sign_is_recorded_as_evidence_and_queryable(tmp_path):
    homes = make_homes(tmp_path, 2)  # two validators, only node0 runs: height 1 cannot commit
    other = load_home(homes[1]).validator_key
    node = Node(load_home(homes[0]))
    await node.start()
    try:
        async with aio_self_channel(homes[0], f"127.0.0.1:{node.port}") as channel:
            round = node.consensus.round
            for block_id in (H, "cd" * 32, "ef" * 32):
                vote = sign_vote(other, node.chain_id, "prevote", 1, round, block_id, 1)
                await send_consensus(channel, codec.consensus_message_to_pb(vote).SerializeToString())
            status = await raw_call(channel, "/uoc.v1.Status/GetStatus", spb.StatusResponse)(b"", timeout=5)
            assert status.evidence_count == 1  # deduplicated per (validator, height, round, type)
            reply = await raw_call(channel, "/uoc.v1.Status/GetEvidence", spb.EvidenceList)(b"", timeout=5)
            (evidence,) = [codec.evidence_from_pb(e) for e in reply.evidence]
            assert evidence.vote_a.validator == other.address and evidence.vote_a.block_id == H
            assert node.get_evidence() == [evidence]
            assert status.height == 0 and node.consensus.height == 1  # the node keeps running
    finally:
        await node.stop(0.1)

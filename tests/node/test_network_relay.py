"""Relay through a real node to a spy peer (a loopback gRPC server): a verified consensus message is
relayed once however often it arrives; an invalid one is not relayed; only admitted txs are relayed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from chain.crypto import PrivateKey
from chain.tx import MsgSend, sign_tx
from node import codec, tls
from node.blocks import Block, Header, compute_commit_hash, compute_txs_hash, sign_proposal, sign_vote
from node.config import compute_genesis_time_ms, load_home
from node.node import Node
from node.pb import services_pb2 as spb
from node.pb import types_pb2 as pb
from tests.node.netutil import aio_self_channel, load_tls_identity, make_homes

pytestmark = pytest.mark.asyncio


class Spy:
    """A peer that records every Gossip payload it receives: a TLS server with its own node identity
    (made in `directory`) that accepts the node of `client_home`; the node lists it as `spy.address`."""

    def __init__(self, directory: Path, client_home: Path) -> None:
        directory.mkdir()
        identity = tls.create_identity(directory, PrivateKey.from_name("spy"))
        client = load_tls_identity(client_home)
        self.consensus: list[bytes] = []
        self.txs: list[bytes] = []
        self.server = grpc.aio.server()

        async def send_consensus(request: bytes, context) -> spb.Ack:
            self.consensus.append(request)
            return spb.Ack(relayed=True)

        async def broadcast_txs(request: bytes, context) -> spb.TxBatchAck:
            self.txs += list(spb.TxBatch.FromString(request).txs)
            return spb.TxBatchAck()

        async def get_status(request: bytes, context) -> spb.StatusResponse:
            return spb.StatusResponse(chain_id="other-chain")

        def unary(f):
            return grpc.unary_unary_rpc_method_handler(f, response_serializer=lambda m: m.SerializeToString())

        self.server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "uoc.v1.Gossip", {"SendConsensus": unary(send_consensus), "BroadcastTxs": unary(broadcast_txs)}
                ),
                grpc.method_handlers_generic_handler("uoc.v1.Status", {"GetStatus": unary(get_status)}),
            ]
        )
        credentials = grpc.ssl_server_credentials(
            [(identity.key_pem, identity.cert_pem)], client.cert_pem, require_client_auth=True
        )
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.address = f"{identity.node_id}@127.0.0.1:{self.port}"


@asynccontextmanager
async def validator_with_spy(tmp_path) -> AsyncIterator[tuple[Node, Spy, Any, Any]]:
    """A running validator (node0 of two; node1 never runs) whose only peer is a spy, a SendConsensus
    call to it, and node1's key to sign votes with."""
    homes = make_homes(tmp_path, 2)
    spy = Spy(tmp_path / "spy", homes[0])
    await spy.server.start()
    home = load_home(homes[0])
    other = load_home(homes[1]).validator_key
    node = Node(replace(home, config=replace(home.config, peers=(spy.address,))))
    await node.start()
    try:
        async with aio_self_channel(home.path, f"127.0.0.1:{node.port}") as channel:
            send = channel.unary_unary(
                "/uoc.v1.Gossip/SendConsensus", request_serializer=None, response_deserializer=spb.Ack.FromString
            )
            yield node, spy, send, other
    finally:
        await node.stop(0.1)
        await spy.server.stop(0)


async def test_a_verified_vote_is_relayed_once_and_an_invalid_one_never(tmp_path):
    async with validator_with_spy(tmp_path) as (node, spy, send, other):
        vote = sign_vote(other, node.chain_id, "prevote", 1, node.consensus.round, None, 5)
        raw = codec.consensus_message_to_pb(vote).SerializeToString()
        replies = [await send(raw, timeout=5) for _ in range(3)]
        assert [r.relayed for r in replies] == [True, False, False]
        forged = codec.consensus_message_to_pb(replace(vote, timestamp_ms=6)).SerializeToString()
        with pytest.raises(grpc.aio.AioRpcError):
            await send(forged, timeout=5)
        for _ in range(40):
            if raw in spy.consensus:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert spy.consensus.count(raw) == 1
        assert forged not in spy.consensus

        def signers() -> set[str]:
            msgs = [codec.consensus_message_from_pb(pb.ConsensusMessage.FromString(m)) for m in spy.consensus]
            return {getattr(m, "validator", None) or m.proposer for m in msgs}

        for _ in range(60):
            if node.signer.address in signers():
                break
            await asyncio.sleep(0.05)
        assert node.signer.address in signers()  # its own messages reach the peer too
        assert spy.consensus.count(raw) == 1


async def test_a_consensus_message_is_relayed_to_every_peer_but_the_one_it_came_from(tmp_path):
    async with validator_with_spy(tmp_path) as (node, spy, _, other):
        spy_id = spy.address.partition("@")[0]
        votes = [sign_vote(other, node.chain_id, "prevote", 1, node.consensus.round, None, t) for t in (5, 6)]
        from_spy, from_elsewhere = (codec.consensus_message_to_pb(v).SerializeToString() for v in votes)
        assert node.receive_consensus(from_spy, spy_id)  # verified and taken, but the spy holds it already
        assert node.receive_consensus(from_elsewhere, "cc" * 20)
        for _ in range(40):
            if from_elsewhere in spy.consensus:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert from_elsewhere in spy.consensus and from_spy not in spy.consensus


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _length_delimited(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _padded(raw: bytes, size: int, field: int = 999) -> bytes:
    """A ConsensusMessage whose vote carries `size` bytes of an unknown field, and so does the wrapper."""
    vote = pb.ConsensusMessage.FromString(raw).vote.SerializeToString() + _length_delimited(field, b"\xab" * size)
    number = pb.ConsensusMessage.DESCRIPTOR.fields_by_name["vote"].number
    return _length_delimited(number, vote) + _length_delimited(field + 1, b"\xcd" * size)


async def test_a_vote_padded_with_unknown_fields_is_relayed_once_in_canonical_form(tmp_path):
    async with validator_with_spy(tmp_path) as (node, spy, send, other):
        vote = sign_vote(other, node.chain_id, "prevote", 1, node.consensus.round, None, 5)
        raw = codec.consensus_message_to_pb(vote).SerializeToString()
        padded = _padded(raw, 1 << 20)
        assert len(padded) > 2 << 20
        assert codec.consensus_message_from_pb(pb.ConsensusMessage.FromString(padded)) == vote  # engine ignores it
        first = await send(padded, timeout=5)
        others = [await send(m, timeout=5) for m in (raw, _padded(raw, 1000, field=77), padded)]
        assert first.relayed and not any(r.relayed for r in others)  # one message however it is padded
        for _ in range(40):
            if raw in spy.consensus:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert spy.consensus.count(raw) == 1  # the canonical bytes, relayed once
        mine = [m for m in spy.consensus if pb.ConsensusMessage.FromString(m).vote.validator == vote.validator]
        assert mine == [raw]  # no padded copy was forwarded
        assert max(len(m) for m in spy.consensus) < 64 * 1024


async def test_only_admitted_transactions_are_relayed(tmp_path):
    (home_path,) = make_homes(tmp_path, 1)
    spy = Spy(tmp_path / "spy", home_path)
    await spy.server.start()
    home = load_home(home_path)
    node = Node(replace(home, config=replace(home.config, peers=(spy.address,))))
    await node.start()
    try:
        good = sign_tx(node.signer, node.chain_id, 0, [MsgSend(to=PrivateKey.from_name("r").address, amount=1)])
        bad = sign_tx(node.signer, node.chain_id, 9, [MsgSend(to=PrivateKey.from_name("r").address, amount=1)])
        results = node.submit_txs([good, bad, good])
        assert isinstance(results[0], str) and all(isinstance(r, Exception) for r in results[1:])
        for _ in range(40):
            if spy.txs:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        assert spy.txs == [good]
    finally:
        await node.stop(0.1)
        await spy.server.stop(0)


async def test_a_block_precommitted_by_a_quorum_but_never_received_is_fetched_from_a_peer(tmp_path):
    homes = make_homes(tmp_path, 4)  # four validators; only node0 runs, the test holds the other keys
    home = load_home(homes[0])
    others = [load_home(h).validator_key for h in homes[1:]]
    spy = Spy(tmp_path / "spy", homes[0])
    served: list[int] = []
    block_holder: dict[str, Block] = {}

    async def get_block(request: bytes, context) -> pb.Block:
        req = spb.GetBlockRequest.FromString(request)
        served.append(req.height)
        return codec.block_to_pb(block_holder[req.block_id])

    handler = grpc.unary_unary_rpc_method_handler(get_block, response_serializer=lambda m: m.SerializeToString())
    spy.server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("uoc.v1.BlockSync", {"GetBlock": handler})]
    )
    await spy.server.start()
    node = Node(replace(home, config=replace(home.config, peers=(spy.address,))))
    await node.start()
    try:
        vset = node.get_validator_set(1)
        header = Header(
            chain_id=node.chain_id,
            height=1,
            time_ms=compute_genesis_time_ms(node.genesis),  # BFT time at height 1
            last_block_id="",
            last_commit_hash=compute_commit_hash(None),
            txs_hash=compute_txs_hash(()),
            app_hash=node.app.app_hash,
            validators_hash=vset.hash,
            proposer=vset.proposer(0),
        )
        block = Block(header, (), None)
        block_holder[block.id] = block
        async with aio_self_channel(home.path, f"127.0.0.1:{node.port}") as channel:
            send = channel.unary_unary(
                "/uoc.v1.Gossip/SendConsensus", request_serializer=None, response_deserializer=spb.Ack.FromString
            )
            for key in others:  # 300 of 400 power precommit a block node0 never saw
                vote = sign_vote(key, node.chain_id, "precommit", 1, 0, block.id, header.time_ms + 5)
                await send(codec.consensus_message_to_pb(vote).SerializeToString(), timeout=5)
        for _ in range(100):
            if node.app.height >= 1:
                break
            await asyncio.sleep(0.05)
        assert served == [1]
        assert node.app.height == 1 and node.store.get_block_id(1) == block.id
    finally:
        await node.stop(0.1)
        await spy.server.stop(0)


async def test_a_proposal_with_a_swapped_body_is_refused_not_relayed_and_does_not_shadow_the_honest_copy(tmp_path):
    homes = make_homes(tmp_path, 4)  # four validators; only node0 runs, the test holds the other keys
    home = load_home(homes[0])
    keys = {k.address: k for k in (load_home(h).validator_key for h in homes[1:])}
    spy = Spy(tmp_path / "spy", homes[0])
    await spy.server.start()
    node = Node(replace(home, config=replace(home.config, peers=(spy.address,))))
    await node.start()
    try:
        vset = node.get_validator_set(1)
        round = next(r for r in range(8) if vset.proposer(r) in keys)  # a round another validator proposes
        header = Header(
            chain_id=node.chain_id,
            height=1,
            time_ms=compute_genesis_time_ms(node.genesis),
            last_block_id="",
            last_commit_hash=compute_commit_hash(None),
            txs_hash=compute_txs_hash(()),
            app_hash=node.app.app_hash,
            validators_hash=vset.hash,
            proposer=vset.proposer(round),
        )
        block = Block(header, (), None)
        proposal = sign_proposal(keys[header.proposer], node.chain_id, 1, round, -1, block, 5)
        poisoned = replace(proposal, block=replace(block, txs=(b"poison",)))  # a relay swapped the txs
        honest_raw = codec.consensus_message_to_pb(proposal).SerializeToString()
        poisoned_raw = codec.consensus_message_to_pb(poisoned).SerializeToString()
        async with aio_self_channel(home.path, f"127.0.0.1:{node.port}") as channel:
            send = channel.unary_unary(
                "/uoc.v1.Gossip/SendConsensus", request_serializer=None, response_deserializer=spb.Ack.FromString
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await send(poisoned_raw, timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert node.consensus.get_known_block(block.id) is None  # not cached
            assert (await send(honest_raw, timeout=5)).relayed
        assert node.consensus.get_known_block(block.id) == block
        for _ in range(40):
            if honest_raw in spy.consensus:
                break
            await asyncio.sleep(0.05)
        assert honest_raw in spy.consensus and poisoned_raw not in spy.consensus
    finally:
        await node.stop(0.1)
        await spy.server.stop(0)

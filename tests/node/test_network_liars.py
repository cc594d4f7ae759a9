"""Peers that lie about their height, against real nodes on loopback (issue 14 item 5).

A fake peer (a loopback gRPC server) says it is at height 2^63−1 and then stalls `GetBlocks`, or serves
a block that does not verify. Before, every node that had it as a peer went into sync mode, which
dropped every consensus message and timeout, so the network stalled; now consensus runs while block
sync does, a claimed height is believed only when the peer serves verified blocks, and the liar is
backed off and then dropped as a sync source, with a WARNING line that says so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from node import codec
from node.blocks import sign_vote
from node.config import load_home
from node.network import PEER_MAX_STRIKES
from node.node import Node
from node.pb import services_pb2 as spb
from node.pb import types_pb2 as pb
from tests.node.netutil import add_tls_port, aio_self_channel, load_tls_identity, make_homes, wait_for

pytestmark = pytest.mark.asyncio

TOP = 2**63 - 1


class Liar:
    """A peer whose Status says height 2^63−1 of `chain_id`; its GetBlocks stalls (`serve="stall"`) or
    answers one bogus block (`serve="junk"`). It takes gossip and answers nothing else. It speaks mutual TLS
    with a node identity of its own (made in `directory`) and accepts the nodes of `homes`."""

    def __init__(self, chain_id: str, homes: list[Path], directory: Path, serve: str = "stall") -> None:
        self.asked: list[int] = []  # the first height of each GetBlocks call
        self.server = grpc.aio.server()

        async def get_status(request: bytes, context) -> spb.StatusResponse:
            return spb.StatusResponse(chain_id=chain_id, height=TOP, node_id="liar", moniker="liar")

        async def get_blocks(request: bytes, context) -> AsyncIterator[pb.BlockWithCommit]:
            first = spb.BlockRange.FromString(request).from_height
            self.asked.append(first)
            if serve == "stall":
                await asyncio.sleep(3600)
            header = pb.Header(chain_id=chain_id, height=first, last_block_id="ab" * 32)
            yield pb.BlockWithCommit(block=pb.Block(header=header), commit=pb.Commit(height=first))

        async def ack(request: bytes, context) -> spb.Ack:
            return spb.Ack()

        def unary(f):
            return grpc.unary_unary_rpc_method_handler(f, response_serializer=lambda m: m.SerializeToString())

        stream = grpc.unary_stream_rpc_method_handler(get_blocks, response_serializer=lambda m: m.SerializeToString())
        self.server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler("uoc.v1.Status", {"GetStatus": unary(get_status)}),
                grpc.method_handlers_generic_handler("uoc.v1.BlockSync", {"GetBlocks": stream}),
                grpc.method_handlers_generic_handler(
                    "uoc.v1.Gossip", {"SendConsensus": unary(ack), "BroadcastTxs": unary(ack)}
                ),
            ]
        )
        self.address = add_tls_port(self.server, directory, *(load_tls_identity(h) for h in homes))


async def start_with_liar(home_path, liar: Liar, **config) -> Node:
    """A node of `home_path` with the liar added to its peers."""
    home = load_home(home_path)
    peers = (*config.pop("peers", home.config.peers), liar.address)
    node = Node(replace(home, config=replace(home.config, peers=peers, **config)))
    await node.start()
    return node


def dropped_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dropped as a sync source" in r.getMessage()]


async def test_a_peer_lying_about_its_height_stops_neither_a_four_validator_network_nor_its_consensus(tmp_path, caplog):
    """Regression: every node had the liar as a peer, went into sync mode on its word, and dropped
    every consensus message and timeout while its GetBlocks stalled (30 s): the chain halted."""
    caplog.set_level(logging.INFO, logger="node")
    homes = make_homes(tmp_path, 4)
    liar = Liar("uoc-nettest", homes, tmp_path / "liar")
    await liar.server.start()
    nodes = [await start_with_liar(h, liar) for h in homes]
    try:
        await wait_for(lambda: all(n.app.height >= 15 for n in nodes), "every node commits 15 blocks", 40)
        assert liar.asked, "every node asked the liar for blocks: its claim was acted on, then refused"
        await wait_for(lambda: len(dropped_lines(caplog)) >= 4, "every node drops the liar as a sync source", 40)
        assert all(liar.address in line and str(TOP) in line for line in dropped_lines(caplog))
        asked = len(liar.asked)
        await asyncio.sleep(1.0)
        assert len(liar.asked) == asked  # dropped: no longer asked (nor polled)
        ids = {n.store.get_block_id(10) for n in nodes}
        assert len(ids) == 1 and None not in ids  # one chain
    finally:
        for node in nodes:
            await node.stop(0.1)
        await liar.server.stop(0)


async def test_timeouts_fire_and_votes_count_while_block_sync_waits_on_a_stalling_peer(tmp_path):
    """Regression: while syncing, a fired timeout was dropped and SendConsensus returned without looking
    at the vote, so a validator waiting on a stalled sync never moved."""
    homes = make_homes(tmp_path, 2)  # two validators; node1 does not run, the test signs its votes
    other = load_home(homes[1]).validator_key
    liar = Liar("uoc-nettest", homes[:1], tmp_path / "liar")
    await liar.server.start()
    node = await start_with_liar(homes[0], liar, peers=())
    node.sync.block_wait_s = 30.0  # keep this sync attempt waiting on the liar for the whole test
    try:
        await wait_for(lambda: node.syncing, "the node syncs from the liar", 10)
        height, round = node.consensus.height, node.consensus.round
        async with aio_self_channel(homes[0], f"127.0.0.1:{node.port}") as channel:
            send = channel.unary_unary(
                "/uoc.v1.Gossip/SendConsensus", request_serializer=None, response_deserializer=spb.Ack.FromString
            )
            for type in ("prevote", "precommit"):
                vote = sign_vote(other, node.chain_id, type, height, round, None, 5)
                ack = await send(codec.consensus_message_to_pb(vote).SerializeToString(), timeout=5)
                assert ack.relayed, f"the {type} was not processed while syncing"
        # node0's own prevote and precommit (after its timeouts) and node1's nil votes: +2/3 precommits of
        # any kind schedule timeout_precommit, whose firing starts the next round
        await wait_for(lambda: node.consensus.round > round, "a timeout fires and the round moves on", 10)
        assert node.syncing and node.consensus.height == height  # all of it during the stalled sync
    finally:
        await node.stop(0.1)
        await liar.server.stop(0)


async def test_a_peer_that_serves_a_block_that_does_not_verify_is_backed_off_then_dropped(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="node")
    (home,) = make_homes(tmp_path, 1)
    liar = Liar("uoc-nettest", [home], tmp_path / "liar", serve="junk")
    await liar.server.start()
    node = await start_with_liar(home, liar)
    try:
        await wait_for(lambda: dropped_lines(caplog), "the liar is dropped as a sync source", 30)
        faults = [r.getMessage() for r in caplog.records if "backed off as a sync source" in r.getMessage()]
        assert len(faults) == PEER_MAX_STRIKES - 1
        assert all("served" in line for line in [*faults, *dropped_lines(caplog)])
        height = node.app.height
        await wait_for(lambda: node.app.height >= height + 5, "the node keeps committing", 20)
        assert [node.store.get_block_row(h)[1]["header"]["last_block_id"] for h in (2, 3)] != ["ab" * 32] * 2
        assert len(liar.asked) == PEER_MAX_STRIKES
    finally:
        await node.stop(0.1)
        await liar.server.stop(0)

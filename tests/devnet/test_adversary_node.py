"""The adversary as a node: `open_node(home, make_core=AdversaryCore)` on real loopback gRPC and SQLite, beside
three honest nodes in the same process, with one attack switched on at a time (the schedule is not running)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from functools import partial

import grpc
import pytest
import pytest_asyncio

from devnet.adversary import LIE_HEIGHT, AdversaryCore
from node.config import compute_peer_address, load_home
from node.network import PeerClient
from node.node import Node, NodeCore, open_node
from node.tls import load_identity
from tests.node.netutil import make_homes, wait_for

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def network(tmp_path) -> AsyncIterator[tuple[AdversaryCore, list[NodeCore]]]:
    """Three honest nodes and one adversary (all validators of equal power), committing."""
    homes = make_homes(tmp_path, 4)
    async with AsyncExitStack() as stack:
        honest = []
        for home in homes[:3]:
            node = Node(load_home(home))
            await node.start()
            stack.push_async_callback(node.stop, 0.1)
            assert node.core is not None
            honest.append(node.core)
        make_core = partial(AdversaryCore, plan=[], t0=None, seed=7)
        liar = await stack.enter_async_context(open_node(load_home(homes[3]), make_core=make_core))
        assert isinstance(liar, AdversaryCore)
        await wait_for(lambda: min(n.app.height for n in honest) >= 2, "the network commits")
        yield liar, honest


async def wait_blocks(honest: list[NodeCore], count: int, what: str) -> None:
    target = max(n.app.height for n in honest) + count
    await wait_for(lambda: min(n.app.height for n in honest) >= target, what)


async def test_a_lying_adversary_claims_a_far_height_and_stalls_block_serving_over_real_grpc(network):
    liar, honest = network
    home = liar.home  # the adversary's own identity: a node's server accepts it
    identity = load_identity(home.path, home.node_key)
    peer = PeerClient(compute_peer_address(home), identity=identity, rpc_timeout_s=2.0)
    try:
        assert (await peer.get_status()).height == liar.app.height  # honest while the window is closed
        liar.active = frozenset({"lie_height"})
        assert (await peer.get_status()).height == LIE_HEIGHT
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in peer.get_blocks(1, 2, timeout_s=1.0):
                raise AssertionError("a stalling GetBlocks sends nothing")
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert liar.counts["lie_height"] >= 2  # ours, and the honest peers polling it
    finally:
        liar.active = frozenset()
        await peer.close()


async def test_an_equivocating_adversary_is_caught_and_the_honest_nodes_keep_committing(network):
    liar, honest = network
    liar.active = frozenset({"equivocate"})
    await wait_for(lambda: len(liar.equivocations) >= 4, "the adversary delivers twin votes")
    await wait_blocks(honest, 3, "the honest nodes commit beside the equivocator")
    liar.active = frozenset()
    delivered = {e["key"] for e in liar.equivocations}
    assert all(key.startswith(liar.signer.address + "/") for key in delivered)
    held = set().union(*({e.key for e in n.get_evidence()} for n in honest))
    assert delivered and delivered <= held, "every twin a peer took lands beside its honest copy: evidence"


@pytest.mark.parametrize(
    "kinds",
    [
        {"withhold"},
        {"tamper_relay", "pad"},
        {"flood_future", "replay"},
        {"time_future", "time_past"},
    ],
)
async def test_the_honest_nodes_keep_committing_while_the_adversary_lies(network, kinds):
    liar, honest = network
    liar.active = frozenset(kinds)
    for _ in range(10):  # the periodic attacks that `run_attacks` would run each tick
        if "flood_future" in kinds:
            liar.flood_future()
        if "replay" in kinds:
            liar.replay(with_txs=True)
        await asyncio.sleep(0.1)
    await wait_blocks(honest, 4, f"the honest nodes commit while the adversary does {sorted(kinds)}")
    liar.active = frozenset()
    acted = {k for k in kinds if liar.counts[k] > 0}
    assert acted == kinds or kinds == {"time_future", "time_past"}, liar.counts  # times need its own proposal
    if "tamper_relay" in kinds:
        assert any(n.server.handlers.rejected.get("SendConsensus", 0) for n in honest)
    assert len({n.ledger.last_block_id for n in honest if n.app.height == honest[0].app.height}) == 1

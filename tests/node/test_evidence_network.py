"""Evidence and the sign state between real nodes (one process, real gRPC on loopback, real SQLite):
a double sign sent to one node is gossiped, committed in a block on every node, and its validator is
jailed, slashed and leaves the set while the chain goes on; a validator whose sign state file is lost
signs nothing for double_sign_check_height heights; a chain whose only validator double-signs halts with one
clear error."""

from __future__ import annotations

import asyncio
import json
import shutil

import grpc
import pytest

from node import codec
from node import node as node_module
from node.blocks import Block, Commit, make_evidence, sign_vote
from node.config import load_home, write_json
from node.errors import ConsensusError
from node.node import Node
from node.sign_state_file import save_sign_state
from tests.node.netutil import aio_self_channel, make_homes, wait_for

pytestmark = pytest.mark.asyncio

H1, H2 = "ab" * 32, "cd" * 32


def stored(node: Node, height: int) -> tuple[Block, Commit]:
    _, block, commit = node.store.get_block_row(height)
    return Block.from_json(block), Commit.from_json(commit)


async def start_nodes(homes) -> list[Node]:
    nodes = [Node(load_home(h)) for h in homes]
    for node in nodes:
        await node.start()
    return nodes


async def send_consensus(node: Node, payload: bytes):
    async with aio_self_channel(node.home.path, f"127.0.0.1:{node.port}") as channel:  # mutual TLS as the node
        call = channel.unary_unary("/uoc.v1.Gossip/SendConsensus", request_serializer=None)
        return await call(payload, timeout=5)


async def test_a_double_sign_sent_to_one_node_is_committed_on_every_node_and_punished(tmp_path):
    homes = make_homes(tmp_path, 4)
    genesis = json.loads((homes[0] / "genesis.json").read_text())
    genesis["params"]["epoch_length"] = 4
    for home in homes:
        write_json(home / "genesis.json", genesis)
    cheat = load_home(homes[3]).validator_key
    nodes = await start_nodes(homes)
    try:
        first = nodes[0]
        await wait_for(lambda: first.app.height >= 2, "two blocks")
        chain_id = first.chain_id
        evidence = make_evidence(
            sign_vote(cheat, chain_id, "prevote", 1, 0, H1, 1), sign_vote(cheat, chain_id, "prevote", 1, 0, H2, 1)
        )
        forged = make_evidence(
            sign_vote(cheat, chain_id, "prevote", 1, 1, H1, 1),
            sign_vote(cheat, "another-chain", "prevote", 1, 1, H2, 1),  # not a valid signature here
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await send_consensus(first, codec.consensus_message_to_pb(forged).SerializeToString())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not signed" in info.value.details()
        await send_consensus(first, codec.consensus_message_to_pb(evidence).SerializeToString())
        for node in nodes:  # every node stores it: gossiped, or with the block that commits it (whichever comes first)
            await wait_for(lambda node=node: node.store.count_evidence() == 1, f"{node.config.moniker} has it")

        def punished(node: Node) -> bool:
            return node.query(f"validator/{cheat.address}")["jailed"]

        await wait_for(lambda: all(punished(n) for n in nodes), "every node jailed the double signer")
        committed_at = {
            node.config.moniker: [h for h in range(1, node.app.height + 1) if stored(node, h)[0].evidence]
            for node in nodes
        }
        heights = {tuple(hs[:1]) for hs in committed_at.values()}
        assert len(heights) == 1, committed_at  # one block holds it, the same on every node
        ((height,),) = heights
        assert all(stored(n, height)[0].evidence == (evidence,) for n in nodes)
        view = first.query(f"validator/{cheat.address}")
        assert (view["slashes"], view["slashed"], view["stake"], view["jailed_until"]) == (1, 5, 95, height + 100)
        assert forged not in first.consensus.evidence and first.consensus.evidence == ()  # committed: pool emptied
        boundary = (height + 3) // 4 * 4  # the last block of the epoch the evidence was committed in
        await wait_for(lambda: first.app.height >= boundary + 3, "blocks after the next epoch boundary")
        assert cheat.address not in first.get_validator_set(boundary + 1)
        assert cheat.address in first.get_validator_set(boundary)
        assert len({n.app.app_hash for n in nodes if n.app.height == first.app.height} | {first.app.app_hash}) == 1
    finally:
        for node in nodes:
            await node.stop(0.1)


async def test_a_validator_whose_sign_state_file_is_lost_signs_nothing_for_double_sign_check_height_heights(
    tmp_path, monkeypatch
):
    persisted: list[tuple[object, tuple[int, ...]]] = []  # (file, signed heights) of every write (a spy)

    def spy(path, state):
        persisted.append((path, tuple(r.height for r in state.signed)))
        save_sign_state(path, state)

    monkeypatch.setattr(node_module, "save_sign_state", spy)
    homes = make_homes(tmp_path, 4)
    nodes = await start_nodes(homes)
    wiped_home = load_home(homes[3])
    address = wiped_home.validator_key.address
    try:
        first = nodes[0]
        await wait_for(lambda: first.app.height >= 3, "three blocks")
        await nodes[2].stop(0.1)  # three of four go on ...
        await wait_for(lambda: first.app.height >= 5, "two more blocks")
        await nodes[3].stop(0.1)  # ... two of four halt at K, node3 may have signed at K + 1
        await asyncio.sleep(1.0)
        halted = first.app.height
        shutil.rmtree(wiped_home.db_path.parent)  # the chain data and
        wiped_home.sign_state_path.unlink()  # the sign state are lost; the key is not
        persisted.clear()
        nodes[3] = wiped = Node(load_home(homes[3]))
        await wiped.start()
        assert wiped.consensus.heights_to_watch == 2
        await wait_for(lambda: wiped.app.height >= halted, "the wiped node syncs to the halted height")
        await asyncio.sleep(1.0)  # it sits at K + 1, where it may have signed before: it must not sign
        assert first.app.height == halted  # still halted: two signers of four
        nodes[2] = Node(load_home(homes[2]))  # the third signer returns: K + 1, K + 2 … are decided
        await nodes[2].start()

        def signed_heights() -> list[int]:
            return [h for path, heights in persisted if path == wiped_home.sign_state_path for h in heights]

        await wait_for(lambda: signed_heights(), "it signs again")
        assert wiped.consensus.heights_to_watch == 0
        assert min(signed_heights()) > halted + 2, (halted, signed_heights()[:6])
        for height in range(halted + 1, halted + 3):
            block, commit = stored(first, height)
            assert address not in {v.validator for v in commit.precommits}, height
            assert block.header.proposer != address, height
        await wait_for(
            lambda: any(
                address in {v.validator for v in stored(first, h)[1].precommits}
                for h in range(halted + 3, first.app.height + 1)
            ),
            "its precommits are in a commit again",
        )
    finally:
        for node in nodes:
            await node.stop(0.1)


async def test_a_chain_whose_only_validator_double_signs_halts_with_one_clear_error_not_a_traceback(tmp_path, caplog):
    (home,) = make_homes(tmp_path, 1)
    genesis = json.loads((home / "genesis.json").read_text())
    genesis["params"]["epoch_length"] = 4
    write_json(home / "genesis.json", genesis)
    key = load_home(home).validator_key
    (node,) = await start_nodes([home])
    try:
        await wait_for(lambda: node.app.height >= 2, "two blocks")
        evidence = make_evidence(
            sign_vote(key, node.chain_id, "prevote", 1, 0, H1, 1), sign_vote(key, node.chain_id, "prevote", 1, 0, H2, 1)
        )
        await send_consensus(node, codec.consensus_message_to_pb(evidence).SerializeToString())
        await wait_for(lambda: node.failed_event.is_set(), "the node stops")  # jailed: the next set is empty
        assert isinstance(node.failed, ConsensusError)
        assert "halts after height" in str(node.failed) and "at least one validator" in str(node.failed)
        halted = node.app.height
        assert (
            node.query(f"validator/{key.address}")["jailed"] and (halted + 1) % 4 == 0
        )  # the epoch's last block is not applied
        await asyncio.sleep(0.5)
        assert node.app.height == halted and not node.running  # nothing after it is signed or applied
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    finally:
        await node.stop(0.1)

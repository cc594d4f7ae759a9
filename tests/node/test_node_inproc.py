"""Nodes in one process on real loopback gRPC and real SQLite files: the validator set follows the
chain's epochs; a decided-but-unapplied block is applied on restart; block sync refuses bad commits."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chain.tx import MsgBond, MsgSend, sign_tx
from node.blocks import Block, Commit, Header, compute_commit_hash, compute_txs_hash, sign_vote
from node.config import compute_genesis_time_ms, load_home, write_json
from node.errors import NodeError, SyncError
from node.ledger import open_ledger
from node.node import Node
from node.store import SqliteStore
from node.sync import BlockSync
from tests.node.netutil import make_homes, wait_for

pytestmark = pytest.mark.asyncio


def stored(node: Node, height: int) -> tuple[Block, Commit]:
    _, block, commit = node.store.get_block_row(height)
    return Block.from_json(block), Commit.from_json(commit)


async def test_a_bond_at_an_epoch_boundary_adds_a_proposer_and_a_voter(tmp_path):
    homes = make_homes(tmp_path, 4, validators=3)
    joiner = load_home(homes[3]).validator_key
    genesis = json.loads((homes[0] / "genesis.json").read_text())
    genesis["params"]["epoch_length"] = 4
    genesis["accounts"].append({"address": joiner.address, "balance": 1000})
    for home in homes:
        write_json(home / "genesis.json", genesis)
    nodes = [Node(load_home(h)) for h in homes]
    for node in nodes:
        await node.start()
    try:
        first = nodes[0]
        assert [a for a, _ in first.get_validator_set(1).powers] == sorted(
            load_home(h).validator_key.address for h in homes[:3]
        )
        [bond_hash] = nodes[3].submit_txs([sign_tx(joiner, genesis["chain_id"], 0, [MsgBond(amount=100)])])
        await wait_for(lambda: first.get_tx_outcome(bond_hash) is not None, "the bond is committed")
        bonded_at = first.get_tx_outcome(bond_hash).height  # not the height seen now: a block may have followed
        boundary = -(-bonded_at // 4) * 4  # the last block of the epoch the bond was made in (maybe its own)
        await wait_for(lambda: first.app.height >= boundary + 12, "blocks after the epoch boundary")
        assert joiner.address not in first.get_validator_set(boundary)
        assert first.get_validator_set(boundary + 1).power_of(joiner.address) == 100
        later = [stored(first, h) for h in range(boundary + 1, first.app.height + 1)]
        assert joiner.address in {block.header.proposer for block, _ in later}
        assert any(v.validator == joiner.address for _, commit in later for v in commit.precommits)
        before = [stored(first, h) for h in range(1, boundary + 1)]
        assert joiner.address not in {block.header.proposer for block, _ in before}
    finally:
        for node in reversed(nodes):
            await node.stop(0.1)


async def test_a_block_stored_but_not_applied_is_applied_at_start(tmp_path):
    homes = make_homes(tmp_path, 2, validators=1)
    source = Node(load_home(homes[0]))
    await source.start()
    await wait_for(lambda: source.app.height >= 5, "the validator commits 5 blocks")
    await source.stop(0.1)
    source_store = SqliteStore(load_home(homes[0]).db_path)
    rows = [(h, *source_store.get_block_row(h)) for h in range(1, 5)]
    app_hash_at_4 = source_store.get_block_row(5)[1]["header"]["app_hash"]  # block 5 carries it
    source_store.close()

    follower_home = load_home(homes[1])
    follower_home = replace(follower_home, config=replace(follower_home.config, peers=()))
    follower_home.db_path.parent.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(follower_home.db_path)
    store.save_decided_blocks(rows)  # decided, not applied (as after a crash between the two)
    store.close()
    follower = Node(follower_home)
    await follower.start()
    try:
        assert follower.app.height == 4
        assert follower.app.app_hash == app_hash_at_4
        assert follower.store.get_unapplied_heights() == []
    finally:
        await follower.stop(0.1)


async def test_block_sync_refuses_a_commit_without_a_quorum_or_for_another_chain_position(tmp_path):
    homes = make_homes(tmp_path, 2, validators=1)
    source = Node(load_home(homes[0]))
    await source.start()
    await wait_for(lambda: source.app.height >= 3, "the validator commits 3 blocks")
    blocks = [stored(source, h) for h in (1, 2, 3)]
    await source.stop(0.1)
    home = load_home(homes[1])
    follower = Node(replace(home, config=replace(home.config, peers=())))
    await follower.start()
    try:
        block1, commit1 = blocks[0]
        with pytest.raises(SyncError, match="not more than 2/3"):
            follower.check_synced_block(block1, replace(commit1, precommits=()))
        with pytest.raises(SyncError, match="expected block 1"):
            follower.check_synced_block(*blocks[1])
        follower.check_synced_block(block1, commit1)  # the genuine one verifies
    finally:
        await follower.stop(0.1)


@pytest.mark.parametrize(
    "param,limit,txs,valid",
    [
        ("max_block_txs", 2, (b"a", b"b"), True),
        ("max_block_txs", 2, (b"a", b"b", b"c"), False),
        ("max_block_bytes", 100, (b"x" * 100,), True),
        ("max_block_bytes", 100, (b"x" * 50, b"y" * 51), False),
    ],
    ids=["txs-fit", "txs-over", "bytes-fit", "bytes-over"],
)
async def test_block_sync_refuses_a_committed_block_over_the_genesis_block_limits(tmp_path, param, limit, txs, valid):
    """Regression: sync checked no block limit; now the params in force after h−1 (the block need not be
    applicable: sync checks its header and commit before applying it)."""
    (path,) = make_homes(tmp_path, 1)
    genesis = json.loads((path / "genesis.json").read_text())
    genesis["params"][param] = limit
    write_json(path / "genesis.json", genesis)
    home = load_home(path)
    key, chain_id = home.validator_key, genesis["chain_id"]
    with open_ledger(home) as ledger:
        genesis_time_ms = compute_genesis_time_ms(genesis)
        sync = BlockSync(
            ledger,
            [],
            status_interval_s=1.0,
            apply=lambda b, c: None,
            genesis_time_ms=genesis_time_ms,
        )
        header = Header(
            chain_id=chain_id,
            height=1,
            time_ms=genesis_time_ms,  # a block's BFT time at height 1
            last_block_id="",
            last_commit_hash=compute_commit_hash(None),
            txs_hash=compute_txs_hash(txs),
            app_hash=ledger.app.app_hash,
            validators_hash=ledger.get_validator_set(1).hash,
            proposer=key.address,
        )
        block = Block(header, txs, None)
        commit = Commit(1, 0, block.id, (sign_vote(key, chain_id, "precommit", 1, 0, block.id, 1_000),))
        if valid:
            sync.check_block(block, commit)
        else:
            with pytest.raises(SyncError, match="exceeds the params' limits"):
                sync.check_block(block, commit)


async def test_a_validator_proposes_within_the_genesis_max_block_txs_below_its_config(tmp_path):
    """Own proposals take min(config [block] max_txs = 5,000, params max_block_txs = 2) from the mempool."""
    (path,) = make_homes(tmp_path, 1)
    genesis = json.loads((path / "genesis.json").read_text())
    genesis["params"]["max_block_txs"] = 2
    write_json(path / "genesis.json", genesis)
    home = load_home(path)
    key = home.validator_key
    node = Node(home)
    await node.start()
    try:
        txs = [sign_tx(key, genesis["chain_id"], i, [MsgSend(to=key.address, amount=1)]) for i in range(5)]
        assert all(isinstance(r, str) for r in node.submit_txs(txs))
        await wait_for(lambda: node.query(f"account/{key.address}")["sequence"] == 5, "the 5 txs are committed")
        sizes = [len(stored(node, h)[0].txs) for h in range(1, node.app.height + 1)]
        assert sum(sizes) == 5 and max(sizes) == 2
    finally:
        await node.stop(0.1)


def _retimed(block: Block, time_ms: int, key) -> tuple[Block, Commit]:
    """`block` with another header time, and a commit for it signed by `key` (the only validator)."""
    forged = replace(block, header=replace(block.header, time_ms=time_ms))
    vote = sign_vote(key, forged.header.chain_id, "precommit", block.height, 0, forged.id, time_ms)
    return forged, Commit(block.height, 0, forged.id, (vote,))


async def test_block_sync_refuses_a_block_whose_time_is_not_its_bft_time_even_with_a_valid_commit(tmp_path):
    homes = make_homes(tmp_path, 2, validators=1)
    source = Node(load_home(homes[0]))
    await source.start()
    await wait_for(lambda: source.app.height >= 2, "the validator commits 2 blocks")
    (block1, commit1), (block2, commit2) = stored(source, 1), stored(source, 2)
    key = source.signer
    await source.stop(0.1)
    home = load_home(homes[1])
    follower = Node(replace(home, config=replace(home.config, peers=())))
    await follower.start()
    try:
        for time_ms in (2**63 - 1, block1.header.time_ms + 1):  # height 1: only the genesis time
            with pytest.raises(SyncError, match="BFT time"):
                follower.check_synced_block(*_retimed(block1, time_ms, key))
        follower.check_synced_block(block1, commit1)
        follower.apply_block(block1, commit1)
        for time_ms in (2**63 - 1, block2.header.time_ms + 1, block2.header.time_ms - 1, block1.header.time_ms):
            with pytest.raises(SyncError, match="BFT time|not after"):
                follower.check_synced_block(*_retimed(block2, time_ms, key))
        follower.check_synced_block(block2, commit2)
    finally:
        await follower.stop(0.1)


async def test_a_restarted_validator_restores_its_durable_sign_state(tmp_path):
    homes = make_homes(tmp_path, 2)  # two validators, only node0 runs: it prevotes at height 1, never commits
    home = load_home(homes[0])
    node = Node(home)
    await node.start()
    try:
        await wait_for(lambda: node.consensus.sign_state.get_signed("prevote") is not None, "node0 prevotes")
    finally:
        await node.stop(0.1)
    saved = json.loads(home.sign_state_path.read_text())  # beside the validator key, not in the store
    assert saved["height"] == 1 and "prevote" in {r["step"] for r in saved["signed"]}
    again = Node(home)
    await again.start()
    try:
        restored = again.consensus.sign_state
        assert [r.to_json() for r in restored.signed] == saved["signed"]
        assert again.consensus.round == max(r["round"] for r in saved["signed"])  # resumes at its last round
    finally:
        await again.stop(0.1)


async def test_a_second_node_on_the_same_home_is_refused(tmp_path):
    (home,) = make_homes(tmp_path, 1)
    first = Node(load_home(home))
    await first.start()
    try:
        with pytest.raises(NodeError, match="in use by another uocd process"):
            await Node(load_home(home)).start()
        assert first.running and first.app.height >= 0  # the first node is untouched
    finally:
        await first.stop(0.1)
    again = Node(load_home(home))  # the lock is released at stop
    await again.start()
    await again.stop(0.1)

"""A hostile peer at the gRPC edge of a real node on loopback (mutual TLS, real SQLite): each finding of a
probe of the peer surface, answered with a clear status before it costs work out of proportion."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from chain.crypto import PrivateKey
from node import codec, network
from node.blocks import (
    MAX_DECODED_BLOCK_TXS,
    MAX_DECODED_COMMIT_VOTES,
    make_evidence,
    sign_vote,
)
from node.config import load_home
from node.node import Node
from node.pb import services_pb2 as spb
from node.pb import types_pb2 as pb
from tests.node.netutil import FAST, aio_self_channel, make_homes, wait_for
from tests.node.test_network_limits import future_proposal

pytestmark = pytest.mark.asyncio

H = "ab" * 32


def raw_call(channel: grpc.aio.Channel, path: str) -> grpc.aio.UnaryUnaryMultiCallable:
    """A call sending raw request bytes and returning raw answer bytes."""
    return channel.unary_unary(path, request_serializer=None, response_deserializer=None)


def pb_ack(answer: bytes) -> bool:
    """The `relayed` of a SendConsensus answer."""
    return spb.Ack.FromString(answer).relayed


async def expect_code(call, code: grpc.StatusCode, match: str = "") -> str:
    """The details of a call that must fail with `code` and contain `match`."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    assert match in (info.value.details() or ""), info.value.details()
    return info.value.details() or ""


@pytest.fixture
def homes(tmp_path) -> list[Path]:
    """Two validators' homes."""
    return make_homes(tmp_path, 2)


@pytest_asyncio.fixture
async def stuck(homes):
    """node0 of two validators (node1 never runs: height 1 never commits), node1's key, and a channel to
    node0 authenticated as node0 itself."""
    node = Node(load_home(homes[0]))
    await node.start()
    try:
        async with aio_self_channel(homes[0], f"127.0.0.1:{node.port}") as channel:
            yield node, load_home(homes[1]).validator_key, channel
    finally:
        await node.stop(0.1)


def claimed_proposal(node: Node, proposer: PrivateKey) -> pb.ConsensusMessage:
    """A proposal of the current height claiming a validator as its proposer (the signature is not checked
    before decoding), with a well-formed header and nothing else."""
    hashes = {name: H for name in ("last_block_id", "last_commit_hash", "txs_hash", "app_hash", "validators_hash")}
    header = pb.Header(
        chain_id=node.chain_id, height=node.consensus.height, time_ms=1, proposer=proposer.address, **hashes
    )
    header.evidence_hash = H
    proposal = pb.Proposal(
        height=node.consensus.height,
        round=0,
        pol_round=-1,
        block=pb.Block(header=header),
        proposer=proposer.address,
        pubkey=proposer.pubkey,
        signature=bytes(64),
    )
    return pb.ConsensusMessage(proposal=proposal)


def with_txs(message: pb.ConsensusMessage, count: int) -> None:
    """`count` empty transactions in the proposal's block."""
    message.proposal.block.txs.extend([b""] * count)


def with_precommits(message: pb.ConsensusMessage, count: int, key: PrivateKey, chain_id: str) -> None:
    """A last commit of `count` copies of one well-formed precommit in the proposal's block."""
    vote = codec.vote_to_pb(sign_vote(key, chain_id, "precommit", 1, 0, H, 1))
    commit = message.proposal.block.last_commit
    commit.height, commit.block_id = 1, H
    commit.precommits.extend([vote] * count)


OVER_COUNT = [  # (what, fill the proposal, the refusal)
    ("txs", lambda m, k, c: with_txs(m, MAX_DECODED_BLOCK_TXS + 1), f"block has {MAX_DECODED_BLOCK_TXS + 1} txs"),
    (
        "precommits",
        lambda m, k, c: with_precommits(m, MAX_DECODED_COMMIT_VOTES + 1, k, c),
        f"commit has {MAX_DECODED_COMMIT_VOTES + 1} precommits",
    ),
]


@pytest.mark.parametrize(("what", "fill", "refusal"), OVER_COUNT, ids=[case[0] for case in OVER_COUNT])
async def test_a_block_with_more_entries_than_are_ever_decoded_is_refused_before_any_entry_is_converted(
    stuck, monkeypatch, what, fill, refusal
):
    """Regression: the bounds on txs and precommits were checked after every entry was converted (and each
    precommit shape-checked), so a 16 MiB proposal of empty entries claiming a validator cost 0.5 to 1.6 s of
    loop time, and a peer's gossip budget pays for two a second."""
    node, other, channel = stuck
    message = claimed_proposal(node, other)
    fill(message, other, node.chain_id)
    converted: list[object] = []
    real_vote_from_pb = codec.vote_from_pb
    monkeypatch.setattr(codec, "vote_from_pb", lambda v: converted.append(v) or real_vote_from_pb(v))
    monkeypatch.setattr(codec, "Block", lambda *a: converted.append(a))
    details = await expect_code(
        raw_call(channel, "/uoc.v1.Gossip/SendConsensus")(message.SerializeToString(), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        refusal,
    )
    assert "over" in details and not converted


LONG_SIGNERS = [("ascii", "x" * 100_000), ("non-ascii", "é" * 5000), ("astral", "\U0001f600" * 2000)]


@pytest.mark.parametrize("signer", [case[1] for case in LONG_SIGNERS], ids=[case[0] for case in LONG_SIGNERS])
async def test_a_refusal_echoing_a_peers_long_text_is_a_short_invalid_argument(stuck, signer):
    """Regression: the refusal of a stranger's vote quoted its validator field whole, so the status message
    passed the client's 16 KiB trailer limit and the caller saw RESOURCE_EXHAUSTED ("metadata size exceeds
    hard limit") instead of the refusal (and the node logged 100 KB lines)."""
    node, _, channel = stuck
    vote = codec.vote_to_pb(sign_vote(PrivateKey.from_name("stranger"), node.chain_id, "prevote", 1, 0, H, 1))
    vote.validator = signer
    send = raw_call(channel, "/uoc.v1.Gossip/SendConsensus")
    details = await expect_code(
        send(pb.ConsensusMessage(vote=vote).SerializeToString(), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "is not a validator at height 1",
    )
    assert len(details) <= network.MAX_STATUS_TEXT


@pytest_asyncio.fixture
async def aged(tmp_path):
    """A one-validator node past height 30 whose evidence ages out after 10 blocks, its key, and a channel."""
    (home,) = make_homes(tmp_path, 1)
    genesis = json.loads((home / "genesis.json").read_text())
    genesis["params"] = {**genesis.get("params", {}), "max_evidence_age_blocks": 10}
    (home / "genesis.json").write_text(json.dumps(genesis, indent=2))
    node = Node(load_home(home))
    await node.start()
    try:
        await wait_for(lambda: node.app.height >= 30, "the chain passes height 30")
        async with aio_self_channel(home, f"127.0.0.1:{node.port}") as channel:
            yield node, load_home(home).validator_key, channel
    finally:
        await node.stop(0.1)


def double_sign(key: PrivateKey, chain_id: str, height: int, *, forged: bool) -> bytes:
    """A ConsensusMessage of evidence: two prevotes of `key` at `height` for two blocks (signatures zeroed if
    `forged`)."""
    message = codec.consensus_message_to_pb(
        make_evidence(*(sign_vote(key, chain_id, "prevote", height, 0, block_id, 1) for block_id in ("cd" * 32, H)))
    )
    if forged:
        message.evidence.vote_a.signature = message.evidence.vote_b.signature = bytes(64)
    return message.SerializeToString()


OLD_OR_FORGED = [  # (what, evidence height below the tip, forged, the refusal)
    ("replayed past its age", 25, False, "is older than 10 blocks"),
    ("forged", 5, True, "a vote is not signed by its validator"),
]


@pytest.mark.parametrize(("what", "back", "forged", "refusal"), OLD_OR_FORGED, ids=[c[0] for c in OLD_OR_FORGED])
async def test_evidence_too_old_or_not_signed_is_refused_before_the_validator_set_of_its_height_is_computed(
    aged, monkeypatch, what, back, forged, refusal
):
    """Regression: a peer's evidence had the validator set of its height computed (up to 1,000 steps of
    priorities from the last stored set: 11 ms for 4 validators, 95 ms for 100) before its age and signatures
    were checked, so forged evidence, or the old evidence GetEvidence serves, at a new old height each time
    cost that per message."""
    node, key, channel = aged
    height = node.app.height - back
    looked_up: list[int] = []
    real_lookup = node.ledger.get_validator_set
    monkeypatch.setattr(node.ledger, "get_validator_set", lambda h: looked_up.append(h) or real_lookup(h))
    send = raw_call(channel, "/uoc.v1.Gossip/SendConsensus")
    await expect_code(
        send(double_sign(key, node.chain_id, height, forged=forged), timeout=5),
        grpc.StatusCode.INVALID_ARGUMENT,
        refusal,
    )
    assert height not in looked_up
    await wait_for(lambda: node.app.height >= height + back + 3, "the chain keeps committing")


MALFORMED_READS = [  # (what, method, request, the refusal)
    ("non-hex block id", "BlockSync/GetBlock", spb.GetBlockRequest(height=1, block_id="zz" * 32), "lowercase hex"),
    ("upper-case block id", "BlockSync/GetBlock", spb.GetBlockRequest(height=1, block_id="AB" * 32), "lowercase hex"),
    ("64 non-ascii chars", "BlockSync/GetBlock", spb.GetBlockRequest(height=1, block_id="é" * 64), "lowercase hex"),
    ("short block id", "BlockSync/GetBlock", spb.GetBlockRequest(height=1, block_id="ab"), "lowercase hex"),
    ("height 0", "BlockSync/GetBlock", spb.GetBlockRequest(height=0), "must be ≥ 1"),
    ("not protobuf", "Status/GetStatus", b"\xff\xff\xff", "malformed StatusRequest protobuf"),
]


@pytest.mark.parametrize(
    ("what", "method", "request_", "refusal"), MALFORMED_READS, ids=[case[0] for case in MALFORMED_READS]
)
async def test_a_malformed_read_request_is_invalid_argument_not_a_lookup(stuck, what, method, request_, refusal):
    """Regression: GetBlock looked up any 64-character block id (hex or not) and answered NOT_FOUND, and
    GetStatus answered any bytes at all."""
    _, _, channel = stuck
    payload = request_ if isinstance(request_, bytes) else request_.SerializeToString()
    await expect_code(
        raw_call(channel, f"/uoc.v1.{method}")(payload, timeout=5), grpc.StatusCode.INVALID_ARGUMENT, refusal
    )


@pytest_asyncio.fixture
async def slow(tmp_path):
    """A one-validator node past height 2 with 3 s between blocks, yielded (with a channel to it) as it
    starts a height: the test has a whole block interval before the engine's height moves."""
    (home,) = make_homes(tmp_path, 1, timeouts=replace(FAST, commit_ms=3000))
    node = Node(load_home(home))
    await node.start()
    try:
        await wait_for(lambda: node.app.height >= 2, "the chain passes height 2")
        reached = node.consensus.height
        await wait_for(lambda: node.consensus.height > reached, "the next height starts", timeout=10)
        async with aio_self_channel(home, f"127.0.0.1:{node.port}") as channel:
            yield node, channel
    finally:
        await node.stop(0.1)


async def test_a_proposal_of_a_past_height_is_ignored_without_being_decoded(slow, monkeypatch):
    """Regression: the height window let h−1 through for late precommits (evidence), and a proposal of h−1
    from anyone, the engine's to ignore, was decoded, its body hashed and its signature checked first: a
    stranger's 16 MiB one cost 0.14 s of loop time, answered OK."""
    node, channel = slow
    stranger = PrivateKey.from_name("stranger")
    decoded: list[object] = []
    real_proposal_from_pb = codec.proposal_from_pb
    monkeypatch.setattr(codec, "proposal_from_pb", lambda m: decoded.append(m) or real_proposal_from_pb(m))
    height = node.consensus.height - 1
    proposal = future_proposal(stranger, node.chain_id, height, 0, 1000)  # of a past height here
    payload = codec.consensus_message_to_pb(proposal).SerializeToString()
    ack = await raw_call(channel, "/uoc.v1.Gossip/SendConsensus")(payload, timeout=5)
    assert pb_ack(ack) is False and not decoded and node.consensus.height == height + 1


LATE_VOTES = [  # (case, signed by the validator, for the decided block: else another id, decoded, evidence)
    ("a stranger's vote", False, False, False, False),
    ("a copy of the validator's own precommit", True, True, False, False),
    ("the validator's conflicting twin", True, False, True, True),
]


@pytest.mark.parametrize(
    ("case", "validator", "decided", "decoded", "evidence"), LATE_VOTES, ids=[c[0] for c in LATE_VOTES]
)
async def test_a_vote_of_the_previous_height_is_decoded_only_if_it_conflicts_with_one_the_node_holds(
    slow, monkeypatch, case, validator, decided, decoded, evidence
):
    """Regression: the height window lets h−1 through for a double sign's late twin, and every vote of h−1
    was decoded and its signature checked before the engine ignored it: a stranger's (or a replayed copy
    of a validator's) flood cost a signature check each, answered OK."""
    node, channel = slow
    key = load_home(node.home.path).validator_key if validator else PrivateKey.from_name("stranger")
    seen: list[object] = []
    real_vote_from_pb = codec.vote_from_pb
    monkeypatch.setattr(codec, "vote_from_pb", lambda m: seen.append(m) or real_vote_from_pb(m))
    height = node.consensus.height - 1
    block_id = node.store.get_block_row(height)[0] if decided else H  # the block the node precommitted at h−1
    vote = sign_vote(key, node.chain_id, "precommit", height, 0, block_id, 1)
    payload = pb.ConsensusMessage(vote=codec.vote_to_pb(vote)).SerializeToString()
    ack = await raw_call(channel, "/uoc.v1.Gossip/SendConsensus")(payload, timeout=5)
    assert node.consensus.height == height + 1, "the node moved on during the test"
    assert bool(seen) is decoded and pb_ack(ack) is evidence
    assert bool(node.consensus.evidence) is evidence

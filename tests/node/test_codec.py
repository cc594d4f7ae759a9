"""Protobuf ⇄ node.blocks round trips; malformed protobuf is an InvalidMessage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import PrivateKey
from node import codec
from node.blocks import Block, Commit, Header, compute_commit_hash, compute_txs_hash, sign_proposal, sign_vote
from node.errors import InvalidMessage
from node.pb import services_pb2, types_pb2

CHAIN = "uoc-test"
KEYS = [PrivateKey.from_name(n, salt="codec") for n in "abc"]
H = "ab" * 32


def make_block(height: int = 2, txs: tuple[bytes, ...] = (b'{"tx":1}', b"\x00\xff")) -> Block:
    """A block with a last commit of two precommits (one nil)."""
    votes = tuple(
        sorted(
            (sign_vote(k, CHAIN, "precommit", height - 1, 0, bid, 1000) for k, bid in zip(KEYS, [H, None])),
            key=lambda v: v.validator,
        )
    )
    commit = Commit(height - 1, 0, H, votes)
    header = Header(
        CHAIN, height, 5000, H, compute_commit_hash(commit), compute_txs_hash(txs), "cd" * 32, H, KEYS[0].address
    )
    return Block(header, txs, commit)


def test_vote_round_trips_including_nil():
    for block_id in (H, None):
        vote = sign_vote(KEYS[0], CHAIN, "prevote", 3, 1, block_id, 123)
        back = codec.vote_from_pb(codec.parse_pb(types_pb2.Vote, codec.vote_to_pb(vote).SerializeToString()))
        assert back == vote and back.is_signed_by_validator(CHAIN)


def test_block_and_proposal_round_trip_and_keep_their_id_and_signature():
    block = make_block()
    assert codec.block_from_pb(codec.block_to_pb(block)) == block
    proposal = sign_proposal(KEYS[1], CHAIN, 2, 0, -1, block, 6000)
    wire = codec.consensus_message_to_pb(proposal).SerializeToString()
    back = codec.consensus_message_from_pb(codec.parse_pb(types_pb2.ConsensusMessage, wire))
    assert back == proposal and back.block.id == block.id and back.is_signed_by_proposer(CHAIN)


def test_first_block_without_last_commit_round_trips():
    header = Header(CHAIN, 1, 1, "", "", compute_txs_hash(()), "cd" * 32, H, KEYS[0].address)
    block = Block(header, (), None)
    assert codec.block_from_pb(codec.block_to_pb(block)) == block


def test_block_with_commit_and_evidence_round_trip():
    block = make_block(3)
    votes = tuple(
        sorted((sign_vote(k, CHAIN, "precommit", 3, 0, block.id, 9) for k in KEYS), key=lambda v: v.validator)
    )
    commit = Commit(3, 0, block.id, votes)
    assert codec.block_with_commit_from_pb(codec.block_with_commit_to_pb(block, commit)) == (block, commit)
    from node.blocks import make_evidence

    evidence = make_evidence(
        sign_vote(KEYS[0], CHAIN, "prevote", 4, 0, H, 1), sign_vote(KEYS[0], CHAIN, "prevote", 4, 0, "cd" * 32, 1)
    )
    assert codec.evidence_from_pb(codec.evidence_to_pb(evidence)) == evidence


def test_block_with_a_commit_for_another_block_is_invalid():
    block = make_block(3)
    other = Commit(3, 0, H, ())
    with pytest.raises(InvalidMessage, match="does not name"):
        codec.block_with_commit_from_pb(codec.block_with_commit_to_pb(block, other))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda m: setattr(m.vote, "type", "maybe"), "vote.type"),
        (lambda m: setattr(m.vote, "height", 0), "vote.height"),
        (lambda m: setattr(m.vote, "round", -1), "vote.round"),
        (lambda m: setattr(m.vote, "block_id", "zz"), "vote.block_id"),
        (lambda m: setattr(m.vote, "validator", "bob"), "vote.validator"),
        (lambda m: setattr(m.vote, "pubkey", b"short"), "vote.pubkey"),
        (lambda m: setattr(m.vote, "signature", b""), "vote.signature"),
        (lambda m: m.ClearField("message"), "neither"),
    ],
)
def test_malformed_vote_fields_are_invalid_messages(mutate, match):
    msg = codec.consensus_message_to_pb(sign_vote(KEYS[0], CHAIN, "prevote", 3, 1, H, 123))
    mutate(msg)
    with pytest.raises(InvalidMessage, match=match):
        codec.consensus_message_from_pb(msg)


def test_proposal_without_a_block_or_header_is_invalid():
    msg = codec.proposal_to_pb(sign_proposal(KEYS[1], CHAIN, 2, 0, -1, make_block(), 6000))
    msg.block.ClearField("header")
    with pytest.raises(InvalidMessage, match="header"):
        codec.proposal_from_pb(msg)
    msg.ClearField("block")
    with pytest.raises(InvalidMessage, match="no block"):
        codec.proposal_from_pb(msg)


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08" + b"\xff" * 11])
def test_malformed_protobuf_bytes_are_invalid_messages(data):
    with pytest.raises(InvalidMessage, match="malformed"):
        codec.parse_pb(types_pb2.ConsensusMessage, data)


def test_status_message_fields_exist():
    status = services_pb2.StatusResponse(height=3, app_hash="x", evidence_count=2)
    assert status.evidence_count == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_decode_to_a_message_or_an_invalid_message(data):
    try:
        codec.consensus_message_from_pb(codec.parse_pb(types_pb2.ConsensusMessage, data))
    except InvalidMessage:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_a_flipped_byte_in_a_signed_vote_never_decodes_to_another_valid_vote(position, value):
    vote = sign_vote(KEYS[0], CHAIN, "prevote", 3, 1, H, 123)
    wire = bytearray(codec.consensus_message_to_pb(vote).SerializeToString())
    wire[position % len(wire)] = value
    try:
        back = codec.consensus_message_from_pb(codec.parse_pb(types_pb2.ConsensusMessage, bytes(wire)))
    except InvalidMessage:
        return
    assert back == vote or not back.is_signed_by_validator(CHAIN)

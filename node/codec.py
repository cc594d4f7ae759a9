"""Protobuf (`node.pb`) ⇄ `node.blocks` types. Decoding raises `InvalidMessage` on malformed input.

The protobuf forms only carry data: signatures cover the canonical JSON sign bytes of
`node.blocks`, so a decoded message verifies exactly as the one that was signed.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from .blocks import (
    MAX_DECODED_BLOCK_EVIDENCE,
    MAX_DECODED_BLOCK_TXS,
    MAX_DECODED_COMMIT_VOTES,
    Block,
    Commit,
    Evidence,
    Header,
    Proposal,
    Vote,
    check_block_hashes,
    check_block_shape,
    check_proposal_shape,
    check_vote_shape,
    make_evidence,
)
from .errors import InvalidMessage
from .pb import types_pb2 as pb

HEADER_FIELDS = tuple(Header.__dataclass_fields__)


# -- encode -----------------------------------------------------------------------------------
M = TypeVar("M", bound=Message)


def vote_to_pb(vote: Vote) -> pb.Vote:
    """A vote as protobuf (nil: block_id absent)."""
    out = pb.Vote(
        type=vote.type,
        height=vote.height,
        round=vote.round,
        timestamp_ms=vote.timestamp_ms,
        validator=vote.validator,
        pubkey=vote.pubkey,
        signature=vote.signature,
    )
    if vote.block_id is not None:
        out.block_id = vote.block_id
    return out


def commit_to_pb(commit: Commit) -> pb.Commit:
    """A commit as protobuf."""
    return pb.Commit(
        height=commit.height,
        round=commit.round,
        block_id=commit.block_id,
        precommits=[vote_to_pb(v) for v in commit.precommits],
    )


def block_to_pb(block: Block) -> pb.Block:
    """A block as protobuf (last_commit absent at height 1)."""
    out = pb.Block(
        header=pb.Header(**block.header.to_json()),
        txs=list(block.txs),
        evidence=[evidence_to_pb(e) for e in block.evidence],
    )
    if block.last_commit is not None:
        out.last_commit.CopyFrom(commit_to_pb(block.last_commit))
    return out


def proposal_to_pb(proposal: Proposal) -> pb.Proposal:
    """A proposal as protobuf."""
    return pb.Proposal(
        height=proposal.height,
        round=proposal.round,
        pol_round=proposal.pol_round,
        block=block_to_pb(proposal.block),
        timestamp_ms=proposal.timestamp_ms,
        proposer=proposal.proposer,
        pubkey=proposal.pubkey,
        signature=proposal.signature,
    )


def evidence_to_pb(evidence: Evidence) -> pb.Evidence:
    """Evidence as protobuf."""
    return pb.Evidence(vote_a=vote_to_pb(evidence.vote_a), vote_b=vote_to_pb(evidence.vote_b))


def consensus_message_to_pb(message: Proposal | Vote | Evidence) -> pb.ConsensusMessage:
    """A proposal, vote or evidence wrapped in the ConsensusMessage oneof."""
    if isinstance(message, Proposal):
        return pb.ConsensusMessage(proposal=proposal_to_pb(message))
    if isinstance(message, Evidence):
        return pb.ConsensusMessage(evidence=evidence_to_pb(message))
    return pb.ConsensusMessage(vote=vote_to_pb(message))


def block_with_commit_to_pb(block: Block, commit: Commit) -> pb.BlockWithCommit:
    """A stored block with the commit that decided it."""
    return pb.BlockWithCommit(block=block_to_pb(block), commit=commit_to_pb(commit))


# -- decode -----------------------------------------------------------------------------------
def vote_from_pb(msg: pb.Vote) -> Vote:
    """A Vote from protobuf, shape-checked (not signature-checked)."""
    vote = Vote(
        type=msg.type,
        height=msg.height,
        round=msg.round,
        block_id=msg.block_id if msg.HasField("block_id") else None,
        timestamp_ms=msg.timestamp_ms,
        validator=msg.validator,
        pubkey=bytes(msg.pubkey),
        signature=bytes(msg.signature),
    )
    check_vote_shape(vote)
    return vote


def check_pb_counts(msg: pb.Block | pb.Commit) -> None:
    """InvalidMessage if a block's or commit's repeated fields hold more entries than are ever decoded
    (read from the parsed protobuf: a message of 16 MiB of empty entries costs no conversion of each)."""
    counts = (
        [("precommits", len(msg.precommits), MAX_DECODED_COMMIT_VOTES)]
        if isinstance(msg, pb.Commit)
        else [("txs", len(msg.txs), MAX_DECODED_BLOCK_TXS), ("evidence", len(msg.evidence), MAX_DECODED_BLOCK_EVIDENCE)]
    )
    for field, count, limit in counts:
        if count > limit:
            raise InvalidMessage(f"{msg.DESCRIPTOR.name.lower()} has {count} {field}, over {limit}")


def commit_from_pb(msg: pb.Commit) -> Commit:
    """A Commit from protobuf, shape-checked."""
    check_pb_counts(msg)
    commit = Commit(msg.height, msg.round, msg.block_id, tuple(vote_from_pb(v) for v in msg.precommits))
    return Commit.from_json(commit.to_json())  # checks the commit's own fields and bounds


def header_from_pb(msg: pb.Header) -> Header:
    """A Header from protobuf, shape-checked."""
    return Header.from_json({name: getattr(msg, name) for name in HEADER_FIELDS})


def block_from_pb(msg: pb.Block) -> Block:
    """A Block from protobuf, shape-checked."""
    if not msg.HasField("header"):
        raise InvalidMessage("block has no header")
    check_pb_counts(msg)
    last_commit = commit_from_pb(msg.last_commit) if msg.HasField("last_commit") else None
    evidence = tuple(evidence_from_pb(e) for e in msg.evidence)
    block = Block(header_from_pb(msg.header), tuple(bytes(tx) for tx in msg.txs), last_commit, evidence)
    check_block_shape(block)
    check_block_hashes(block)  # the body is the header's: a block id names one block
    return block


def proposal_from_pb(msg: pb.Proposal) -> Proposal:
    """A Proposal from protobuf, shape-checked (not signature-checked)."""
    if not msg.HasField("block"):
        raise InvalidMessage("proposal has no block")
    proposal = Proposal(
        height=msg.height,
        round=msg.round,
        pol_round=msg.pol_round,
        block=block_from_pb(msg.block),
        timestamp_ms=msg.timestamp_ms,
        proposer=msg.proposer,
        pubkey=bytes(msg.pubkey),
        signature=bytes(msg.signature),
    )
    check_proposal_shape(proposal)
    return proposal


def evidence_from_pb(msg: pb.Evidence) -> Evidence:
    """Evidence from protobuf: two conflicting votes."""
    return make_evidence(vote_from_pb(msg.vote_a), vote_from_pb(msg.vote_b))


def consensus_message_from_pb(msg: pb.ConsensusMessage) -> Proposal | Vote | Evidence:
    """The proposal, vote or evidence inside a ConsensusMessage."""
    kind = msg.WhichOneof("message")
    if kind == "proposal":
        return proposal_from_pb(msg.proposal)
    if kind == "vote":
        return vote_from_pb(msg.vote)
    if kind == "evidence":
        return evidence_from_pb(msg.evidence)
    raise InvalidMessage("consensus message holds neither a proposal, a vote nor evidence")


def block_with_commit_from_pb(msg: pb.BlockWithCommit) -> tuple[Block, Commit]:
    """A (block, commit) pair from block sync; the commit must name the block."""
    if not msg.HasField("block") or not msg.HasField("commit"):
        raise InvalidMessage("a synced block needs its block and its commit")
    block, commit = block_from_pb(msg.block), commit_from_pb(msg.commit)
    if commit.block_id != block.id or commit.height != block.height:
        raise InvalidMessage(f"the commit for height {commit.height} does not name block {block.height}")
    return block, commit


def parse_pb(message_type: type[M], data: bytes) -> M:
    """Parse protobuf bytes into `message_type`, raising InvalidMessage when they are malformed."""
    out = message_type()
    try:
        out.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise InvalidMessage(f"malformed {message_type.DESCRIPTOR.name} protobuf: {exc}") from None
    return out

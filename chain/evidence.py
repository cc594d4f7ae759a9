"""Double-sign evidence as the state machine reads it: two consensus votes of one validator for one
(height, round, type) with different block ids, each signed over the consensus sign bytes.

The node hands each piece of evidence of a block to the application as JSON (the form of
`node.blocks.Evidence.to_json()`; the chain never imports the node):

    {"vote_a": VOTE, "vote_b": VOTE}
    VOTE = {"type": "prevote"|"precommit", "height", "round", "block_id": hex sha256 or null,
            "timestamp_ms", "validator": "uoc1…", "pubkey": hex (32 bytes), "signature": hex (64 bytes)}

The votes are in canonical order (a nil vote first, else the smaller block id), so one pair of votes
has one encoding. A vote's sign bytes are `CONSENSUS_SIGN_DOMAIN + canonical_json({chain_id, type,
height, round, block_id, timestamp_ms})`, the bytes the node's validators sign; the chain checks the
signatures itself with `chain.crypto`. Every refusal is an `InvalidEvidence` with a code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .crypto import PUBKEY_SIZE, SIGNATURE_SIZE, compute_address, is_valid_address, verify_signature
from .encoding import canonical_bytes
from .errors import InvalidEvidence
from .money import is_int

CONSENSUS_SIGN_DOMAIN = b"uoc/consensus/v1\n"
VOTE_TYPES = ("prevote", "precommit")
VOTE_FIELDS = ("type", "height", "round", "block_id", "timestamp_ms", "validator", "pubkey", "signature")
MAX_INT64 = 2**63 - 1
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SignedVote:
    """One consensus vote as signed: `block_id` None is a vote for nil."""

    type: str
    height: int
    round: int
    block_id: str | None
    timestamp_ms: int
    validator: str
    pubkey: bytes
    signature: bytes


@dataclass(frozen=True)
class DoubleSign:
    """Two conflicting votes of one validator, in canonical order; `size` is the bytes of its JSON."""

    vote_a: SignedVote
    vote_b: SignedVote
    size: int

    @property
    def validator(self) -> str:
        return self.vote_a.validator

    @property
    def height(self) -> int:
        return self.vote_a.height

    @property
    def key(self) -> str:
        """The offence's state key: height, validator, round and type (one record per offence)."""
        v = self.vote_a
        return f"{v.height:012d}/{v.validator}/{v.round}/{v.type}"


def _malformed(message: str) -> InvalidEvidence:
    """The InvalidEvidence of a badly shaped piece of evidence."""
    return InvalidEvidence(message, code="malformed_evidence")


def _hex(value: Any, where: str, size: int) -> bytes:
    """Exactly `size` bytes from lowercase hex."""
    if not isinstance(value, str) or len(value) != 2 * size or not re.fullmatch(r"[0-9a-f]*", value):
        raise _malformed(f"{where} must be {size} bytes of lowercase hex")
    return bytes.fromhex(value)


def _int(value: Any, where: str, minimum: int) -> int:
    """An integer in [minimum, 2^63)."""
    if not is_int(value) or not minimum <= value <= MAX_INT64:
        raise _malformed(f"{where} must be an integer ≥ {minimum}")
    assert isinstance(value, int)
    return value


def parse_vote(obj: Any, where: str) -> SignedVote:
    """A signed vote from its JSON form, or InvalidEvidence(code="malformed_evidence")."""
    if not isinstance(obj, dict) or set(obj) != set(VOTE_FIELDS):
        raise _malformed(f"{where} must be an object with fields {', '.join(VOTE_FIELDS)}")
    if obj["type"] not in VOTE_TYPES:
        raise _malformed(f"{where}.type must be 'prevote' or 'precommit'")
    block_id = obj["block_id"]
    if block_id is not None and not (isinstance(block_id, str) and _HASH.fullmatch(block_id)):
        raise _malformed(f"{where}.block_id must be a lowercase hex sha256 or null")
    if not is_valid_address(obj["validator"]):
        raise _malformed(f"{where}.validator must be a bech32 'uoc1…' address")
    return SignedVote(
        type=obj["type"],
        height=_int(obj["height"], f"{where}.height", 1),
        round=_int(obj["round"], f"{where}.round", 0),
        block_id=block_id,
        timestamp_ms=_int(obj["timestamp_ms"], f"{where}.timestamp_ms", 0),
        validator=obj["validator"],
        pubkey=_hex(obj["pubkey"], f"{where}.pubkey", PUBKEY_SIZE),
        signature=_hex(obj["signature"], f"{where}.signature", SIGNATURE_SIZE),
    )


def is_conflicting(vote_a: SignedVote, vote_b: SignedVote) -> bool:
    """True if two votes are one validator's for one (height, round, type) with different block ids."""
    same = (vote_a.validator, vote_a.height, vote_a.round, vote_a.type) == (
        vote_b.validator,
        vote_b.height,
        vote_b.round,
        vote_b.type,
    )
    return same and vote_a.block_id != vote_b.block_id


def is_canonical_order(vote_a: SignedVote, vote_b: SignedVote) -> bool:
    """True if a nil vote comes first, else the smaller block id."""
    return (vote_a.block_id or "") < (vote_b.block_id or "")


def parse_evidence(obj: Any) -> DoubleSign:
    """Evidence from its JSON form: two conflicting votes in canonical order, or InvalidEvidence."""
    if not isinstance(obj, dict) or set(obj) != {"vote_a", "vote_b"}:
        raise _malformed("evidence must be an object with fields vote_a, vote_b")
    vote_a, vote_b = parse_vote(obj["vote_a"], "evidence.vote_a"), parse_vote(obj["vote_b"], "evidence.vote_b")
    if not is_conflicting(vote_a, vote_b):
        raise _malformed(
            "evidence needs two votes of one validator for one (height, round, type) with different blocks"
        )
    if not is_canonical_order(vote_a, vote_b):
        raise _malformed("evidence votes must be in canonical order (nil first, else the smaller block id)")
    return DoubleSign(vote_a, vote_b, len(canonical_bytes(obj)))


def compute_vote_sign_bytes(
    chain_id: str, type: str, height: int, round: int, block_id: str | None, timestamp_ms: int
) -> bytes:
    """The bytes a validator signs for a vote: the consensus domain tag and the canonical JSON of its fields."""
    fields = {
        "chain_id": chain_id,
        "type": type,
        "height": height,
        "round": round,
        "block_id": block_id,
        "timestamp_ms": timestamp_ms,
    }
    return CONSENSUS_SIGN_DOMAIN + canonical_bytes(fields)


def is_signed_vote(chain_id: str, vote: SignedVote) -> bool:
    """True if the vote's pubkey is its validator's and its signature verifies for this chain."""
    sign_bytes = compute_vote_sign_bytes(chain_id, vote.type, vote.height, vote.round, vote.block_id, vote.timestamp_ms)
    return compute_address(vote.pubkey) == vote.validator and verify_signature(vote.pubkey, vote.signature, sign_bytes)


def is_signed_double_sign(chain_id: str, evidence: DoubleSign) -> bool:
    """True if both votes of the evidence are validly signed by its validator for this chain."""
    return is_signed_vote(chain_id, evidence.vote_a) and is_signed_vote(chain_id, evidence.vote_b)

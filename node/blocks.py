"""Blocks, votes, proposals, commits and evidence: frozen data types, canonical sign bytes and hashes.

Every signature covers `SIGN_DOMAIN + canonical_json(fields)` (never a protobuf serialization);
every hash is lowercase hex sha256 and `""` means "none" (height 1 has no last block). Each type
has `to_json()` / `from_json(obj)` with bytes as lowercase hex; `from_json` raises
`InvalidMessage` on any bad shape, so stores and the wire codec can trust what it returns.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain.crypto import PUBKEY_SIZE, SIGNATURE_SIZE, PrivateKey, compute_address, is_valid_address, verify_signature
from chain.encoding import canonical_bytes
from chain.evidence import CONSENSUS_SIGN_DOMAIN
from chain.evidence import compute_vote_sign_bytes as compute_vote_sign_bytes

from .errors import InvalidMessage

SIGN_DOMAIN = CONSENSUS_SIGN_DOMAIN  # the chain verifies evidence's votes over the same bytes
VOTE_TYPES = ("prevote", "precommit")
# Absolute upper bounds for decoding a block, whatever the chain: they bound the work of parsing
# only. Whether a block is valid is the params' max_block_txs / max_block_bytes (chain/params.py).
MAX_DECODED_BLOCK_TXS = 20_000
MAX_DECODED_BLOCK_BYTES = 16 * 1024 * 1024
MAX_DECODED_BLOCK_EVIDENCE = 1000
MAX_DECODED_COMMIT_VOTES = 10_000  # precommits of one commit that are decoded at all
MAX_CHAIN_ID = 64
MAX_INT = 2**63 - 1
_HASH = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------------------------
# Shape checks (raise InvalidMessage)
# --------------------------------------------------------------------------------------------


def _bad(where: str, what: str, value: Any) -> InvalidMessage:
    """The InvalidMessage for a field of the wrong shape."""
    text = repr(value)
    return InvalidMessage(f"{where} must be {what}, got {text[:80]}")


def _int(value: Any, where: str, minimum: int = 0) -> int:
    """An integer in [minimum, 2^63)."""
    if type(value) is not int or not minimum <= value <= MAX_INT:
        raise _bad(where, f"an integer ≥ {minimum}", value)
    return value


def _str(value: Any, where: str, max_len: int = 256) -> str:
    """A string of at most `max_len` characters."""
    if not isinstance(value, str) or len(value) > max_len:
        raise _bad(where, f"a string of at most {max_len} characters", value)
    return value


def is_block_id(value: Any) -> bool:
    """True if `value` has the form of a block id: a lowercase hex sha256."""
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


def _hash(value: Any, where: str, *, empty: bool = False) -> str:
    """A lowercase hex sha256, or "" if `empty` is allowed."""
    if is_block_id(value) or (empty and value == ""):
        return value
    raise _bad(where, "a lowercase hex sha256" + (' or ""' if empty else ""), value)


def _address(value: Any, where: str) -> str:
    """A bech32 `uoc` address."""
    if not is_valid_address(value):
        raise _bad(where, "a bech32 'uoc1…' address", value)
    return value


def _bytes(value: Any, where: str, size: int) -> bytes:
    """Exactly `size` bytes."""
    if not isinstance(value, bytes) or len(value) != size:
        raise _bad(where, f"{size} bytes", value)
    return value


def _hex(value: Any, where: str, size: int | None = None) -> bytes:
    """Bytes from lowercase hex (of exactly `size` bytes if given)."""
    if not isinstance(value, str) or value.lower() != value:
        raise _bad(where, "a lowercase hex string", value)
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise _bad(where, "a lowercase hex string", value) from None
    if size is not None and len(data) != size:
        raise _bad(where, f"hex of {size} bytes", value)
    return data


def _obj(value: Any, where: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object with exactly `fields`."""
    if not isinstance(value, dict) or set(value) != set(fields):
        keys = sorted(value) if isinstance(value, dict) else value
        raise _bad(where, f"an object with fields {', '.join(fields)}", keys)
    return value


def _sha256(data: bytes) -> str:
    """Lowercase hex sha256."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------------------------


def compute_txs_hash(txs: tuple[bytes, ...] | list[bytes]) -> str:
    """sha256 over the concatenated sha256 of each transaction, in block order."""
    return _sha256(b"".join(hashlib.sha256(tx).digest() for tx in txs))


def compute_evidence_hash(evidence: tuple[Evidence, ...] | list[Evidence]) -> str:
    """sha256 over the concatenated sha256 of each piece of evidence's canonical JSON, in block order."""
    return _sha256(b"".join(hashlib.sha256(canonical_bytes(e.to_json())).digest() for e in evidence))


EMPTY_EVIDENCE_HASH = hashlib.sha256(b"").hexdigest()


def compute_commit_hash(commit: Commit | None) -> str:
    """sha256 of a commit's canonical JSON; "" for no commit."""
    return "" if commit is None else _sha256(canonical_bytes(commit.to_json()))


def compute_sign_bytes(fields: dict[str, Any]) -> bytes:
    """The bytes a validator signs: the consensus domain tag and the canonical JSON of `fields`."""
    return SIGN_DOMAIN + canonical_bytes(fields)


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """A block header; `app_hash` is the state after h−1, `validators_hash` the set for h and
    `evidence_hash` the block's evidence (`compute_evidence_hash`)."""

    chain_id: str
    height: int
    time_ms: int
    last_block_id: str
    last_commit_hash: str
    txs_hash: str
    app_hash: str
    validators_hash: str
    proposer: str
    evidence_hash: str = EMPTY_EVIDENCE_HASH

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "time_ms": self.time_ms,
            "last_block_id": self.last_block_id,
            "last_commit_hash": self.last_commit_hash,
            "txs_hash": self.txs_hash,
            "app_hash": self.app_hash,
            "validators_hash": self.validators_hash,
            "proposer": self.proposer,
            "evidence_hash": self.evidence_hash,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Header:
        fields = tuple(cls.__dataclass_fields__)
        o = _obj(obj, "header", fields)
        return cls(
            chain_id=_str(o["chain_id"], "header.chain_id", MAX_CHAIN_ID),
            height=_int(o["height"], "header.height", 1),
            time_ms=_int(o["time_ms"], "header.time_ms"),
            last_block_id=_hash(o["last_block_id"], "header.last_block_id", empty=True),
            last_commit_hash=_hash(o["last_commit_hash"], "header.last_commit_hash", empty=True),
            txs_hash=_hash(o["txs_hash"], "header.txs_hash"),
            app_hash=_str(o["app_hash"], "header.app_hash", 128),
            validators_hash=_hash(o["validators_hash"], "header.validators_hash"),
            proposer=_address(o["proposer"], "header.proposer"),
            evidence_hash=_hash(o["evidence_hash"], "header.evidence_hash"),
        )

    @cached_property
    def id(self) -> str:
        """The block id: sha256 of the canonical header JSON."""
        return _sha256(canonical_bytes(self.to_json()))


@dataclass(frozen=True)
class Vote:
    """A signed prevote or precommit; `block_id` None is a vote for nil."""

    type: str
    height: int
    round: int
    block_id: str | None
    timestamp_ms: int
    validator: str
    pubkey: bytes
    signature: bytes

    def sign_bytes(self, chain_id: str) -> bytes:
        """Domain tag + canonical JSON of (chain_id, type, height, round, block_id, timestamp_ms)."""
        return compute_vote_sign_bytes(chain_id, self.type, self.height, self.round, self.block_id, self.timestamp_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "height": self.height,
            "round": self.round,
            "block_id": self.block_id,
            "timestamp_ms": self.timestamp_ms,
            "validator": self.validator,
            "pubkey": self.pubkey.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Vote:
        o = _obj(obj, "vote", tuple(cls.__dataclass_fields__))
        vote = cls(
            type=o["type"],
            height=o["height"],
            round=o["round"],
            block_id=o["block_id"],
            timestamp_ms=o["timestamp_ms"],
            validator=o["validator"],
            pubkey=_hex(o["pubkey"], "vote.pubkey", PUBKEY_SIZE),
            signature=_hex(o["signature"], "vote.signature", SIGNATURE_SIZE),
        )
        check_vote_shape(vote)
        return vote

    def is_signed_by_validator(self, chain_id: str) -> bool:
        """True if the pubkey is the validator's and the signature verifies over the sign bytes."""
        return compute_address(self.pubkey) == self.validator and verify_signature(
            self.pubkey, self.signature, self.sign_bytes(chain_id)
        )


@dataclass(frozen=True)
class Commit:
    """+2/3 precommits for one block at (height, round), sorted by validator address."""

    height: int
    round: int
    block_id: str
    precommits: tuple[Vote, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "block_id": self.block_id,
            "precommits": [v.to_json() for v in self.precommits],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Commit:
        o = _obj(obj, "commit", tuple(cls.__dataclass_fields__))
        if not isinstance(o["precommits"], list) or len(o["precommits"]) > MAX_DECODED_COMMIT_VOTES:
            what = f"a list of at most {MAX_DECODED_COMMIT_VOTES} votes"
            raise _bad("commit.precommits", what, type(o["precommits"]).__name__)
        return cls(
            height=_int(o["height"], "commit.height", 1),
            round=_int(o["round"], "commit.round"),
            block_id=_hash(o["block_id"], "commit.block_id"),
            precommits=tuple(Vote.from_json(v) for v in o["precommits"]),
        )


@dataclass(frozen=True)
class Block:
    """A header, the transactions, the commit of the previous block (None at height 1) and the
    evidence of double signs it commits."""

    header: Header
    txs: tuple[bytes, ...]
    last_commit: Commit | None
    evidence: tuple[Evidence, ...] = ()

    @property
    def id(self) -> str:
        """The block id: the hash of its header."""
        return self.header.id

    @property
    def height(self) -> int:
        return self.header.height

    @cached_property
    def txs_hex(self) -> tuple[str, ...]:
        """The transactions as hex, in order (encoded once: the sign state and the store both write them)."""
        return tuple(tx.hex() for tx in self.txs)

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header.to_json(),
            "txs": list(self.txs_hex),
            "last_commit": None if self.last_commit is None else self.last_commit.to_json(),
            "evidence": [e.to_json() for e in self.evidence],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Block:
        o = _obj(obj, "block", ("header", "txs", "last_commit", "evidence"))
        if not isinstance(o["txs"], list) or len(o["txs"]) > MAX_DECODED_BLOCK_TXS:
            raise _bad("block.txs", f"a list of at most {MAX_DECODED_BLOCK_TXS} hex strings", type(o["txs"]).__name__)
        if not isinstance(o["evidence"], list) or len(o["evidence"]) > MAX_DECODED_BLOCK_EVIDENCE:
            limit = MAX_DECODED_BLOCK_EVIDENCE
            raise _bad("block.evidence", f"a list of at most {limit} pieces of evidence", type(o["evidence"]).__name__)
        return cls(
            header=Header.from_json(o["header"]),
            txs=tuple(_hex(tx, f"block.txs[{i}]") for i, tx in enumerate(o["txs"])),
            last_commit=None if o["last_commit"] is None else Commit.from_json(o["last_commit"]),
            evidence=tuple(Evidence.from_json(e) for e in o["evidence"]),
        )

    @cached_property
    def size(self) -> int:
        """The bytes of all transactions and of the evidence's canonical JSON (what max_block_bytes counts)."""
        return sum(len(tx) for tx in self.txs) + sum(e.size for e in self.evidence)

    def get_evidence_json(self) -> list[dict[str, Any]]:
        """The evidence as the application reads it (JSON objects)."""
        return [e.to_json() for e in self.evidence]


@dataclass(frozen=True)
class Proposal:
    """A signed proposal of `block` at (height, round); `pol_round` −1 means no proof of lock."""

    height: int
    round: int
    pol_round: int
    block: Block
    timestamp_ms: int
    proposer: str
    pubkey: bytes
    signature: bytes

    def sign_bytes(self, chain_id: str) -> bytes:
        """Domain tag + canonical JSON of (chain_id, "proposal", height, round, block_id, pol_round, timestamp_ms)."""
        return compute_proposal_sign_bytes(
            chain_id, self.height, self.round, self.block.id, self.pol_round, self.timestamp_ms
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "pol_round": self.pol_round,
            "block": self.block.to_json(),
            "timestamp_ms": self.timestamp_ms,
            "proposer": self.proposer,
            "pubkey": self.pubkey.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Proposal:
        o = _obj(obj, "proposal", tuple(cls.__dataclass_fields__))
        proposal = cls(
            height=o["height"],
            round=o["round"],
            pol_round=o["pol_round"],
            block=Block.from_json(o["block"]),
            timestamp_ms=o["timestamp_ms"],
            proposer=o["proposer"],
            pubkey=_hex(o["pubkey"], "proposal.pubkey", PUBKEY_SIZE),
            signature=_hex(o["signature"], "proposal.signature", SIGNATURE_SIZE),
        )
        check_proposal_shape(proposal)
        return proposal

    def is_signed_by_proposer(self, chain_id: str) -> bool:
        """True if the pubkey is the proposer's and the signature verifies over the sign bytes."""
        return compute_address(self.pubkey) == self.proposer and verify_signature(
            self.pubkey, self.signature, self.sign_bytes(chain_id)
        )


@dataclass(frozen=True)
class Evidence:
    """A double sign: two votes of one validator for one (height, round, type) with different block ids."""

    vote_a: Vote
    vote_b: Vote

    @property
    def key(self) -> str:
        """The offence (validator, height, round, type): one piece of evidence per offence."""
        v = self.vote_a
        return f"{v.validator}/{v.height}/{v.round}/{v.type}"

    @property
    def height(self) -> int:
        return self.vote_a.height

    @property
    def validator(self) -> str:
        return self.vote_a.validator

    @cached_property
    def size(self) -> int:
        """The bytes of its canonical JSON (what a block's size counts)."""
        return len(canonical_bytes(self.to_json()))

    def is_signed(self, chain_id: str) -> bool:
        """True if both votes are signed by the validator for this chain."""
        return self.vote_a.is_signed_by_validator(chain_id) and self.vote_b.is_signed_by_validator(chain_id)

    def to_json(self) -> dict[str, Any]:
        return {"vote_a": self.vote_a.to_json(), "vote_b": self.vote_b.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> Evidence:
        o = _obj(obj, "evidence", ("vote_a", "vote_b"))
        return make_evidence(Vote.from_json(o["vote_a"]), Vote.from_json(o["vote_b"]))


# --------------------------------------------------------------------------------------------
# Sign bytes, signing and checks
# --------------------------------------------------------------------------------------------


def compute_proposal_sign_bytes(
    chain_id: str, height: int, round: int, block_id: str, pol_round: int, timestamp_ms: int
) -> bytes:
    """The sign bytes of a proposal."""
    return compute_sign_bytes(
        {
            "chain_id": chain_id,
            "type": "proposal",
            "height": height,
            "round": round,
            "block_id": block_id,
            "pol_round": pol_round,
            "timestamp_ms": timestamp_ms,
        }
    )


def sign_vote(
    key: PrivateKey,
    chain_id: str,
    type: str,
    height: int,
    round: int,
    block_id: str | None,
    timestamp_ms: int,
) -> Vote:
    """A vote signed by `key`."""
    sign_bytes = compute_vote_sign_bytes(chain_id, type, height, round, block_id, timestamp_ms)
    return Vote(type, height, round, block_id, timestamp_ms, key.address, key.pubkey, key.sign(sign_bytes))


def sign_proposal(
    key: PrivateKey,
    chain_id: str,
    height: int,
    round: int,
    pol_round: int,
    block: Block,
    timestamp_ms: int,
) -> Proposal:
    """A proposal signed by `key`."""
    sign_bytes = compute_proposal_sign_bytes(chain_id, height, round, block.id, pol_round, timestamp_ms)
    return Proposal(height, round, pol_round, block, timestamp_ms, key.address, key.pubkey, key.sign(sign_bytes))


def make_evidence(vote_a: Vote, vote_b: Vote) -> Evidence:
    """Evidence from two conflicting votes in canonical order (nil first); InvalidMessage unless they conflict."""
    same = (vote_a.validator, vote_a.height, vote_a.round, vote_a.type) == (
        vote_b.validator,
        vote_b.height,
        vote_b.round,
        vote_b.type,
    )
    if not same or vote_a.block_id == vote_b.block_id:
        raise InvalidMessage("evidence needs two votes of one validator for one (h, r, type) with different blocks")
    if (vote_a.block_id or "") > (vote_b.block_id or ""):
        vote_a, vote_b = vote_b, vote_a
    return Evidence(vote_a, vote_b)


def check_vote_shape(vote: Vote) -> None:
    """Raise InvalidMessage unless every field of the vote has the right type and range."""
    if vote.type not in VOTE_TYPES:
        raise _bad("vote.type", "'prevote' or 'precommit'", vote.type)
    _int(vote.height, "vote.height", 1)
    _int(vote.round, "vote.round")
    if vote.block_id is not None:
        _hash(vote.block_id, "vote.block_id")
    _int(vote.timestamp_ms, "vote.timestamp_ms")
    _address(vote.validator, "vote.validator")
    _bytes(vote.pubkey, "vote.pubkey", PUBKEY_SIZE)
    _bytes(vote.signature, "vote.signature", SIGNATURE_SIZE)


def check_evidence_shape(evidence: Evidence) -> None:
    """Raise InvalidMessage unless the evidence is two well-formed conflicting votes in canonical order."""
    check_vote_shape(evidence.vote_a)
    check_vote_shape(evidence.vote_b)
    if make_evidence(evidence.vote_a, evidence.vote_b) != evidence:
        raise InvalidMessage("evidence votes must be in canonical order (nil first, else the smaller block id)")


def check_block_shape(block: Block) -> None:
    """Raise InvalidMessage unless the block's fields have the right types and fit the decoding bounds
    (not whether it is valid: the params' block limits are the application's check)."""
    if not isinstance(block, Block) or not isinstance(block.header, Header):
        raise _bad("block", "a Block with a Header", type(block).__name__)
    Header.from_json(block.header.to_json())
    if not isinstance(block.txs, tuple) or not all(isinstance(tx, bytes) for tx in block.txs):
        raise _bad("block.txs", "a tuple of bytes", type(block.txs).__name__)
    if not isinstance(block.evidence, tuple) or not all(isinstance(e, Evidence) for e in block.evidence):
        raise _bad("block.evidence", "a tuple of Evidence", type(block.evidence).__name__)
    for evidence in block.evidence:
        check_evidence_shape(evidence)
    if (
        len(block.txs) > MAX_DECODED_BLOCK_TXS
        or len(block.evidence) > MAX_DECODED_BLOCK_EVIDENCE
        or block.size > MAX_DECODED_BLOCK_BYTES
    ):
        raise InvalidMessage(
            f"block has {len(block.txs)} txs, {len(block.evidence)} evidence and {block.size} bytes, over the limits"
        )
    commit = block.last_commit
    if commit is not None:
        if not isinstance(commit, Commit) or not isinstance(commit.precommits, tuple):
            raise _bad("block.last_commit", "a Commit or None", type(commit).__name__)
        _int(commit.height, "commit.height", 1)
        _int(commit.round, "commit.round")
        _hash(commit.block_id, "commit.block_id")
        for vote in commit.precommits:
            if not isinstance(vote, Vote):
                raise _bad("commit.precommits", "votes", type(vote).__name__)
            check_vote_shape(vote)


def check_proposal_shape(proposal: Proposal) -> None:
    """Raise InvalidMessage unless every field of the proposal has the right type and range."""
    _int(proposal.height, "proposal.height", 1)
    _int(proposal.round, "proposal.round")
    if type(proposal.pol_round) is not int or not -1 <= proposal.pol_round < proposal.round:
        raise _bad("proposal.pol_round", "−1 or a round below the proposal's", proposal.pol_round)
    _int(proposal.timestamp_ms, "proposal.timestamp_ms")
    _address(proposal.proposer, "proposal.proposer")
    _bytes(proposal.pubkey, "proposal.pubkey", PUBKEY_SIZE)
    _bytes(proposal.signature, "proposal.signature", SIGNATURE_SIZE)
    check_block_shape(proposal.block)
    if proposal.block.header.height != proposal.height:
        raise InvalidMessage(
            f"proposal for height {proposal.height} carries a block of height {proposal.block.header.height}"
        )
    check_block_hashes(proposal.block)


def check_block_hashes(block: Block) -> None:
    """Raise InvalidMessage unless the block's body is the one its header commits to: the txs hash, the
    last commit hash and the evidence hash match. A signature (of a proposal, or the precommits of a commit) covers only
    the block id, the hash of the header; this binds the body to it, so a block id names one block.
    Checked on receipt, before a block is cached, judged or relayed: a relay that swaps the body of an
    honest proposal sends invalid input, and cannot make the honest block look invalid."""
    header = block.header
    if header.txs_hash != compute_txs_hash(block.txs):
        raise InvalidMessage(f"block {block.id[:12]} at height {header.height}: the txs do not match its txs hash")
    if header.last_commit_hash != compute_commit_hash(block.last_commit):
        raise InvalidMessage(
            f"block {block.id[:12]} at height {header.height}: the last commit does not match its last commit hash"
        )
    if header.evidence_hash != compute_evidence_hash(block.evidence):
        raise InvalidMessage(
            f"block {block.id[:12]} at height {header.height}: the evidence does not match its evidence hash"
        )


def compute_block_summary(block: Block, commit: Commit) -> dict[str, Any]:
    """A committed block in a few JSON fields (the dashboard's latest blocks): height, id, time, proposer,
    transactions, evidence, the round it was decided in and how many precommits decided it."""
    return {
        "height": block.height,
        "block_id": block.id,
        "time_ms": block.header.time_ms,
        "proposer": block.header.proposer,
        "txs": len(block.txs),
        "evidence": len(block.evidence),
        "round": commit.round,
        "signatures": len(commit.precommits),
    }

"""The engine's interface with its host: the actions it returns and what it asks of the host (`Host`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..blocks import Block, Commit, Evidence, Proposal, Vote
from .sign_state import SignState
from .steps import Timeout


@dataclass(frozen=True)
class Persist:
    """Write the sign state durably before executing the next action."""

    sign_state: SignState


@dataclass(frozen=True)
class Broadcast:
    """Send our own signed proposal or vote to all peers; a re-proposal (pol_round ≥ 0) goes with its
    proof of lock, the +2/3 prevotes of its pol_round for its block, sent (and re-sent) before it."""

    message: Proposal | Vote
    proof: tuple[Vote, ...] = ()


@dataclass(frozen=True)
class ScheduleTimeout:
    """Call on_timeout(timeout) after delay_ms."""

    timeout: Timeout
    delay_ms: int


@dataclass(frozen=True)
class Decide:
    """Block `block` is committed by `commit`: apply it, then start the next height after commit_ms."""

    block: Block
    commit: Commit


@dataclass(frozen=True)
class RecordEvidence:
    """A new double sign was seen."""

    evidence: Evidence


@dataclass(frozen=True)
class FetchBlock:
    """+2/3 precommits were seen for a block we do not have: fetch it from a peer and call on_block."""

    height: int
    block_id: str


Action = Persist | Broadcast | ScheduleTimeout | Decide | RecordEvidence | FetchBlock


class Host(Protocol):
    """What the engine asks of the node: evidence and transactions for a new block and application validity."""

    def select_evidence(self, height: int, pending: tuple[Evidence, ...]) -> tuple[list[Evidence], list[Evidence]]:
        """Of the pending evidence: what a new block at `height` includes (valid, within the params'
        limits), and what can never be committed any more (the engine drops it)."""
        ...

    def reap_txs(self, height: int, evidence: tuple[Evidence, ...] = ()) -> list[bytes]:
        """The mempool's transactions for a new block at `height` that carries `evidence`: within the
        block size limit left after the evidence, and valid after it (a slashed validator's tx may fail)."""
        ...

    def validate_block(self, block: Block) -> str | None:
        """None if the application accepts the block's evidence (each validator in the set of its
        height) and transactions, else the reason."""
        ...

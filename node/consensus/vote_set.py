"""Vote sets (one per (round, type), and all of a height), the +2/3 and +1/3 thresholds, and commit checks."""

from __future__ import annotations

from collections.abc import Mapping

from ..blocks import Commit, Vote, check_vote_shape
from ..errors import InvalidCommit, InvalidMessage
from .steps import PRECOMMIT
from .validator_set import ValidatorSet

MAX_VOTES_PER_VALIDATOR = 3  # conflicting votes counted per validator and (round, type)


def is_quorum(power: int, total: int) -> bool:
    """+2/3: 3·power > 2·total."""
    return 3 * power > 2 * total


def is_one_third(power: int, total: int) -> bool:
    """+1/3: 3·power > total."""
    return 3 * power > total


class VoteSet:
    """The votes of one (round, type), counted per block id.

    A validator counts once in the total (its first vote) but is counted for every block id it
    signed (up to MAX_VOTES_PER_VALIDATOR): an equivocator may have sent another block's vote to the
    nodes that decided, and a +2/3 it took part in must still be seen here (as CometBFT counts
    conflicting votes for a block some peer claims +2/3 for)."""

    __slots__ = ("votes", "by_block", "power_by_block", "power")

    def __init__(self) -> None:
        self.votes: dict[str, list[Vote]] = {}
        self.by_block: dict[str | None, dict[str, Vote]] = {}
        self.power_by_block: dict[str | None, int] = {}
        self.power = 0

    def by_block_votes(self) -> list[Vote]:
        """Every vote counted here."""
        return [v for votes in self.by_block.values() for v in votes.values()]

    def add(self, vote: Vote, power: int) -> None:
        """Count a vote (the caller checks the validator has not voted this block id here)."""
        mine = self.votes.setdefault(vote.validator, [])
        if not mine:
            self.power += power
        mine.append(vote)
        self.by_block.setdefault(vote.block_id, {})[vote.validator] = vote
        self.power_by_block[vote.block_id] = self.power_by_block.get(vote.block_id, 0) + power


def verify_commit(
    chain_id: str, commit: Commit, validator_set: ValidatorSet, *, verified: Mapping[bytes, Vote] | None = None
) -> None:
    """Raise InvalidCommit unless distinct, validly signed precommits for the block carry +2/3 of the set's power.

    `verified` maps signatures to votes whose signatures were already checked (skipped if equal)."""
    if not isinstance(commit, Commit) or not isinstance(commit.precommits, tuple):
        raise InvalidCommit("not a commit")
    seen: set[str] = set()
    power = 0
    for vote in commit.precommits:
        try:
            check_vote_shape(vote)
        except (InvalidMessage, AttributeError) as exc:
            raise InvalidCommit(f"malformed precommit: {exc}") from None
        where = f"precommit of {vote.validator} in the commit for height {commit.height}"
        if (vote.type, vote.height, vote.round) != (PRECOMMIT, commit.height, commit.round):
            raise InvalidCommit(f"{where} is a {vote.type} at ({vote.height}, {vote.round}), not at the commit's")
        if vote.block_id != commit.block_id:
            raise InvalidCommit(f"{where} is for block {vote.block_id}, not {commit.block_id}")
        if vote.validator not in validator_set:
            raise InvalidCommit(f"{where}: the signer is not in the validator set")
        known = verified is not None and verified.get(vote.signature) == vote
        if not known and not vote.is_signed_by_validator(chain_id):
            raise InvalidCommit(f"{where} has a bad signature")
        if vote.validator not in seen:
            seen.add(vote.validator)
            power += validator_set.power_of(vote.validator)
    if not is_quorum(power, validator_set.total_power):
        raise InvalidCommit(
            f"commit for height {commit.height} carries power {power} of {validator_set.total_power}, not more than 2/3"
        )


def compute_median_time(commit: Commit, validator_set: ValidatorSet | None) -> int:
    """BFT time: the power-weighted median of the precommit timestamps of `commit` (CometBFT's MedianTime).

    Each validator counts once (its first precommit), with its power in `validator_set` (the set of
    the commit's height; 0 if it is not in it; 1 each when the set is unknown). The median is the
    smallest timestamp t such that the precommits at or before t carry more than half of the
    commit's power: with less than a third of the set's power byzantine and more than two thirds in
    the commit, it lies between the earliest and the latest honest timestamps.
    InvalidCommit if the commit carries no power."""
    weights: dict[str, tuple[int, int]] = {}
    for vote in commit.precommits:
        if vote.validator not in weights:
            power = 1 if validator_set is None else validator_set.power_of(vote.validator)
            weights[vote.validator] = (vote.timestamp_ms, power)
    total = sum(power for _, power in weights.values())
    if total <= 0:
        raise InvalidCommit(f"commit for height {commit.height} carries no power: it has no median time")
    acc = 0
    for time_ms, power in sorted(weights.values()):
        acc += power
        if 2 * acc > total:
            return time_ms
    raise AssertionError("unreachable: the weights add up to the total")


def compute_block_time(
    last_commit: Commit | None, last_validator_set: ValidatorSet | None, genesis_time_ms: int
) -> int:
    """The time a block must carry (BFT time): the genesis time at height 1 (no last commit), else the
    power-weighted median of its last commit's precommit timestamps (`compute_median_time`)."""
    if last_commit is None:
        return genesis_time_ms
    return compute_median_time(last_commit, last_validator_set)


class HeightVoteSet:
    """The vote sets of one height by (round, type), and the +2/3 questions the rules ask of them."""

    __slots__ = ("total_power", "_sets")

    def __init__(self, total_power: int) -> None:
        self.total_power = total_power
        self._sets: dict[tuple[int, str], VoteSet] = {}

    def get_vote_set(self, round: int, type: str) -> VoteSet:
        """The vote set of (round, type), created empty if needed."""
        key = (round, type)
        votes = self._sets.get(key)
        if votes is None:
            votes = self._sets[key] = VoteSet()
        return votes

    def get_rounds(self, type: str) -> list[int]:
        """The rounds with votes of `type`, ascending."""
        return sorted({r for r, t in self._sets if t == type})

    def get_votes(self, type: str) -> list[Vote]:
        """Every vote of `type` counted at this height."""
        return [v for (_, t), votes in self._sets.items() if t == type for v in votes.by_block_votes()]

    def has_quorum(self, round: int, type: str, block_id: str | None) -> bool:
        """+2/3 of the power voted `block_id` (None: nil) at (round, type)."""
        votes = self._sets.get((round, type))
        return votes is not None and is_quorum(votes.power_by_block.get(block_id, 0), self.total_power)

    def has_any_quorum(self, round: int, type: str) -> bool:
        """+2/3 of the power voted anything at (round, type)."""
        votes = self._sets.get((round, type))
        return votes is not None and is_quorum(votes.power, self.total_power)

    def get_quorum_blocks(self, round: int, type: str) -> list[str]:
        """The (non-nil) block ids with +2/3 at (round, type), sorted."""
        votes = self._sets.get((round, type))
        if votes is None:
            return []
        total = self.total_power
        return sorted(b for b, p in votes.power_by_block.items() if b is not None and is_quorum(p, total))

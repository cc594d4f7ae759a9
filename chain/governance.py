"""Governance arithmetic: the exact tally of SPEC §4 and its outcome (pure functions).

The state-changing rules (submit, deposit, vote, the end of a period, model activation) are in
`chain.rules` with the other `process_*` functions; this module only computes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from .params import Params, compute_fraction
from .tx import VOTE_OPTIONS


@dataclass(frozen=True)
class Tally:
    """The voting power behind each option, and the total power of the epoch's validator set."""

    yes: int = 0
    no: int = 0
    abstain: int = 0
    no_with_veto: int = 0
    total_power: int = 0

    @property
    def voted(self) -> int:
        return self.yes + self.no + self.abstain + self.no_with_veto

    def to_json(self) -> dict[str, int]:
        return {
            "yes": self.yes,
            "no": self.no,
            "abstain": self.abstain,
            "no_with_veto": self.no_with_veto,
            "voted": self.voted,
            "total_power": self.total_power,
        }


@dataclass(frozen=True)
class TallyOutcome:
    """What a tally decides: passed or not, whether the deposits burn, and why."""

    passed: bool
    burn: bool
    reason: str


def compute_tally(votes: Iterable[tuple[str, str]], powers: dict[str, int]) -> Tally:
    """Sum each option's power from (voter, option) pairs; voters outside `powers` weigh 0."""
    sums = dict.fromkeys(VOTE_OPTIONS, 0)
    for voter, option in votes:
        sums[option] += powers.get(voter, 0)
    return Tally(**sums, total_power=sum(powers.values()))


def compute_tally_outcome(tally: Tally, params: Params) -> TallyOutcome:
    """SPEC §4's decision, in order, with strict comparisons in exact rationals."""
    if tally.total_power == 0:
        return TallyOutcome(False, False, "no validator power")
    if Fraction(tally.voted, tally.total_power) < compute_fraction(params.quorum):
        return TallyOutcome(False, False, f"quorum not reached: {tally.voted} of {tally.total_power} power voted")
    if tally.abstain == tally.voted:
        return TallyOutcome(False, False, "every vote is abstain")
    if Fraction(tally.no_with_veto, tally.voted) > compute_fraction(params.veto_threshold):
        burn = params.burn_vote_veto
        return TallyOutcome(False, burn, f"vetoed: {tally.no_with_veto} of {tally.voted} voted power")
    if Fraction(tally.yes, tally.voted - tally.abstain) > compute_fraction(params.threshold):
        return TallyOutcome(True, False, f"passed: {tally.yes} yes of {tally.voted - tally.abstain} non-abstain power")
    return TallyOutcome(False, False, f"threshold not reached: {tally.yes} yes of {tally.voted - tally.abstain}")

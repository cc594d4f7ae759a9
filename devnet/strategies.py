"""Adversarial strategies of the in-process simulator, and what each strategy got and did to the price.

`honest`, `fixed`, `extreme` and `sybil` votes follow from the scenario alone, so they are signed
ahead of the chain (`simulate.compute_vote`). The strategies here read the chain as they act, so the
in-process engine signs their transactions in its own process just before the block they go in:

- `copycat` votes the price it can already see. In open mode that is the stake-weighted median of
  the votes of this epoch committed in earlier blocks (the in-process engine has no mempool, so a
  vote is visible once its block is committed, not while it waits), or, if there is none yet, the
  current price (the previous epoch's median). In commit–reveal mode nothing of this epoch is
  visible: it votes the current price.
- `cartel`: its members aim at `target` = the reference × (1 ± target_bps / 10⁴), the reference
  being the weighted median of the other validators' votes in force (a never-voter counts at the
  current price): where the price would be without the cartel, as far as it can see (in open mode
  the votes cast so far this epoch and the older ones still in force; in commit–reveal mode the
  revealed ones). A group with more than half of the epoch's power votes the target (its vote is
  then the median, inside the band). A smaller group votes the point nearest the target inside
  the reward band of those other votes (`chain.rules.compute_reward_band`). The median depends on
  the order of the votes only, so below half of the power this shading costs the cartel nothing
  in price effect, and adding its votes on the far side of the band can only widen the final band
  towards them, so the members stay inside it (unless the other votes move after it voted).
- `free_rider` never votes; when a miss jail has run out (`jail_blocks`) it sends MsgUnjail to
  get back into the set and its fee shares.

`StrategyTally` reports per strategy its rewards, misses, jails and slashes and its effect on the
price, summed from one `Observation` per epoch as the run goes (a run does not keep its ballots).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from chain.median import weighted_median
from chain.money import MAX_NGONKA
from chain.params import Params, compute_fraction
from chain.rules import compute_reward_band

from .scenario import Scenario, ValidatorSpec

CHAIN_READING_STRATEGIES = ("copycat", "cartel", "free_rider")


def is_chain_reading(spec: ValidatorSpec) -> bool:
    """True if the validator's transactions depend on the chain's state (signed as the chain runs)."""
    return spec.strategy in CHAIN_READING_STRATEGIES


def compute_copycat_vote(price: int, visible: list[tuple[int, int]], vote_mode: str) -> int:
    """A copycat's vote: the weighted median of the (price, power) votes of this epoch it can see in
    open mode, else the current price."""
    median = weighted_median(visible) if vote_mode == "open" else None
    return price if median is None else median


def compute_cartel_target(reference: int, target_bps: int, direction: str) -> int:
    """The price a cartel aims at: the reference moved by target_bps, in [1, 2^63 − 1]."""
    sign = 1 if direction == "up" else -1
    return min(max(reference * (10_000 + sign * target_bps) // 10_000, 1), MAX_NGONKA - 1)


def compute_cartel_vote(
    price: int,
    target_bps: int,
    direction: str,
    cartel_power: int,
    total_power: int,
    others: list[tuple[int, int]],
    band: Fraction,
) -> int:
    """A cartel member's vote: the target (from the others' median, else the current price) with
    more than half of the power, else the point of the others' reward band nearest the target."""
    target = compute_cartel_target(weighted_median(others) or price, target_bps, direction)
    edges = compute_reward_band(others, band)
    if 2 * cartel_power > total_power or edges is None:
        return target
    low, high = math.ceil(edges[0]), math.floor(edges[1])
    return max(1, min(target, high)) if direction == "up" else min(max(target, low), MAX_NGONKA - 1)


@dataclass(frozen=True)
class ChainView:
    """What a chain-reading strategy sees before its block: the epoch, its price, the params and the
    validators (address → the `validators` query's view: power, vote in force and its epoch)."""

    epoch: int
    price: int
    params: Params
    validators: dict[str, dict[str, Any]]


def is_unjailing(spec: ValidatorSpec, record: dict[str, Any], height: int) -> bool:
    """True if a free rider is jailed (`record`: its validator view) and may unjail at `height`."""
    return spec.strategy == "free_rider" and record["jailed"] and height >= record["jailed_until"]


def compute_chain_vote(spec: ValidatorSpec, view: ChainView, scenario: Scenario, addresses: dict[str, str]) -> int:
    """The price a copycat or cartel member votes, from what it sees."""
    if spec.strategy == "copycat":
        visible = [
            (v["last_vote"], v["power"])
            for v in view.validators.values()
            if v["last_vote"] is not None and v["last_vote_epoch"] == view.epoch
        ]
        return compute_copycat_vote(view.price, visible, view.params.vote_mode)
    members = {addresses[v.name] for v in scenario.validators if v.strategy == "cartel" and v.group == spec.group}
    cartel_power = sum(v["power"] for a, v in view.validators.items() if a in members)
    total = sum(v["power"] for v in view.validators.values())
    others = [
        (view.price if v["last_vote"] is None else v["last_vote"], v["power"])
        for a, v in view.validators.items()
        if a not in members
    ]
    band = compute_fraction(view.params.reward_band)
    return compute_cartel_vote(view.price, spec.target_bps, spec.direction, cartel_power, total, others, band)


@dataclass(frozen=True)
class Observation:
    """One epoch's end: the price its ballot set (the next epoch's), the price during the epoch (a
    never-voter counts at it), and the ballot (name → power, vote in force or None)."""

    epoch: int
    price: int
    previous_price: int
    ballot: dict[str, tuple[int, int | None]]


@dataclass(frozen=True)
class Account:
    """A validator's holdings and record at one moment: its wealth (balance + tokens bonded +
    governance deposits spent or held), the fees it has paid, and its misses, jails and slashes."""

    wealth: int
    fees_paid: int = 0
    missed: int = 0
    jails: int = 0
    slashed: int = 0


def compute_bps(price: int | Fraction, reference: int | Fraction) -> Fraction:
    """|price − reference| in basis points of the reference."""
    return abs(Fraction(price) - reference) * 10_000 / reference


def compute_honest_median(observation: Observation, honest: set[str]) -> tuple[int, int, int] | None:
    """The weighted median of the honest validators' votes in force, and their [min, max]; None
    without an honest vote."""
    pairs = [(vote, power) for name, (power, vote) in observation.ballot.items() if name in honest and vote is not None]
    median = weighted_median(pairs)
    if median is None:
        return None
    return median, min(p for p, _ in pairs), max(p for p, _ in pairs)


def compute_median_without(observation: Observation, left_out: set[str]) -> int | None:
    """The price the ballot would have set without the `left_out` validators."""
    return weighted_median(
        [
            (observation.previous_price if vote is None else vote, power)
            for name, (power, vote) in observation.ballot.items()
            if name not in left_out
        ]
    )


@dataclass
class Figure:
    """Basis-point figures counted one by one: how many, their exact sum and the largest."""

    count: int = 0
    total: Fraction = Fraction(0)
    largest: Fraction | None = None

    def add(self, value: Fraction) -> None:
        """Count one figure."""
        self.count += 1
        self.total += value
        self.largest = value if self.largest is None else max(self.largest, value)

    def mean(self) -> float | None:
        """The mean for the summary (two decimals), None if none was counted."""
        return _round(self.total / self.count) if self.count else None

    def max(self) -> float | None:
        """The largest for the summary (two decimals), None if none was counted."""
        return None if self.largest is None else _round(self.largest)


class StrategyTally:
    """What the summary reports of the strategies, summed epoch by epoch as the run goes (`add`): how far
    the price was from the honest-only median, and per strategy its votes' distance from that median and
    its effect on the price. A run keeps this, not every epoch's ballot (O(epochs × validators) memory)."""

    def __init__(self, validators: Sequence[ValidatorSpec]) -> None:
        self.validators = validators
        self.honest = {v.name for v in validators if v.strategy == "honest"}
        self.members: dict[str, set[str]] = {}
        for v in validators:
            self.members.setdefault(v.strategy, set()).add(v.name)
        self.epochs = 0
        self.deviations = Figure()  # the price's bps from the honest median, per epoch that has one
        self.outside = 0  # epochs whose price left the honest votes' [min, max]
        self.distance_votes = dict.fromkeys(self.members, 0)  # per strategy: its votes compared, and their
        self.distance_bps = dict.fromkeys(self.members, Fraction(0))  # bps from the honest median, summed
        self.effects = {strategy: Figure() for strategy in self.members}  # the price's bps from the others' median

    def add(self, observation: Observation) -> None:
        """Count one epoch's end."""
        self.epochs += 1
        reference = compute_honest_median(observation, self.honest)
        if reference is not None:
            median, low, high = reference
            self.deviations.add(compute_bps(observation.price, median))
            self.outside += not low <= observation.price <= high
        for strategy, members in self.members.items():
            if reference is not None:  # the distances summed exactly, one Fraction per epoch (a common reference)
                votes = [
                    v
                    for name in members
                    if name in observation.ballot and (v := observation.ballot[name][1]) is not None
                ]
                self.distance_votes[strategy] += len(votes)
                self.distance_bps[strategy] += Fraction(
                    sum(abs(v - reference[0]) for v in votes) * 10_000, reference[0]
                )
            without = compute_median_without(observation, members)
            if without is not None:
                self.effects[strategy].add(compute_bps(observation.price, without))

    def price_vs_honest(self) -> dict[str, Any]:
        """How far the price was from the honest-only median: mean and max in bps, and the epochs in
        which it left the honest votes' [min, max]."""
        return {
            "epochs_compared": self.deviations.count,
            "mean_deviation_bps": self.deviations.mean(),
            "max_deviation_bps": self.deviations.max(),
            "epochs_outside_honest_range": self.outside,
        }

    def summarize(self, start: dict[str, Account], end: dict[str, Account]) -> dict[str, dict[str, Any]]:
        """Per strategy: its validators and stake, rewards (total and per epoch), misses, jails and
        slashes, how far its votes were from the honest median, and how far the price was from the
        price the others alone would have set (its effect on the price)."""
        out = {}
        for strategy in sorted(self.members):
            members = self.members[strategy]
            rewards = sum(compute_rewards(start[name], end[name]) for name in members)
            compared = self.distance_votes[strategy]
            out[strategy] = {
                "validators": len(members),
                "stake": sum(v.stake for v in self.validators if v.strategy == strategy),
                "rewards": rewards,
                "rewards_per_epoch": _round(Fraction(rewards, self.epochs)) if self.epochs else 0,
                "misses": sum(end[name].missed for name in members),
                "jails": sum(end[name].jails for name in members),
                "slashed": sum(end[name].slashed for name in members),
                "vote_distance_mean_bps": _round(self.distance_bps[strategy] / compared) if compared else None,
                "price_effect_mean_bps": self.effects[strategy].mean(),
                "price_effect_max_bps": self.effects[strategy].max(),
            }
        return out


def compute_rewards(start: Account, end: Account) -> int:
    """What a validator earned (vote rewards and fee shares) between two moments: the wealth it
    gained, with the fees it paid and the tokens slashed from it added back."""
    return end.wealth - start.wealth + end.fees_paid - start.fees_paid + end.slashed - start.slashed


def _round(value: Fraction | float) -> float:
    """A figure for the summary: bps or ngonka to two decimals."""
    return round(float(value), 2)

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

`compute_strategy_summary` reports per strategy its rewards, misses, jails and slashes and its
effect on the price, from one `Observation` per epoch.
"""

from __future__ import annotations

import math
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


def compute_price_vs_honest(observations: list[Observation], honest: set[str]) -> dict[str, Any]:
    """How far the price was from the honest-only median: mean and max in bps, and the epochs in
    which it left the honest votes' [min, max]."""
    deviations, outside = [], 0
    for observation in observations:
        reference = compute_honest_median(observation, honest)
        if reference is None:
            continue
        median, low, high = reference
        deviations.append(compute_bps(observation.price, median))
        outside += not low <= observation.price <= high
    return {
        "epochs_compared": len(deviations),
        "mean_deviation_bps": _round(sum(deviations) / len(deviations)) if deviations else None,
        "max_deviation_bps": _round(max(deviations)) if deviations else None,
        "epochs_outside_honest_range": outside,
    }


def compute_rewards(start: Account, end: Account) -> int:
    """What a validator earned (vote rewards and fee shares) between two moments: the wealth it
    gained, with the fees it paid and the tokens slashed from it added back."""
    return end.wealth - start.wealth + end.fees_paid - start.fees_paid + end.slashed - start.slashed


def compute_strategy_summary(
    scenario: Scenario, observations: list[Observation], start: dict[str, Account], end: dict[str, Account]
) -> dict[str, dict[str, Any]]:
    """Per strategy: its validators and stake, rewards (total and per epoch), misses, jails and
    slashes, how far its votes were from the honest median, and how far the price was from the
    price the others alone would have set (its effect on the price)."""
    honest = {v.name for v in scenario.validators if v.strategy == "honest"}
    medians = [compute_honest_median(o, honest) for o in observations]
    out = {}
    for strategy in sorted({v.strategy for v in scenario.validators}):
        members = {v.name for v in scenario.validators if v.strategy == strategy}
        rewards = sum(compute_rewards(start[name], end[name]) for name in members)
        # the distances summed exactly, one Fraction per epoch (the epoch's median is their common reference)
        distance_count, distance_sum = 0, Fraction(0)
        for o, m in zip(observations, medians):
            if m is None:
                continue
            votes = [vote for name in members if name in o.ballot and (vote := o.ballot[name][1]) is not None]
            distance_count += len(votes)
            distance_sum += Fraction(sum(abs(vote - m[0]) for vote in votes) * 10_000, m[0])
        effects = []
        for o in observations:
            without = compute_median_without(o, members)
            if without is not None:
                effects.append(compute_bps(o.price, without))
        out[strategy] = {
            "validators": len(members),
            "stake": sum(v.stake for v in scenario.validators if v.strategy == strategy),
            "rewards": rewards,
            "rewards_per_epoch": _round(Fraction(rewards, len(observations))) if observations else 0,
            "misses": sum(end[name].missed for name in members),
            "jails": sum(end[name].jails for name in members),
            "slashed": sum(end[name].slashed for name in members),
            "vote_distance_mean_bps": _round(distance_sum / distance_count) if distance_count else None,
            "price_effect_mean_bps": _round(sum(effects) / len(effects)) if effects else None,
            "price_effect_max_bps": _round(max(effects)) if effects else None,
        }
    return out


def _round(value: Fraction | float) -> float:
    """A figure for the summary: bps or ngonka to two decimals."""
    return round(float(value), 2)

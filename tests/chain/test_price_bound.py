"""The proved bound of the price (issue 17, item 6; docs/design.md "How far an attacker can move
the price"): an attacker holding less than half of the power never moves the lower weighted median
outside the honest votes' [min, max]; with exactly half it can never push the price above the honest
max, and it pushes it below the honest min exactly when all its votes are below it, to its highest
vote. Checked on the median itself (both its paths) and on the chain's ballot (`compute_ballot`,
where a validator that never voted counts with the current price)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.median import weighted_median, weighted_median_arrays
from chain.rules import compute_ballot, compute_ballot_votes

prices = st.one_of(st.integers(1, 60), st.integers(1, 2**62))
honest_ballots = st.lists(st.tuples(prices, st.integers(1, 10**6)), min_size=1, max_size=20)


def both_medians(pairs: list[tuple[int, int]]) -> int | None:
    """The lower weighted median of `pairs` by the pure path, asserted equal to the numpy path."""
    pure = weighted_median(pairs)
    array = weighted_median_arrays(
        np.array([p for p, _ in pairs], dtype=np.int64), np.array([w for _, w in pairs], dtype=np.int64)
    )
    assert pure == array
    return pure


def split_power(data: st.DataObject, total: int) -> list[int]:
    """`total` split into 1 to 8 positive parts (validators of one attacker: a sybil split)."""
    cuts = data.draw(st.lists(st.integers(1, total - 1), max_size=min(7, total - 1), unique=True)) if total > 1 else []
    edges = [0, *sorted(cuts), total]
    return [b - a for a, b in zip(edges, edges[1:])]


def attacker_ballot(data: st.DataObject, total: int) -> list[tuple[int, int]]:
    """An attacker's votes holding exactly `total` power, at any prices."""
    return [(data.draw(prices), power) for power in split_power(data, total)]


# --- the bound, table-driven ----------------------------------------------------------------

# (case, honest votes, attacker votes, price): honest power is 100 in every case
BOUND_CASES = [
    ("no attacker: the honest median", [(100, 40), (110, 30), (120, 30)], [], 110),
    ("49% far above stays at most the honest max", [(100, 40), (110, 30), (120, 30)], [(10**6, 96)], 120),
    ("49% far below stays at least the honest min", [(100, 40), (110, 30), (120, 30)], [(1, 96)], 100),
    ("49% split below and above", [(100, 40), (110, 30), (120, 30)], [(1, 48), (10**6, 48)], 110),
    ("49% inside the range moves the price within it", [(100, 50), (120, 50)], [(105, 96)], 105),
    ("exactly half far above: the honest max at most", [(100, 40), (110, 30), (120, 30)], [(10**6, 100)], 120),
    ("exactly half far below: its highest vote", [(100, 40), (110, 30), (120, 30)], [(1, 60), (7, 40)], 7),
    ("exactly half, one vote at the honest min", [(100, 40), (110, 30), (120, 30)], [(1, 60), (100, 40)], 100),
    ("exactly half, single honest voter", [(100, 1)], [(3, 1)], 3),
    ("more than half sets any price", [(100, 40), (110, 30), (120, 30)], [(10**6, 101)], 10**6),
]


@pytest.mark.parametrize(("honest", "attacker", "price"), [c[1:] for c in BOUND_CASES], ids=[c[0] for c in BOUND_CASES])
def test_the_attacker_moves_the_price_only_as_the_bound_allows(honest, attacker, price):
    assert both_medians(honest + attacker) == price


# --- the bound, over random ballots ---------------------------------------------------------


@given(st.data(), honest_ballots)
def test_an_attacker_with_less_than_half_the_power_never_leaves_the_honest_range(data, honest):
    honest_power = sum(power for _, power in honest)
    attacker = attacker_ballot(data, data.draw(st.integers(1, honest_power - 1))) if honest_power > 1 else []
    price = both_medians(honest + attacker)
    assert min(p for p, _ in honest) <= price <= max(p for p, _ in honest)


@given(st.data(), honest_ballots)
def test_an_attacker_with_exactly_half_never_raises_the_price_above_the_honest_max(data, honest):
    attacker = attacker_ballot(data, sum(power for _, power in honest))
    assert both_medians(honest + attacker) <= max(p for p, _ in honest)


@given(st.data(), honest_ballots)
def test_an_attacker_with_exactly_half_lowers_the_price_below_the_honest_min_only_with_every_vote_below(data, honest):
    attacker = attacker_ballot(data, sum(power for _, power in honest))
    price = both_medians(honest + attacker)
    honest_min = min(p for p, _ in honest)
    if all(p < honest_min for p, _ in attacker):
        assert price == max(p for p, _ in attacker)
    else:
        assert price >= honest_min


@given(st.data(), honest_ballots, st.lists(st.booleans(), min_size=20, max_size=20), st.integers(1, 2**62))
def test_the_chain_ballot_keeps_the_bound_with_never_voters_at_the_current_price(data, honest, voted, current):
    """A never-voter counts with the current price: it is an honest vote at that price."""
    honest_votes = [(f"h{i}", power, price if voted[i] else None) for i, (price, power) in enumerate(honest)]
    honest_prices = [price if price is not None else current for _, _, price in honest_votes]
    honest_power = sum(power for _, power, _ in honest_votes)
    share = data.draw(st.sampled_from(["less", "half"]))
    total = data.draw(st.integers(1, honest_power - 1)) if share == "less" and honest_power > 1 else honest_power
    if share == "less" and honest_power == 1:
        total = 0
    attacker_pairs = attacker_ballot(data, total) if total else []
    attacker = [(f"a{i}", power, price) for i, (price, power) in enumerate(attacker_pairs)]
    price, _ = compute_ballot(compute_ballot_votes(honest_votes + attacker), current)
    assert price <= max(honest_prices)
    if share == "less" or any(p >= min(honest_prices) for _, _, p in attacker):
        assert price >= min(honest_prices)

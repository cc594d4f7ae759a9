"""Power-weighted lower median of a price ballot (SPEC §3), in integers only.

The median is the smallest price p whose votes at or below p hold at least half the power.
Small ballots are sorted in Python. Large ones run a numpy weighted selection: a strided sample
proposes prices lo <= hi around the median, one vectorized pass keeps the part (below, within,
above) that holds it, and the loop repeats. After a miss, pivots become the median-by-count
(np.partition), which halves the set each round. The sample changes only the speed, never the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from math import isqrt

import numpy as np

from .errors import ChainError
from .money import is_int

INT64_LIMIT = 2**63  # first integer an int64 cannot hold
ARRAY_THRESHOLD = 4096  # weighted_median switches to numpy from this many voting entries
SORT_CUTOFF = 4096  # weighted selection sorts outright at or below this many entries
SAMPLE_SIZE = 2048  # approximate number of entries in the pivot sample
SAMPLE_MARGIN = (5, 2)  # sample bracket half-width: 5/2 / sqrt(sample size) of its power


class BallotError(ChainError, ValueError):
    """A price ballot that SPEC §3 does not accept."""

    code = "invalid_ballot"


# --- validation -------------------------------------------------------------------------


def check_vote(index: int, price: object, power: object) -> None:
    """Raise BallotError unless price is a positive int and power a non-negative int."""
    if not is_int(price) or price <= 0:
        raise BallotError(f"vote {index}: price must be a positive int, got {price!r}")
    if not is_int(power) or power < 0:
        raise BallotError(f"vote {index}: power must be a non-negative int, got {power!r}")


def compute_voting_entries(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return the validated (price, power) votes whose power is positive."""
    entries = []
    for index, pair in enumerate(pairs):
        try:
            price, power = pair
        except (TypeError, ValueError):
            raise BallotError(f"vote {index}: expected a (price, power) pair, got {pair!r}") from None
        check_vote(index, price, power)
        if power > 0:
            entries.append((price, power))
    return entries


def check_arrays(prices: np.ndarray, powers: np.ndarray) -> None:
    """Raise BallotError unless prices and powers are equal-length 1-D integer arrays of valid votes."""
    for name, array in (("prices", prices), ("powers", powers)):
        if not isinstance(array, np.ndarray):
            raise BallotError(f"{name} must be a numpy array, got {type(array).__name__}")
        if array.ndim != 1:
            raise BallotError(f"{name} must be 1-D, got shape {array.shape}")
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            raise BallotError(f"{name} must have an integer dtype, got {array.dtype}")
    if prices.shape != powers.shape:
        raise BallotError(f"prices and powers differ in length: {prices.shape[0]} != {powers.shape[0]}")
    if len(prices) and int(prices.min()) <= 0:
        raise BallotError(f"every price must be a positive int, got {int(prices.min())}")
    if len(powers) and int(powers.min()) < 0:
        raise BallotError(f"every power must be a non-negative int, got {int(powers.min())}")


def fits_int64(prices: np.ndarray, powers: np.ndarray) -> bool:
    """Return whether every price and every sum of powers fits in an int64."""
    if len(prices) == 0:
        return True
    return int(prices.max()) < INT64_LIMIT and int(powers.max()) * len(powers) < INT64_LIMIT


# --- pure Python path -------------------------------------------------------------------


def compute_median_need(total: int) -> int:
    """Return the least cumulative power c with 2 * c >= total."""
    return (total + 1) // 2


def compute_lower_median(entries: list[tuple[int, int]]) -> int | None:
    """Return the lower weighted median of validated positive-power entries, or None if empty."""
    total = sum(power for _, power in entries)
    if total == 0:
        return None
    need = compute_median_need(total)
    cumulative = 0
    for price, power in sorted(entries):
        cumulative += power
        if cumulative >= need:
            return price
    raise AssertionError("unreachable: cumulative power reaches the total")


def compute_lower_quantile(entries: list[tuple[int, int]], numerator: int, denominator: int) -> int | None:
    """Return the smallest price whose votes at or below it hold power c with denominator·c >= numerator·total
    (the lower weighted quantile numerator/denominator of validated entries), or None if no power voted."""
    total = sum(power for _, power in entries)
    if total == 0:
        return None
    cumulative = 0
    for price, power in sorted(entries):
        cumulative += power
        if denominator * cumulative >= numerator * total:
            return price
    raise AssertionError("unreachable: cumulative power reaches the total")


def compute_weighted_median_pure(pairs: Iterable[tuple[int, int]]) -> int | None:
    """Return the lower weighted median of a ballot without numpy."""
    return compute_lower_median(compute_voting_entries(pairs))


# --- numpy path -------------------------------------------------------------------------


def compute_sorted_select(prices: np.ndarray, powers: np.ndarray, need: int) -> int:
    """Return the smallest price whose cumulative power, in price order, reaches need."""
    order = np.argsort(prices, kind="stable")
    cumulative = np.cumsum(powers[order])
    return int(prices[order[int(np.searchsorted(cumulative, need))]])


def compute_sample_bracket(prices: np.ndarray, powers: np.ndarray, need: int, total: int) -> tuple[int, int] | None:
    """Return prices (lo, hi) of a strided sample that likely bracket the need-th unit of power."""
    stride = max(1, len(prices) // SAMPLE_SIZE)
    sample_prices = prices[::stride]
    order = np.argsort(sample_prices, kind="stable")
    sorted_prices = sample_prices[order]
    cumulative = np.cumsum(powers[::stride][order])
    sample_total = int(cumulative[-1])
    if sample_total == 0:
        return None
    target = need * sample_total // total
    margin = sample_total * SAMPLE_MARGIN[0] // (SAMPLE_MARGIN[1] * isqrt(len(sorted_prices)))
    last = len(sorted_prices) - 1
    lo_index = min(int(np.searchsorted(cumulative, target - margin)), last)
    hi_index = min(int(np.searchsorted(cumulative, target + margin)), last)
    return int(sorted_prices[lo_index]), int(sorted_prices[hi_index])


def compute_count_pivot(prices: np.ndarray) -> int:
    """Return the median-by-count price, so each side of it holds at most half the entries."""
    middle = len(prices) // 2
    return int(np.partition(prices, middle)[middle])


def compute_narrowed(
    prices: np.ndarray, powers: np.ndarray, need: int, total: int, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, int, int, bool]:
    """Keep the part (below lo, within [lo, hi], above hi) holding the need-th unit of power."""
    below = prices < lo
    power_below = int(np.dot(powers, below))
    if need <= power_below:
        kept = np.flatnonzero(below)
        return prices[kept], powers[kept], need, power_below, False
    at_most = prices <= hi
    kept = np.flatnonzero(at_most ^ below)
    inside_prices, inside_powers = prices[kept], powers[kept]
    power_inside = int(inside_powers.sum())
    if need <= power_below + power_inside:
        return inside_prices, inside_powers, need - power_below, power_inside, True
    kept = np.flatnonzero(~at_most)
    power_at_most = power_below + power_inside
    return prices[kept], powers[kept], need - power_at_most, total - power_at_most, False


def compute_weighted_select(
    prices: np.ndarray, powers: np.ndarray, need: int, total: int, *, use_sample: bool = True
) -> int:
    """Return the smallest price whose votes at or below it hold at least need of total power."""
    while len(prices) > SORT_CUTOFF:
        bracket = compute_sample_bracket(prices, powers, need, total) if use_sample else None
        if bracket is None:
            use_sample = False
            bracket = (pivot := compute_count_pivot(prices), pivot)
        lo, hi = bracket
        size = len(prices)
        prices, powers, need, total, inside = compute_narrowed(prices, powers, need, total, lo, hi)
        if inside and lo == hi:
            return lo
        if not inside or len(prices) > size // 2:
            use_sample = False
    return compute_sorted_select(prices, powers, need)


def compute_weighted_median_int64(prices: np.ndarray, powers: np.ndarray) -> int | None:
    """Return the lower weighted median of valid int64 arrays whose power sum fits an int64."""
    total = int(powers.sum())
    if total == 0:
        return None
    return compute_weighted_select(prices, powers, compute_median_need(total), total)


# --- public API -------------------------------------------------------------------------


def weighted_median_arrays(prices: np.ndarray, powers: np.ndarray) -> int | None:
    """Return the lower weighted median of integer arrays; falls back to Python ints past int64."""
    check_arrays(prices, powers)
    if not fits_int64(prices, powers):
        return compute_weighted_median_pure(zip(prices.tolist(), powers.tolist()))
    return compute_weighted_median_int64(prices.astype(np.int64, copy=False), powers.astype(np.int64, copy=False))


def weighted_median(pairs: Iterable[tuple[int, int]]) -> int | None:
    """Return the lower weighted median of (price, power) votes, or None when no power voted."""
    entries = compute_voting_entries(pairs)
    if len(entries) >= ARRAY_THRESHOLD:
        prices = [price for price, _ in entries]
        powers = [power for _, power in entries]
        if max(prices) < INT64_LIMIT and max(powers) * len(powers) < INT64_LIMIT:
            return compute_weighted_median_int64(np.array(prices, np.int64), np.array(powers, np.int64))
    return compute_lower_median(entries)

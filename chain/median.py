"""Power-weighted lower median of a price ballot (SPEC §3), in integers only.

The median is the smallest price p whose votes at or below p hold at least half the power.
The chain holds a ballot in columns (`Ballot`: int64 arrays of prices and powers, loaded once per
epoch), so its checks and its selection run on arrays; the pure Python path (`compute_lower_quantile`
on checked pairs) is the reference a property test compares with, and the path taken for small
ballots and for values an int64 cannot hold.

Small ballots are sorted in Python. Large ones run a numpy weighted selection: a strided sample
proposes prices lo <= hi around the median, one vectorized pass keeps the part (below, within,
above) that holds it, and the loop repeats. After a miss, pivots become the median-by-count
(np.partition), which halves the set each round. The sample changes only the speed, never the answer.
Sums stay exact: the int64 path runs only when the exact total power (`compute_exact_sum`) is
below 2^63, so no cumulative sum of non-negative powers can wrap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from math import isqrt
from typing import NamedTuple

import numpy as np

from .errors import ChainError
from .money import is_int

INT64_LIMIT = 2**63  # first integer an int64 cannot hold
ARRAY_THRESHOLD = 4096  # weighted_median and weighted_quantiles switch to numpy from this many entries
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


def compute_exact_sum(powers: np.ndarray) -> int:
    """Return the exact sum of integers in [0, 2^63), whatever their count: their high and low 32-bit
    halves are summed apart in uint64, where neither sum can wrap (below 2^31 · n and 2^32 · n, n < 2^32)."""
    if len(powers) >= 2**32:
        raise BallotError(f"a ballot holds fewer than 2^32 votes, got {len(powers)}")
    if len(powers) == 0:
        return 0
    if int(powers.max()) * len(powers) < INT64_LIMIT:  # no partial sum reaches 2^63: one pass
        return int(powers.sum(dtype=np.int64))
    unsigned = powers.astype(np.uint64, copy=False)
    high = int((unsigned >> np.uint64(32)).sum(dtype=np.uint64))
    low = int((unsigned & np.uint64(0xFFFFFFFF)).sum(dtype=np.uint64))
    return (high << 32) + low


def fits_int64(prices: np.ndarray, powers: np.ndarray) -> bool:
    """Return whether every price, every power and the sum of the powers fit in an int64 (then no
    cumulative sum of the powers, in any order, can wrap: each lies between 0 and the total)."""
    if len(prices) == 0:
        return True
    if int(prices.max()) >= INT64_LIMIT or int(powers.max()) >= INT64_LIMIT:
        return False
    return compute_exact_sum(powers) < INT64_LIMIT


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


def compute_quantile_need(total: int, numerator: int, denominator: int) -> int:
    """Return the least cumulative power c with denominator·c >= numerator·total."""
    return -(-numerator * total // denominator)


def compute_lower_quantiles(entries: list[tuple[int, int]], fractions: Sequence[tuple[int, int]]) -> list[int] | None:
    """Return compute_lower_quantile of validated entries for each fraction, or None if no power voted."""
    quantiles = [compute_lower_quantile(entries, numerator, denominator) for numerator, denominator in fractions]
    return None if any(q is None for q in quantiles) else [q for q in quantiles if q is not None]


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


# --- columnar ballots -------------------------------------------------------------------


class Ballot(NamedTuple):
    """A ballot in columns: vote i is (prices[i], powers[i]). int64 arrays when every value fits one,
    object arrays of Python ints otherwise (`compute_column`); the checks run on the arrays."""

    prices: np.ndarray
    powers: np.ndarray


def compute_column(values: Sequence[int]) -> np.ndarray:
    """Return an int64 column of ints the chain stored (checked when written), or an object column of
    the same Python ints when one of them does not fit an int64."""
    try:
        return np.fromiter(values, np.int64, len(values))
    except OverflowError:
        column = np.empty(len(values), dtype=object)
        column[:] = list(values)
        return column


def is_int64_ballot(ballot: Ballot) -> bool:
    """Return whether both columns are int64 arrays."""
    return ballot.prices.dtype == np.int64 and ballot.powers.dtype == np.int64


def check_ballot(ballot: Ballot) -> None:
    """Raise BallotError unless the columns have one length, every price is positive and every power
    non-negative (naming the first vote that is not, as compute_voting_entries does)."""
    prices, powers = ballot
    if prices.shape != powers.shape or prices.ndim != 1:
        raise BallotError(f"prices and powers must be 1-D of one length, got {prices.shape} and {powers.shape}")
    if len(prices) == 0:
        return
    if int(prices.min()) <= 0:
        index = int(np.flatnonzero(prices <= 0)[0])
        raise BallotError(f"vote {index}: price must be a positive int, got {int(prices[index])}")
    if int(powers.min()) < 0:
        index = int(np.flatnonzero(powers < 0)[0])
        raise BallotError(f"vote {index}: power must be a non-negative int, got {int(powers[index])}")


def check_fractions(fractions: Sequence[tuple[int, int]]) -> None:
    """Raise BallotError unless every fraction numerator/denominator lies in (0, 1]."""
    for numerator, denominator in fractions:
        if not 0 < numerator <= denominator:
            raise BallotError(f"a quantile must lie in (0, 1], got {numerator}/{denominator}")


def compute_quantiles_int64(ballot: Ballot, fractions: Sequence[tuple[int, int]], total: int) -> list[int] | None:
    """Return the lower weighted quantile of a checked int64 ballot for each fraction by weighted
    selection, or None if no power voted; `total`, its exact total power, is below 2^63."""
    prices, powers = ballot
    if total == 0:
        return None
    return [
        compute_weighted_select(prices, powers, compute_quantile_need(total, numerator, denominator), total)
        for numerator, denominator in fractions
    ]


def weighted_quantiles(ballot: Ballot, fractions: Sequence[tuple[int, int]]) -> list[int] | None:
    """Return, for each fraction n/d in (0, 1], the smallest price whose votes at or below it hold
    power c with d·c >= n·total (the lower weighted quantile), or None if no power voted. Large int64
    ballots whose total power fits an int64 run on the arrays; the rest take the exact Python path."""
    check_fractions(fractions)
    check_ballot(ballot)
    if len(ballot.prices) >= ARRAY_THRESHOLD and is_int64_ballot(ballot):
        total = compute_exact_sum(ballot.powers)  # every value fits an int64: the total must too
        if total < INT64_LIMIT:
            return compute_quantiles_int64(ballot, fractions, total)
    entries = compute_voting_entries(zip(ballot.prices.tolist(), ballot.powers.tolist()))
    return compute_lower_quantiles(entries, fractions)


def weighted_median_ballot(ballot: Ballot) -> int | None:
    """Return the lower weighted median of a ballot in columns, or None when no power voted."""
    quantiles = weighted_quantiles(ballot, [(1, 2)])
    return None if quantiles is None else quantiles[0]


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
        ballot = Ballot(compute_column([price for price, _ in entries]), compute_column([p for _, p in entries]))
        if is_int64_ballot(ballot) and fits_int64(*ballot):
            return compute_weighted_median_int64(*ballot)
    return compute_lower_median(entries)


# --- the ballot's shape -----------------------------------------------------------------

SHAPE_FRACTIONS = ((1, 4), (1, 2), (3, 4))  # Q1, the median, Q3: each a lower weighted quantile


def compute_ballot_shape(ballot: Ballot) -> tuple[int, int, int] | None:
    """Return the ballot's (Q1, median, Q3), each the lower weighted quantile of the median's convention
    (the smallest price whose votes at or below it hold at least 1/4, 1/2, 3/4 of the power), or None
    when no power voted. The order of the votes never matters: each is a function of the multiset."""
    quantiles = weighted_quantiles(ballot, SHAPE_FRACTIONS)
    if quantiles is None:
        return None
    q1, median, q3 = quantiles
    return q1, median, q3

"""SPEC §3 weighted median: examples, invalid ballots, properties, and numpy/pure agreement."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chain.median as median_module
from chain.errors import ChainError
from chain.median import (
    ARRAY_THRESHOLD,
    SAMPLE_SIZE,
    SORT_CUTOFF,
    Ballot,
    BallotError,
    compute_column,
    compute_exact_sum,
    compute_lower_quantiles,
    compute_quantiles_int64,
    compute_sample_bracket,
    compute_voting_entries,
    compute_weighted_median_pure,
    compute_weighted_select,
    weighted_median,
    weighted_median_arrays,
    weighted_median_ballot,
    weighted_quantiles,
)

INT64_MAX = 2**63 - 1


def reference_median(pairs):
    """Return the lower weighted median by expanding the SPEC §3 rule literally."""
    votes = sorted((price, power) for price, power in pairs if power > 0)
    total = sum(power for _, power in votes)
    cumulative = 0
    for price, power in votes:
        cumulative += power
        if 2 * cumulative >= total:
            return price
    return None


def both_paths(pairs):
    """Return (pure result, numpy result) for the same ballot."""
    prices = np.array([price for price, _ in pairs], dtype=np.int64)
    powers = np.array([power for _, power in pairs], dtype=np.int64)
    return weighted_median(pairs), weighted_median_arrays(prices, powers)


# --- examples ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param([(100, 50), (200, 50)], 100, id="even-split-takes-lower-price"),
        pytest.param([(100, 10), (200, 15), (300, 20)], 200, id="three-way-spec-example"),
        pytest.param([(100, 10), (200, 15), (300, 20), (1, 0), (999, 0)], 200, id="zero-power-changes-nothing"),
        pytest.param([], None, id="empty-ballot"),
        pytest.param([(100, 0), (200, 0)], None, id="all-zero-power"),
        pytest.param([(7, 1)], 7, id="single-vote"),
        pytest.param([(300, 1), (100, 1), (200, 1)], 200, id="unsorted-input"),
        pytest.param([(5, 3), (5, 4), (9, 6)], 5, id="duplicate-prices-pool-power"),
        pytest.param([(100, 1), (200, 98), (300, 1)], 200, id="majority-holder-wins"),
        pytest.param([(100, 51), (200, 49)], 100, id="bare-majority-below"),
        pytest.param([(100, 49), (200, 51)], 200, id="bare-majority-above"),
        pytest.param([(1, 1), (2, 1), (3, 1), (4, 1)], 2, id="even-count-takes-lower-middle"),
        pytest.param([(2**80, 3), (2**70, 1)], 2**80, id="pure-path-accepts-huge-prices"),
        pytest.param([(1, 2**90), (2, 2**90 + 1)], 2, id="pure-path-accepts-huge-powers"),
    ],
)
def test_weighted_median_matches_spec_examples(pairs, expected):
    assert weighted_median(pairs) == expected
    assert compute_weighted_median_pure(pairs) == expected


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param([(100, 50), (200, 50)], 100, id="even-split"),
        pytest.param([(100, 10), (200, 15), (300, 20)], 200, id="three-way"),
        pytest.param([(100, 0)], None, id="all-zero-power"),
        pytest.param([(INT64_MAX, 1), (INT64_MAX - 1, 1)], INT64_MAX - 1, id="prices-at-int64-limit"),
        pytest.param([(1, 2**62), (2, 2**62), (3, 2**62)], 2, id="power-sum-past-int64-falls-back"),
        pytest.param([(1, INT64_MAX), (2, INT64_MAX), (3, 1)], 2, id="power-sum-near-2**64-falls-back"),
    ],
)
def test_array_path_matches_spec_examples(pairs, expected):
    assert both_paths(pairs) == (expected, expected)


def test_array_path_returns_none_for_empty_arrays():
    assert weighted_median_arrays(np.array([], np.int64), np.array([], np.int64)) is None


def test_array_path_accepts_any_integer_dtype():
    prices = np.array([100, 200, 300], dtype=np.uint16)
    powers = np.array([10, 15, 20], dtype=np.int8)
    assert weighted_median_arrays(prices, powers) == 200


def test_array_path_falls_back_for_uint64_prices_past_int64():
    prices = np.array([2**63 + 5, 2**64 - 1, 3], dtype=np.uint64)
    powers = np.array([2, 1, 1], dtype=np.uint64)
    assert weighted_median_arrays(prices, powers) == 2**63 + 5


def test_array_path_accepts_non_contiguous_views():
    prices = np.arange(1, 20001, dtype=np.int64)[::-2]
    powers = np.ones(40000, dtype=np.int64)[::4]
    assert weighted_median_arrays(prices, powers) == reference_median(zip(prices.tolist(), powers.tolist()))


# --- invalid ballots --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        pytest.param([(100, -1)], "power must be a non-negative int", id="negative-power"),
        pytest.param([(0, 5)], "price must be a positive int", id="zero-price"),
        pytest.param([(-100, 5)], "price must be a positive int", id="negative-price"),
        pytest.param([(100.0, 5)], "price must be a positive int", id="float-price"),
        pytest.param([(100, 5.0)], "power must be a non-negative int", id="float-power"),
        pytest.param([(True, 5)], "price must be a positive int", id="bool-price"),
        pytest.param([(100, True)], "power must be a non-negative int", id="bool-power"),
        pytest.param([(100, 5), (np.int64(7), 5)], "vote 1: price", id="numpy-scalar-price"),
        pytest.param([(100, "5")], "power must be a non-negative int", id="string-power"),
        pytest.param([(100, 5, 1)], "expected a (price, power) pair", id="triple"),
        pytest.param([100], "expected a (price, power) pair", id="bare-int"),
        pytest.param([(100, 0), (0, 0)], "price must be a positive int", id="bad-price-with-zero-power"),
    ],
)
def test_invalid_vote_raises_ballot_error(pairs, message):
    with pytest.raises(BallotError, match=message.replace("(", r"\(").replace(")", r"\)")):
        weighted_median(pairs)


def test_invalid_vote_in_large_ballot_raises_ballot_error():
    pairs = [(i + 1, 1) for i in range(ARRAY_THRESHOLD + 10)] + [(5, -3)]
    with pytest.raises(BallotError, match=f"vote {ARRAY_THRESHOLD + 10}: power"):
        weighted_median(pairs)


def test_ballot_error_is_a_value_error_and_chain_error_with_code():
    with pytest.raises(BallotError) as raised:
        weighted_median([(1, -1)])
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, ChainError)
    assert raised.value.code == "invalid_ballot"


@pytest.mark.parametrize(
    ("prices", "powers", "message"),
    [
        pytest.param(np.array([1.0]), np.array([1]), "prices must have an integer dtype", id="float-prices"),
        pytest.param(np.array([1]), np.array([True]), "powers must have an integer dtype", id="bool-powers"),
        pytest.param(np.array([1], dtype=object), np.array([1]), "integer dtype", id="object-prices"),
        pytest.param(np.array([[1]]), np.array([[1]]), "must be 1-D", id="two-dimensional"),
        pytest.param(np.array([1, 2]), np.array([1]), "differ in length", id="length-mismatch"),
        pytest.param([1], np.array([1]), "must be a numpy array", id="list-prices"),
        pytest.param(np.array([1, 0]), np.array([1, 1]), "price must be a positive int", id="zero-price"),
        pytest.param(np.array([1, -3]), np.array([1, 1]), "price must be a positive int", id="negative-price"),
        pytest.param(np.array([1, 2]), np.array([1, -1]), "power must be a non-negative int", id="negative-power"),
    ],
)
def test_invalid_arrays_raise_ballot_error(prices, powers, message):
    with pytest.raises(BallotError, match=message):
        weighted_median_arrays(prices, powers)


# --- properties -------------------------------------------------------------------------

small_prices = st.integers(1, 50)
any_prices = st.one_of(small_prices, st.integers(1, 2**70))
powers_st = st.integers(0, 20)
ballots = st.lists(st.tuples(any_prices, powers_st), max_size=40)
int64_prices = st.one_of(small_prices, st.integers(1, INT64_MAX), st.integers(INT64_MAX - 20, INT64_MAX))
int64_powers = st.one_of(st.integers(0, 5), st.integers(0, 2**62), st.integers(INT64_MAX - 3, INT64_MAX))
int64_ballots = st.lists(st.tuples(int64_prices, int64_powers), max_size=40)


@given(ballots)
def test_weighted_median_follows_spec_rule(pairs):
    assert weighted_median(pairs) == reference_median(pairs)


@given(st.data(), ballots)
def test_weighted_median_is_invariant_under_permutation(data, pairs):
    shuffled = data.draw(st.permutations(pairs))
    assert weighted_median(shuffled) == weighted_median(pairs)


@given(ballots)
def test_weighted_median_is_a_positive_power_vote(pairs):
    result = weighted_median(pairs)
    voted = {price for price, power in pairs if power > 0}
    assert (result is None) == (not voted)
    assert result is None or result in voted


@given(st.data(), st.lists(st.tuples(any_prices, powers_st), min_size=1, max_size=40))
def test_voters_holding_a_majority_bound_the_median(data, pairs):
    total = sum(power for _, power in pairs)
    chosen = data.draw(st.sets(st.sampled_from(range(len(pairs))), min_size=1))
    coalition = [pairs[i] for i in chosen]
    if 2 * sum(power for _, power in coalition) <= total:
        return
    result = weighted_median(pairs)
    assert result <= max(price for price, _ in coalition)
    assert result >= min(price for price, _ in coalition)


@given(int64_ballots)
def test_array_and_pure_paths_agree_near_int64_limits(pairs):
    pure, array = both_paths(pairs)
    assert array == pure == reference_median(pairs)


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3)), max_size=60))
def test_array_and_pure_paths_agree_with_many_ties(pairs):
    pure, array = both_paths(pairs)
    assert array == pure


# --- large arrays: sampled selection and count-pivot fallback ----------------------------

ORDERINGS = ("random", "sorted", "reversed", "all-equal", "organ-pipe", "interleaved")


def large_ballot(seed: int, n: int, distinct: int, ordering: str, heavy: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return a reproducible large ballot arranged in the given adversarial ordering."""
    rng = np.random.default_rng(seed)
    values = rng.integers(1, INT64_MAX, size=distinct, dtype=np.int64, endpoint=True)
    prices = values[rng.integers(0, distinct, size=n)]
    top = 2**62 // n if heavy else 1000
    powers = rng.integers(0, top, size=n, dtype=np.int64, endpoint=True)
    if ordering == "sorted":
        prices = np.sort(prices)
    elif ordering == "reversed":
        prices = np.sort(prices)[::-1].copy()
    elif ordering == "all-equal":
        prices = np.full(n, values[0])
    elif ordering == "organ-pipe":
        ascending = np.sort(prices)
        prices = np.concatenate([ascending[::2], ascending[1::2][::-1]])
    elif ordering == "interleaved":
        ascending = np.sort(prices)
        prices = np.stack([ascending[: n // 2], ascending[n - n // 2 :][::-1][: n // 2]], axis=1).ravel()
        prices = np.concatenate([prices, ascending[n // 2 : n - n // 2]])
    return prices, powers


def as_pairs(prices: np.ndarray, powers: np.ndarray) -> list[tuple[int, int]]:
    """Return the arrays as a list of Python-int votes."""
    return list(zip(prices.tolist(), powers.tolist()))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(SORT_CUTOFF + 1, 20_000),
    distinct=st.sampled_from([1, 2, 3, 7, 50, 10_000]),
    ordering=st.sampled_from(ORDERINGS),
    heavy=st.booleans(),
)
def test_array_and_pure_paths_agree_on_large_adversarial_ballots(seed, n, distinct, ordering, heavy):
    prices, powers = large_ballot(seed, n, distinct, ordering, heavy)
    expected = compute_weighted_median_pure(as_pairs(prices, powers))
    assert weighted_median_arrays(prices, powers) == expected


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(SORT_CUTOFF + 1, 20_000),
    distinct=st.sampled_from([1, 2, 5, 10_000]),
    ordering=st.sampled_from(ORDERINGS),
)
def test_count_pivot_quickselect_alone_is_exact(seed, n, distinct, ordering):
    prices, powers = large_ballot(seed, n, distinct, ordering, heavy=False)
    total = int(powers.sum())
    if total == 0:
        return
    need = (total + 1) // 2
    expected = compute_weighted_median_pure(as_pairs(prices, powers))
    assert compute_weighted_select(prices, powers, need, total, use_sample=False) == expected


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_weighted_median_dispatches_large_ballots_to_numpy_with_same_answer(ordering):
    prices, powers = large_ballot(7, ARRAY_THRESHOLD + 100, 40, ordering, heavy=False)
    pairs = as_pairs(prices, powers)
    assert weighted_median(pairs) == compute_weighted_median_pure(pairs) == reference_median(pairs)


def test_large_ballot_with_price_past_int64_stays_pure():
    pairs = [(i + 1, 1) for i in range(ARRAY_THRESHOLD)] + [(2**64, ARRAY_THRESHOLD + 1)]
    assert weighted_median(pairs) == 2**64


@pytest.fixture
def count_pivots(monkeypatch):
    """Count calls of the count-pivot fallback during a test."""
    calls = []
    original = median_module.compute_count_pivot

    def counting(prices):
        calls.append(len(prices))
        return original(prices)

    monkeypatch.setattr(median_module, "compute_count_pivot", counting)
    return calls


def test_misleading_sample_falls_back_to_count_pivots_and_stays_exact(count_pivots):
    n = 20_000
    stride = n // SAMPLE_SIZE
    prices = np.arange(1, n + 1, dtype=np.int64) % 97 + 1
    prices[::stride] = 10**12 + np.arange(len(prices[::stride]))
    powers = np.full(n, 5, dtype=np.int64)
    total = int(powers.sum())
    expected = compute_weighted_median_pure(as_pairs(prices, powers))
    lo, _ = compute_sample_bracket(prices, powers, (total + 1) // 2, total)
    assert lo > expected  # the sample misses the median entirely
    assert weighted_median_arrays(prices, powers) == expected
    assert count_pivots  # the exact quickselect fallback ran


def test_random_ballot_resolves_from_samples_without_count_pivots(count_pivots):
    prices, powers = large_ballot(1, 200_000, 200_000, "random", heavy=False)
    expected = compute_weighted_median_pure(as_pairs(prices, powers))
    assert weighted_median_arrays(prices, powers) == expected
    assert count_pivots == []


def test_power_sum_past_int64_never_wraps():
    n = 6000
    prices = np.arange(1, n + 1, dtype=np.int64)
    powers = np.full(n, 2**62, dtype=np.int64)  # int64 sum would wrap to 0
    powers[-1] = INT64_MAX
    assert weighted_median_arrays(prices, powers) == reference_median(as_pairs(prices, powers))


# --- columnar ballots (the chain's path): exactly the pure reference --------------------------

columnar_prices = st.one_of(small_prices, st.integers(1, INT64_MAX), st.integers(INT64_MAX - 3, 2**64 + 3))
columnar_powers = st.one_of(st.integers(0, 5), st.integers(0, 2**62), st.integers(INT64_MAX - 3, 2**64))
columnar_ballots = st.lists(st.tuples(columnar_prices, columnar_powers), max_size=40)
fraction_lists = st.lists(
    st.integers(1, 12).flatmap(lambda d: st.tuples(st.integers(1, d), st.just(d))), min_size=1, max_size=4
)


def as_ballot(pairs):
    """The columns of (price, power) pairs, as the chain builds them."""
    return Ballot(compute_column([p for p, _ in pairs]), compute_column([w for _, w in pairs]))


def reference_quantiles(pairs, fractions):
    """Each lower weighted quantile by the pure Python path (None if no power voted)."""
    return compute_lower_quantiles(compute_voting_entries(pairs), fractions)


@settings(max_examples=300)
@given(columnar_ballots, fraction_lists)
def test_columnar_quantiles_equal_the_pure_path_on_the_arrays_whatever_the_values(pairs, fractions):
    """ARRAY_THRESHOLD forced to 0: every ballot whose values and total fit an int64 runs on the arrays;
    the others (a price or power from 2^63, a total past it) take the exact path. Both equal the reference."""
    with patch.object(median_module, "ARRAY_THRESHOLD", 0):
        assert weighted_quantiles(as_ballot(pairs), fractions) == reference_quantiles(pairs, fractions)
        assert weighted_median_ballot(as_ballot(pairs)) == reference_median(pairs)


@settings(max_examples=300)
@given(int64_ballots.filter(lambda pairs: sum(w for _, w in pairs) < 2**63), fraction_lists)
def test_int64_quantile_selection_alone_equals_the_pure_path(pairs, fractions):
    ballot = as_ballot(pairs)
    expected = reference_quantiles(pairs, fractions)
    assert compute_quantiles_int64(ballot, fractions, compute_exact_sum(ballot.powers)) == expected


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(ARRAY_THRESHOLD, 12_000),
    distinct=st.sampled_from([1, 3, 50, 10_000]),
    ordering=st.sampled_from(ORDERINGS),
    heavy=st.booleans(),
    fractions=fraction_lists,
)
def test_large_columnar_ballots_equal_the_pure_path(seed, n, distinct, ordering, heavy, fractions):
    prices, powers = large_ballot(seed, n, distinct, ordering, heavy)
    pairs = as_pairs(prices, powers)
    assert weighted_quantiles(Ballot(prices, powers), fractions) == reference_quantiles(pairs, fractions)


@pytest.mark.parametrize(
    ("case", "price", "power", "total"),
    [
        ("a price from 2^63 makes object columns", 2**63, 1, None),
        ("a power from 2^63 makes object columns", 5, 2**63, None),
        ("int64 values whose total passes 2^63", INT64_MAX, INT64_MAX, 2 * INT64_MAX + ARRAY_THRESHOLD),
    ],
)
def test_large_ballots_past_int64_take_the_exact_path(case, price, power, total):
    pairs = [(i + 1, 1) for i in range(ARRAY_THRESHOLD)] + [(price, power), (price, power)]
    ballot = as_ballot(pairs)
    if total is not None:
        assert ballot.prices.dtype == np.int64 and compute_exact_sum(ballot.powers) == total
    else:
        assert ballot.prices.dtype == object or ballot.powers.dtype == object
    assert weighted_quantiles(ballot, [(1, 2), (1, 4)]) == reference_quantiles(pairs, [(1, 2), (1, 4)])


@given(st.lists(st.integers(0, INT64_MAX), max_size=50), st.sampled_from([np.int64, np.uint64]))
def test_exact_sum_never_wraps(values, dtype):
    assert compute_exact_sum(np.array(values, dtype=dtype)) == sum(values)


@pytest.mark.parametrize(
    ("pairs", "fractions", "message"),
    [
        pytest.param([(1, 1), (0, 1)], [(1, 2)], "vote 1: price must be a positive int", id="zero-price"),
        pytest.param([(1, 1), (2, -1)], [(1, 2)], "vote 1: power must be a non-negative int", id="negative-power"),
        pytest.param([(1, 1)], [(0, 2)], r"quantile must lie in \(0, 1\]", id="zero-quantile"),
        pytest.param([(1, 1)], [(3, 2)], r"quantile must lie in \(0, 1\]", id="quantile-past-one"),
    ],
)
def test_invalid_columnar_ballots_raise_ballot_error_on_both_paths(pairs, fractions, message):
    for threshold in (0, ARRAY_THRESHOLD):
        with patch.object(median_module, "ARRAY_THRESHOLD", threshold), pytest.raises(BallotError, match=message):
            weighted_quantiles(as_ballot(pairs), fractions)

"""Reward bands (issue 17, item 3; `chain.rules.process_vote_rewards`): vote_reward_share of each
epoch's fees goes, by power, to the validators whose vote in force lies in the ballot's reward band
(the wider of the weighted interquartile range and the median × (1 ± reward_band), edges included);
the remainder stays in the pool; nothing is created or lost; "0" (the default) changes nothing."""

from __future__ import annotations

import json
from fractions import Fraction
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chain.median as median_module
from chain.median import (
    ARRAY_THRESHOLD,
    compute_lower_quantile,
    compute_voting_entries,
    compute_weighted_median_pure,
)
from chain.params import Params
from chain.rules import compute_ballot, compute_ballot_votes, compute_reward_band, compute_vote_rewards
from chain.tx import MsgSend, MsgSubmitPriceProposal
from tests.helpers import (
    ADDR,
    balance,
    make_app,
    make_genesis,
    run_block,
    run_until,
    signed,
    store_snapshot,
    supply_parts,
)

# --- the band rule, table-driven -------------------------------------------------------------

# (case, (price, power) ballot, reward_band, band [low, high])
BANDS = [
    ("median band wider than a collapsed IQR", [(100, 50), (110, 30), (200, 20)], "0.01", (99, 110)),
    ("IQR wider than the median band", [(p, 1) for p in range(100, 200, 10)], "0.01", (120, 170)),
    ("median band wider on both sides", [(100, 1), (101, 1), (102, 1)], "0.5", (Fraction(101, 2), Fraction(303, 2))),
    ("one voter: the median band alone", [(1000, 7)], "0.1", (900, 1100)),
    ("band 0 and equal votes: a point", [(5, 1), (5, 9)], "0", (5, 5)),
    ("band 1 reaches zero below", [(100, 1), (300, 1)], "1", (0, 300)),
    ("power 0 votes do not count", [(100, 1), (10**6, 0)], "0", (100, 100)),
    ("no power: no band", [(100, 0)], "0.01", None),
]


@pytest.mark.parametrize(("pairs", "band", "expected"), [c[1:] for c in BANDS], ids=[c[0] for c in BANDS])
def test_the_reward_band_is_the_wider_of_the_weighted_iqr_and_the_median_band(pairs, band, expected):
    assert compute_reward_band(pairs, Fraction(band)) == (None if expected is None else tuple(map(Fraction, expected)))


# (case, reward, (address, power, vote or None), current price, reward_band, shares)
REWARDS = [
    (
        "in-band validators split by power, outlier gets nothing",
        1000,
        [("a", 50, 100), ("b", 30, 110), ("c", 20, 200)],
        100,
        "0.01",
        [("a", 625), ("b", 375)],
    ),
    ("remainder is not paid", 7, [("a", 50, 100), ("b", 30, 100), ("c", 20, 900)], 100, "0", [("a", 4), ("b", 2)]),
    (
        "a vote exactly on the median band's edge is in",
        100,
        [("a", 80, 100), ("b", 10, 101), ("c", 10, 105)],
        100,
        "0.01",
        [("a", 88), ("b", 11)],
    ),
    (
        "a vote one ngonka past the median band's edge is out",
        100,
        [("a", 80, 100), ("b", 10, 102), ("c", 10, 105)],
        100,
        "0.01",
        [("a", 100)],
    ),
    (
        "a never-voter counts in the ballot but earns nothing",
        90,
        [("a", 50, None), ("b", 30, 100), ("c", 20, 100)],
        100,
        "0.01",
        [("b", 54), ("c", 36)],
    ),
    ("nobody voted: nothing paid", 90, [("a", 50, None), ("b", 30, None)], 100, "0.5", []),
    (
        "the order of the input does not matter",
        1000,
        [("c", 20, 200), ("a", 50, 100), ("b", 30, 110)],
        100,
        "0.01",
        [("a", 625), ("b", 375)],
    ),
]


@pytest.mark.parametrize(
    ("reward", "votes", "current", "band", "shares"), [c[1:] for c in REWARDS], ids=[c[0] for c in REWARDS]
)
def test_vote_rewards_go_by_power_to_the_validators_in_the_band(reward, votes, current, band, shares):
    assert sorted(compute_vote_rewards(reward, compute_ballot_votes(votes), current, Fraction(band))) == shares


@given(
    st.integers(0, 10**12),
    st.lists(st.tuples(st.integers(1, 10**6), st.one_of(st.none(), st.integers(1, 500))), min_size=1, max_size=12),
    st.integers(1, 500),
    st.sampled_from(["0", "0.001", "0.05", "0.3", "1"]),
)
def test_vote_rewards_never_pay_more_than_offered_and_keep_less_than_one_ngonka_per_winner(
    reward, validators, current, band
):
    votes = [(f"v{i:02d}", power, price) for i, (power, price) in enumerate(validators)]
    shares = compute_vote_rewards(reward, compute_ballot_votes(votes), current, Fraction(band))
    paid = sum(amount for _, amount in shares)
    assert 0 <= reward - paid < len(shares) if shares else paid == 0  # all carried without winners
    assert all(dict((a, p) for a, _, p in votes)[address] is not None for address, _ in shares)
    if all(price is not None for _, _, price in votes):  # the median is a vote, and it is in the band
        assert shares


# --- the columnar ballot equals the pure Python reference ----------------------------------


def reference_ballot(rows, current):
    """The price and summary of (address, power, vote or None) rows by the pure Python path."""
    pairs = [(current if price is None else price, power) for _, power, price in rows]
    median = compute_weighted_median_pure(pairs)
    cast = [price for _, _, price in rows if price is not None]
    entries = compute_voting_entries(pairs)
    summary = {
        "voters": len(cast),
        "non_voters": len(rows) - len(cast),
        "min_vote": min(cast) if cast else None,
        "max_vote": max(cast) if cast else None,
        "q1": compute_lower_quantile(entries, 1, 4),  # the ballot's shape (issue 19), by the sorted pure path
        "median": median,
        "q3": compute_lower_quantile(entries, 3, 4),
    }
    return (current if median is None else median), summary


def reference_rewards(reward, rows, current, band_fraction):
    """The vote rewards of the rows by the pure Python path (sorted passes, Fraction comparisons)."""
    entries = compute_voting_entries([(current if price is None else price, power) for _, power, price in rows])
    median = compute_lower_quantile(entries, 1, 2)
    if median is None:
        return []
    low, high = compute_lower_quantile(entries, 1, 4), compute_lower_quantile(entries, 3, 4)
    band = (min(Fraction(low), median * (1 - band_fraction)), max(Fraction(high), median * (1 + band_fraction)))
    winners = [(a, power) for a, power, price in rows if price is not None and band[0] <= price <= band[1]]
    total = sum(power for _, power in winners)
    return [(a, reward * power // total) for a, power in winners] if total else []


column_prices = st.one_of(st.integers(1, 60), st.integers(1, 2**63 - 1), st.integers(2**63 - 3, 2**64))
column_rows = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 50), st.integers(0, 2**62), st.integers(2**63 - 2, 2**63 + 2)),
        st.one_of(st.none(), column_prices),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(
    st.integers(0, 10**18),
    column_rows,
    column_prices,
    st.sampled_from(["0", "0.001", "0.05", "0.3", "1", "2"]),
    st.sampled_from([0, ARRAY_THRESHOLD]),
)
def test_the_columnar_ballot_and_rewards_equal_the_pure_path(reward, validators, current, band, threshold):
    """The chain's epoch ballot in columns (the numpy path when ARRAY_THRESHOLD is forced to 0, for
    every ballot whose values fit an int64) gives exactly the price, summary and rewards of the pure
    Python path, values past 2^63 included."""
    rows = [(f"v{i:02d}", power, price) for i, (power, price) in enumerate(validators)]
    with patch.object(median_module, "ARRAY_THRESHOLD", threshold):
        votes = compute_ballot_votes(rows)
        assert compute_ballot(votes, current) == reference_ballot(rows, current)
        got = compute_vote_rewards(reward, votes, current, Fraction(band))
    assert got == reference_rewards(reward, rows, current, Fraction(band))


# --- on the chain --------------------------------------------------------------------------


def reward_app(**params):
    """Validators a, b, c (50, 30, 20), d and e rich; fee-free unless a tx pays; epochs of 4."""
    balances = {n: 10**9 for n in "abcde"}
    return make_app(make_genesis({"a": 50, "b": 30, "c": 20}, balances, **{"epoch_length": 4, **params}))


def test_the_band_share_of_the_epoch_fees_goes_to_the_in_band_validators_and_the_rest_by_power():
    app = reward_app(vote_reward_share="0.5", reward_band="0.01")
    votes = [signed(n, 0, MsgSubmitPriceProposal.of(p)) for n, p in (("a", 100), ("b", 100), ("c", 300))]
    run_block(app, [*votes, signed("d", 0, MsgSend(ADDR["e"], 1), fee=1_007)])
    before = {n: balance(app, n) for n in "abc"}
    run_until(app, 4)  # the end of epoch 0: band [99, 101] holds a and b
    # 503 offered: a 314, b 188 (1 left); then the pool's 505 by power: 252, 151, 101 (1 left)
    assert {n: balance(app, n) - before[n] for n in "abc"} == {"a": 314 + 252, "b": 188 + 151, "c": 101}
    assert app.query("fees")["pool"] == 1
    assert app.query_all("history")[0]["fees_collected"] == 1_007


def test_with_the_default_share_the_fees_go_by_power_as_before():
    app = reward_app()
    votes = [signed(n, 0, MsgSubmitPriceProposal.of(p)) for n, p in (("a", 100), ("b", 100), ("c", 300))]
    run_block(app, [*votes, signed("d", 0, MsgSend(ADDR["e"], 1), fee=1_007)])
    before = {n: balance(app, n) for n in "abc"}
    run_until(app, 4)
    assert {n: balance(app, n) - before[n] for n in "abc"} == {"a": 503, "b": 302, "c": 201}


def test_the_new_params_at_their_defaults_leave_the_stored_params_and_the_app_hash_unchanged():
    assert "vote_reward_share" not in Params().to_state_json() and "reward_band" not in Params().to_state_json()
    implicit = reward_app()
    explicit = reward_app(vote_reward_share="0", reward_band="0.01")
    assert implicit.app_hash == explicit.app_hash
    assert explicit.query("params")["vote_reward_share"] == "0"
    assert reward_app(vote_reward_share="0.1").app_hash != implicit.app_hash


def total_money(store) -> int:
    """Every ngonka: balances, stake held, the governance escrow, the fee pool and what was burned."""
    supply, held = supply_parts(store)
    assert supply == held
    return held + json.loads(store_snapshot(store).get(("meta", "burned"), "0"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["0", "0.25", "0.5", "0.999", "1"]),
    st.sampled_from(["0", "0.01", "0.2", "1"]),
    st.lists(
        st.lists(st.tuples(st.sampled_from("abcde"), st.integers(1, 400), st.integers(0, 5_000)), max_size=4),
        min_size=1,
        max_size=10,
    ),
)
def test_vote_rewards_create_and_lose_nothing_over_any_votes_and_fees(share, band, blocks):
    app = reward_app(vote_reward_share=share, reward_band=band, epoch_length=3)
    total = total_money(app.store)
    sequences = dict.fromkeys("abcde", 0)
    for block in blocks:
        txs = []
        for name, price, fee in block:
            if name in "abc":  # validators vote a price
                txs.append(signed(name, sequences[name], MsgSubmitPriceProposal.of(price), fee=fee))
            else:  # others only pay fees
                txs.append(signed(name, sequences[name], MsgSend(ADDR["a"], 1), fee=fee))
            sequences[name] += 1
        pool_before = app.query("fees")["pool"]
        fees = sum(fee for _, _, fee in block)
        boundary = (app.height + 1) % 3 == 0
        paid_out_before = sum(balance(app, n) for n in "abcde")
        run_block(app, txs)
        assert total_money(app.store) == total
        pool_after = app.query("fees")["pool"]
        if boundary:  # everything that left the pool reached the balances, to the ngonka
            paid = pool_before + fees - pool_after
            assert sum(balance(app, n) for n in "abcde") - paid_out_before == paid - fees
            assert 0 <= pool_after < 3  # the by-power split pays the band's remainder: < 1 ngonka per validator

"""A named regression test for each known oracle incident the voted price could meet (issue 19, item 7):

- Terra's unsorted ballot: a weighted median taken over votes in their order of arrival (not sorted by
  price) depends on that order. Here the ballot's shape is a function of the multiset of votes.
- Terra's floor-half median: at exactly half the power, which side wins must be stated. Here the lower
  weighted median: the smallest price whose votes at or below it hold at least half the power.
- An Osmosis-style TWAP window edge: a window starting at the first recorded epoch, ending at the last,
  or one epoch long answers exactly the price; a window off the history is a 400, never a guess.
- A LUNA-style crash through a bound: a price crashing through max_change_per_epoch follows the votes
  step by step at the bound, every step flagged `capped`, never frozen (and a small price can always move).
"""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chain.median as median_module
from chain.errors import ChainError
from chain.median import Ballot, compute_ballot_shape, compute_column, compute_lower_quantile, compute_voting_entries
from chain.tx import MsgSubmitPriceProposal
from tests.helpers import Wallets, make_app, make_genesis, run_block, run_until

votes_strategy = st.lists(
    st.tuples(st.one_of(st.integers(1, 50), st.integers(1, 2**63 - 1)), st.integers(0, 10**6)), min_size=1, max_size=40
)


def shape_of(pairs: list[tuple[int, int]]) -> tuple[int, int, int] | None:
    return compute_ballot_shape(Ballot(compute_column([p for p, _ in pairs]), compute_column([w for _, w in pairs])))


# --- Terra: the unsorted ballot ---------------------------------------------------------------------


@settings(max_examples=300)
@given(votes_strategy.flatmap(lambda votes: st.tuples(st.just(votes), st.permutations(votes))))
def test_terra_unsorted_ballot_order_of_arrival_never_changes_the_median_or_quartiles(case):
    votes, arrived = case
    reference = compute_voting_entries(votes)
    expected = [compute_lower_quantile(reference, n, d) for n, d in ((1, 4), (1, 2), (3, 4))]
    for threshold in (0, median_module.ARRAY_THRESHOLD):  # 0: the numpy selection runs on every ballot
        with patch.object(median_module, "ARRAY_THRESHOLD", threshold):
            got = shape_of(arrived)
            assert got == shape_of(votes)
            assert got == (None if expected[0] is None else tuple(expected))


def test_terra_unsorted_ballot_on_chain_the_order_of_the_vote_txs_gives_the_same_record_and_app_hash():
    stakes = {"a": 10, "b": 20, "c": 30, "d": 25, "e": 15}
    prices = {"a": 500, "b": 100, "c": 400, "d": 200, "e": 300}
    apps = []
    for order in ("abcde", "edcba", "cadeb"):
        app, w = make_app(make_genesis(stakes, epoch_length=2)), Wallets()
        run_block(app, [w.tx(n, MsgSubmitPriceProposal.of(prices[n])) for n in order])
        run_block(app)
        apps.append(app)
    records = [app.query("epoch/1") for app in apps]
    assert all(r == records[0] for r in records)
    assert (records[0]["q1"], records[0]["median"], records[0]["q3"]) == (200, 300, 400)
    assert len({app.app_hash for app in apps}) == 1


def test_terra_unsorted_ballot_a_large_shuffled_ballot_gives_the_sorted_ballots_shape():
    rng = np.random.default_rng(7)
    prices = rng.integers(1, 10**9, 20_000, dtype=np.int64)
    powers = rng.integers(0, 10**6, 20_000, dtype=np.int64)
    order = rng.permutation(len(prices))
    by_price = np.argsort(prices, kind="stable")
    assert compute_ballot_shape(Ballot(prices[order], powers[order])) == compute_ballot_shape(
        Ballot(prices[by_price], powers[by_price])
    )


# --- Terra: the floor-half median ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("votes", "median"),
    [
        ([(100, 50), (200, 50)], 100),  # exactly half at or below 100: the lower price wins
        ([(200, 50), (100, 50)], 100),  # whatever the order
        ([(100, 1), (200, 1)], 100),
        ([(100, 49), (200, 51)], 200),  # just under half: the upper
        ([(100, 25), (150, 25), (200, 50)], 150),  # half reached at 150 exactly
        ([(100, 3), (200, 3), (300, 3), (400, 3)], 200),
    ],
)
def test_terra_floor_half_median_at_exactly_half_the_power_the_lower_price_wins(votes, median):
    assert shape_of(votes)[1] == median


def test_terra_floor_half_median_on_chain_two_equal_halves_set_the_lower_price():
    app, w = make_app(make_genesis({"a": 50, "b": 50}, epoch_length=2)), Wallets()
    run_block(app, [w.tx("a", MsgSubmitPriceProposal.of(200)), w.tx("b", MsgSubmitPriceProposal.of(100))])
    run_block(app)
    record = app.query("epoch/1")
    assert (record["q1"], record["median"], record["q3"], record["price"]) == (100, 100, 200, 100)


# --- Osmosis: the TWAP window edge ------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_app():
    """Records 0 to 4: 100 (genesis), then a (60 of 100) votes 250, 400, 130, 7."""
    app, w = make_app(make_genesis({"a": 60, "b": 40}, epoch_length=2)), Wallets()
    for price in (250, 400, 130, 7):
        run_block(app, [w.tx("a", MsgSubmitPriceProposal.of(price))])
        run_block(app)
    return app


@pytest.mark.parametrize(("epoch", "price"), [(0, "100"), (1, "250"), (2, "400"), (4, "7")])
def test_osmosis_twap_window_edge_a_one_epoch_window_answers_exactly_its_price(history_app, epoch, price):
    answer = history_app.query("twap", from_epoch=epoch, to_epoch=epoch)
    assert (answer["arithmetic"], answer["geometric"], answer["price_sum"], answer["epochs"]) == (
        price,
        price,
        price,
        1,
    )


def test_osmosis_twap_window_edge_the_first_to_the_last_epoch_is_the_whole_history(history_app):
    answer = history_app.query("twap", from_epoch=0, to_epoch=4)
    assert (answer["price_sum"], answer["epochs"], answer["arithmetic"]) == ("887", 5, "177.4")
    assert history_app.query("twap") == answer


@pytest.mark.parametrize(
    ("params", "field"),
    [({"from_epoch": 0, "to_epoch": 5}, "to_epoch"), ({"from_epoch": 5, "to_epoch": 5}, "to_epoch")],
)
def test_osmosis_twap_window_edge_one_past_the_last_epoch_is_a_bad_query(history_app, params, field):
    with pytest.raises(ChainError, match=rf"{field} \(5\) is past the latest recorded epoch \(4\)") as raised:
        history_app.query("twap", **params)
    assert raised.value.code == "bad_query"


# --- LUNA: a crash through a bound ------------------------------------------------------------------


def test_luna_crash_through_bound_the_price_follows_step_by_step_every_step_capped():
    genesis = make_genesis({"a": 60, "b": 40}, epoch_length=2, max_change_per_epoch="0.5")
    genesis["params"]["default_unit_of_compute_price"] = 1000
    app, w = make_app(genesis), Wallets()
    run_block(app, [w.tx("a", MsgSubmitPriceProposal.of(1))])  # a crashes to 1 and stays (its vote stays in force)
    run_until(app, 2 * 12)
    records = app.query_all("history")[1:]
    prices = [r["price"] for r in records]
    assert prices[:10] == [500, 250, 125, 62, 31, 15, 7, 3, 1, 1]
    assert [r["status"] for r in records[:8]] == ["capped"] * 8  # every step through the bound is flagged
    assert records[8]["status"] == "ok"  # the median 1 reached within the bound of 3
    assert all(r["median"] == 1 for r in records)


def test_luna_crash_through_bound_a_small_price_with_a_tight_cap_still_moves_every_epoch():
    genesis = make_genesis({"a": 60, "b": 40}, epoch_length=2, max_change_per_epoch="0.01")
    genesis["params"]["default_unit_of_compute_price"] = 20
    app, w = make_app(genesis), Wallets()
    run_block(app, [w.tx("a", MsgSubmitPriceProposal.of(10**6))])  # a spike up: 20 · 1.01 would round back to 20
    run_until(app, 2 * 6)
    records = app.query_all("history")[1:]
    assert [r["price"] for r in records] == [21, 22, 23, 24, 25, 26]
    assert {r["status"] for r in records} == {"capped"}

"""Market data (issue 19): each epoch record's ballot shape, participation and status; the cap on a move;
the TWAP accumulators and `twap`; `history` by model; `price_at`; the params that govern them and the
bad input each read and param refuses, naming the field and changing nothing."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.app import Application
from chain.errors import ChainError, InvalidGenesis
from chain.market import (
    LOG2_FRACTION_BITS,
    compute_decimal_text,
    compute_geometric_mean,
    compute_log2_fixed,
    compute_significant_text,
)
from chain.params import Params
from chain.rules import compute_capped_price, compute_price_bounds, compute_price_status
from chain.tx import MsgSubmitPriceProposal, MsgSubmitProposal, MsgVote, ParamChange, RegisterModel, RemoveModel
from tests.chain.test_commit_reveal import raw_message
from tests.helpers import Wallets, make_app, make_genesis, run_block, store_snapshot


def vote(price: int) -> MsgSubmitPriceProposal:
    return MsgSubmitPriceProposal.of(price)


def chain(**params) -> Application:
    """Validators a, b, c (50, 30, 20), rich accounts; epochs of 2 blocks, 1-block governance periods."""
    balances = {n: 10**9 for n in "abcde"}
    defaults = {"epoch_length": 2, "min_deposit": 1, "voting_period": 1, "max_deposit_period": 1}
    return make_app(make_genesis({"a": 50, "b": 30, "c": 20}, balances, **{**defaults, **params}))


def record(app: Application, epoch: int) -> dict:
    return app.query(f"epoch/{epoch}")


def run_epoch(app: Application, wallets: Wallets, votes: dict[str, int]) -> None:
    """One epoch of 2 blocks, the named validators voting in its first."""
    run_block(app, [wallets.tx(name, vote(price)) for name, price in votes.items()])
    run_block(app)


# --- the ballot's shape, participation and status --------------------------------------------------


def test_a_record_carries_the_ballots_quartiles_participation_and_status():
    app, w = chain(), Wallets()
    run_epoch(app, w, {"a": 300, "b": 100})  # c (20) never voted: it counts at the current 100
    r = record(app, 1)
    # by price: 100 (b 30 + c 20 = 50), 300 (a 50): Q1 and the median need 25 and 50 -> 100; Q3 needs 75 -> 300
    assert (r["q1"], r["median"], r["q3"], r["price"]) == (100, 100, 300, 100)
    assert (r["fresh_power"], r["ballot_power"], r["participation"]) == (80, 100, "0.8")
    assert (r["status"], r["last_fresh_epoch"]) == ("ok", 1)
    pricing = app.query("pricing")
    assert (pricing["confidence"], pricing["status"], pricing["age_epochs"]) == (200, "ok", 0)
    assert (pricing["confidence_str"], pricing["participation"]) == ("200", "0.8")


def test_genesis_record_has_no_ballot_and_pricing_reports_no_confidence():
    app = chain()
    r = record(app, 0)
    assert (r["q1"], r["median"], r["q3"], r["status"], r["participation"]) == (None, None, None, "ok", "0")
    assert r["price_cumulative"] == "100"
    pricing = app.query("pricing")
    assert (pricing["confidence"], pricing["status"], pricing["age_epochs"]) == (None, "ok", 0)
    assert {"unit_of_compute_price", "unit_of_compute_price_str", "denom", "epoch", "models"} <= set(pricing)


def test_participation_below_min_participation_is_flagged_and_the_price_still_moves():
    app, w = chain(min_participation="0.6"), Wallets()
    run_epoch(app, w, {"a": 300})  # 50 of 100 fresh
    r = record(app, 1)
    assert (r["participation"], r["status"], r["price"]) == ("0.5", "low_participation", 100)
    run_epoch(app, w, {"a": 300, "c": 300})  # 70 of 100: a and c at 300 hold 70
    assert (record(app, 2)["status"], record(app, 2)["price"]) == ("ok", 300)


def test_a_participation_that_does_not_terminate_is_served_rounded_down_at_18_places():
    app = make_app(make_genesis({"a": 1, "b": 1, "c": 1}, epoch_length=2))
    w = Wallets()
    run_epoch(app, w, {"a": 100})
    assert record(app, 1)["participation"] == "0.333333333333333333"


def test_no_fresh_vote_for_stale_epochs_flags_stale_and_the_age_counts_the_epochs():
    app, w = chain(stale_epochs=2), Wallets()
    run_epoch(app, w, {"a": 300, "b": 300})
    assert record(app, 1)["status"] == "ok"
    run_epoch(app, w, {})  # the votes stay in force, but none is fresh
    assert (record(app, 2)["status"], app.query("pricing")["age_epochs"]) == ("ok", 1)
    run_epoch(app, w, {})
    assert (record(app, 3)["status"], record(app, 3)["price"]) == ("stale", 300)
    assert (app.query("pricing")["status"], app.query("pricing")["age_epochs"]) == ("stale", 2)
    run_epoch(app, w, {"c": 200})
    assert (record(app, 4)["status"], record(app, 4)["last_fresh_epoch"]) == ("ok", 4)


@pytest.mark.parametrize(
    ("stale", "capped", "low", "status"),
    [
        (False, False, False, "ok"),
        (False, False, True, "low_participation"),
        (False, True, False, "capped"),
        (False, True, True, "capped"),
        (True, False, False, "stale"),
        (True, True, True, "stale"),
        (True, False, True, "stale"),
    ],
)
def test_status_precedence_is_stale_then_capped_then_low_participation(stale, capped, low, status):
    assert compute_price_status(stale, capped, low) == status


# --- the cap --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "cap", "bounds"),
    [
        (1000, "0.1", (900, 1100)),
        (1005, "0.1", (904, 1106)),  # rounded outward: 904.5 down, 1105.5 up
        (10, "0.01", (9, 11)),  # 9.9 and 10.1 would round back to 10: the bound moves 1 ngonka at least
        (1, "0.5", (1, 2)),  # never below 1
        (7, "1", (1, 14)),
    ],
)
def test_price_bounds_round_outward_and_never_absorb(previous, cap, bounds):
    assert compute_price_bounds(previous, Fraction(cap)) == bounds


def test_a_cap_of_zero_is_no_cap():
    assert compute_capped_price(10**9, 1, Fraction(0)) == 10**9


def test_a_capped_move_goes_to_the_bound_and_is_flagged():
    app, w = chain(max_change_per_epoch="0.1"), Wallets()
    run_epoch(app, w, {"a": 1000, "b": 1000})
    r = record(app, 1)
    assert (r["median"], r["price"], r["status"]) == (1000, 110, "capped")


# --- TWAP -----------------------------------------------------------------------------------------


PRICES = [300, 500, 200, 200, 900, 1000]


@pytest.fixture(scope="module")
def twap_app():
    """Seven records: epoch 0 at 100, then a and b (80 of 100) vote each of PRICES in turn."""
    app, w = chain(), Wallets()
    for price in PRICES:
        run_epoch(app, w, {"a": price, "b": price})
    return app


def test_running_sums_in_each_record_are_the_sums_of_the_prices_and_their_log2(twap_app):
    history = twap_app.query_all("history")
    prices = [r["price"] for r in history]
    assert prices == [100, *PRICES]
    for n, r in enumerate(history):
        assert int(r["price_cumulative"]) == sum(prices[: n + 1])
        assert int(r["log2_price_cumulative"]) == sum(compute_log2_fixed(p) for p in prices[: n + 1])


@pytest.mark.parametrize(("first", "last"), [(0, 6), (1, 3), (2, 2), (3, 6), (0, 0)])
def test_twap_is_the_exact_mean_and_the_geometric_mean_over_the_window(twap_app, first, last):
    prices = [100, *PRICES][first : last + 1]
    answer = twap_app.query("twap", from_epoch=first, to_epoch=last)
    assert (answer["epochs"], answer["price_sum"]) == (len(prices), str(sum(prices)))
    exact = Fraction(sum(prices), len(prices))  # served exactly if it terminates, else rounded down at 18 places
    assert Fraction(answer["arithmetic"]) <= exact < Fraction(answer["arithmetic"]) + Fraction(1, 10**18)
    geometric = math.prod(prices) ** (1 / len(prices))
    assert abs(float(answer["geometric"]) - geometric) < geometric * 1e-12


def test_twap_defaults_to_the_whole_history_and_a_non_terminating_mean_rounds_down(twap_app):
    answer = twap_app.query("twap", from_epoch=1, to_epoch=3)  # 1000 / 3
    assert answer["arithmetic"] == "333.333333333333333333"
    whole = twap_app.query("twap")
    assert (whole["from_epoch"], whole["to_epoch"], whole["epochs"]) == (0, 6, 7)


def test_a_models_twap_is_its_units_times_the_unit_twap_while_its_units_are_constant():
    app, w = chain(), Wallets()
    run_block(app, [w.tx("a", MsgSubmitProposal(RegisterModel("m1", 3), 1))])
    run_block(app, [w.tx(n, MsgVote(1, "yes")) for n in "abc"])  # passes at 2: m1 active from epoch 1
    for price in (300, 600):
        run_epoch(app, w, {"a": price, "b": price})
    unit = app.query("twap", from_epoch=1, to_epoch=3)
    model = app.query("twap", from_epoch=1, to_epoch=3, model="m1")
    assert model["units_of_compute_per_token"] == 3
    assert int(model["price_sum"]) == 3 * int(unit["price_sum"])
    assert model["arithmetic"] == compute_decimal_text(Fraction(3 * int(unit["price_sum"]), 3)) == "1000"
    with pytest.raises(ChainError, match="model: 'm1' is not active in epoch 0"):
        app.query("twap", from_epoch=0, to_epoch=0, model="m1")
    with pytest.raises(ChainError, match="model: 'm1' changed in epoch 1, inside the window") as raised:
        app.query("twap", from_epoch=0, to_epoch=3, model="m1")
    assert raised.value.code == "bad_query"
    with pytest.raises(ChainError, match="model: 'nope' was never registered") as unknown:
        app.query("twap", model="nope")
    assert unknown.value.code == "not_found"
    run_block(app, [w.tx("a", MsgSubmitProposal(RemoveModel("m1"), 1))])
    run_block(app, [w.tx(n, MsgVote(2, "yes")) for n in "abc"])
    with pytest.raises(ChainError, match="model: 'm1' is not active in epoch 4"):
        app.query("twap", from_epoch=4, to_epoch=4, model="m1")
    assert app.query("twap", from_epoch=2, to_epoch=3, model="m1")["price_sum"] == str(3 * (300 + 600))


def test_history_by_model_gives_its_price_per_token_and_null_while_it_was_not_active():
    app, w = chain(), Wallets()
    run_block(app, [w.tx("a", MsgSubmitProposal(RegisterModel("m1", 3), 1))])
    run_block(app, [w.tx(n, MsgVote(1, "yes")) for n in "abc"])
    run_epoch(app, w, {"a": 300, "b": 300})
    rows = app.query_all("history", model="m1")
    assert [(r["epoch"], r["units_of_compute_per_token"], r["price_per_token"]) for r in rows] == [
        (0, None, None),
        (1, 3, 300),
        (2, 3, 900),
    ]
    assert all(r["model"] == "m1" for r in rows)
    assert {k: v for k, v in rows[1].items() if k in record(app, 1)} == record(app, 1)
    with pytest.raises(ChainError, match="model: 'nope' was never registered"):
        app.query("history", model="nope")


# --- point-in-time reads --------------------------------------------------------------------------


def test_price_at_a_height_is_the_price_of_its_epoch_and_null_at_height_0(twap_app):
    height = twap_app.height
    assert height == 12
    prices = [100, *PRICES]
    for h in range(1, height + 1):
        answer = twap_app.query("price_at", height=h)
        assert (answer["epoch"], answer["unit_of_compute_price"]) == ((h - 1) // 2, prices[(h - 1) // 2])
    assert twap_app.query("price_at", height=0) == {
        "height": 0,
        "epoch": None,
        "denom": "ngonka",
        "unit_of_compute_price": None,
        "unit_of_compute_price_str": None,
        "status": None,
    }
    with pytest.raises(ChainError, match="height: 13 is not committed yet: the latest is 12") as raised:
        twap_app.query("price_at", height=13)
    assert raised.value.code == "not_found"


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("twap", {"from_epoch": 3, "to_epoch": 2}, "from_epoch (3) is after to_epoch (2)"),
        ("twap", {"to_epoch": 7}, "to_epoch (7) is past the latest recorded epoch (6)"),
        ("twap", {"from_epoch": 7}, "from_epoch (7) is after to_epoch (6)"),
        ("twap", {"from_epoch": -1}, "from_epoch"),
        ("twap", {"model": "bad model"}, "model"),
        ("history", {"from_epoch": 4, "to_epoch": 1}, "from_epoch (4) is after to_epoch (1)"),
        ("price_at", {"height": -1}, "height"),
        ("price_at", {}, "needs its argument height"),
    ],
)
def test_bad_market_queries_are_refused_naming_the_field(twap_app, path, params, message):
    before = store_snapshot(twap_app.store)
    with pytest.raises(ChainError, match=re.escape(message)) as raised:
        twap_app.query(path, **params)
    assert raised.value.code == "bad_query"
    assert store_snapshot(twap_app.store) == before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_participation": "1.5"}, "min_participation must be a decimal string"),
        ({"min_participation": 0.5}, "min_participation must be a decimal string"),
        ({"max_change_per_epoch": "-0.1"}, "max_change_per_epoch must be a decimal string"),
        ({"stale_epochs": -1}, "stale_epochs must be an integer from 0"),
        ({"stale_epochs": "3"}, "stale_epochs must be an integer from 0"),
    ],
)
def test_bad_market_params_are_refused_in_genesis_naming_the_field(params, message):
    with pytest.raises(InvalidGenesis, match=message):
        Params.from_json(params)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_participation": "2"}, "min_participation must be a decimal string"),
        ({"max_change_per_epoch": "x"}, "max_change_per_epoch must be a decimal string"),
        ({"stale_epochs": 10_001}, "stale_epochs must be an integer from 0"),
    ],
)
def test_a_bad_market_param_change_is_refused_at_submission_and_stores_nothing(changes, message):
    app, twin = chain(), chain()
    content = {"@type": "ParamChange", "changes": changes}
    msg = {"@type": "MsgSubmitProposal", "content": content, "initial_deposit": {"amount": 1, "denom": "ngonka"}}
    result = run_block(app, [raw_message("a", 0, msg)], expect_ok=False)
    run_block(twin)
    assert [r.code for r in result.tx_results] == ["invalid_param_change"]
    assert message in result.tx_results[0].log
    assert store_snapshot(app.store) == store_snapshot(twin.store)


def test_governance_changes_the_market_params_from_the_next_epoch():
    app, w = chain(), Wallets()
    changes = (("max_change_per_epoch", "0.5"), ("min_participation", "0.9"), ("stale_epochs", 3))
    run_block(app, [w.tx("a", MsgSubmitProposal(ParamChange(changes), 1))])
    run_block(app, [w.tx(n, MsgVote(1, "yes")) for n in "abc"])
    params = app.query("params")
    assert (params["max_change_per_epoch"], params["min_participation"], params["stale_epochs"]) == ("0.5", "0.9", 3)
    run_epoch(app, w, {"a": 1000, "b": 1000})
    assert (record(app, 2)["price"], record(app, 2)["status"]) == (150, "capped")


# --- the fixed-point log2 and the decimal strings -------------------------------------------------


@given(st.integers(1, 2**63 - 1))
def test_log2_fixed_is_within_a_few_units_of_its_last_bit(value):
    fixed = compute_log2_fixed(value)
    whole = value.bit_length() - 1
    assert fixed >> LOG2_FRACTION_BITS == whole
    assert abs(fixed / 2**LOG2_FRACTION_BITS - math.log2(value)) < 1e-12
    if value & (value - 1) == 0:
        assert fixed == whole << LOG2_FRACTION_BITS  # exact at powers of two


@given(st.integers(1, 2**63 - 1), st.integers(1, 1000))
def test_the_geometric_mean_of_one_repeated_price_is_that_price_exactly(price, epochs):
    log2 = compute_log2_fixed(price) * epochs
    assert compute_significant_text(compute_geometric_mean(log2, 0, epochs)) == str(price)


@pytest.mark.parametrize(
    ("value", "text"),
    [(Fraction(5, 2), "2.5"), (Fraction(0), "0"), (Fraction(7), "7"), (Fraction(2, 3), "0.666666666666666666")],
)
def test_decimal_text_is_exact_when_it_terminates_else_rounded_down(value, text):
    assert compute_decimal_text(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(Fraction(1, 3), "0.333333333333333333333333"), (Fraction(2, 3) * 10**30, "666666666666666666666667000000")],
)
def test_significant_text_rounds_half_up_at_24_digits(value, text):
    assert compute_significant_text(value) == text


# --- properties over random vote sequences ---------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.fixed_dictionaries({}, optional={n: st.integers(1, 10**6) for n in "abc"}), min_size=1, max_size=6),
    st.sampled_from(["0", "0.05", "0.5"]),
)
def test_every_record_respects_the_cap_flags_it_and_every_twap_window_is_the_exact_mean(epochs, cap):
    app, w = chain(max_change_per_epoch=cap), Wallets()
    for votes in epochs:
        run_epoch(app, w, votes)
    history = app.query_all("history")
    for before, after in zip(history, history[1:]):
        low, high = compute_price_bounds(before["price"], Fraction(cap)) if cap != "0" else (1, 2**63)
        assert low <= after["price"] <= high
        assert after["price"] == min(max(after["median"], low), high)  # the median itself unless beyond a bound
        assert (after["status"] == "capped") == (after["price"] != after["median"])
    prices = [r["price"] for r in history]
    for first in range(len(prices)):
        for last in range(first, len(prices)):
            answer = app.query("twap", from_epoch=first, to_epoch=last)
            window = prices[first : last + 1]
            assert answer["arithmetic"] == compute_decimal_text(Fraction(sum(window), len(window)))
            geometric = math.exp(sum(math.log(p) for p in window) / len(window))
            assert abs(float(answer["geometric"]) - geometric) <= geometric * 1e-12

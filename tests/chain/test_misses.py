"""Price-vote misses (issue 17, item 2; `chain.rules.process_vote_misses`): at each boundary a
validator of the ending epoch has a fresh vote (one cast during that epoch) or a miss; its last
miss_window outcomes are kept, and more misses than miss_window − min_valid_per_window jail it
(the double-sign jail: it leaves the set at this boundary, MsgUnjail after jail_blocks) and slash
slash_fraction_miss. miss_window 0 (the default) counts nothing and writes nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.errors import InvalidGenesis
from chain.params import MAX_MISS_WINDOW, Params
from chain.rules import compute_miss_window, is_fresh_vote, is_over_miss_limit
from chain.tx import MsgSubmitPriceProposal, MsgUnjail
from tests.helpers import ADDR, make_app, make_genesis, run_block, run_until, signed, store_snapshot, supply_parts

# --- the rules, table-driven -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("vote_epoch", "epoch", "fresh"),
    [
        pytest.param(-1, 3, False, id="never-voted"),
        pytest.param(3, 3, True, id="cast-in-the-ending-epoch"),
        pytest.param(2, 3, False, id="cast-earlier-still-in-force-but-stale"),
        pytest.param(0, 0, True, id="epoch-0"),
        pytest.param(-1, 0, False, id="never-voted-at-epoch-0"),
    ],
)
def test_a_vote_is_fresh_only_when_cast_in_the_ending_epoch(vote_epoch, epoch, fresh):
    assert is_fresh_vote(vote_epoch, epoch) is fresh


@pytest.mark.parametrize(
    ("window", "fresh", "size", "after"),
    [
        pytest.param("", True, 3, "1", id="first-epoch"),
        pytest.param("10", False, 3, "100", id="fills-up"),
        pytest.param("100", True, 3, "001", id="slides-dropping-the-oldest"),
        pytest.param("1111", False, 2, "10", id="a-smaller-window-keeps-the-newest"),
    ],
)
def test_the_miss_window_keeps_the_newest_outcomes(window, fresh, size, after):
    assert compute_miss_window(window, fresh, size) == after


@pytest.mark.parametrize(
    ("miss_window", "min_valid", "window", "over"),
    [
        pytest.param(3, 2, "10", False, id="one-miss-allowed"),
        pytest.param(3, 2, "100", True, id="two-misses-over"),
        pytest.param(3, 2, "00", True, id="over-before-the-window-is-full"),
        pytest.param(3, 0, "000", False, id="min-valid-0-never-jails"),
        pytest.param(3, 3, "110", True, id="every-vote-required"),
        pytest.param(3, 3, "111", False, id="every-vote-made"),
    ],
)
def test_a_window_is_over_the_limit_with_more_misses_than_window_minus_min_valid(miss_window, min_valid, window, over):
    params = Params(miss_window=miss_window, min_valid_per_window=min_valid)
    assert is_over_miss_limit(params, window) is over


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"miss_window": -1}, "miss_window"),
        ({"miss_window": MAX_MISS_WINDOW + 1}, "miss_window"),
        ({"miss_window": "3"}, "miss_window"),
        ({"miss_window": 3, "min_valid_per_window": 4}, "min_valid_per_window"),
        ({"min_valid_per_window": 1}, "min_valid_per_window"),
        ({"slash_fraction_miss": "1.5"}, "slash_fraction_miss"),
    ],
)
def test_bad_miss_params_are_refused_at_genesis_naming_the_field(params, field):
    with pytest.raises(InvalidGenesis, match=f"genesis.params.{field}"):
        Params.from_json(params)


# --- on the chain --------------------------------------------------------------------------


def miss_app(**params):
    """Validators a, b, c (50, 30, 20); epochs of 2 blocks."""
    return make_app(make_genesis({"a": 50, "b": 30, "c": 20}, **{"epoch_length": 2, **params}))


def vote_epoch(app, voters: str, sequences: dict[str, int], price: int = 100) -> None:
    """Run one whole epoch (2 blocks) in which `voters` vote `price` in its first block."""
    txs = []
    for name in voters:
        txs.append(signed(name, sequences.get(name, 0), MsgSubmitPriceProposal.of(price)))
        sequences[name] = sequences.get(name, 0) + 1
    run_block(app, txs)
    run_block(app)


def view(app, name: str) -> dict:
    return app.query("validator/" + ADDR[name])


def test_a_validator_that_misses_too_often_is_jailed_slashed_leaves_the_set_and_may_unjail_after_jail_blocks():
    app = miss_app(miss_window=3, min_valid_per_window=2, slash_fraction_miss="0.1", jail_blocks=4)
    supply = supply_parts(app.store)[0]
    sequences: dict[str, int] = {}
    vote_epoch(app, "abc", sequences)  # epoch 0: all fresh
    vote_epoch(app, "ab", sequences)  # epoch 1: c misses once (allowed: 3 - 2 = 1)
    assert (view(app, "c")["misses"], view(app, "c")["jailed"], view(app, "c")["power"]) == (1, False, 20)
    vote_epoch(app, "ab", sequences)  # epoch 2: c's second miss in its window: jailed at height 6
    c = view(app, "c")
    assert (c["jailed"], c["jailed_until"], c["slashes"], c["slashed"], c["stake"]) == (True, 10, 1, 2, 18)
    assert (c["misses"], c["missed"], c["miss_jails"], c["power"]) == (0, 2, 1, 0)  # window reset, out of the set
    assert ADDR["c"] not in {v["address"] for v in app.query_all("validators")}
    held_supply, held = supply_parts(app.store)
    assert held_supply == held == supply - 2
    assert json.loads(store_snapshot(app.store)[("meta", "burned")]) == 2
    refused = run_block(app, [signed("c", sequences["c"], MsgUnjail())], expect_ok=False)
    assert [r.code for r in refused.tx_results] == ["still_jailed"]
    run_until(app, 10)
    run_block(app, [signed("c", sequences["c"], MsgUnjail())])  # height 11, epoch 5
    run_block(app)  # the boundary: c is back
    assert view(app, "c")["power"] == 18 and not view(app, "c")["jailed"]


def test_validators_that_vote_every_epoch_are_never_missed_and_the_view_shows_their_last_vote():
    app = miss_app(miss_window=4, min_valid_per_window=4)
    sequences: dict[str, int] = {}
    for _ in range(6):
        vote_epoch(app, "abc", sequences, price=100)
    vote_epoch(app, "abc", sequences, price=110)
    rows = {v["address"]: v for v in app.query_all("validators")}
    assert {rows[ADDR[n]]["power"] for n in "abc"} == {50, 30, 20}
    a = rows[ADDR["a"]]
    assert (a["misses"], a["window_epochs"], a["missed"], a["jailed"]) == (0, 4, 0, False)
    assert (a["last_vote"], a["last_vote_epoch"], a["vote_distance_bps"]) == (110, 6, 0)  # the price moved to 110


def test_a_stale_vote_still_sets_the_price_but_counts_as_a_miss():
    app = miss_app(miss_window=5)  # counting only: min_valid_per_window 0 never jails
    sequences: dict[str, int] = {}
    vote_epoch(app, "abc", sequences, price=300)
    for _ in range(4):
        vote_epoch(app, "", sequences)
    a = view(app, "a")
    assert (a["misses"], a["window_epochs"], a["missed"], a["jailed"], a["power"]) == (4, 5, 4, False, 50)
    assert app.query("epoch/current")["price"] == 300
    assert (a["last_vote"], a["last_vote_epoch"], a["vote_distance_bps"]) == (300, 0, 0)


def test_misses_never_jail_every_validator_left_so_the_chain_keeps_a_set():
    app = miss_app(miss_window=1, min_valid_per_window=1)  # every epoch's vote required
    sequences: dict[str, int] = {}
    vote_epoch(app, "ab", sequences)  # c misses: jailed, a and b stay
    assert [view(app, n)["jailed"] for n in "abc"] == [False, False, True]
    vote_epoch(app, "", sequences)  # a and b both miss: jailing both would empty the set
    rows = {v["address"]: v for v in app.query_all("validators")}
    assert {n: (rows[ADDR[n]]["jailed"], rows[ADDR[n]]["misses"]) for n in "ab"} == {"a": (False, 1), "b": (False, 1)}
    vote_epoch(app, "a", sequences)  # now b alone is over: jailed, a keeps the chain going
    assert [view(app, n)["jailed"] for n in "ab"] == [False, True]
    assert [v["address"] for v in app.query_all("validators")] == [ADDR["a"]]


def test_the_default_counts_nothing_writes_nothing_and_keeps_the_app_hash():
    implicit = miss_app()
    explicit = miss_app(miss_window=0, min_valid_per_window=0, slash_fraction_miss="0")
    assert implicit.app_hash == explicit.app_hash
    sequences: dict[str, int] = {}
    vote_epoch(implicit, "a", sequences, price=120)
    vote_epoch(implicit, "", sequences)
    assert not any(space == "miss" for space, _ in store_snapshot(implicit.store))
    c = view(implicit, "c")
    assert (c["misses"], c["missed"], c["jailed"], c["last_vote"], c["vote_distance_bps"]) == (0, 0, False, None, None)
    a = view(implicit, "a")
    assert (a["last_vote"], a["vote_distance_bps"]) == (120, 2000)  # exactly half the power: the price stays 100
    assert view(implicit, "b")["power"] == 30


def test_the_vote_distance_is_in_basis_points_of_the_current_price_rounded_down():
    app = miss_app()
    sequences: dict[str, int] = {}
    vote_epoch(app, "a", sequences, price=100)
    vote_epoch(app, "bc", sequences, price=133)  # the price stays 100: a's 50 of 100 power at 100
    assert app.query("epoch/current")["price"] == 100
    assert view(app, "b")["vote_distance_bps"] == 3300
    assert view(app, "a")["vote_distance_bps"] == 0


# --- random vote patterns against a model ----------------------------------------------------


def model_misses(pattern: list[str], window_size: int, min_valid: int) -> dict[str, tuple[str, int, bool]]:
    """(window, misses ever, jailed) per validator after the epochs of `pattern` (each: who votes);
    a boundary that would jail every validator left jails none."""
    state = {n: ("", 0, False) for n in "abc"}
    for epoch_voters in pattern:
        counted = {}
        for name in "abc":
            window, missed, jailed = state[name]
            if not jailed:
                fresh = name in epoch_voters
                counted[name] = ((window + ("1" if fresh else "0"))[-window_size:], missed + (not fresh), False)
        over = [n for n, (window, _, _) in counted.items() if window.count("0") > window_size - min_valid]
        if len(over) < len(counted):
            counted.update({n: ("", counted[n][1], True) for n in over})
        state.update(counted)
    return state


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 5).flatmap(lambda w: st.tuples(st.just(w), st.integers(0, w))),
    st.lists(st.sets(st.sampled_from("abc")).map(lambda s: "".join(sorted(s))), min_size=1, max_size=8),
)
def test_misses_and_jails_follow_the_sliding_window_model(window_params, pattern):
    window_size, min_valid = window_params
    app = miss_app(miss_window=window_size, min_valid_per_window=min_valid, jail_blocks=1000)
    total = sum(supply_parts(app.store))
    sequences: dict[str, int] = {}
    for voters in pattern:
        vote_epoch(app, voters, sequences)
    assert sum(supply_parts(app.store)) == total  # slash_fraction_miss "0": a jail burns nothing
    for name, (window, missed, jailed) in model_misses(pattern, window_size, min_valid).items():
        v = view(app, name)
        assert (v["misses"], v["window_epochs"], v["missed"], v["jailed"]) == (
            window.count("0"),
            len(window),
            missed,
            jailed,
        )
        assert (v["power"] == 0) == jailed

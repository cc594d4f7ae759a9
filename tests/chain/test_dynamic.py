"""Dynamic per-model pricing (issue 19, item 5): utilization moves a model's price per token each block
in "dynamic" and "hybrid" pricing modes; "voted" (the default) is unchanged."""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from math import ceil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.dynamic import (
    compute_band_distance,
    compute_capacity,
    compute_decimal_text,
    compute_hybrid_bounds,
    compute_model_capacity,
    compute_next_price,
)
from chain.errors import InvalidGenesis
from chain.params import Params
from chain.tx import (
    MsgFundEscrow,
    MsgSettleUsage,
    MsgSubmitProposal,
    MsgVote,
    ParamChange,
    Receipt,
    RegisterModel,
    Tokens,
    sign_receipt,
)
from tests.helpers import (
    ADDR,
    CHAIN_ID,
    KEYS,
    Wallets,
    make_app,
    make_genesis,
    run_block,
    run_until,
    sign_body,
    store_snapshot,
)

F = Fraction
DYNAMIC = Params(pricing_mode="dynamic")
HYBRID = Params(pricing_mode="hybrid")


# --- the rule, table-driven --------------------------------------------------------------------

NEXT_PRICE_CASES = [
    # (case, params, price, utilization, anchor, next price)
    ("inside the band the price holds", DYNAMIC, 1000, F(1, 2), 1000, 1000),
    ("at the band's low bound it holds", DYNAMIC, 1000, F(2, 5), 1000, 1000),
    ("at the band's high bound it holds", DYNAMIC, 1000, F(3, 5), 1000, 1000),
    ("full load: up by the whole elasticity", DYNAMIC, 1000, F(1), 1000, 1020),
    ("over capacity: still at most the elasticity", DYNAMIC, 1000, F(3), 1000, 1020),
    ("no load: down by the whole elasticity", DYNAMIC, 1000, F(0), 1000, 980),
    ("halfway above the band: half the elasticity", DYNAMIC, 1000, F(4, 5), 1000, 1010),
    ("halfway below the band: half the elasticity", DYNAMIC, 1000, F(1, 5), 1000, 990),
    ("a small move is rounded up", DYNAMIC, 1000, F(61, 100), 1000, 1001),
    ("the floor price rises under load (Gonka truncated it to 0)", DYNAMIC, 1, F(1), 1, 2),
    ("49 rises: 49 × 2% = 0.98 rounds up to 1", DYNAMIC, 49, F(1), 1, 50),
    ("the floor holds without load", DYNAMIC, 1, F(0), 1, 1),
    ("a raised floor holds", Params(pricing_mode="dynamic", dynamic_price_floor=10), 11, F(0), 1, 10),
    ("a wider elasticity moves more", Params(pricing_mode="dynamic", price_elasticity="0.1"), 1000, F(1), 1, 1100),
    ("hybrid rises to its band's top and stops", HYBRID, 1195, F(1), 1000, 1200),
    ("hybrid at its band's top stays", HYBRID, 1200, F(1), 1000, 1200),
    ("hybrid falls to its band's bottom and stops", HYBRID, 805, F(0), 1000, 800),
    ("hybrid outside a moved anchor's band is pulled in", HYBRID, 1500, F(1, 2), 1000, 1200),
    ("hybrid's band never goes below the floor", HYBRID, 1, F(0), 1, 1),
    ("hybrid with a 0 band is the voted price", Params(pricing_mode="hybrid", hybrid_band="0"), 900, F(1), 1000, 1000),
]


@pytest.mark.parametrize(
    ("params", "price", "utilization", "anchor", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in NEXT_PRICE_CASES],
)
def test_the_price_holds_in_the_band_and_moves_at_most_the_elasticity_rounded_up_outside_it(
    params, price, utilization, anchor, expected
):
    assert compute_next_price(price, utilization, params, anchor) == expected


@pytest.mark.parametrize(
    ("utilization", "distance"),
    [(F(1, 2), 0), (F(7, 10), F(1, 4)), (F(1), 1), (F(5), 1), (F(3, 10), F(-1, 4)), (F(0), -1)],
)
def test_the_distance_from_the_band_is_a_share_of_the_room_outside_it(utilization, distance):
    assert compute_band_distance(utilization, F(2, 5), F(3, 5)) == distance


@pytest.mark.parametrize(
    ("throughput", "power", "per_nonce", "capacity"),
    [(5, 100, 1, 500), (3, 100, 7, 42), (1, 10, 1000, 1), (1, 0, 1, 1)],
)
def test_capacity_is_throughput_times_power_per_nonce_and_at_least_one_token(throughput, power, per_nonce, capacity):
    assert compute_capacity(throughput, power, per_nonce) == capacity


def test_a_model_without_throughput_per_nonce_uses_the_default_param():
    params = Params(default_throughput_per_nonce=4, power_per_nonce=2)
    assert compute_model_capacity({"id": "m"}, 100, params) == 200
    assert compute_model_capacity({"id": "m", "throughput_per_nonce": 10}, 100, params) == 500


@pytest.mark.parametrize(("value", "text"), [(F(1, 3), "0.333333"), (F(3, 2), "1.500000"), (F(0), "0.000000")])
def test_utilization_reads_as_a_decimal_string_rounded_down(value, text):
    assert compute_decimal_text(value) == text


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(1, 10**12),
    loads=st.lists(st.fractions(min_value=0, max_value=5), min_size=1, max_size=40),
    elasticity=st.sampled_from(["0.001", "0.02", "0.125", "0.5", "0.99"]),
    floor_price=st.integers(1, 1000),
    low=st.sampled_from(["0", "0.4", "0.5"]),
    high=st.sampled_from(["0.5", "0.6", "1"]),
)
def test_a_dynamic_price_moves_at_most_elasticity_plus_rounding_a_block_and_never_below_the_floor(
    start, loads, elasticity, floor_price, low, high
):
    params = Params(
        pricing_mode="dynamic",
        price_elasticity=elasticity,
        dynamic_price_floor=floor_price,
        utilization_band_low=low,
        utilization_band_high=high,
    )
    price = max(start, floor_price)
    for utilization in loads:
        after = compute_next_price(price, utilization, params, 1)
        assert abs(after - price) <= ceil(price * Fraction(elasticity))  # ≤ price × elasticity + 1
        assert after >= floor_price
        if F(low) <= utilization <= F(high):
            assert after == price
        price = after


@settings(max_examples=100, deadline=None)
@given(
    anchor=st.integers(1, 10**9),
    start=st.integers(1, 2 * 10**9),
    loads=st.lists(st.fractions(min_value=0, max_value=3), min_size=1, max_size=30),
    band=st.sampled_from(["0", "0.05", "0.2", "1"]),
)
def test_a_hybrid_price_stays_in_its_band_around_the_voted_price(anchor, start, loads, band):
    params = Params(pricing_mode="hybrid", hybrid_band=band)
    low, high = compute_hybrid_bounds(anchor, F(band), 1)
    price = start
    for utilization in loads:
        price = compute_next_price(price, utilization, params, anchor)
        assert low <= price <= high
        assert low <= anchor <= high


# --- on a chain ------------------------------------------------------------------------------

GOV = dict(min_deposit=1, voting_period=1, max_deposit_period=1, epoch_length=10)
TOKENS = Tokens(1000, 500)  # 1,500 a block: over the capacity of 100 validator power (100 tokens a block)


def dynamic_chain(*models: str, **params):
    """A chain at height 10 whose `models` (1 unit each) are active, the voted unit price 1 so that
    each token costs the floor, 1 ngonka; d funded an escrow."""
    genesis = make_genesis(
        {"a": 50, "b": 30, "c": 20},
        {"a": 1000, "b": 1000, "c": 1000, "d": 10**9, "e": 1000},
        **{**GOV, "default_unit_of_compute_price": 1, **params},
    )
    app, wallets = make_app(genesis), Wallets()
    for n, model in enumerate(models, start=1):
        run_block(app, [wallets.tx("e", MsgSubmitProposal(RegisterModel(model, 1), 1))])
        run_block(app, [wallets.tx(v, MsgVote(n, "yes")) for v in "ab"])
    run_block(app, [wallets.tx("d", MsgFundEscrow(10**8))])
    run_until(app, 10)
    assert [m["id"] for m in app.query_all("models")] == sorted(models)
    return app, wallets


def settle_tx(app, wallets: Wallets, model: str, tag: str) -> bytes:
    r = Receipt(
        request_id=f"{model}-{tag}",
        requester=ADDR["d"],
        provider=ADDR["e"],
        model=model,
        tokens=TOKENS,
        price_ceiling=10**12,
        expires_at=10**6,
    )
    return wallets.tx("e", MsgSettleUsage(r, sign_receipt(KEYS["d"], CHAIN_ID, r)))


def prices(app) -> dict[str, int]:
    return {m["id"]: m["price_per_token"] for m in app.query("pricing")["models"]}


def dynamic_entries(app) -> dict[tuple[str, str], object]:
    return {
        k: json.loads(v)
        for k, v in store_snapshot(app.store).items()
        if k[0] in ("dprice", "dring", "dblock") or k == ("meta", "dynamic_pricing")
    }


def test_gonka_absorbing_floor_1450_price_leaves_the_floor_under_full_load():
    """Gonka #1450: its per-block move is truncated, so a price below 50 ngonka never rises and every
    mainnet model sat at the 1-ngonka floor. Here every model starts at the floor, rises every block
    under full load, and falls back to the floor without load."""
    models = ("model-a", "model-b")
    app, wallets = dynamic_chain(*models, pricing_mode="dynamic")
    assert prices(app) == {"model-a": 1, "model-b": 1}  # the floor
    path = []
    for block in range(30):
        run_block(app, [settle_tx(app, wallets, m, str(block)) for m in models])
        path.append(prices(app))
    for before, after in zip([{"model-a": 1, "model-b": 1}, *path], path):
        for m in models:
            assert after[m] == before[m] + max(1, ceil(before[m] * F("0.02")))  # up every block, ≥ 1 ngonka
    top = path[-1]["model-a"]
    assert top > 30
    pricing = app.query("pricing")
    assert pricing["pricing_mode"] == "dynamic"
    assert pricing["models"][0]["utilization"] == "15.000000"  # 1,500 tokens a block, 100 of capacity
    assert pricing["models"][0]["voted_price_per_token"] == 1
    ring = dynamic_entries(app)
    for m in models:  # the kept window sum is the sum of the window's ring entries
        assert ring[("dprice", m)]["window_tokens"] == sum(
            v for k, v in ring.items() if k[0] == "dring" and k[1].startswith(m + "|")
        )
        assert len([k for k in ring if k[0] == "dring" and k[1].startswith(m + "|")]) == 10
    falling = []
    for _ in range(120):
        run_block(app)
        falling.append(prices(app)["model-a"])
    assert falling[-1] == 1 and prices(app) == {"model-a": 1, "model-b": 1}
    drained = falling[9:]  # the last loaded block leaves the 10-block window after 10 empty blocks
    assert drained[0] < falling[8] and all(b < a or b == 1 for a, b in zip(drained, drained[1:]))
    assert not [k for k in dynamic_entries(app) if k[0] in ("dring", "dblock")]  # the window emptied


def test_a_settlement_pays_the_dynamic_price_in_force_at_its_block():
    app, wallets = dynamic_chain("m", pricing_mode="dynamic")
    for block in range(5):
        run_block(app, [settle_tx(app, wallets, "m", str(block))])
    price = prices(app)["m"]
    run_block(app, [settle_tx(app, wallets, "m", "x")])
    record = app.query("settlement/m-x", requester=ADDR["d"])
    assert record["pricePerToken"]["amount"] == price and record["amountCharged"]["amount"] == 1500 * price
    assert record["price_record"]["pricing_mode"] == "dynamic"  # why the price is not units × unit price


def test_the_voted_mode_writes_no_dynamic_state_and_pricing_keeps_its_fields():
    app, wallets = dynamic_chain("m")
    for block in range(3):
        run_block(app, [settle_tx(app, wallets, "m", str(block))])
    assert dynamic_entries(app) == {}
    assert "pricing_mode" not in app.query("settlement/m-0", requester=ADDR["d"])["price_record"]
    pricing = app.query("pricing")
    assert "pricing_mode" not in pricing
    assert set(pricing["models"][0]) == {
        "id",
        "units_of_compute_per_token",
        "price_per_token",
        "price_per_token_str",
        "inputPricePerMTok",
        "inputPricePerMTok_str",
        "outputPricePerMTok",
        "outputPricePerMTok_str",
    }
    assert prices(app) == {"m": 1}


def propose(wallets: Wallets, changes: dict) -> bytes:
    return wallets.tx("a", MsgSubmitProposal(ParamChange(tuple(sorted(changes.items()))), 1))


def test_governance_switches_to_dynamic_and_back_to_the_voted_price_which_clears_the_dynamic_state():
    app, wallets = dynamic_chain("m")
    run_until(app, 18)
    run_block(app, [propose(wallets, {"pricing_mode": "dynamic", "price_elasticity": "0.5"})])  # 19
    run_block(app, [wallets.tx(v, MsgVote(2, "yes")) for v in "ab"] + [settle_tx(app, wallets, "m", "0")])  # 20
    assert app.query("params")["pricing_mode"] == "dynamic"
    for block in range(4):
        run_block(app, [settle_tx(app, wallets, "m", f"d{block}")])
    assert prices(app)["m"] == 8  # 1 → 2 → 3 → 5 → 8: up by half the price a block, rounded up
    assert dynamic_entries(app)
    run_until(app, 28)
    run_block(app, [propose(wallets, {"pricing_mode": "voted"})])  # 29
    run_block(app, [wallets.tx(v, MsgVote(3, "yes")) for v in "ab"])  # 30: in force from epoch 3
    assert prices(app) == {"m": 1}  # the voted price is back
    run_block(app)
    assert dynamic_entries(app) == {}


def test_a_hybrid_price_under_full_load_stops_at_its_band_over_the_voted_price():
    app, wallets = dynamic_chain("m", pricing_mode="hybrid", default_unit_of_compute_price=100, hybrid_band="0.1")
    assert prices(app) == {"m": 100}
    for block in range(12):
        run_block(app, [settle_tx(app, wallets, "m", str(block))])
    pricing = app.query("pricing")["models"][0]
    assert (pricing["price_per_token"], pricing["voted_price_per_token"]) == (110, 100)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        pytest.param({"pricing_mode": "auction"}, "pricing_mode", "must be one of voted, dynamic, hybrid", id="mode"),
        pytest.param({"pricing_mode": 1}, "pricing_mode", "must be one of", id="mode-type"),
        pytest.param(
            {"utilization_band_low": "0.7"}, "utilization_band_low", "must be at most utilization_band_high", id="order"
        ),
        pytest.param(
            {"utilization_band_low": "0.9", "utilization_band_high": "0.8"},
            "utilization_band_low",
            "must be at most",
            id="both-out-of-order",
        ),
        pytest.param({"utilization_band_high": "1.5"}, "utilization_band_high", 'from "0" to "1"', id="band-high"),
        pytest.param({"price_elasticity": "0"}, "price_elasticity", 'above "0" and below "1"', id="elasticity-0"),
        pytest.param({"price_elasticity": "1"}, "price_elasticity", 'above "0" and below "1"', id="elasticity-1"),
        pytest.param({"price_elasticity": "0.5x"}, "price_elasticity", "decimal string", id="elasticity-text"),
        pytest.param({"utilization_window": 0}, "utilization_window", "from 1 to 10000", id="window"),
        pytest.param({"dynamic_price_floor": 0}, "dynamic_price_floor", "", id="floor"),
        pytest.param({"hybrid_band": "2"}, "hybrid_band", 'from "0" to "1"', id="hybrid-band"),
    ],
)
def test_a_bad_dynamic_param_change_is_refused_naming_the_field_and_stores_nothing(changes, field, message):
    genesis = make_genesis({"a": 50, "b": 30, "c": 20}, **GOV)
    app, twin = make_app(genesis), make_app(genesis)
    content = {"@type": "ParamChange", "changes": changes}
    msg = {"@type": "MsgSubmitProposal", "content": content, "initial_deposit": {"amount": 1, "denom": "ngonka"}}
    body = {"chain_id": CHAIN_ID, "sender": ADDR["a"], "sequence": 0, "fee": 0, "gas_limit": 10**6, "messages": [msg]}
    result = run_block(app, [sign_body(KEYS["a"], body)], expect_ok=False)
    run_block(twin)
    assert [r.code for r in result.tx_results] == ["invalid_param_change"]
    assert field in result.tx_results[0].log and message in result.tx_results[0].log
    assert store_snapshot(app.store) == store_snapshot(twin.store)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pricing_mode": "dynamc"}, "genesis.params.pricing_mode"),
        ({"utilization_band_low": "0.8"}, "genesis.params.utilization_band_low"),
        ({"price_elasticity": "1.5"}, "genesis.params.price_elasticity"),
    ],
)
def test_a_bad_dynamic_param_is_refused_at_genesis_naming_it(params, field):
    with pytest.raises(InvalidGenesis, match=field.replace(".", r"\.")):
        Params.from_json(params)


def test_the_dynamic_params_at_their_defaults_leave_the_stored_params_unchanged():
    stored = Params().to_state_json()
    assert not {"pricing_mode", "utilization_window", "price_elasticity", "dynamic_price_floor"} & set(stored)


BASE = dynamic_chain("m", pricing_mode="dynamic", utilization_window=3, price_elasticity="0.1")


@settings(max_examples=15, deadline=None)
@given(loads=st.lists(st.lists(st.integers(1, 400), max_size=2), min_size=1, max_size=12))
def test_on_chain_the_window_sum_is_the_last_blocks_tokens_and_each_move_is_bounded(loads):
    app, wallets = copy.deepcopy(BASE)
    settled: list[int] = []
    price = prices(app)["m"]
    for block, jobs in enumerate(loads):
        txs = []
        for n, tokens in enumerate(jobs):
            r = Receipt(f"p{block}.{n}", ADDR["d"], ADDR["e"], "m", Tokens(tokens, 0), 10**12, 10**6)
            txs.append(wallets.tx("e", MsgSettleUsage(r, sign_receipt(KEYS["d"], CHAIN_ID, r))))
        run_block(app, txs)
        settled.append(sum(jobs))
        record = dynamic_entries(app)[("dprice", "m")]
        ring = [v for k, v in dynamic_entries(app).items() if k[0] == "dring"]
        assert record["window_tokens"] == sum(settled[-3:]) == sum(ring)
        after = prices(app)["m"]
        assert abs(after - price) <= ceil(price * F("0.1")) and after >= 1
        price = after

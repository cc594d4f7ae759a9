"""SPEC §3 epochs: stake changes at boundaries, the weighted-median price, and the epoch history."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.app import Application
from chain.errors import ChainError
from chain.store import MemoryStore
from chain.tx import MsgBond, MsgSend, MsgSubmitPriceProposal, MsgUnbond
from tests.helpers import (
    ADDR,
    Wallets,
    balance,
    make_app,
    make_genesis,
    run_block,
    run_until,
    signed,
    store_snapshot,
    supply_parts,
    validators,
)

SPEC_FIELDS = {
    "epoch",
    "price",
    "total_power",
    "voters",
    "non_voters",
    "min_vote",
    "max_vote",
    "registry_version",
    "fees_collected",
}
MARKET_FIELDS = {  # issue 19: the ballot's shape, participation, status and the TWAP accumulators
    "q1",
    "median",
    "q3",
    "fresh_power",
    "ballot_power",
    "participation",
    "last_fresh_epoch",
    "status",
    "price_cumulative",
    "log2_price_cumulative",
}
RECORD_FIELDS = SPEC_FIELDS | MARKET_FIELDS


def vote(price: int, denom: str = "ngonka") -> MsgSubmitPriceProposal:
    return MsgSubmitPriceProposal.of(price, denom)


def price(app: Application) -> int:
    return app.query("epoch/current")["price"]


def record(app: Application, epoch: int) -> dict:
    return app.query(f"epoch/{epoch}")


def spec_record(app: Application, epoch: int) -> dict:
    """The SPEC §3 fields of an epoch's record."""
    return {k: v for k, v in record(app, epoch).items() if k in SPEC_FIELDS}


def assert_supply_conserved(app: Application) -> None:
    supply, held = supply_parts(app.store)
    assert supply == held


def unbonded(app: Application, name: str) -> int:
    """A validator's balance with its unbonding tokens (held until max_evidence_age_blocks pass)."""
    return balance(app, name) + app.query(f"validator/{ADDR[name]}")["unbonding"]


def chain(stakes: dict[str, int], epoch_length: int = 3, **params) -> Application:
    return make_app(make_genesis(stakes, epoch_length=epoch_length, **params))


# --- the price ---------------------------------------------------------------------------------


def test_never_voter_takes_the_current_price_not_the_genesis_default():
    app, w = chain({"a": 50, "b": 30, "c": 20}), Wallets()
    run_block(app, [w.tx("a", vote(300)), w.tx("b", vote(300))])
    run_until(app, 3)
    assert price(app) == 300  # c (20) takes the default 100; 300 holds 80 of 100
    run_block(app, [w.tx("a", vote(1000)), w.tx("b", vote(50))])
    run_until(app, 6)
    # b 50 (30), c never voted -> current 300 (20), a 1000 (50): cumulative 30, 50 >= 50 -> 300.
    # Had c taken the genesis default 100, the median would be 100.
    assert price(app) == 300
    assert {k: record(app, 2)[k] for k in ("voters", "non_voters", "min_vote", "max_vote")} == {
        "voters": 2,
        "non_voters": 1,
        "min_vote": 50,
        "max_vote": 1000,
    }


def test_genesis_default_price_applies_to_never_voters_in_the_first_transition():
    app, w = chain({"a": 50, "b": 30, "c": 20}, default_unit_of_compute_price=777), Wallets()
    assert price(app) == 777
    assert record(app, 0)["price"] == 777
    run_block(app, [w.tx("c", vote(5000))])
    run_until(app, 3)
    assert price(app) == 777  # a and b (80 of 100) never voted and count at the genesis default
    assert spec_record(app, 1) == {
        "epoch": 1,
        "price": 777,
        "total_power": 100,
        "voters": 1,
        "non_voters": 2,
        "min_vote": 5000,
        "max_vote": 5000,
        "registry_version": 0,
        "fees_collected": 0,
    }


def test_price_with_no_votes_at_all_stays_at_the_genesis_default():
    app = chain({"a": 50, "b": 30, "c": 20}, default_unit_of_compute_price=123)
    run_until(app, 9)
    assert [r["price"] for r in app.query_all("history")] == [123, 123, 123, 123]


def test_vote_stays_in_force_across_epochs_until_replaced():
    app, w = chain({"a": 50, "b": 30, "c": 20}), Wallets()
    run_block(app, [w.tx("a", vote(400))])
    run_until(app, 3)
    assert price(app) == 100  # a alone holds exactly half: the lower median is 100
    run_block(app, [w.tx("c", vote(400))])
    run_until(app, 6)
    # a's epoch-0 vote is still in force: 100 (b, 30) then 400 (a + c, 70) -> 400
    assert price(app) == 400
    assert app.query("price_vote/" + ADDR["a"]) == {
        "price": 400,
        "denom": "ngonka",
        "price_ngonka": 400,
        "height": 1,
        "epoch": 0,
    }
    assert record(app, 2)["voters"] == 2
    run_block(app, [w.tx("a", vote(200))])
    run_until(app, 9)
    # a replaced its vote: 200 (a, 50) reaches half at once
    assert price(app) == 200
    assert app.query("price_vote/" + ADDR["a"])["height"] == 7
    assert app.query("price_vote/" + ADDR["a"])["epoch"] == 2


def test_price_is_constant_within_an_epoch_even_after_votes():
    app, w = chain({"a": 50, "b": 30, "c": 20}), Wallets()
    run_block(app, [w.tx("a", vote(900)), w.tx("b", vote(900)), w.tx("c", vote(900))])
    assert price(app) == 100
    run_block(app)
    assert price(app) == 100
    run_block(app)
    assert price(app) == 900


@pytest.mark.parametrize(
    ("stakes", "votes", "expected"),
    [
        pytest.param(
            {"a": 50, "b": 50}, {"a": (100, "ngonka"), "b": (200, "ngonka")}, 100, id="even-split-takes-lower"
        ),
        pytest.param(
            {"a": 10, "b": 15, "c": 20},
            {"a": (100, "ngonka"), "b": (200, "ngonka"), "c": (300, "ngonka")},
            200,
            id="spec-three-way",
        ),
        pytest.param({"a": 49, "b": 51}, {"a": (100, "ngonka"), "b": (200, "ngonka")}, 200, id="bare-majority-above"),
        pytest.param({"a": 51, "b": 49}, {"a": (100, "ngonka"), "b": (200, "ngonka")}, 100, id="bare-majority-below"),
        pytest.param(
            {"a": 50, "b": 50}, {"a": (1, "uicoin"), "b": (999, "ngonka")}, 999, id="denoms-compared-in-ngonka"
        ),
        pytest.param(
            {"a": 1, "b": 1, "c": 1},
            {"a": (2, "icoin"), "b": (3, "gonka"), "c": (1, "micoin")},
            2_000_000_000,
            id="aliases",
        ),
        pytest.param(
            {"a": 30, "b": 30, "c": 40},
            {"a": (700, "ngonka"), "b": (700, "ngonka"), "c": (100, "ngonka")},
            700,
            id="equal-votes-pool-power",
        ),
    ],
)
def test_price_is_the_lower_stake_weighted_median_of_the_votes(stakes, votes, expected):
    app, w = chain(stakes, epoch_length=1), Wallets()
    result = run_block(app, [w.tx(name, vote(*v)) for name, v in votes.items()])
    assert result.epoch_ended
    assert price(app) == expected
    assert record(app, 1)["price"] == expected


# --- stake changes ---------------------------------------------------------------------------


def test_bond_and_unbond_change_power_only_at_the_epoch_boundary():
    app, w = chain({"a": 60, "b": 25, "c": 15}, max_evidence_age_blocks=5), Wallets()
    run_block(app, [w.tx("a", MsgBond(40)), w.tx("b", MsgUnbond(10)), w.tx("c", MsgUnbond(15))])
    for _ in range(2):  # heights 1 and 2: the epoch-0 set is untouched
        assert validators(app) == {ADDR["a"]: 60, ADDR["b"]: 25, ADDR["c"]: 15}
        epoch = app.query("epoch/current")
        assert (epoch["index"], epoch["total_power"], epoch["validators"]) == (0, 100, 3)
        stakes = {v["address"]: (v["stake"], v["pending_stake"]) for v in app.query_all("validators")}
        assert stakes == {ADDR["a"]: (60, 100), ADDR["b"]: (25, 15), ADDR["c"]: (15, 0)}
        # a bond is escrowed at once; unbonded tokens leave the stake only at the boundary
        assert (balance(app, "a"), balance(app, "b"), balance(app, "c")) == (960, 1000, 1000)
        assert_supply_conserved(app)
        if app.height == 1:
            run_block(app)
    result = run_block(app)
    assert result.epoch_ended and app.height == 3
    assert validators(app) == {ADDR["a"]: 100, ADDR["b"]: 15}
    epoch = app.query("epoch/current")
    assert (epoch["index"], epoch["total_power"], epoch["validators"], epoch["start_height"]) == (1, 115, 2, 4)
    assert record(app, 1)["total_power"] == 115
    # the unbonded tokens are held, slashable, until the end of block 3 + max_evidence_age_blocks
    assert (balance(app, "a"), balance(app, "b"), balance(app, "c")) == (960, 1000, 1000)
    views = {n: app.query(f"validator/{ADDR[n]}") for n in "bc"}
    assert {n: (v["unbonding"], v["unbonding_release_height"]) for n, v in views.items()} == {
        "b": (10, 8),
        "c": (15, 8),
    }
    assert_supply_conserved(app)
    while app.height < 7:
        run_block(app)
    assert (balance(app, "b"), balance(app, "c")) == (1000, 1000)
    run_block(app)  # height 8: released at its end
    assert (balance(app, "a"), balance(app, "b"), balance(app, "c")) == (960, 1010, 1015)
    assert app.query(f"validator/{ADDR['c']}")["unbonding"] == 0
    assert_supply_conserved(app)


def test_bond_then_partial_unbond_in_one_epoch_settles_the_escrow_at_once_and_at_the_boundary():
    app, w = chain({"a": 50}), Wallets()
    run_block(app, [w.tx("a", MsgBond(30))])
    assert balance(app, "a") == 970
    run_block(app, [w.tx("a", MsgUnbond(60))])  # next stake 20: the 30 just bonded return now
    assert balance(app, "a") == 1000
    assert_supply_conserved(app)
    run_block(app)
    assert validators(app) == {ADDR["a"]: 20}
    assert (balance(app, "a"), unbonded(app, "a")) == (1000, 1030)  # the 30 in force unbond from the boundary
    assert_supply_conserved(app)


def test_zero_total_power_keeps_the_price_and_a_new_validator_restarts_voting():
    app, w = chain({"a": 50, "b": 30, "c": 20}), Wallets()
    run_block(app, [w.tx(n, vote(900), MsgUnbond(s)) for n, s in (("a", 50), ("b", 30), ("c", 20))])
    run_until(app, 3)
    assert validators(app) == {}
    epoch = app.query("epoch/current")
    assert (epoch["price"], epoch["total_power"], epoch["validators"]) == (100, 0, 0)
    assert spec_record(app, 1) == {
        "epoch": 1,
        "price": 100,
        "total_power": 0,
        "voters": 0,
        "non_voters": 0,
        "min_vote": None,
        "max_vote": None,
        "registry_version": 0,
        "fees_collected": 0,
    }
    assert (unbonded(app, "a"), unbonded(app, "b"), unbonded(app, "c")) == (1050, 1030, 1020)
    assert_supply_conserved(app)
    run_until(app, 6)
    assert price(app) == 100
    run_block(app, [w.tx("d", MsgBond(10), vote(250))])
    run_until(app, 9)
    assert validators(app) == {ADDR["d"]: 10}
    assert price(app) == 250


def test_joiner_becomes_a_validator_next_epoch_and_its_vote_counts_in_that_transition():
    app, w = chain({"a": 50, "b": 30, "c": 20}), Wallets()
    run_block(app, [w.tx("d", MsgBond(200))])
    run_block(app, [w.tx("d", vote(1000))])
    assert ADDR["d"] not in validators(app)
    assert app.query("epoch/current")["total_power"] == 100
    run_block(app)
    assert validators(app) == {ADDR["a"]: 50, ADDR["b"]: 30, ADDR["c"]: 20, ADDR["d"]: 200}
    # 100 (a, b, c never voted: 100 power) then 1000 (d, 200) of 300 -> 1000
    assert price(app) == 1000
    assert {k: record(app, 1)[k] for k in ("total_power", "voters", "non_voters", "min_vote")} == {
        "total_power": 300,
        "voters": 1,
        "non_voters": 3,
        "min_vote": 1000,
    }
    assert balance(app, "d") == 800
    assert_supply_conserved(app)


@pytest.mark.parametrize(("leaves", "expected"), [(True, 100), (False, 1000)])
def test_leaver_drops_out_at_the_boundary_and_its_vote_no_longer_counts(leaves, expected):
    app, w = chain({"a": 60, "b": 25, "c": 15}), Wallets()
    run_block(app, [w.tx("a", vote(1000))])
    run_block(app, [w.tx("a", MsgUnbond(60))] if leaves else [])
    assert validators(app)[ADDR["a"]] == 60  # still a validator until the boundary
    run_block(app)
    assert price(app) == expected
    if leaves:
        assert validators(app) == {ADDR["b"]: 25, ADDR["c"]: 15}
        assert (balance(app, "a"), unbonded(app, "a")) == (1000, 1060)
        assert (record(app, 1)["voters"], record(app, 1)["non_voters"]) == (0, 2)
        # the stored vote stays in force: when a rejoins, it counts again
        run_block(app, [w.tx("a", MsgBond(60))])
        run_until(app, 6)
        assert price(app) == 1000
    else:
        assert validators(app) == {ADDR["a"]: 60, ADDR["b"]: 25, ADDR["c"]: 15}
    assert_supply_conserved(app)


def test_a_validator_that_unbonded_all_may_still_vote_during_its_last_epoch():
    app, w = chain({"a": 60, "b": 25, "c": 15}), Wallets()
    run_block(app, [w.tx("a", MsgUnbond(60))])
    result = run_block(app, [w.tx("a", vote(5))])
    assert result.tx_results[0].ok
    assert app.query("price_vote/" + ADDR["a"])["price"] == 5


# --- epochs and history ------------------------------------------------------------------------


def test_epoch_e_spans_heights_e_times_l_plus_1_to_e_plus_1_times_l():
    app, w = chain({"a": 50, "b": 30, "c": 20}, epoch_length=4), Wallets()
    ended = []
    for height in range(1, 13):
        result = run_block(app, [w.tx("a", vote(100 + height))])
        ended.append(result.epoch_ended)
        epoch = app.query("epoch/current")
        assert epoch["index"] == height // 4
        assert epoch["start_height"] == 4 * (height // 4) + 1
        assert app.query("price_vote/" + ADDR["a"])["epoch"] == (height - 1) // 4
    assert [h for h, e in zip(range(1, 13), ended) if e] == [4, 8, 12]


def test_epoch_length_one_runs_a_transition_every_block():
    app, w = chain({"a": 1}, epoch_length=1), Wallets()
    for height in range(1, 5):
        assert run_block(app, [w.tx("a", vote(height * 10))]).epoch_ended
        assert price(app) == height * 10
    assert len(app.query_all("history")) == 5


def test_history_has_one_record_per_epoch_from_epoch_0_with_the_spec_fields():
    app, w = chain({"a": 50, "b": 30, "c": 20}), Wallets()
    run_block(app, [w.tx("a", vote(200))])
    run_until(app, 9)
    history = app.query_all("history")
    assert [r["epoch"] for r in history] == [0, 1, 2, 3]
    assert all(set(r) == RECORD_FIELDS for r in history)
    history = [{k: v for k, v in r.items() if k in SPEC_FIELDS} for r in app.query_all("history")]
    assert history[0] == {
        "epoch": 0,
        "price": 100,
        "total_power": 100,
        "voters": 0,
        "non_voters": 3,
        "min_vote": None,
        "max_vote": None,
        "registry_version": 0,
        "fees_collected": 0,
    }
    for r in history[1:]:  # a's vote (50 of 100) stays in force; 100 still holds half
        assert r == {**history[0], "epoch": r["epoch"], "voters": 1, "non_voters": 2, "min_vote": 200, "max_vote": 200}
    full = app.query_all("history")
    for n, r in enumerate(full):
        assert record(app, n) == r
    assert app.query_all("history", from_epoch=1, to_epoch=2) == full[1:3]
    assert app.query_all("history", from_epoch=3) == full[3:]
    with pytest.raises(ChainError) as info:
        record(app, 4)
    assert info.value.code == "not_found"


# --- the supply / app-hash property -------------------------------------------------------------

NAMES = st.sampled_from("abcde")
OPS = st.one_of(
    st.tuples(st.just("send"), NAMES, NAMES, st.integers(1, 700)),
    st.tuples(st.just("bond"), NAMES, st.integers(1, 700)),
    st.tuples(st.just("unbond"), NAMES, st.integers(1, 120)),
    st.tuples(
        st.just("vote"),
        NAMES,
        st.integers(1, 10**6),
        st.sampled_from(["ngonka", "nicoin", "uicoin", "ugonka", "micoin", "mgonka", "icoin", "gonka"]),
    ),
)


def _message(op):
    kind = op[0]
    if kind == "send":
        return op[1], MsgSend(ADDR[op[2]], op[3])
    if kind == "bond":
        return op[1], MsgBond(op[2])
    if kind == "unbond":
        return op[1], MsgUnbond(op[2])
    return op[1], vote(op[2], op[3])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(OPS, max_size=4), min_size=1, max_size=7))
def test_random_valid_activity_conserves_supply_and_keeps_the_app_hash_recomputable(blocks):
    genesis = make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=2)
    app = make_app(genesis)
    mirror = make_app(genesis)  # same blocks, no check_tx: signatures verified in the block
    supply0, _ = supply_parts(app.store)
    nxt: dict[str, int] = defaultdict(int)
    for ops in blocks:
        raws, codes = [], []
        for op in ops:
            name, msg = _message(op)
            raw = signed(name, nxt[name], msg)
            checked = app.check_tx(raw)
            if checked.ok:
                nxt[name] += 1
            raws.append(raw)
            codes.append(checked.code)
        result = app.finalize_block(app.height + 1, raws)
        assert [r.code for r in result.tx_results] == codes
        app.commit()
        assert mirror.finalize_block(mirror.height + 1, raws).app_hash == result.app_hash
        mirror.commit()

        supply, held = supply_parts(app.store)
        assert supply == held == supply0
        assert app.app_hash == app.recompute_app_hash() == result.app_hash
        snap = store_snapshot(app.store)
        assert all(v["power"] == v["stake"] > 0 for v in app.query_all("validators"))
        assert all(app.query("account/" + ADDR[n])["balance"] >= 0 for n in "abcde")
        epoch = app.query("epoch/current")
        assert epoch["price"] > 0
        assert epoch["index"] == app.height // 2
        assert len(app.query_all("history")) == epoch["index"] + 1
        assert store_snapshot(mirror.store) == snap


def test_replaying_the_same_blocks_on_a_fresh_app_gives_the_same_app_hash_at_every_height():
    w = Wallets()
    blocks = [
        [w.tx("a", vote(300)), w.tx("d", MsgBond(100)), w.tx("b", MsgSend(ADDR["e"], 7))],
        [w.tx("d", vote(2, "uicoin")), w.tx("c", MsgUnbond(20))],
        [],
        [w.tx("a", MsgBond(5)), w.tx("e", MsgSend(ADDR["a"], 3))],
        [w.tx("b", vote(1, "micoin"))],
        [],
    ]
    genesis = make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=2)
    runs = []
    for _ in range(2):
        app = Application(MemoryStore())
        hashes = [app.init_chain(genesis)]
        for txs in blocks:
            hashes.append(run_block(app, txs).app_hash)
        runs.append(hashes)
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == len(runs[0])

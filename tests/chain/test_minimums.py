"""Minimums and bounds of issue 15: min_self_bond, min_initial_deposit, the open-proposal cap per account,
and max_validators (the top N by stake at each boundary, ties by address)."""

from __future__ import annotations

import pytest

from chain.errors import InvalidGenesis
from chain.tx import MsgBond, MsgSubmitProposal, MsgUnbond, RegisterModel
from tests.helpers import ADDR, Wallets, make_app, make_genesis, run_block, run_until, store_snapshot


def register(deposit: int = 100) -> MsgSubmitProposal:
    return MsgSubmitProposal(RegisterModel("model-alpha", 10), deposit)


def state_but_height(app) -> dict:
    return {k: v for k, v in store_snapshot(app.store).items() if k != ("meta", "height")}


# (case, params, committed setup: (name, msg) each, the refused (name, msg), its code)
REFUSED = [
    ("bond below min_self_bond", {"min_self_bond": 100}, [], ("e", MsgBond(99)), "below_min_self_bond"),
    (
        "unbond of 1 from a stake at min_self_bond",
        {"min_self_bond": 100},
        [],
        ("a", MsgUnbond(1)),
        "below_min_self_bond",
    ),
    (
        "unbond leaving a stake between 0 and min_self_bond",
        {"min_self_bond": 100},
        [("e", MsgBond(150))],
        ("e", MsgUnbond(60)),
        "below_min_self_bond",
    ),
    (
        "initial deposit below min_initial_deposit",
        {"min_initial_deposit": 50},
        [],
        ("e", register(49)),
        "below_min_initial_deposit",
    ),
    (
        "a third open proposal over max_open_proposals_per_account 2",
        {"max_open_proposals_per_account": 2},
        [("e", register()), ("e", register())],
        ("e", register()),
        "too_many_open_proposals",
    ),
]


@pytest.mark.parametrize(("case", "params", "setup", "refused", "code"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_tx_under_a_minimum_or_over_a_cap_is_refused_with_its_code_and_changes_nothing(
    case, params, setup, refused, code
):
    app, w = make_app(make_genesis({"a": 100, "b": 100}, epoch_length=100, min_deposit=100, **params)), Wallets()
    run_block(app, [w.tx(name, msg) for name, msg in setup])
    before = state_but_height(app)
    name, msg = refused
    result = run_block(app, [w.tx(name, msg)], expect_ok=False)
    assert [r.code for r in result.tx_results] == [code]
    assert state_but_height(app) == before


# (case, params, committed (name, msg) that must all succeed)
ACCEPTED = [
    ("bond of exactly min_self_bond", {"min_self_bond": 100}, [("e", MsgBond(100))]),
    ("unbond of the whole stake", {"min_self_bond": 100}, [("e", MsgBond(150)), ("e", MsgUnbond(150))]),
    ("unbond down to min_self_bond", {"min_self_bond": 100}, [("e", MsgBond(150)), ("e", MsgUnbond(50))]),
    ("initial deposit of exactly min_initial_deposit", {"min_initial_deposit": 50}, [("e", register(50))]),
    ("proposals up to the cap", {"max_open_proposals_per_account": 2}, [("e", register()), ("e", register())]),
]


@pytest.mark.parametrize(("case", "params", "txs"), ACCEPTED, ids=[r[0] for r in ACCEPTED])
def test_a_tx_at_a_minimum_or_within_a_cap_is_accepted(case, params, txs):
    app, w = make_app(make_genesis({"a": 100, "b": 100}, epoch_length=100, min_deposit=100, **params)), Wallets()
    run_block(app, [w.tx(name, msg) for name, msg in txs])


def test_a_proposal_that_ends_frees_a_place_under_the_open_proposal_cap():
    genesis = make_genesis({"a": 100}, epoch_length=100, max_open_proposals_per_account=1, max_deposit_period=2)
    app, w = make_app(genesis), Wallets()
    run_block(app, [w.tx("e", register(10))])  # below min_deposit: dropped at height 3
    assert [r.code for r in run_block(app, [w.tx("e", register(10))], expect_ok=False).tx_results] == [
        "too_many_open_proposals"
    ]
    w.next["e"] -= 1  # the refused tx did not use its sequence
    run_until(app, 3)
    assert app.query("proposal/1")["status"] == "dropped"
    run_block(app, [w.tx("e", register(10))])
    assert app.query("proposal/2")["status"] == "deposit_period"


def test_a_genesis_stake_below_min_self_bond_is_refused():
    with pytest.raises(InvalidGenesis, match=r"validators\[1\]\.stake"):
        make_app(make_genesis({"a": 100, "b": 99}, min_self_bond=100))


# --- max_validators ------------------------------------------------------------------------------

SORTED = sorted("abcdefgh", key=lambda n: ADDR[n])  # the names in address order


def powers(app) -> dict[str, int]:
    return {v["address"]: v["power"] for v in app.query_all("validators")}


# (case, stakes by rank in address order, max_validators, ranks that get power)
SELECTION = [
    ("all fit", [5, 4, 3], 3, [0, 1, 2]),
    ("the top two by stake", [1, 9, 5, 7], 2, [1, 3]),
    ("a tie at the cut goes to the lower address", [5, 5, 5, 1], 2, [0, 1]),
    ("a tie at the cut with the higher address first in stake order", [1, 5, 9, 5], 2, [1, 2]),
    ("one seat", [3, 3, 3], 1, [0]),
]


@pytest.mark.parametrize(("case", "stakes", "limit", "chosen"), SELECTION, ids=[r[0] for r in SELECTION])
def test_genesis_gives_power_to_the_top_max_validators_by_stake_ties_by_address(case, stakes, limit, chosen):
    names = SORTED[: len(stakes)]
    app = make_app(make_genesis(dict(zip(names, stakes)), max_validators=limit))
    assert powers(app) == {ADDR[names[i]]: stakes[i] for i in chosen}
    assert app.query("epoch/current")["validators"] == len(chosen)


@pytest.mark.parametrize(("case", "stakes", "limit", "chosen"), SELECTION, ids=[r[0] for r in SELECTION])
def test_a_boundary_gives_power_to_the_top_max_validators_and_the_rest_keep_their_bond(case, stakes, limit, chosen):
    names = SORTED[: len(stakes)]
    balances = {n: 100 for n in names}
    genesis = make_genesis({SORTED[7]: 50}, balances, epoch_length=2, max_validators=limit)
    app, w = make_app(genesis), Wallets()
    run_block(app, [w.tx(n, MsgBond(s)) for n, s in zip(names, stakes)])
    run_block(app, [w.tx(SORTED[7], MsgUnbond(50))])  # height 2 ends epoch 0
    assert powers(app) == {ADDR[names[i]]: stakes[i] for i in chosen}
    for n, s in zip(names, stakes):  # every bond is still held, with or without power
        assert app.query("account/" + ADDR[n])["balance"] == 100 - s


def test_a_validator_outside_the_set_enters_when_a_member_unbonds():
    names = SORTED[:3]
    app, w = make_app(make_genesis(dict(zip(names, [9, 8, 7])), epoch_length=2, max_validators=2)), Wallets()
    assert set(powers(app)) == {ADDR[names[0]], ADDR[names[1]]}
    run_block(app, [w.tx(names[0], MsgUnbond(9))])
    run_block(app)
    assert powers(app) == {ADDR[names[1]]: 8, ADDR[names[2]]: 7}

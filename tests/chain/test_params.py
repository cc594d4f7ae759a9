"""The chain params (`chain.params.Params`) and the epoch arithmetic the chain owns (`chain.rules`)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.app import Application
from chain.epochs import (
    compute_effective_epoch,
    compute_epoch_at_height,
    compute_epoch_start_height,
    is_epoch_end,
)
from chain.errors import InvalidGenesis
from chain.params import DEFAULT_PARAMS, ParamInfo, Params, describe_params
from chain.store import MemoryStore
from chain.tx import MsgBond, MsgSubmitPriceProposal, MsgUnbond
from tests.helpers import ADDR, Wallets, make_app, make_genesis, run_block
from tests.helpers import DEFAULT_PARAMS as DEFAULTS

# --- Params ------------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones_and_missing_params_take_them():
    assert Params().to_json() == DEFAULTS
    assert DEFAULT_PARAMS == Params() == Params.from_json({})
    assert Params.from_json({"epoch_length": 3}) == dataclasses.replace(DEFAULT_PARAMS, epoch_length=3)


def test_every_param_is_described_once_with_its_default_and_schema():
    infos = describe_params()
    assert [i.name for i in infos] == list(Params().to_json())
    assert {i.name: i.default for i in infos} == DEFAULTS
    for info in infos:
        assert isinstance(info, ParamInfo)
        assert info.description and "\n" not in info.description
        assert info.schema["type"] in ("integer", "string", "boolean")


# (param, a bad value) for every validator: each refuses with InvalidGenesis naming the field
BAD_VALUES = [
    ("epoch_length", 0),
    ("epoch_length", -1),
    ("epoch_length", 2**63),
    ("epoch_length", 2.5),
    ("epoch_length", "10"),
    ("epoch_length", True),
    ("epoch_length", None),
    ("min_deposit", 0),
    ("max_deposit_period", 0),
    ("voting_period", -20),
    ("voting_period", "20"),
    ("quorum", "1.5"),
    ("quorum", 0.5),
    ("quorum", "-0.1"),
    ("quorum", ".5"),
    ("quorum", "1e-3"),
    ("threshold", 1),
    ("threshold", "½"),
    ("veto_threshold", None),
    ("veto_threshold", "0,334"),
    ("min_gas_price", 0),
    ("min_gas_price", "-1"),
    ("min_gas_price", "1000000000.5"),
    ("min_gas_price", "1e-3"),
    ("burn_vote_veto", 1),
    ("burn_vote_veto", "true"),
    ("burn_vote_veto", None),
    ("default_unit_of_compute_price", 0),
    ("default_unit_of_compute_price", -1),
    ("default_unit_of_compute_price", 1.5),
    ("default_unit_of_compute_price", 2**63),
    ("default_unit_of_compute_price", None),
    ("default_unit_of_compute_price", "100"),
    ("max_block_txs", 0),
    ("max_block_txs", 2**63),
    ("max_block_txs", "2"),
    ("max_block_bytes", 0),
    ("max_block_bytes", -1),
    ("max_block_bytes", 1.5),
    ("max_block_evidence", 0),
    ("max_evidence_age_blocks", 0),
    ("slash_fraction_double_sign", "1.01"),
    ("slash_fraction_double_sign", 0.05),
    ("jail_blocks", 0),
    ("min_self_bond", 0),
    ("max_validators", 0),
    ("max_validators", "100"),
    ("min_initial_deposit", -1),
    ("max_open_proposals_per_account", 0),
    ("burn_proposal_deposit_prevote", 1),
    ("vote_reward_share", "1.5"),
    ("vote_reward_share", 0.5),
    ("reward_band", "-0.01"),
    ("reward_band", None),
    ("miss_window", -1),
    ("min_valid_per_window", 1),
    ("slash_fraction_miss", "2"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_each_validator_refuses_a_bad_value_with_invalid_genesis(name, value):
    with pytest.raises(InvalidGenesis) as info:
        Params.from_json({name: value})
    assert info.value.code == "invalid_genesis"
    assert f"genesis.params.{name}" in str(info.value)
    with pytest.raises(InvalidGenesis):  # built in code, the same checks run
        Params(**{name: value})


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1], "genesis.params must be an object"),
        (None, "genesis.params must be an object (omit it for the defaults)"),
        ("params", "genesis.params must be an object"),
        ({"block_time": 5}, "genesis.params has unknown field(s): block_time"),
        ({"b": 1, "a": 2, "epoch_length": 3}, "genesis.params has unknown field(s): a, b"),
    ],
)
def test_a_params_object_with_a_bad_shape_or_unknown_keys_is_refused(obj, reason):
    with pytest.raises(InvalidGenesis) as info:
        Params.from_json(obj)
    assert str(info.value) == reason


def test_error_messages_are_those_genesis_always_gave():
    cases = {
        ("epoch_length", 0): "genesis.params.epoch_length must be an integer ≥ 1 and < 2^63, got 0",
        ("quorum", "2"): 'genesis.params.quorum must be a decimal string from "0" to "1", got \'2\'',
        ("burn_vote_veto", 1): "genesis.params.burn_vote_veto must be true or false, got 1",
    }
    for (name, value), message in cases.items():
        with pytest.raises(InvalidGenesis) as info:
            Params.from_json({name: value})
        assert str(info.value) == message


def test_the_first_bad_param_in_declaration_order_is_the_one_reported():
    with pytest.raises(InvalidGenesis) as info:
        Params.from_json({"default_unit_of_compute_price": 0, "quorum": "9", "epoch_length": 0})
    assert "epoch_length" in str(info.value)


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_PARAMS.epoch_length = 5  # type: ignore[misc]


params_json = st.fixed_dictionaries(
    {},
    optional={
        "epoch_length": st.integers(1, 2**63 - 1),
        "min_deposit": st.integers(1, 2**63 - 1),
        "max_deposit_period": st.integers(1, 2**63 - 1),
        "voting_period": st.integers(1, 2**63 - 1),
        "quorum": st.sampled_from(["0", "1", "0.5", "0.334", "1.000", "0.0000001"]),
        "threshold": st.sampled_from(["0", "1", "0.5", "0.999"]),
        "veto_threshold": st.sampled_from(["0", "0.334", "1.0"]),
        "burn_vote_veto": st.booleans(),
        "default_unit_of_compute_price": st.integers(1, 2**63 - 1),
        "max_block_txs": st.integers(1, 2**63 - 1),
        "max_block_bytes": st.integers(1, 2**63 - 1),
        "min_self_bond": st.integers(1, 2**63 - 1),
        "max_validators": st.integers(1, 2**63 - 1),
        "min_initial_deposit": st.integers(1, 2**63 - 1),
        "max_open_proposals_per_account": st.integers(1, 2**63 - 1),
        "burn_proposal_deposit_prevote": st.booleans(),
    },
)


@given(params_json)
def test_params_round_trip_to_the_same_dict(obj):
    params = Params.from_json(obj)
    assert params.to_json() == {**DEFAULTS, **obj}
    assert Params.from_json(params.to_json()) == params


def test_the_chain_stores_and_serves_the_params_dict_unchanged():
    genesis = make_genesis({"a": 10}, epoch_length=4, quorum="0.40", burn_vote_veto=False)
    app = make_app(genesis)
    expected = {**DEFAULTS, "epoch_length": 4, "quorum": "0.40", "burn_vote_veto": False, "min_gas_price": "0"}
    assert app.query("params") == expected


# --- epoch arithmetic --------------------------------------------------------------------------

# (epoch length, height, epoch of the height, is it the epoch's last block)
EPOCH_TABLE = [
    (10, 0, 0, False),  # genesis is in epoch 0 and ends nothing
    (10, 1, 0, False),
    (10, 9, 0, False),
    (10, 10, 0, True),
    (10, 11, 1, False),
    (10, 20, 1, True),
    (10, 21, 2, False),
    (1, 0, 0, False),
    (1, 1, 0, True),
    (1, 2, 1, True),
    (1, 7, 6, True),
    (3, 3, 0, True),
    (3, 4, 1, False),
    (3, 6, 1, True),
    (3, 7, 2, False),
]


@pytest.mark.parametrize(("length", "height", "epoch", "ends"), EPOCH_TABLE)
def test_epoch_at_height_and_epoch_end(length, height, epoch, ends):
    params = Params(epoch_length=length)
    for given_ in (length, params):  # the params or the length itself
        assert compute_epoch_at_height(given_, height) == epoch
        assert is_epoch_end(given_, height) is ends
        assert compute_effective_epoch(given_, height) == epoch + 1


@pytest.mark.parametrize(
    ("length", "epoch", "start"), [(10, 0, 1), (10, 1, 11), (10, 7, 71), (1, 0, 1), (1, 5, 6), (3, 2, 7)]
)
def test_epoch_start_height(length, epoch, start):
    assert compute_epoch_start_height(length, epoch) == start
    assert compute_epoch_start_height(Params(epoch_length=length), epoch) == start


@given(st.integers(1, 10_000), st.integers(0, 10**9))
def test_an_epoch_starts_after_the_last_block_of_the_one_before(length, epoch):
    start = compute_epoch_start_height(length, epoch)
    assert compute_epoch_at_height(length, start) == epoch
    assert compute_epoch_at_height(length, start + length - 1) == epoch
    assert is_epoch_end(length, start + length - 1)
    assert compute_epoch_at_height(length, start + length) == epoch + 1
    assert not is_epoch_end(length, start) or length == 1


@given(st.integers(1, 10_000), st.integers(1, 10**12))
def test_a_height_lies_in_its_epoch_and_takes_effect_in_the_next(length, height):
    epoch = compute_epoch_at_height(length, height)
    assert compute_epoch_start_height(length, epoch) <= height < compute_epoch_start_height(length, epoch + 1)
    assert compute_effective_epoch(length, height) == epoch + 1
    assert is_epoch_end(length, height) == (compute_epoch_at_height(length, height + 1) == epoch + 1)


def test_the_chain_runs_its_epochs_at_the_heights_the_arithmetic_gives():
    """The app's own epochs (BlockResult.epoch, epoch/current) agree with the functions, and a price vote
    counts from compute_effective_epoch."""
    length = 3
    app, w = make_app(make_genesis({"a": 50, "b": 30}, epoch_length=length)), Wallets()
    for height in range(1, 11):
        txs = [w.tx("a", MsgSubmitPriceProposal.of(100 + height, "ngonka"))] if height == 5 else []
        result = run_block(app, txs)
        assert result.epoch == compute_epoch_at_height(length, height)
        assert result.epoch_ended is is_epoch_end(length, height)
        current = app.query("epoch/current")
        assert current["index"] == compute_epoch_at_height(length, height + 1)
        assert current["start_height"] == compute_epoch_start_height(length, current["index"])
    voted_from = compute_effective_epoch(length, 5)
    assert app.query(f"epoch/{voted_from - 1}")["price"] == 100
    assert app.query(f"epoch/{voted_from}")["price"] == 105


def powers(**by_name: int) -> tuple[tuple[str, int], ...]:
    """(address, power) sorted by address, as the chain gives them."""
    return tuple(sorted((ADDR[name], power) for name, power in by_name.items()))


def test_block_result_carries_the_next_powers_only_at_an_epoch_end():
    app, w = make_app(make_genesis({"a": 50, "b": 30}, epoch_length=2)), Wallets()
    assert app.get_validator_powers() == powers(a=50, b=30)
    first = run_block(app, [w.tx("a", MsgBond(10)), w.tx("b", MsgUnbond(30))])
    assert (first.epoch, first.epoch_ended, first.next_powers) == (0, False, None)
    assert app.get_validator_powers() == powers(a=50, b=30)
    second = run_block(app)
    assert (second.epoch, second.epoch_ended) == (0, True)
    assert second.next_powers == powers(a=60) == app.get_validator_powers()


def test_get_validator_powers_after_genesis_is_the_set_of_height_1():
    app = Application(MemoryStore())
    app.init_chain(make_genesis({"b": 3, "a": 7}))
    assert app.get_validator_powers() == powers(a=7, b=3)


def test_the_next_powers_are_what_the_store_holds_after_every_block():
    """A node can keep its validator set from BlockResult alone: the previous powers, or next_powers at an
    epoch end, are always the committed set after the block (what it used to read back from the store)."""
    app, w = make_app(make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=2)), Wallets()
    plan = {1: [("a", MsgBond(5))], 2: [("c", MsgUnbond(20))], 4: [("d", MsgBond(7))], 5: [("a", MsgUnbond(55))]}
    known = app.get_validator_powers()
    for height in range(1, 9):
        result = run_block(app, [w.tx(name, msg) for name, msg in plan.get(height, [])])
        if result.next_powers is not None:
            known = result.next_powers
        assert known == app.get_validator_powers()
    assert known == powers(b=30, d=7)

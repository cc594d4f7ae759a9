"""Adversarial strategies (issue 17): copycat, cartel, sybil and free_rider, their scenario keys, their
votes (pure rules, table-driven and a hypothesis property), their behaviour in in-process runs, and
the per-strategy summary."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chain.app import Application
from chain.median import weighted_median
from chain.rules import compute_reward_band
from devnet.errors import ScenarioError
from devnet.network import check_network_strategies
from devnet.scenario import ValidatorSpec, parse_scenario
from devnet.simulate import get_key
from devnet.strategies import (
    Account,
    Observation,
    StrategyTally,
    compute_cartel_target,
    compute_cartel_vote,
    compute_copycat_vote,
    compute_rewards,
)
from node.store import SqliteStore

HEADER = "seed = 4\nepochs = {epochs}\nepoch_length = {length}\ndefault_unit_of_compute_price = 1000\n{extra}\n"


def validator(name: str, stake: int, strategy: str, **fields: int | str) -> str:
    """A [[validators]] table; string values are quoted."""
    lines = ["[[validators]]", f'name = "{name}"', f"stake = {stake}", f'strategy = "{strategy}"']
    lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def scenario_text(*validators: str, epochs: int = 4, length: int = 2, extra: str = "") -> str:
    return HEADER.format(epochs=epochs, length=length, extra=extra) + "\n".join(validators)


def last_votes(out) -> dict[str, int | None]:
    """Each validator's vote in force at the end of a run, by address."""
    store = SqliteStore(out / "state.db")
    try:
        app = Application(store)
        return {v["address"]: v["last_vote"] for v in app.query_all("validators")}
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# Pure rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "visible", "mode", "expected"),
    [
        (1000, [(1200, 10), (1500, 30)], "open", 1500),  # the weighted median of what it sees
        (1000, [(1200, 30), (1500, 10)], "open", 1200),
        (1000, [], "open", 1000),  # nothing visible yet: the previous median (the current price)
        (1000, [(1200, 30), (1500, 10)], "commit_reveal", 1000),  # commits hide this epoch's votes
    ],
)
def test_copycat_votes_the_median_it_can_see_in_open_mode_and_the_current_price_otherwise(
    price, visible, mode, expected
) -> None:
    assert compute_copycat_vote(price, visible, mode) == expected


@pytest.mark.parametrize(
    ("reference", "bps", "direction", "expected"),
    [(1000, 500, "up", 1050), (1000, 500, "down", 950), (1000, 9_999, "down", 1), (2**62, 100_000, "up", 2**63 - 1)],
)
def test_cartel_target_moves_the_reference_by_target_bps_and_stays_a_valid_price(
    reference, bps, direction, expected
) -> None:
    assert compute_cartel_target(reference, bps, direction) == expected


OTHERS = [(900, 10), (1000, 40), (1100, 10)]  # median 1000, IQR [1000, 1000]: band 1000 × (1 ± 2%)
BAND = Fraction("0.02")


@pytest.mark.parametrize(
    ("bps", "direction", "cartel_power", "total_power", "expected", "why"),
    [
        (1_000, "up", 20, 80, 1020, "a minority shades the target (1100) to the band's top edge"),
        (1_000, "down", 20, 80, 980, "a minority shades the target (900) to the band's bottom edge"),
        (100, "up", 20, 80, 1010, "a target inside the band is voted as it is"),
        (1_000, "up", 40, 80, 1020, "exactly half is not more than half: still shaded"),
        (1_000, "up", 61, 121, 1100, "more than half of the power votes the target"),
    ],
)
def test_cartel_vote_is_the_target_with_a_majority_else_the_nearest_point_of_the_band(
    bps, direction, cartel_power, total_power, expected, why
) -> None:
    assert compute_cartel_vote(1000, bps, direction, cartel_power, total_power, OTHERS, BAND) == expected, why


def test_cartel_without_other_votes_aims_from_the_current_price() -> None:
    assert compute_cartel_vote(1000, 500, "up", 10, 10, [], BAND) == 1050


ballots = st.lists(st.tuples(st.integers(1, 10_000), st.integers(1, 1_000)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(others=ballots, bps=st.integers(1, 100_000), share=st.integers(1, 99), direction=st.sampled_from(["up", "down"]))
def test_a_minority_cartels_vote_lies_in_the_reward_band_of_the_final_ballot(others, bps, share, direction) -> None:
    honest_power = sum(p for _, p in others)
    power = min(max(1, honest_power * share // 100), honest_power - 1)  # less than half
    assume(power >= 1)
    bps = min(bps, 9_999) if direction == "down" else bps
    vote = compute_cartel_vote(1000, bps, direction, power, honest_power + power, others, BAND)
    band = compute_reward_band([*others, (vote, power)], BAND)
    assert band is not None and band[0] <= vote <= band[1]
    median = weighted_median([*others, (vote, power)])
    assert min(p for p, _ in others) <= median <= max(p for p, _ in others)


def test_rewards_are_the_wealth_gained_with_fees_paid_and_slashes_added_back() -> None:
    start, end = Account(wealth=1_000, fees_paid=5, slashed=0), Account(wealth=1_100, fees_paid=25, slashed=50)
    assert compute_rewards(start, end) == 100 + 20 + 50


def test_price_vs_honest_measures_the_deviation_from_the_honest_median_and_counts_epochs_outside_the_range() -> None:
    ballot = {"h1": (10, 1000), "h2": (10, 1100), "x": (30, 5000)}
    inside = Observation(0, 1100, 1000, ballot)
    outside = Observation(1, 5000, 1100, ballot)
    tally = StrategyTally([ValidatorSpec(name, 1, "honest" if name != "x" else "cartel") for name in ballot])
    tally.add(inside)
    tally.add(outside)
    report = tally.price_vs_honest()
    # honest median 1000 (lower median of two equal powers); 1100 is 1,000 bps off, 5000 is 40,000
    assert report == {
        "epochs_compared": 2,
        "mean_deviation_bps": 20_500.0,
        "max_deviation_bps": 40_000.0,
        "epochs_outside_honest_range": 1,
    }


# ---------------------------------------------------------------------------------------------
# Scenario keys
# ---------------------------------------------------------------------------------------------


def test_sybil_is_split_into_count_validators_with_their_own_names_keys_and_the_stake_shared_out() -> None:
    s = parse_scenario(scenario_text(validator("many", 10, "sybil", count=3, price=700)))
    assert [(v.name, v.stake, v.group, v.price) for v in s.validators] == [
        ("many-1", 4, "many", 700),
        ("many-2", 3, "many", 700),
        ("many-3", 3, "many", 700),
    ]
    assert len({get_key(v.name).address for v in s.validators}) == 3


@pytest.mark.parametrize(
    ("validators", "extra", "message"),
    [
        ([validator("c", 10, "cartel", group="g", target_bps=100)], "", "validators[0].direction is required"),
        ([validator("c", 10, "cartel", group="g", target_bps=0, direction="up")], "", "target_bps must be an integer"),
        ([validator("c", 10, "cartel", group="g", target_bps=10_000, direction="down")], "", "between 1 and 9999"),
        ([validator("c", 10, "cartel", group="G!", target_bps=1, direction="up")], "", "group must be 1-32"),
        (
            [
                validator("c", 10, "cartel", group="g", target_bps=100, direction="up"),
                validator("d", 10, "cartel", group="g", target_bps=200, direction="up"),
            ],
            "",
            'validators[1].group "g" aims at up 200 bps, but its member c at up 100 bps',
        ),
        ([validator("s", 2, "sybil", count=3, price=5)], "", "stake must be at least count (3)"),
        ([validator("s", 20, "sybil", count=1, price=5)], "", "count must be an integer between 2 and 1000"),
        ([validator("s", 20, "sybil", count=2, price=5), validator("s-2", 5, "copycat")], "", '"s-2" is used by'),
        ([validator("c", 10, "copycat", price=5)], "", 'price does not apply to strategy "copycat"'),
        ([validator("f", 10, "free_rider", target_bps=5)], "", 'target_bps does not apply to strategy "free_rider"'),
        ([validator("a", 10, "copycat")], "[params]\nnope = 1\n", "params.nope is not a known key"),
        ([validator("a", 10, "copycat")], "[params]\nepoch_length = 3\n", "params.epoch_length is a top-level key"),
        ([validator("a", 10, "copycat")], '[params]\nvote_mode = "open"\n', "params.vote_mode is a top-level key"),
        ([validator("a", 10, "copycat")], '[params]\nreward_band = "2"\n', "params.reward_band must be a decimal"),
        (
            [validator("a", 10, "copycat")],
            "[params]\nmiss_window = 2\nmin_valid_per_window = 3\n",
            "params.min_valid_per_window must be at most miss_window (2)",
        ),
    ],
)
def test_bad_strategy_keys_and_params_are_one_located_error(validators, extra, message) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(scenario_text(*validators, extra=extra), "case.toml")
    assert str(caught.value).startswith("case.toml:")
    assert message in str(caught.value)


def test_a_free_rider_takes_no_part_in_governance() -> None:
    text = scenario_text(validator("a", 10, "honest", true_cost=5), validator("f", 10, "free_rider")) + (
        '[[proposals]]\nat_epoch = 1\nproposer = "f"\nkind = "register_model"\nid = "m"\n'
        "units_of_compute_per_token = 1\n"
    )
    with pytest.raises(ScenarioError, match="names f, a free_rider: a free rider takes no part in governance"):
        parse_scenario(text, "case.toml")


def test_params_table_sets_chain_params_of_the_genesis() -> None:
    s = parse_scenario(scenario_text(validator("a", 10, "copycat"), extra='[params]\nvote_reward_share = "0.5"\n'))
    assert s.params.vote_reward_share == "0.5" and s.params.reward_band == "0.01"


@pytest.mark.parametrize("strategy", ["copycat", "free_rider"])
def test_the_network_engine_refuses_strategies_that_read_the_chain(strategy) -> None:
    s = parse_scenario(scenario_text(validator("a", 10, "honest", true_cost=5), validator("x", 10, strategy)), "n.toml")
    with pytest.raises(ScenarioError, match=f"validator x is a {strategy}, which reads the chain.*--engine inproc"):
        check_network_strategies(s)


def test_the_network_engine_takes_sybils_one_node_per_member() -> None:
    s = parse_scenario(scenario_text(validator("s", 10, "sybil", count=2, price=5)))
    assert check_network_strategies(s) is None
    assert [v.name for v in s.validators] == ["s-1", "s-2"]


# ---------------------------------------------------------------------------------------------
# In-process runs
# ---------------------------------------------------------------------------------------------


def test_open_mode_copycat_votes_what_was_committed_in_earlier_blocks_of_the_epoch(simulate: Callable) -> None:
    # "lead" votes 640 in block 0 of each epoch; the copycat (index 1) acts in block 1 and copies it
    run = simulate(scenario_text(validator("lead", 10, "fixed", price=640), validator("copy", 90, "copycat")), "copy")
    assert last_votes(run.out)[get_key("copy").address] == 640
    assert run.prices == [1000, 640, 640, 640, 640]  # the copycat's 90% follows the lead from epoch 0 on


def test_commit_reveal_copycat_only_sees_the_previous_median(simulate: Callable) -> None:
    text = scenario_text(
        validator("lead", 60, "fixed", price=640), validator("copy", 40, "copycat"), extra='vote_mode = "commit_reveal"'
    )
    run = simulate(text, "copy_cr")
    # epoch 0 commits are revealed in epoch 1: the copycat committed 1000 (the default, the only
    # public price) in epoch 0, and 640 from epoch 2 on, once 640 is the public median
    assert run.prices == [1000, 1000, 640, 640, 640]
    assert last_votes(run.out)[get_key("copy").address] == 640


def test_cartel_minority_shades_its_vote_into_the_band_and_never_leaves_the_honest_range(simulate: Callable) -> None:
    text = scenario_text(
        validator("h1", 30, "fixed", price=1000),
        validator("h2", 30, "fixed", price=1100),
        validator("ring", 40, "cartel", group="ring", target_bps=5_000, direction="up"),
        extra='[params]\nreward_band = "0.02"\n',
        length=3,
    )
    run = simulate(text, "cartel")
    # the others' median is 1000 and their band [1000, 1100] (their interquartile range): the cartel
    # aims at 1500, votes 1100, and the price is h2's 1100
    assert last_votes(run.out)[get_key("ring").address] == 1100
    assert run.prices[1:] == [1100] * 4


def test_cartel_majority_votes_its_target(simulate: Callable) -> None:
    text = scenario_text(
        validator("h", 40, "fixed", price=1000),
        validator("ring-a", 30, "cartel", group="ring", target_bps=5_000, direction="up"),
        validator("ring-b", 30, "cartel", group="ring", target_bps=5_000, direction="up"),
    )
    run = simulate(text, "cartel_major")
    assert run.prices[1:] == [1500] * 4
    assert run.summary["price_vs_honest"]["epochs_compared"] == 0  # no honest-strategy validator here


def test_free_rider_misses_is_jailed_and_slashed_and_unjails_to_collect_again(simulate: Callable) -> None:
    text = scenario_text(
        validator("h", 100, "honest", true_cost=1000),
        validator("rider", 1000, "free_rider"),
        epochs=12,
        extra='[params]\nmiss_window = 2\nmin_valid_per_window = 1\nslash_fraction_miss = "0.1"\njail_blocks = 2\n',
    )
    run = simulate(text, "rider")
    rider = run.summary["strategies"]["free_rider"]
    assert rider["jails"] >= 2  # jailed, unjailed, jailed again
    assert rider["misses"] >= 4
    assert rider["slashed"] >= 100 + 90  # 10% of 1000, then 10% of 900
    assert rider["rewards"] > 0  # fee shares while it was in the set
    assert run.summary["rejections"] == {}  # every MsgUnjail was sent once its jail had run out


def test_sybil_members_vote_as_separate_validators_and_move_the_price_as_one_stake_would(simulate: Callable) -> None:
    one = simulate(scenario_text(validator("h", 40, "fixed", price=900), validator("s", 60, "fixed", price=700)), "one")
    many = simulate(
        scenario_text(validator("h", 40, "fixed", price=900), validator("s", 60, "sybil", count=6, price=700)), "many"
    )
    assert many.prices == one.prices == [1000, 700, 700, 700, 700]
    assert many.summary["strategies"]["sybil"]["validators"] == 6
    assert many.rows[-1]["voters"] == 7


def test_summary_reports_each_strategy_with_rewards_misses_jails_slashes_and_price_effect(simulate: Callable) -> None:
    text = scenario_text(
        validator("h", 50, "honest", true_cost=1000, noise_bps=300),
        validator("c", 20, "copycat"),
        validator("r", 20, "cartel", group="r", target_bps=1000, direction="down"),
        validator("f", 10, "free_rider"),
        extra='[params]\nvote_reward_share = "0.5"\n',
        epochs=6,
    )
    run = simulate(text, "summary")
    strategies = run.summary_file()["strategies"]
    assert sorted(strategies) == ["cartel", "copycat", "free_rider", "honest"]
    for figures in strategies.values():
        assert set(figures) == {
            "validators",
            "stake",
            "rewards",
            "rewards_per_epoch",
            "misses",
            "jails",
            "slashed",
            "vote_distance_mean_bps",
            "price_effect_mean_bps",
            "price_effect_max_bps",
        }
    assert strategies["free_rider"]["vote_distance_mean_bps"] is None  # it never voted
    assert strategies["honest"]["vote_distance_mean_bps"] == 0.0  # alone, it is the honest median
    assert sum(f["rewards"] for f in strategies.values()) > 0
    assert run.summary_file()["price_vs_honest"]["epochs_compared"] == 6

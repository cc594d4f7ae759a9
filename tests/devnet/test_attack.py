"""`devnet.attack` (issue 17): the --share grammar, the attacked scenario (exact shares), the rows of
attack.csv, and a small attack run in both vote modes."""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import pytest

from devnet.attack import (
    ATTACK_COLUMNS,
    ATTACK_TARGET_BPS,
    compute_attack_scenario,
    format_share,
    parse_shares,
    run_attack,
)
from devnet.errors import DevnetError, ScenarioError
from devnet.scenario import parse_scenario

SMALL = """\
seed = 2
epochs = 6
epoch_length = 3
default_unit_of_compute_price = 1000

[params]
vote_reward_share = "0.5"

[[validators]]
name = "h1"
stake = 30
strategy = "honest"
true_cost = 1000
noise_bps = 200

[[validators]]
name = "h2"
stake = 20
strategy = "honest"
true_cost = 1100
noise_bps = 200

[[validators]]
name = "noise"
stake = 50
strategy = "extreme"
"""


@pytest.mark.parametrize(
    ("text", "shares"),
    [
        ("0.05:0.60:0.05", [Fraction(k, 20) for k in range(1, 13)]),
        ("0.3:0.3:0.1", [Fraction(3, 10)]),
        ("0.25", [Fraction(1, 4)]),
        ("0.1:0.35:0.1", [Fraction(1, 10), Fraction(2, 10), Fraction(3, 10)]),
        (".5", [Fraction(1, 2)]),
    ],
)
def test_share_ranges_run_from_from_to_to_by_step_exactly(text, shares) -> None:
    assert parse_shares(text) == shares


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "the share must lie strictly between 0 and 1, got 0"),
        ("1", "the share must lie strictly between 0 and 1, got 1"),
        ("1.5", "the share must lie strictly between 0 and 1"),
        ("-0.1", "the share must be a decimal such as 0.05, got '-0.1'"),
        ("abc", "the share must be a decimal"),
        ("", "the share must be a decimal"),
        ("0.1:0.2", "--share must be FROM:TO:STEP such as 0.05:0.60:0.05, or one share; got '0.1:0.2'"),
        ("0.1:0.2:0.1:0.1", "--share must be FROM:TO:STEP"),
        ("0:0.5:0.1", "FROM must lie strictly between 0 and 1"),
        ("0.1:1:0.1", "TO must lie strictly between 0 and 1"),
        ("0.1:0.5:0", "STEP must be a decimal above 0"),
        ("0.1:0.5:x", "STEP must be a decimal above 0"),
        ("0.6:0.5:0.05", "FROM (0.6) must not exceed TO (0.5)"),
        ("0.000001:0.9:0.000001", "makes 900000 shares; at most 100"),
    ],
)
def test_bad_shares_are_refused_with_the_reason(text, message) -> None:
    with pytest.raises(DevnetError) as caught:
        parse_shares(text)
    assert message in str(caught.value)


@pytest.mark.parametrize("share", [Fraction(1, 20), Fraction(1, 3), Fraction(1, 2), Fraction(3, 5)])
@pytest.mark.parametrize("mode", ["open", "commit_reveal"])
def test_the_attacked_scenario_keeps_the_honest_validators_and_gives_the_attacker_exactly_the_share(
    share, mode
) -> None:
    attacked = compute_attack_scenario(parse_scenario(SMALL, "small.toml"), share, mode)
    names = [v.name for v in attacked.validators]
    assert names == ["h1", "h2", "attacker"]  # the extreme validator is left out
    attacker = attacked.validators[-1]
    assert Fraction(attacker.stake, sum(v.stake for v in attacked.validators)) == share
    assert attacked.validators[0].stake * 2 == attacked.validators[1].stake * 3  # honest stakes keep their ratio
    assert (attacker.strategy, attacker.direction, attacker.target_bps) == ("cartel", "up", ATTACK_TARGET_BPS)
    assert attacked.vote_mode == mode and attacked.proposals == ()
    assert attacked.params.vote_reward_share == "0.5"  # the scenario's params stay


def test_a_scenario_without_honest_validators_cannot_be_attacked() -> None:
    text = SMALL.split("[[validators]]")[0] + '[[validators]]\nname = "x"\nstake = 1\nstrategy = "silent"\n'
    with pytest.raises(ScenarioError, match="small.toml: has no honest validator to attack"):
        compute_attack_scenario(parse_scenario(text, "small.toml"), Fraction(1, 2), "open")


def test_shares_print_as_their_shortest_decimal() -> None:
    assert [format_share(s) for s in parse_shares("0.05:0.2:0.05")] == ["0.05", "0.1", "0.15", "0.2"]


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("attack")
    scenario = parse_scenario(SMALL, str(out / "small.toml"))
    return run_attack(scenario, parse_shares("0.3:0.6:0.3"), out, progress=False), out


def test_attack_writes_one_csv_row_per_share_and_vote_mode_with_the_documented_columns(attack) -> None:
    report, out = attack
    with (out / "attack.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == ATTACK_COLUMNS
    assert [(r["share"], r["vote_mode"]) for r in rows] == [
        ("0.3", "open"),
        ("0.6", "open"),
        ("0.3", "commit_reveal"),
        ("0.6", "commit_reveal"),
    ]
    assert [r["outside_honest_range"] for r in rows] == [
        "true" if r["outside_honest_range"] else "false" for r in report["rows"]
    ]
    assert [float(r["max_deviation_bps"]) for r in rows] == [r["max_deviation_bps"] for r in report["rows"]]


def test_below_half_the_price_stays_in_the_honest_range_and_above_half_it_leaves(attack) -> None:
    report, _ = attack
    by_run = {(r["share"], r["vote_mode"]): r for r in report["rows"]}
    for mode in ("open", "commit_reveal"):
        assert by_run[("0.3", mode)]["outside_honest_range"] is False
        assert by_run[("0.6", mode)]["outside_honest_range"] is True
        assert by_run[("0.6", mode)]["max_deviation_bps"] >= by_run[("0.3", mode)]["max_deviation_bps"]
    assert report["first_outside_honest_range"] == {"open": "0.6", "commit_reveal": "0.6"}


def test_attack_plots_deviation_against_share_and_keeps_each_runs_files(attack) -> None:
    _, out = attack
    assert (out / "attack.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "commit_reveal-0.3",
        "commit_reveal-0.6",
        "open-0.3",
        "open-0.6",
    ]
    assert (out / "runs" / "open-0.3" / "summary.json").exists()

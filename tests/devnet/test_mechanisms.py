"""Pricing mechanisms side by side (issue 19, item 6): `devnet simulate --pricing voted,dynamic,hybrid`,
the scenario's demand shocks, mechanisms.csv and mechanisms.png."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from devnet.demand import compute_base_demand
from devnet.errors import DevnetError, ScenarioError
from devnet.mechanisms import MECHANISM_COLUMNS, compute_shock_spans, parse_mechanisms, run_mechanisms
from devnet.network import run_network
from devnet.scenario import parse_scenario

REPO = Path(__file__).resolve().parents[2]

SPIKE = """\
seed = 5
epochs = 9
epoch_length = 4
default_unit_of_compute_price = 100

[params]
utilization_window = 4
default_throughput_per_nonce = 5
hybrid_band = "0.1"

[[validators]]
name = "alice"
stake = 60
strategy = "honest"
true_cost = 100
noise_bps = 200

[[validators]]
name = "bob"
stake = 40
strategy = "honest"
true_cost = 104
noise_bps = 200

[[proposals]]
at_epoch = 0
proposer = "alice"
kind = "register_model"
id = "m"
units_of_compute_per_token = 3
votes = { alice = "yes", bob = "yes" }

[[clients]]
name = "app"
escrow = 10000000000

[[clients.demand]]
model = "m"
kind = "constant"
jobs = 2                 # 2 × 500 tokens an epoch: half the capacity (4 blocks × 5 × 100 power / 2)
tokens_in = 300
tokens_out = 200
shocks = [{ from_epoch = 4, to_epoch = 6, factor = "2.5" }]
"""


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def spike_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The spike scenario under the three mechanisms, twice, in two output directories."""
    root = tmp_path_factory.mktemp("mechanisms")
    scenario_path = root / "spike.toml"
    scenario_path.write_text(SPIKE)
    outs = (root / "first", root / "second")
    for out in outs:
        run_mechanisms(parse_scenario(SPIKE, str(scenario_path)), out, ("voted", "dynamic", "hybrid"), progress=False)
    return outs


def test_mechanisms_csv_has_one_row_per_mechanism_epoch_and_active_model(spike_runs):
    out = spike_runs[0]
    rows = read_rows(out / "mechanisms.csv")
    assert tuple(rows[0]) == MECHANISM_COLUMNS
    for mechanism in ("voted", "dynamic", "hybrid"):
        mine = [r for r in rows if r["mechanism"] == mechanism]
        assert [int(r["epoch"]) for r in mine] == list(range(2, 9))  # m is active from epoch 2
        assert {r["model"] for r in mine} == {"m"}
        for r in mine:
            assert int(r["price"]) > 0 and int(r["revenue"]) >= 0
            assert Fraction(r["utilization"]) >= 0 and len(r["utilization"].split(".")[1]) == 6
        assert (out / mechanism / "usage.csv").exists() and (out / mechanism / "summary.json").exists()
    assert (out / "mechanisms.png").stat().st_size > 10_000


def test_the_three_mechanisms_price_the_spike_differently(spike_runs):
    rows = read_rows(spike_runs[0] / "mechanisms.csv")
    prices = {m: [int(r["price"]) for r in rows if r["mechanism"] == m] for m in ("voted", "dynamic", "hybrid")}
    assert prices["voted"] != prices["dynamic"] != prices["hybrid"] != prices["voted"]
    utilization = {int(r["epoch"]): Fraction(r["utilization"]) for r in rows if r["mechanism"] == "voted"}
    assert utilization[5] == Fraction(5, 2) * utilization[3]  # the shock: 2.5 times the jobs
    dynamic = {int(r["epoch"]): int(r["price"]) for r in rows if r["mechanism"] == "dynamic"}
    assert dynamic[7] > dynamic[4]  # the dynamic price rose through the shock (utilization 1.25, over the band)


def test_the_same_seed_gives_identical_mechanism_csvs(spike_runs):
    first, second = spike_runs
    assert (first / "mechanisms.csv").read_bytes() == (second / "mechanisms.csv").read_bytes()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("voted,auction", "unknown pricing mechanism 'auction'; choose from voted, dynamic, hybrid"),
        ("", "unknown pricing mechanism ''"),
        ("voted,voted", "each pricing mechanism at most once"),
        ("Voted", "unknown pricing mechanism 'Voted'"),
    ],
)
def test_a_bad_mechanism_list_is_refused_naming_the_bad_name(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mechanisms(text)


def test_mechanisms_parse_in_the_order_given():
    assert parse_mechanisms("hybrid, voted") == ("hybrid", "voted")


# --- the scenario's demand shocks ------------------------------------------------------------


def test_a_shock_multiplies_the_demand_over_its_epochs_and_is_marked():
    scenario = parse_scenario(SPIKE)
    spec = scenario.clients[0].demand[0]
    assert compute_base_demand(spec, "app", scenario.seed, scenario.epochs) == (2, 2, 2, 2, 5, 5, 5, 2, 2)
    assert compute_shock_spans(scenario) == [(4, 6, "app/m ×2.5")]


@pytest.mark.parametrize(
    ("shocks", "message"),
    [
        ('[{ from_epoch = 4, to_epoch = 3, factor = "2" }]', "shocks[0].to_epoch must be an integer between"),
        ('[{ from_epoch = 9, to_epoch = 9, factor = "2" }]', "shocks[0].from_epoch must be an integer between 0 and 8"),
        ("[{ from_epoch = 1, to_epoch = 2, factor = 2.5 }]", "shocks[0].factor must be a decimal string"),
        ('[{ from_epoch = 1, to_epoch = 2, factor = "-1" }]', "shocks[0].factor must be a decimal string"),
        ('[{ from_epoch = 1, to_epoch = 2, factor = "5000" }]', "shocks[0].factor must be a decimal string"),
        ("[{ from_epoch = 1, to_epoch = 2 }]", "shocks[0].factor is required"),
        ('[{ from_epoch = 1, to_epoch = 2, factor = "2", size = 3 }]', "shocks[0].size is not a known key"),
        ('"often"', "must be a list of at most 100 tables"),
    ],
)
def test_a_bad_shock_is_refused_naming_its_field_and_line(shocks, message):
    text = SPIKE.replace('shocks = [{ from_epoch = 4, to_epoch = 6, factor = "2.5" }]', f"shocks = {shocks}")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "spike.toml")
    assert f"spike.toml:{text.splitlines().index(f'shocks = {shocks}') + 1}:" in str(info.value)
    assert "clients[0].demand[0].shocks" in str(info.value) and message in str(info.value)


def test_the_network_engine_refuses_a_dynamic_price_with_clients_before_starting_anything(tmp_path):
    scenario = parse_scenario(SPIKE.replace("[params]\n", '[params]\npricing_mode = "dynamic"\n'))
    with pytest.raises(DevnetError, match="pricing_mode 'dynamic' with \\[\\[clients\\]\\] runs on the inproc"):
        run_network(scenario, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the command line --------------------------------------------------------------------------


def uocd(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    command = [sys.executable, "-m", "uocd", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("voted,auction", "unknown pricing mechanism 'auction'"), ("dynamic,dynamic", "at most once")],
)
def test_an_unknown_mechanism_is_a_usage_error_exit_2(value, fragment):
    proc = uocd("devnet", "simulate", "examples/demand-spike.toml", "--pricing", value)
    assert proc.returncode == 2
    assert "--pricing" in proc.stderr and fragment in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--engine", "network"], "--pricing runs the inproc engine only"),
        (["--runs", "2"], "--pricing runs one simulation per mechanism"),
    ],
)
def test_pricing_with_another_engine_or_a_study_is_refused_in_one_line(tmp_path, args, fragment):
    out = tmp_path / "out"
    proc = uocd("devnet", "simulate", "examples/demand-spike.toml", "--pricing", "voted", "--out", str(out), *args)
    assert proc.returncode == 1 and proc.stderr.startswith("uocd: error: ") and fragment in proc.stderr
    assert not out.exists()


def test_the_cli_runs_the_mechanisms_and_names_its_files(tmp_path):
    scenario = tmp_path / "spike.toml"
    scenario.write_text(SPIKE)
    out = tmp_path / "out"
    proc = uocd("devnet", "simulate", str(scenario), "--pricing", "voted,hybrid", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}/mechanisms.csv, {out}/mechanisms.png" in proc.stdout
    assert {r["mechanism"] for r in read_rows(out / "mechanisms.csv")} == {"voted", "hybrid"}

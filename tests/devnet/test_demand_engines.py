"""Demand on both engines: for the same scenario and seed, the in-process engine and the network
engine (real node processes, receipts settled through each provider's `POST /v1/admin/usage`)
write the same usage.csv byte for byte, the same revenue per provider, and a revenue.png."""

from __future__ import annotations

import csv
import json

import pytest

from devnet.network import run_network
from devnet.scenario import parse_scenario
from devnet.simulate import run_inproc

SCENARIO = """\
seed = 21
epochs = 5
epoch_length = 6
default_unit_of_compute_price = 100

[params]
protocol_fee_bps = 300

[[validators]]
name = "alice"
stake = 400
strategy = "honest"
true_cost = 1200
noise_bps = 500

[[validators]]
name = "bob"
stake = 300
strategy = "fixed"
price = 900

[[validators]]
name = "carol"
stake = 200
strategy = "honest"
true_cost = 1400
noise_bps = 800
join_epoch = 1

[[proposals]]
at_epoch = 0
proposer = "alice"
kind = "register_model"
id = "model-alpha"
units_of_compute_per_token = 10
votes = { alice = "yes", bob = "yes" }

[[clients]]
name = "acme"
escrow = 1000000000

[[clients.demand]]
model = "model-alpha"
kind = "random_walk"
jobs = 4
step = 3
max_jobs = 12
tokens_in = 300
tokens_out = 100
reference_price_per_token = 11000
sensitivity_bps = 20000

[[clients]]
name = "beta"
escrow = 40000000

[[clients.demand]]
model = "model-alpha"
kind = "spike"
jobs = 1
peak_jobs = 9
peak_epoch = 3
tokens_in = 200
tokens_out = 200
"""


@pytest.mark.parametrize("vote_mode", ["open", "commit_reveal"])
def test_both_engines_write_the_same_usage_csv_and_revenue_for_the_same_seed(tmp_path, vote_mode):
    # commit_reveal: each node's price feeder signs reveals with the validator key while the node signs
    # the settlements with it too
    text = SCENARIO.replace(
        "default_unit_of_compute_price = 100\n", f'default_unit_of_compute_price = 100\nvote_mode = "{vote_mode}"\n'
    )
    path = tmp_path / "demand.toml"
    path.write_text(text)
    scenario = parse_scenario(text, str(path))
    assert scenario.vote_mode == vote_mode
    inproc = run_inproc(scenario, tmp_path / "inproc", progress=False)
    network = run_network(scenario, tmp_path / "network", block_ms=250, progress=False)

    inproc_usage = (tmp_path / "inproc/usage.csv").read_text()
    assert (tmp_path / "network/usage.csv").read_text() == inproc_usage
    rows = list(csv.DictReader(inproc_usage.splitlines()))
    assert {r["epoch"] for r in rows} == {"2", "3", "4"}  # model-alpha is active from epoch 2
    assert {r["provider"] for r in rows} == {"alice", "bob", "carol"}
    assert all(int(r["charged"]) == int(r["payout"]) + int(r["fee"]) and int(r["fee"]) > 0 for r in rows)
    assert network["revenue"] == inproc["revenue"]
    assert sum(p["jobs"] for p in inproc["revenue"].values()) == sum(int(r["jobs"]) for r in rows)
    assert json.loads((tmp_path / "network/summary.json").read_text())["revenue"] == inproc["revenue"]
    for engine in ("inproc", "network"):
        assert (tmp_path / engine / "revenue.png").stat().st_size > 0

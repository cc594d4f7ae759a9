"""The network engine against real node processes: for the same scenario and seed it gives the
in-process engine's price series and model prices (epochs.csv and models.csv byte for byte), with
honest, fixed, extreme and silent validators, a joiner that leaves again, and two proposals."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from devnet.devnet import read_state
from devnet.network import run_network
from devnet.scenario import parse_scenario
from devnet.simulate import run_inproc

SCENARIO = """\
seed = 5
epochs = 7
epoch_length = 6
default_unit_of_compute_price = 100

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
price = 2
denom = "uicoin"

[[validators]]
name = "carol"
stake = 200
strategy = "extreme"
low = 1
high = 100000

[[validators]]
name = "dave"
stake = 100
strategy = "silent"

[[validators]]
name = "erin"
stake = 500
strategy = "fixed"
price = 900
join_epoch = 2
leave_epoch = 5

[[proposals]]
at_epoch = 1
proposer = "alice"
kind = "register_model"
id = "model-alpha"
units_of_compute_per_token = 10
votes = { alice = "yes", bob = "yes", dave = "no" }

[[proposals]]
at_epoch = 3
proposer = "bob"
kind = "remove_model"
id = "model-alpha"
votes = { alice = "yes", bob = "yes", erin = "yes" }
"""


def test_network_engine_gives_the_inproc_price_series_and_model_prices(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    scenario = parse_scenario(SCENARIO, str(path))
    inproc = run_inproc(scenario, tmp_path / "inproc", progress=False)
    network = run_network(scenario, tmp_path / "network", block_ms=250, progress=False)

    offset = network["epoch_offset"]
    for name in ("epochs.csv", "models.csv"):
        net, inp = (read_csv(tmp_path / engine / name) for engine in ("network", "inproc"))
        assert [without_chain_epoch(r) for r in net] == [without_chain_epoch(r) for r in inp], name
        assert [r["chain_epoch"] for r in inp] == [r["epoch"] for r in inp], name
        assert [int(r["chain_epoch"]) for r in net] == [int(r["epoch"]) + offset * (r["epoch"] != "0") for r in net]
    assert all(int(r["fees_collected"]) > 0 for r in read_csv(tmp_path / "network/epochs.csv")[1:-1])
    prices = [int(line.split(",")[1]) for line in (tmp_path / "network/epochs.csv").read_text().splitlines()[1:]]
    assert len(prices) == scenario.epochs + 1 and len(set(prices)) > 2
    models = (tmp_path / "network/models.csv").read_text()
    assert "model-alpha" in models  # registered in epoch 1, active in 3..4, removed from 5 on
    assert network["final_price"] == inproc["final_price"]
    assert network["final_models"] == inproc["final_models"] == {}
    assert network["proposals"] == inproc["proposals"] == {"passed": 2}
    for name in ("proposals.csv", "summary.json", "price.png", "models.png"):
        assert (tmp_path / "network" / name).stat().st_size > 0, name

    state = read_state(Path(network["devnet_dir"]))
    assert [n["name"] for n in state["nodes"]] == ["alice", "bob", "carol", "dave", "erin"]
    assert all(n["pid"] is None for n in state["nodes"]), "the engine's own devnet is stopped"
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).stdout == b""


def read_csv(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def without_chain_epoch(row: dict) -> dict:
    """A row as both engines write it: the scenario's epoch numbering, not the chain's, and without
    the fees (the network engine's txs carry simulated gas limits, the in-process engine's the
    offline bound, and the network's devnet runs blocks before the scenario starts)."""
    return {k: v for k, v in row.items() if k not in ("chain_epoch", "fees_collected")}


COMMIT_REVEAL_SCENARIO = """\
seed = 9
epochs = 5
epoch_length = 8
default_unit_of_compute_price = 100
vote_mode = "commit_reveal"

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
strategy = "extreme"
low = 1
high = 100000

[[validators]]
name = "erin"
stake = 350
strategy = "fixed"
price = 1500
join_epoch = 1
leave_epoch = 4
"""


def test_network_engine_in_commit_reveal_mode_gives_the_inproc_price_series(tmp_path):
    path = tmp_path / "cr.toml"
    path.write_text(COMMIT_REVEAL_SCENARIO)
    scenario = parse_scenario(COMMIT_REVEAL_SCENARIO, str(path))
    inproc = run_inproc(scenario, tmp_path / "inproc", progress=False)
    network = run_network(scenario, tmp_path / "network", block_ms=250, progress=False)
    net, inp = (read_csv(tmp_path / engine / "epochs.csv") for engine in ("network", "inproc"))
    assert [without_chain_epoch(r) for r in net] == [without_chain_epoch(r) for r in inp]
    prices = [int(r["price"]) for r in inp]
    assert prices[:2] == [100, 100] and len(set(prices[2:])) > 1  # the first reveals count from epoch 2
    assert network["final_price"] == inproc["final_price"]

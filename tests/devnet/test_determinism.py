"""SPEC §5/§9 determinism: the same scenario and seed give the same epochs.csv and final app hash in
any process, under any PYTHONHASHSEED.

Three seeds of one 5-validator scenario (honest, fixed leaver, silent, extreme, honest joiner voting
every other epoch, and governance proposals that register, update, and fail to remove a model) are
each simulated FIVE times by `python -m uocd devnet simulate` in separate processes, each with a
different PYTHONHASHSEED; the runs go three at a time. epochs.csv, models.csv, proposals.csv and
the final app hash must be identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from devnet.scenario import load_scenario
from devnet.simulate import run_inproc

SEEDS = (101, 202, 303)
HASH_SEEDS = ("0", "1", "42", "31337", "4294967295")
EPOCHS = 20
PARALLEL = 3
TIMEOUT = 120
CSV_FILES = ("epochs.csv", "models.csv", "proposals.csv")

SCENARIO = """\
description = "determinism check"
seed = {seed}
epochs = 20
epoch_length = 3
default_unit_of_compute_price = 1000
min_deposit = 1000

[[validators]]
name = "honest"
stake = 40
strategy = "honest"
true_cost = 1500
noise_bps = 800

[[validators]]
name = "leaver"
stake = 25
strategy = "fixed"
price = 1
denom = "uicoin"
leave_epoch = 14

[[validators]]
name = "quiet"
stake = 15
strategy = "silent"

[[validators]]
name = "byz"
stake = 10
strategy = "extreme"
low = 1
high = 1000000000

[[validators]]
name = "joiner"
stake = 30
strategy = "honest"
true_cost = 1700
noise_bps = 1200
join_epoch = 5
vote_every = 2

[[proposals]]
at_epoch = 2
proposer = "honest"
kind = "register_model"
id = "model-alpha"
units_of_compute_per_token = 10
votes = { honest = "yes", leaver = "yes", quiet = "no" }

[[proposals]]
at_epoch = 6
proposer = "joiner"
kind = "register_model"
id = "model-alpha"
units_of_compute_per_token = 25
votes = { honest = "yes", joiner = "yes", byz = "no_with_veto" }

[[proposals]]
at_epoch = 9
proposer = "byz"
kind = "remove_model"
id = "model-alpha"
votes = { byz = "yes", honest = "no", leaver = "no" }
"""


@dataclass(frozen=True)
class Run:
    seed: int
    hash_seed: str
    returncode: int
    stderr: str
    csv: bytes
    models: bytes
    proposals: bytes
    app_hash: str | None


def simulate_in_subprocess(scenario: Path, out: Path, seed: int, hash_seed: str) -> Run:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "uocd",
            "devnet",
            "simulate",
            str(scenario),
            "--engine",
            "inproc",
            "--out",
            str(out),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    csvs = [(out / name).read_bytes() if (out / name).exists() else b"" for name in CSV_FILES]
    summary = out / "summary.json"
    app_hash = json.loads(summary.read_text())["final_app_hash"] if summary.exists() else None
    return Run(seed, hash_seed, proc.returncode, proc.stderr, *csvs, app_hash)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("determinism")
    paths = {}
    for seed in SEEDS:
        paths[seed] = base / f"seed{seed}.toml"
        paths[seed].write_text(SCENARIO.replace("{seed}", str(seed)))
    return paths


@pytest.fixture(scope="module")
def runs(scenarios: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[Run]]:
    base = tmp_path_factory.mktemp("determinism_out")
    jobs = [(seed, h) for seed in SEEDS for h in HASH_SEEDS]
    with ThreadPoolExecutor(PARALLEL) as pool:
        done = list(
            pool.map(lambda job: simulate_in_subprocess(scenarios[job[0]], base / f"{job[0]}-{job[1]}", *job), jobs)
        )
    by_seed: dict[int, list[Run]] = {seed: [] for seed in SEEDS}
    for run in done:
        by_seed[run.seed].append(run)
    return by_seed


@pytest.mark.parametrize("seed", SEEDS)
def test_five_processes_with_different_hash_seeds_all_finish_cleanly(runs: dict[int, list[Run]], seed: int) -> None:
    assert [r.hash_seed for r in runs[seed]] == list(HASH_SEEDS)
    for run in runs[seed]:
        assert run.returncode == 0, f"PYTHONHASHSEED={run.hash_seed}: {run.stderr}"
        assert run.stderr == "", f"PYTHONHASHSEED={run.hash_seed}: {run.stderr}"
        assert len(run.csv.splitlines()) == 1 + EPOCHS + 1


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", CSV_FILES)
def test_five_processes_with_different_hash_seeds_write_identical_csvs(
    runs: dict[int, list[Run]], seed: int, name: str
) -> None:
    field = name.removesuffix(".csv").replace("epochs", "csv")
    first = getattr(runs[seed][0], field)
    assert len(first.splitlines()) > 1
    for run in runs[seed][1:]:
        assert getattr(run, field) == first, f"{name} differs under PYTHONHASHSEED={run.hash_seed}"


def test_the_governance_events_register_update_and_fail_to_remove_the_model(runs: dict[int, list[Run]]) -> None:
    proposals = runs[SEEDS[0]][0].proposals.decode().splitlines()
    assert [row.split(",")[4] for row in proposals[1:]] == ["passed", "passed", "rejected"]
    models = [row.split(",") for row in runs[SEEDS[0]][0].models.decode().splitlines()[1:]]
    units = {int(epoch): int(u) for epoch, model, u, _, _ in models}
    assert (min(units), units[min(units)], units[EPOCHS]) == (4, 10, 25)


@pytest.mark.parametrize("seed", SEEDS)
def test_five_processes_with_different_hash_seeds_reach_the_same_final_app_hash(
    runs: dict[int, list[Run]], seed: int
) -> None:
    hashes = {run.hash_seed: run.app_hash for run in runs[seed]}
    assert all(h is not None and len(h) == 64 for h in hashes.values())
    assert len(set(hashes.values())) == 1, hashes


@pytest.mark.parametrize("seed", SEEDS)
def test_in_process_run_agrees_with_the_subprocess_runs(
    runs: dict[int, list[Run]], scenarios: dict[int, Path], tmp_path: Path, seed: int
) -> None:
    summary = run_inproc(load_scenario(scenarios[seed]), tmp_path, progress=False)
    assert (tmp_path / "epochs.csv").read_bytes() == runs[seed][0].csv
    assert (tmp_path / "models.csv").read_bytes() == runs[seed][0].models
    assert summary["final_app_hash"] == runs[seed][0].app_hash


def test_different_seeds_give_different_price_series_and_app_hashes(runs: dict[int, list[Run]]) -> None:
    def prices(csv: bytes) -> list[str]:
        return [line.split(",")[1] for line in csv.decode().splitlines()[1:]]

    series = {seed: prices(runs[seed][0].csv) for seed in SEEDS}
    assert len({tuple(s) for s in series.values()}) == len(SEEDS), series
    assert len({runs[seed][0].app_hash for seed in SEEDS}) == len(SEEDS)
    # the schedule does not depend on the seed: the same powers and voter counts each epoch
    columns = {
        seed: [tuple(line.split(",")[2:5]) for line in runs[seed][0].csv.decode().splitlines()[1:]] for seed in SEEDS
    }
    assert columns[SEEDS[0]] == columns[SEEDS[1]] == columns[SEEDS[2]]

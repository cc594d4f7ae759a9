"""Studies: `uocd devnet simulate S.toml --runs N --seed S0 --sweep K=V… --set K=V` on a local process
pool and on a local Ray instance, their tidy tables, `uocd devnet report`, Ctrl-C, and bad input.

Every command runs as a real process (`python -m uocd`); the Ray test starts a real local Ray
instance in this process and points the command at its address.
"""

from __future__ import annotations

import csv
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from devnet import study as study_module
from devnet.errors import ScenarioError
from devnet.overrides import compute_grid, parse_sweeps
from devnet.simulate import run_inproc
from devnet.study import InterruptGuard, plan_study, run_local, run_task

REPO = Path(__file__).resolve().parents[2]
UOCD = [sys.executable, "-m", "uocd"]
TABLE_NAMES = ("epochs", "votes", "models", "proposals", "runs")

# two honest providers, a fixed one at one micoin, and an extreme one voting 1 and 2^63 − 1
SMALL = """\
seed = 5
epochs = 4
epoch_length = 2
default_unit_of_compute_price = 1000

[[validators]]
name = "alice"
stake = 50
strategy = "honest"
true_cost = 1200
noise_bps = 400

[[validators]]
name = "bob"
stake = 30
strategy = "honest"
true_cost = 1100
noise_bps = 200

[[validators]]
name = "mallory"
stake = 10
strategy = "fixed"
price = 1
denom = "micoin"

[[validators]]
name = "eve"
stake = 5
strategy = "extreme"
low = 1
high = 9223372036854775807

[[proposals]]
at_epoch = 0
proposer = "alice"
kind = "register_model"
id = "model-a"
units_of_compute_per_token = 3
votes = { alice = "yes", bob = "yes" }
"""


def uocd(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [*UOCD, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 × 2 sweep of 2 seeds each (8 runs) on a pool of 2 workers."""
    root = tmp_path_factory.mktemp("study")
    (root / "small.toml").write_text(SMALL)
    out = root / "out"
    proc = uocd(
        "devnet", "simulate", str(root / "small.toml"), "--runs", "2", "--seed", "100",
        "--sweep", "validators.mallory.stake=10,80", "--sweep", "vote_mode=open,commit_reveal",
        "--set", "validators.bob.noise_bps=300", "--workers", "2", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def strip_timing(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """A run's tables without its wall-clock column."""
    return {k: [{c: v for c, v in r.items() if c != "elapsed_seconds"} for r in rows] for k, rows in tables.items()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_a_study_writes_every_table_as_csv_and_parquet_with_run_seed_and_each_swept_key_as_columns(
    study: Path,
) -> None:
    for name in TABLE_NAMES:
        frame = pd.read_parquet(study / f"{name}.parquet")
        header = next(csv.reader((study / f"{name}.csv").open()))
        assert header == list(frame.columns)
        assert header[:4] == ["run", "seed", "validators.mallory.stake", "vote_mode"]
        assert len(read_csv(study / f"{name}.csv")) == len(frame)
    runs = pd.read_parquet(study / "runs.parquet").sort_values("run")
    assert runs["run"].tolist() == list(range(8))
    assert runs["seed"].tolist() == [100, 101] * 4
    assert sorted(set(zip(runs["validators.mallory.stake"], runs["vote_mode"]))) == [
        (10, "commit_reveal"),
        (10, "open"),
        (80, "commit_reveal"),
        (80, "open"),
    ]
    epochs = pd.read_parquet(study / "epochs.parquet")
    assert len(epochs) == 8 * 5  # rows 0 (genesis) to 4 of every run
    manifest = json.loads((study / "study.json").read_text())
    assert manifest["set"] == {"validators.bob.noise_bps": 300}
    assert manifest["runs_done"] == manifest["runs_planned"] == 8 and not manifest["interrupted"]


def test_the_votes_table_has_each_validators_vote_in_force_freshness_and_distance_from_the_price(study: Path) -> None:
    votes = pd.read_parquet(study / "votes.parquet")
    one = votes[(votes["run"] == 0) & (votes["epoch"] == 2)].set_index("validator")
    assert set(one.index) == {"alice", "bob", "mallory", "eve"}
    assert one.loc["mallory", "vote"] == 1_000_000 and one.loc["mallory", "strategy"] == "fixed"
    assert one.loc["eve", "vote"] == 9223372036854775807  # the extreme one votes high in even epochs
    assert bool(one.loc["alice", "fresh"]) and one.loc["alice", "vote_epoch"] == 2
    for name, row in one.iterrows():
        assert row["distance"] == row["vote"] - row["price"], name


def test_integer_columns_stay_integers_and_2_63_minus_1_round_trips_through_parquet_and_csv(study: Path) -> None:
    parquet = pd.read_parquet(study / "votes.parquet")
    csv_frame = pd.read_csv(study / "votes.csv", dtype_backend="numpy_nullable")
    for frame in (parquet, csv_frame):
        for column in ("run", "seed", "epoch", "power", "vote", "vote_epoch", "price", "distance", "slashes"):
            assert str(frame[column].dtype) == "Int64", (column, frame[column].dtype)
        assert frame["vote"].isna().any()  # nobody has voted at genesis… or a silent one: nulls, not floats
        assert (frame["vote"] == 9223372036854775807).any()
    epochs = pd.read_parquet(study / "epochs.parquet")
    for column in ("min_vote", "max_vote", "price", "fees_collected"):
        assert str(epochs[column].dtype) == "Int64", column
    assert epochs["min_vote"].isna().any() and (epochs["max_vote"] == 9223372036854775807).any()


def test_report_gives_the_median_and_5_95_range_of_the_price_error_per_swept_value(study: Path) -> None:
    proc = uocd("devnet", "report", str(study), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    groups = {(g["parameter"], g["value"]): g for g in report["groups"]}
    assert set(groups) == {
        ("all", ""),
        ("validators.mallory.stake", 10),
        ("validators.mallory.stake", 80),
        ("vote_mode", "commit_reveal"),
        ("vote_mode", "open"),
    }
    runs = pd.read_parquet(study / "runs.parquet")
    for (key, value), group in groups.items():
        subset = runs if key == "all" else runs[runs[key] == value]
        assert group["runs"] == len(subset)
        errors = subset["mean_abs_price_error_bps"].astype(float)
        q = group["mean_abs_error"]
        assert q["median"] == round(errors.median(), 2)
        assert q["p5"] <= q["median"] <= q["p95"]
    text = uocd("devnet", "report", str(study))
    assert text.returncode == 0 and "validators.mallory.stake" in text.stdout and "median [5%, 95%]" in text.stdout


def test_the_price_error_is_measured_against_the_stake_weighted_honest_true_cost(study: Path) -> None:
    epochs = pd.read_parquet(study / "epochs.parquet")
    assert set(epochs["honest_true_cost"].dropna()) == {1200}  # alice's 50 outweighs bob's 30
    row = epochs[epochs["epoch"] == 3].iloc[0]
    assert row["price_error_bps"] == pytest.approx((row["price"] - 1200) * 10_000 / 1200)


def test_a_study_draws_its_price_bands_and_error_heat_map(study: Path) -> None:
    for name in ("price.png", "error.png"):
        assert (study / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_runs_results_are_the_same_in_this_process_on_the_pool_and_with_the_engines_helpers(
    small: Path, tmp_path: Path
) -> None:
    tasks = list(plan_study(str(small), runs=3, seed=40, sets=[], sweeps=[]).iter_tasks())
    here = [run_task(task) for task in tasks]
    pooled = sorted(run_local(tasks, 2), key=lambda tables: tables["runs"][0]["run"])
    assert [strip_timing(t) for t in pooled] == [strip_timing(t) for t in here]
    helpers = run_inproc(tasks[1].scenario, tmp_path / "one", progress=False)  # two helper processes
    assert helpers["final_app_hash"] == here[1]["runs"][0]["final_app_hash"]


@pytest.fixture(scope="module")
def ray_address() -> Any:
    """A local Ray instance started here (stopped at the end), as a cluster address."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_a_study_on_a_ray_cluster_gives_the_same_tables_as_on_the_local_pool(
    ray_address: str, small: Path, tmp_path: Path
) -> None:
    args = [
        "devnet",
        "simulate",
        str(small),
        "--runs",
        "3",
        "--sweep",
        "validators.mallory.stake=10,80",
        "--no-progress",
    ]
    on_ray = uocd(*args, "--ray", ray_address, "--out", str(tmp_path / "ray"))
    assert on_ray.returncode == 0, on_ray.stderr
    assert f"(ray {ray_address})" in on_ray.stdout
    local = uocd(*args, "--workers", "2", "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    for name in TABLE_NAMES:
        a = pd.read_parquet(tmp_path / "ray" / f"{name}.parquet").drop(columns=["elapsed_seconds"], errors="ignore")
        b = pd.read_parquet(tmp_path / "local" / f"{name}.parquet").drop(columns=["elapsed_seconds"], errors="ignore")
        keys = [c for c in ("run", "epoch", "validator", "model", "id") if c in a.columns]
        pd.testing.assert_frame_equal(
            a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
        )


def restore_default_sigint() -> None:
    """SIGINT at its default disposition (run in a child between fork and exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_a_study_and_keeps_every_finished_run_in_valid_files(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            *UOCD,
            "devnet",
            "simulate",
            str(small),
            "--runs",
            "2000",
            "--workers",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the SIGINT goes to its group, as a terminal's Ctrl-C does
        # at its default, as in a terminal's foreground job, also when this suite runs with SIGINT ignored
        # (a background job of a script): the child would inherit that, and keep ignoring it
        preexec_fn=restore_default_sigint,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "runs.csv").exists() and len((out / "runs.csv").read_text().splitlines()) > 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted, the finished runs are kept" in stdout
    manifest = json.loads((out / "study.json").read_text())
    assert manifest["interrupted"] and 3 <= manifest["runs_done"] < 2000
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == len(read_csv(out / "runs.csv")) == manifest["runs_done"]
    epochs = pd.read_parquet(out / "epochs.parquet")
    assert sorted(set(epochs["run"])) == sorted(runs["run"]) and len(epochs) == 5 * manifest["runs_done"]


@contextmanager
def sigint_handler(handler: Any) -> Iterator[None]:
    """SIGINT handled by `handler` inside the block (then as before)."""
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_while_a_runs_rows_are_written_counts_that_run_as_done(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the deferred Ctrl-C was raised before the run was counted, so the manifest said one run
    fewer than the tables held (a race the subprocess test above hit in CI)."""
    monkeypatch.setattr(study_module, "run_local", lambda tasks, workers: (run_task(t) for t in tasks))
    append = study_module.TableWriter.append
    calls = []

    def append_then_interrupt(self: Any, rows: list[dict[str, Any]]) -> None:
        append(self, rows)
        calls.append(1)
        if len(calls) == len(study_module.TABLES) + 1:  # the second run's first table: the others wait for it
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(study_module.TableWriter, "append", append_then_interrupt)
    plan = plan_study(str(small), runs=4, seed=40, sets=[], sweeps=[])
    with sigint_handler(signal.default_int_handler):  # as in a terminal, whatever this suite was started with
        manifest = study_module.run_study(plan, tmp_path / "out", workers=1, progress=False)
    runs = read_csv(tmp_path / "out" / "runs.csv")
    assert manifest["interrupted"] and len(calls) == 2 * len(study_module.TABLES)  # the second run, whole
    assert manifest["runs_done"] == len(runs) == len(pd.read_parquet(tmp_path / "out" / "runs.parquet")) == 2


def test_a_sigint_inside_the_guard_is_raised_when_the_block_ends() -> None:
    reached_end = False
    with sigint_handler(signal.default_int_handler), pytest.raises(KeyboardInterrupt):
        with InterruptGuard():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, and only records it
            reached_end = True
    assert reached_end


def test_an_ignored_sigint_stays_ignored_inside_the_guard() -> None:
    with sigint_handler(signal.SIG_IGN):
        with InterruptGuard():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # and nothing was raised


def test_set_changes_the_scenario_by_dotted_path_and_seed_replaces_its_seed(small: Path) -> None:
    plan = plan_study(
        str(small), runs=2, seed=70, sets=["validators.mallory.stake=300", "params.quorum=0.5", "epochs=6"], sweeps=[]
    )
    tasks = list(plan.iter_tasks())
    scenario = tasks[0].scenario
    assert next(v for v in scenario.validators if v.name == "mallory").stake == 300
    assert scenario.params.quorum == "0.5" and scenario.epochs == 6
    assert [t.seed for t in tasks] == [70, 71] and [t.scenario.seed for t in tasks] == [70, 71]


def test_sweeps_make_the_cartesian_grid_in_order() -> None:
    keys = {"epochs": int, "vote_mode": str}
    axes = parse_sweeps(["epochs=2,3,2", "vote_mode=open,commit_reveal"], keys)  # type: ignore[arg-type]
    assert compute_grid(axes) == [
        (("epochs", 2), ("vote_mode", "open")),
        (("epochs", 2), ("vote_mode", "commit_reveal")),
        (("epochs", 3), ("vote_mode", "open")),
        (("epochs", 3), ("vote_mode", "commit_reveal")),
    ]


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BAD_INPUT = [
    pytest.param(
        ["--sweep", "validators.malory.stake=1,2"],
        ["validators.malory.stake", "did you mean validators.mallory.stake?"],
        id="unknown-sweep-key",
    ),
    pytest.param(
        ["--set", "validators.mallory.stak=300"], ["did you mean validators.mallory.stake?"], id="unknown-set-key"
    ),
    pytest.param(["--set", "param.quorum=0.5"], ["did you mean params.quorum?"], id="unknown-table"),
    pytest.param(
        ["--set", "validators.mallory.stake=lots"],
        ["validators.mallory.stake takes an integer", "'lots'"],
        id="wrong-type",
    ),
    pytest.param(["--sweep", "epochs=2,x"], ["epochs takes an integer"], id="wrong-type-in-sweep"),
    pytest.param(["--set", "params.burn_vote_veto=1"], ["takes true or false"], id="wrong-type-bool"),
    pytest.param(["--sweep", "epochs="], ["the grid would be empty"], id="empty-grid"),
    pytest.param(["--sweep", "epochs=2,,3"], ["the grid would be empty"], id="empty-value"),
    pytest.param(["--sweep", "epochs"], ["--sweep must be KEY=VALUE"], id="no-equals"),
    pytest.param(
        ["--sweep", "validators.mallory.stake=0,5"],
        ["with validators.mallory.stake=0", "must be an integer between 1 and"],
        id="invalid-point",
    ),
    pytest.param(["--set", "seed=3"], ["--seed S0 and --runs N"], id="seed-is-not-a-key"),
    pytest.param(["--runs", "0"], ["--runs must be between 1"], id="no-runs"),
    pytest.param(["--runs", "2", "--workers", "0"], ["--workers must be at least 1"], id="no-workers"),
    pytest.param(["--runs", "2", "--engine", "network"], ["run the inproc engine"], id="network-engine"),
    pytest.param(
        ["--runs", "2", "--ray", "127.0.0.1:{port}"],
        ["--ray 127.0.0.1:", "no Ray cluster answers there"],
        id="unreachable-ray",
    ),
    pytest.param(["--runs", "2", "--ray", "nowhere"], ["give the Ray head's HOST:PORT"], id="ray-address-without-port"),
]


@pytest.mark.parametrize(("args", "fragments"), BAD_INPUT)
def test_bad_study_input_is_one_error_line_exit_1_before_anything_runs_or_is_written(
    small: Path, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    port = str(free_port())
    out = tmp_path / "out"
    proc = uocd("devnet", "simulate", str(small), "--out", str(out), *(a.replace("{port}", port) for a in args))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("uocd: error: "), proc.stderr
    for fragment in fragments:
        assert fragment.replace("{port}", port) in lines[0], lines[0]
    assert not out.exists()


def test_a_ray_address_where_something_else_listens_is_refused_in_seconds_not_waited_on(
    small: Path, tmp_path: Path
) -> None:
    """`ray.init` on a listener that is not a Ray head (here an HTTP server) waits for minutes; the study
    refuses it after a gRPC handshake that does not come."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_port}"
        proc = uocd("devnet", "simulate", str(small), "--runs", "2", "--ray", address, "--out", str(tmp_path / "o"))
    finally:
        server.shutdown()
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"uocd: error: --ray {address}: something listens there, but not a Ray head")
    assert not (tmp_path / "o").exists()


def test_report_on_a_directory_without_a_study_is_one_error_line(tmp_path: Path) -> None:
    proc = uocd("devnet", "report", str(tmp_path))
    assert proc.returncode == 1 and proc.stderr.startswith("uocd: error: ") and "no study here" in proc.stderr


def test_planning_refuses_a_key_both_set_and_swept(small: Path) -> None:
    with pytest.raises(ScenarioError, match="both --set and --sweep"):
        plan_study(str(small), runs=1, seed=None, sets=["epochs=3"], sweeps=["epochs=3,4"])


def test_a_single_run_takes_set_and_seed_and_writes_its_votes_table(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "one"
    proc = uocd(
        "devnet", "simulate", str(small), "--set", "validators.mallory.stake=300", "--seed", "9", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["seed"] == 9
    votes = pd.read_csv(out / "votes.csv", dtype_backend="numpy_nullable")
    assert set(votes[votes["validator"] == "mallory"]["power"]) == {300}
    assert (votes["vote"] == 9223372036854775807).any() and str(votes["vote"].dtype) == "Int64"
    assert (out / "price.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

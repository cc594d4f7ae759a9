"""`uocd devnet attack` on the command line (issue 17): a real run as a subprocess, its table, JSON and
files, and one error line (exit 1) for each kind of bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

UOCD = [sys.executable, "-m", "uocd"]
REPO = Path(__file__).resolve().parents[2]

SCENARIO = """\
seed = 5
epochs = 4
epoch_length = 2
default_unit_of_compute_price = 1000

[[validators]]
name = "h1"
stake = 30
strategy = "honest"
true_cost = 1000
noise_bps = 100

[[validators]]
name = "h2"
stake = 20
strategy = "honest"
true_cost = 1050
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    return subprocess.run([*UOCD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("attack") / "two.toml"
    path.write_text(SCENARIO)
    return path


def test_attack_prints_a_row_per_share_and_mode_and_writes_csv_and_png(scenario: Path) -> None:
    out = scenario.parent / "out"
    proc = run(
        "devnet",
        "attack",
        str(scenario),
        "--share",
        "0.2:0.6:0.4",
        "--dir",
        str(out),
        "--no-progress",
        cwd=scenario.parent,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["share", "vote_mode", "max_deviation_bps", "outside_honest_range"]
    assert [line.split()[:2] for line in lines[1:5]] == [
        ["0.2", "open"],
        ["0.6", "open"],
        ["0.2", "commit_reveal"],
        ["0.6", "commit_reveal"],
    ]
    assert "open: the price first leaves the honest votes' [min, max] at a share of 0.6" in proc.stdout
    assert f"wrote {out}/attack.csv, {out}/attack.png" in proc.stdout
    with (out / "attack.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"share", "vote_mode", "max_deviation_bps", "outside_honest_range"} <= set(rows[0])
    assert [r["outside_honest_range"] for r in rows] == ["false", "true", "false", "true"]
    assert (out / "attack.png").stat().st_size > 0


def test_attack_json_output_is_the_report(scenario: Path) -> None:
    out = scenario.parent / "json"
    proc = run(
        "devnet",
        "attack",
        str(scenario),
        "--share",
        "0.55",
        "--dir",
        str(out),
        "--no-progress",
        "-o",
        "json",
        cwd=scenario.parent,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [(r["share"], r["vote_mode"], r["outside_honest_range"]) for r in report["rows"]] == [
        ("0.55", "open", True),
        ("0.55", "commit_reveal", True),
    ]
    assert report["first_outside_honest_range"] == {"open": "0.55", "commit_reveal": "0.55"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--share", "1.2"], "--share: the share must lie strictly between 0 and 1, got 1.2"),
        (["--share", "0"], "--share: the share must lie strictly between 0 and 1, got 0"),
        (["--share", "0.1:0.5"], "--share must be FROM:TO:STEP"),
        (["--share", "0.1:0.5:zero"], "STEP must be a decimal above 0"),
        (["--share", "0.5:0.1:0.1"], "FROM (0.5) must not exceed TO (0.1)"),
    ],
)
def test_bad_shares_are_one_error_line_and_exit_1(scenario: Path, args: list[str], fragment: str) -> None:
    proc = run("devnet", "attack", str(scenario), *args, "--dir", str(scenario.parent / "bad"), cwd=scenario.parent)
    assert proc.returncode == 1 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("uocd: error: --share") and fragment in line
    assert not (scenario.parent / "bad").exists()


def test_an_unknown_scenario_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    proc = run("devnet", "attack", "nowhere.toml", "--dir", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("uocd: error: nowhere.toml: cannot read the scenario")


def test_a_malformed_scenario_is_one_error_line_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SCENARIO.replace('strategy = "honest"\ntrue_cost = 1050', 'strategy = "cartel"'))
    proc = run("devnet", "attack", str(path), cwd=tmp_path)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"uocd: error: {path}:") and "group is required" in line

"""`uocd devnet simulate` on the command line (SPEC §8, §9): help, a real run, and one-line errors.

Both spellings of the program are exercised: the `uocd` console script and `python -m uocd`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from uocd.devnet import SUMMARY_EPOCH_COLUMNS

REPO = Path(__file__).resolve().parents[2]
UOCD = [str(Path(sys.executable).with_name("uocd"))]
PYTHON_M_UOCD = [sys.executable, "-m", "uocd"]
PROGRAMS = [pytest.param(UOCD, id="uocd"), pytest.param(PYTHON_M_UOCD, id="python -m uocd")]

SMALL = """\
seed = 9
epochs = 4
epoch_length = 2
default_unit_of_compute_price = 1000

[[validators]]
name = "alpha"
stake = 60
strategy = "fixed"
price = 250

[[validators]]
name = "beta"
stake = 40
strategy = "honest"
true_cost = 300
noise_bps = 100
"""


def run(program: list[str], *args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run([*program, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit status 1, nothing on stdout, and exactly one stderr line 'uocd: error: ...' with `fragments`."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith("uocd: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert proc.stdout == ""
    return line


# ---------------------------------------------------------------------------------------------
# Help
# ---------------------------------------------------------------------------------------------

HELP_CASES = [
    pytest.param(["--help"], ["usage: uocd", "devnet", "--log-format", "--log-level", "unit-of-compute"], id="uocd"),
    pytest.param(["devnet", "--help"], ["usage: uocd devnet", "simulate", "simulations"], id="devnet"),
    pytest.param(
        ["devnet", "simulate", "--help"],
        [
            "usage: uocd devnet simulate",
            "SCENARIO.toml",
            "--engine",
            "inproc",
            "--out",
            "--no-progress",
            "epochs.csv",
            "summary.json",
            "price.png",
        ],
        id="devnet simulate",
    ),
]


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize(("args", "words"), HELP_CASES)
def test_help_exits_0_and_explains_the_command(program: list[str], args: list[str], words: list[str]) -> None:
    proc = run(program, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for word in words:
        assert word in proc.stdout, f"{word!r} missing from help:\n{proc.stdout}"


@pytest.mark.parametrize(("args", "words"), HELP_CASES)
def test_python_m_uocd_prints_the_same_help_as_uocd(args: list[str], words: list[str]) -> None:
    assert run(PYTHON_M_UOCD, *args).stdout == run(UOCD, *args).stdout


@pytest.mark.parametrize("args", [[], ["devnet"]], ids=["no command", "devnet without subcommand"])
def test_missing_command_exits_2_with_usage(args: list[str]) -> None:
    proc = run(UOCD, *args)
    assert proc.returncode == 2
    assert "usage: uocd" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# A real run
# ---------------------------------------------------------------------------------------------


def test_simulate_basic_example_prints_the_epoch_and_proposal_tables_final_prices_and_output_paths(
    tmp_path: Path,
) -> None:
    out = tmp_path / "basic"
    proc = run(PYTHON_M_UOCD, "devnet", "simulate", "examples/basic.toml", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("simulated 50 epochs (500 blocks, ")
    assert lines[1].split() == list(SUMMARY_EPOCH_COLUMNS)  # the main columns: an 80-column table
    # first and last epochs of the table are the first and last rows of epochs.csv, in those columns
    csv_header, *csv_rows = (out / "epochs.csv").read_text().splitlines()
    keep = [csv_header.split(",").index(c) for c in SUMMARY_EPOCH_COLUMNS]

    def shown(row: str) -> list[str]:
        return [cell for cell in (row.split(",")[i] for i in keep) if cell]

    assert lines[2].split() == shown(csv_rows[0])
    assert lines[2].split()[:3] == ["0", "100", "0"]
    final_line = next(i for i, line in enumerate(lines) if line.startswith("final price"))
    proposals_header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["id", "model"])
    assert lines[proposals_header - 2].split() == shown(csv_rows[-1])
    assert any(set(line.split()) == {"…"} for line in lines[2:proposals_header]), "a long table elides its middle"
    proposal_rows = (out / "proposals.csv").read_text().splitlines()[1:]
    assert [line.split() for line in lines[proposals_header + 1 : final_line]] == [r.split(",") for r in proposal_rows]
    assert lines[final_line].startswith(f"final price {summary['final_price']} ngonka")
    assert summary["final_app_hash"] in lines[final_line]
    units = summary["final_models"]["model-alpha"]
    assert lines[final_line + 1] == (
        f"model model-alpha: {units} units of compute per token = {units * summary['final_price']} ngonka per token"
    )
    assert lines[final_line + 2].startswith("per strategy")
    assert [line.split()[0] for line in lines[final_line + 4 : final_line + 7]] == ["fixed", "honest", "silent"]
    assert lines[-2].startswith("price vs the honest-only median: mean ")
    names = ("epochs.csv", "models.csv", "proposals.csv", "summary.json", "price.png", "models.png")
    assert lines[-1] == "wrote " + ", ".join(f"{out}/{name}" for name in names)
    for name in names:
        assert (out / name).stat().st_size > 0
    assert summary["txs_rejected"] == 0 and summary["final_epoch"] == 50


def test_simulate_demand_example_prints_the_revenue_per_provider_and_writes_usage_csv_and_revenue_png(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demand"
    proc = run(UOCD, "devnet", "simulate", "examples/demand.toml", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    revenue = json.loads((out / "summary.json").read_text())["revenue"]
    lines = proc.stdout.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("revenue per provider"))
    jobs = sum(r["jobs"] for r in revenue.values())
    assert lines[title] == f"revenue per provider ({jobs:,} jobs settled; summary.json: revenue; ngonka):"
    assert lines[title + 1].split() == ["provider", "jobs", "charged", "payout", "fee"]
    table = [line.split() for line in lines[title + 2 : title + 2 + len(revenue)]]
    assert table == [
        [name, *(f"{revenue[name][k]:,}" for k in ("jobs", "charged", "payout", "fee"))]
        for name in sorted(revenue, key=lambda n: -revenue[n]["payout"])
    ]
    names = ("epochs.csv", "models.csv", "proposals.csv", "summary.json", "price.png", "models.png")
    names += ("usage.csv", "revenue.png")
    assert lines[-1] == "wrote " + ", ".join(f"{out}/{name}" for name in names)


@pytest.mark.parametrize("program", PROGRAMS)
def test_simulate_small_scenario_gives_the_same_result_from_uocd_and_python_m_uocd(
    program: list[str], tmp_path: Path
) -> None:
    scenario = tmp_path / "small.toml"
    scenario.write_text(SMALL)
    proc = run(program, "devnet", "simulate", str(scenario), "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    rows = (tmp_path / "out" / "epochs.csv").read_text().splitlines()
    assert rows[0] == "epoch,price,total_power,voters,non_voters,min_vote,max_vote,fees_collected,chain_epoch"
    assert [r.split(",")[1] for r in rows[1:]] == ["1000", "250", "250", "250", "250"]
    assert "final price 250 ngonka" in proc.stdout


@pytest.mark.parametrize("level", ["info", "debug"])
def test_log_format_json_is_accepted_and_every_log_line_is_json(tmp_path: Path, level: str) -> None:
    scenario = tmp_path / "small.toml"
    scenario.write_text(SMALL)
    out = tmp_path / "out"
    proc = run(
        UOCD,
        "--log-format",
        "json",
        "--log-level",
        level,
        "devnet",
        "simulate",
        str(scenario),
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "summary.json").is_file()
    for line in proc.stderr.splitlines():
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)


def test_log_format_json_still_reports_a_bad_scenario_in_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(SMALL.replace("stake = 40", 'stake = "40"'))
    proc = run(UOCD, "--log-format", "json", "devnet", "simulate", str(scenario), "--no-progress")
    assert_one_error_line(proc, f"{scenario}:14:", "validators[1].stake")


def test_unknown_log_format_is_a_usage_error() -> None:
    proc = run(UOCD, "--log-format", "xml", "devnet", "simulate", "examples/basic.toml")
    assert proc.returncode == 2
    assert "--log-format" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# Errors: one line, no traceback
# ---------------------------------------------------------------------------------------------

MALFORMED = [
    pytest.param(SMALL.replace("stake = 40", 'stake = "40"'), 14, "validators[1].stake", id="stake as a string"),
    pytest.param(
        SMALL.replace('strategy = "honest"', 'strategy = "greedy"'), 15, "validators[1].strategy", id="unknown strategy"
    ),
    pytest.param(SMALL.replace("seed = 9", "seeds = 9"), 1, "seeds", id="unknown top-level key"),
    pytest.param(
        SMALL.replace("price = 250", "price = 250\nnoise_bps = 5"),
        11,
        "validators[0].noise_bps",
        id="key not applying to the strategy",
    ),
    pytest.param(SMALL.replace("epochs = 4", "epochs = 4 4"), 2, "not valid TOML", id="invalid TOML"),
    pytest.param(SMALL.replace('name = "beta"', 'name = "alpha"'), 13, "validators[1].name", id="duplicate name"),
]


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize(("text", "line", "key"), MALFORMED)
def test_malformed_scenario_exits_1_with_one_error_line_naming_file_line_and_key(
    program: list[str], tmp_path: Path, text: str, line: int, key: str
) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(text)
    out = tmp_path / "out"
    proc = run(program, "devnet", "simulate", str(scenario), "--out", str(out), "--no-progress")
    assert_one_error_line(proc, f"{scenario}:{line}:", key)
    assert not out.exists(), "nothing is simulated for a malformed scenario"


def test_missing_scenario_file_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    proc = run(UOCD, "devnet", "simulate", str(missing), "--out", str(tmp_path / "out"), "--no-progress")
    assert_one_error_line(proc, str(missing), "cannot read the scenario")


def test_scenario_path_that_is_a_directory_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    proc = run(UOCD, "devnet", "simulate", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress")
    assert_one_error_line(proc, str(tmp_path), "cannot read the scenario")


def test_out_path_that_is_a_file_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    scenario = tmp_path / "small.toml"
    scenario.write_text(SMALL)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    proc = run(UOCD, "devnet", "simulate", str(scenario), "--out", str(blocker), "--no-progress")
    assert_one_error_line(proc, str(blocker))


def test_scenario_whose_honest_vote_overflows_exits_1_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    # true_cost = 2^63 - 1 with noise: any positive noise draw is a vote over the ngonka limit.
    scenario = tmp_path / "overflow.toml"
    scenario.write_text(
        'epochs = 8\nepoch_length = 1\n\n[[validators]]\nname = "a"\nstake = 1\nstrategy = "honest"\n'
        "true_cost = 9223372036854775807\nnoise_bps = 9999\n"
    )
    proc = run(UOCD, "devnet", "simulate", str(scenario), "--out", str(tmp_path / "out"), "--no-progress")
    assert_one_error_line(proc, str(scenario), "true_cost")

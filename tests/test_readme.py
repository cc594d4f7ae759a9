"""The README's commands are the ones the project runs: CI runs its test command, its first command
starts a 4-node devnet and runs a scenario through it (run here in a temp dir), and every `uocd`
line parses."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from devnet.scenario import load_scenario, parse_scenario
from uocd.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETUP = "python3 -m venv .venv && .venv/bin/pip install -q -e ."


def readme_commands() -> list[str]:
    """The shell commands in the README's sh blocks, in order."""
    return [line for block in re.findall(r"```sh\n(.*?)```", README, re.S) for line in block.strip().splitlines()]


def first_command_steps() -> list[list[str]]:
    """The uocd arguments of each step of the README's first command (after its setup steps)."""
    first = readme_commands()[0]
    assert first.startswith(SETUP + " && "), first
    steps = [shlex.split(step) for step in first[len(SETUP) + 4 :].split(" && ")]
    assert all(words[0] == ".venv/bin/uocd" for words in steps)
    return [words[1:] for words in steps]


def uocd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uocd", *args], cwd=cwd, capture_output=True, text=True, timeout=180)


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1] in (ROOT / ".ci/run").read_text()


def test_readme_first_command_starts_a_4_node_devnet_for_a_scenario_that_exists():
    up, simulate = first_command_steps()
    assert up[:3] == ["devnet", "up", "--scenario"] and simulate[:2] == ["devnet", "simulate"]
    assert simulate[2] == up[3] and simulate[simulate.index("--engine") + 1] == "network"
    assert len(load_scenario(str(ROOT / up[3])).validators) == 4


def mirror_top_level_directories(target: Path) -> None:
    """Empty copies of the repository's top-level directories (chain/, devnet/, node/, …), so that a
    command run in `target` meets the names it would meet in a fresh clone."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in sorted({line.split("/")[0] for line in tracked.splitlines() if "/" in line}):
        (target / name).mkdir()


def test_readme_first_command_starts_a_devnet_runs_the_scenario_and_leaves_the_network_running(tmp_path):
    up, simulate = first_command_steps()
    mirror_top_level_directories(tmp_path)
    shutil.copy(ROOT / up[3], tmp_path / up[3])
    devnet = tmp_path / simulate[simulate.index("--dir") + 1]
    try:
        started = uocd(*up, cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        assert "/v1/admin/unit-of-compute-price-proposal" in started.stdout and "Bearer" in started.stdout
        proc = uocd(*simulate, "--no-progress", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "epoch  price" in proc.stdout and "model-alpha" in proc.stdout
        assert "out/quick/price.png" in README and (tmp_path / "out/quick/price.png").stat().st_size > 0
        status = json.loads(uocd("devnet", "status", "--dir", str(devnet), "-o", "json", cwd=tmp_path).stdout)
        assert [n["state"] for n in status["nodes"]] == ["up"] * 4
        again = uocd(*simulate, "--no-progress", cwd=tmp_path)
        assert again.returncode == 1 and "has already run a scenario" in again.stderr
    finally:
        uocd("devnet", "down", "--dir", str(devnet), cwd=tmp_path)
    assert subprocess.run(["pgrep", "-f", str(devnet)], capture_output=True).stdout == b""


def test_every_uocd_line_of_the_readme_parses():
    parser = build_parser()
    lines = [c for c in readme_commands() if c.startswith(".venv/bin/uocd ")]
    assert len(lines) >= 8
    for line in lines:
        words = shlex.split(line.split(";")[0].split("&")[0].replace("$i", "0"))
        parser.parse_args(words[1:])


def test_readme_scenario_block_is_a_valid_scenario():
    block = re.search(r"```toml\n(.*?)```", README, re.S).group(1)
    scenario = parse_scenario(block, "README.md")
    assert [v.strategy for v in scenario.validators] == ["honest", "fixed", "extreme", "silent"]
    assert [(p.kind, p.id, len(p.votes)) for p in scenario.proposals] == [("register_model", "model-alpha", 3)]

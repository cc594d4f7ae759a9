"""The README's commands are the ones the project runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from devnet.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """The shell commands in the README's sh blocks, in order."""
    return [line for block in re.findall(r"```sh\n(.*?)```", README, re.S) for line in block.strip().splitlines()]


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1] in (ROOT / ".ci/run").read_text()


def test_readme_first_command_simulates_an_example_that_exists():
    words = shlex.split(readme_commands()[0].split("&&")[-1])
    assert words[1:4] == ["devnet", "simulate", "examples/basic.toml"]
    assert (ROOT / words[3]).is_file()


def test_readme_scenario_block_is_a_valid_scenario():
    block = re.search(r"```toml\n(.*?)```", README, re.S).group(1)
    scenario = parse_scenario(block, "README.md")
    assert [v.strategy for v in scenario.validators] == ["honest", "fixed", "extreme", "silent"]
    assert [(p.kind, p.id, len(p.votes)) for p in scenario.proposals] == [("register_model", "model-alpha", 3)]

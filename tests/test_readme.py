"""The README's commands are the ones the project runs: CI runs its test command, its first command
starts a 4-node devnet and runs a scenario through it (run here in a temp dir), every `uocd` line
parses, and the commands it names (`uocd tx send|bond|…` included) are exactly uocd's commands."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from devnet.scenario import load_scenario, parse_scenario
from uocd.main import build_parser
from uocd.reference import compute_reference, get_subcommands, iter_commands

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
        pasted = paste_into_a_shell(block_under("## For providers") + block_under("## For clients"), cwd=tmp_path)
        assert pasted.returncode == 0, pasted.stderr
        for answer in ('"tx_hash"', '"price_ngonka":1000000000000', '"proposal_id"', '"unit_of_compute_price"'):
            assert answer in pasted.stdout, pasted.stdout
    finally:
        uocd("devnet", "down", "--dir", str(devnet), cwd=tmp_path)
    assert subprocess.run(["pgrep", "-f", str(devnet)], capture_output=True).stdout == b""


def block_under(heading: str) -> list[str]:
    """The lines of the first sh block after `heading`."""
    section = README[README.index(heading + "\n") :]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1).strip().splitlines()


def paste_into_a_shell(lines: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run README lines in bash as a user pastes them in the clone, `.venv/bin/uocd` being this uocd."""
    venv_uocd = cwd / ".venv/bin/uocd"
    venv_uocd.parent.mkdir(parents=True, exist_ok=True)
    venv_uocd.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m uocd "$@"\n')
    venv_uocd.chmod(0o755)
    script = "set -euo pipefail\n" + "\n".join(lines)
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120)


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
    assert [v.strategy for v in scenario.validators] == [
        "honest",
        "fixed",
        "extreme",
        "silent",
        "copycat",
        "cartel",
    ] + ["sybil"] * 5 + ["free_rider"]
    assert scenario.params.vote_reward_share == "0.5"
    assert [(p.kind, p.id, len(p.votes)) for p in scenario.proposals] == [("register_model", "model-alpha", 3)]


GLOBAL_OPTIONS_WITH_VALUES = ("--log-level", "--log-format")


def readme_mentions() -> list[list[str]]:
    """The words after `uocd` of every command the README shows: in its sh blocks, and in the
    backquoted spans of its prose (`uocd tx send|bond|unbond|remove-model`, `uocd grpc evidence ADDR`)."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    spans = [span for span in re.findall(r"`([^`]+)`", prose) if span.startswith("uocd ")]
    lines = [part for line in readme_commands() for part in re.split(r"\.venv/bin/uocd ", line)[1:]]
    return [shlex.split("uocd " + re.split(r"[;&)]|\bdone\b", part)[0].replace("$i", "0"))[1:] for part in lines] + [
        span.split()[1:] for span in spans
    ]


def named_commands(
    words: list[str], parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str | None]]:
    """(command path, unknown word or None) for each command that `words` name, expanding `a|b` and
    `a/b` alternatives of a command word; the command words end at an option, a placeholder (NAME) or
    a command that runs."""
    while not path and words and words[0] in GLOBAL_OPTIONS_WITH_VALUES:
        words = words[2:]
    commands = get_subcommands(parser)
    if not commands or not words or words[0].startswith("-") or words[0].isupper():
        yield path, None
        return
    for name in re.split(r"[|/]", words[0]):
        if name in commands:
            yield from named_commands(words[1:], commands[name], (*path, name))
        else:
            yield path, name


def test_every_command_the_readme_names_is_a_uocd_command():
    parser = build_parser()
    unknown = [
        f"uocd {' '.join([*path, word])} (from `uocd {' '.join(words)}`)"
        for words in readme_mentions()
        for path, word in named_commands(words, parser)
        if word is not None
    ]
    assert unknown == []


def test_docs_cli_md_is_the_generated_command_reference():
    """The full command list lives in docs/cli.md, generated from the argparse tree (and so from chain's
    declarations): a new message or query needs a regenerated docs/cli.md, never a README edit."""
    expected = compute_reference()
    assert (ROOT / "docs/cli.md").read_text() == expected, "docs/cli.md is stale: python -m uocd.reference"
    listed = set(re.findall(r"^## `uocd ([^`]+)`$", expected, re.M))
    assert listed == {" ".join(path) for path, _, _ in iter_commands(build_parser())} and len(listed) > 20
    assert "docs/cli.md" in README


def test_the_command_list_check_expands_alternatives_and_sees_unknown_commands():
    parser = build_parser()
    found = list(named_commands(["query", "pricing|status", "--home", "h"], parser))
    assert found == [(("query", "pricing"), None), (("query", "status"), None)]
    assert list(named_commands(["tx", "send|fly"], parser)) == [(("tx", "send"), None), (("tx",), "fly")]
    assert list(named_commands(["--log-format", "json", "devnet", "up/down"], parser)) == [
        (("devnet", "up"), None),
        (("devnet", "down"), None),
    ]
    assert list(named_commands(["COMMAND", "--help"], parser)) == [((), None)]

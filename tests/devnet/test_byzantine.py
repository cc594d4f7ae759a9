"""uocd devnet chaos --byzantine: a fixed-seed run of about two minutes with one adversary of four validators
(a real `python -m devnet.adversary` process) beside the crash faults, in real network namespaces when allowed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devnet.adversary import RECORD_FILE
from devnet.adversary_plan import ATTACK_KINDS
from devnet.chaos_verdict import STALL_BOUND_S, STATUS_BOUND_S
from devnet.launch import NODE_PROGRAM
from node.config import load_home

ROOT = Path(__file__).resolve().parents[2]
SEED = 3
# Kinds that act in any window: time_future and time_past act only on the adversary's own new proposals, and
# tamper_relay only on a proposal it relays at its own height, which a window may never see (the adversary is
# paused or syncing, or the chain halts correctly: jailed for its double signs, it leaves three validators,
# and a crash fault of one of them stops the rest); tests/devnet/test_adversary_node.py shows it acting.
ALWAYS_ACTING = tuple(k for k in ATTACK_KINDS if k not in ("time_future", "time_past", "tamper_relay"))


def liar_address(out: Path, name: str) -> str:
    """The validator address of the adversary whose home is out/NAME."""
    key = load_home(out / name).validator_key
    assert key is not None
    return key.address


@pytest.fixture(scope="module")
def byzantine_run(tmp_path_factory):
    """The run's exit code, summary, stderr and directory."""
    out = tmp_path_factory.mktemp("byzantine") / "run"
    argv = ["devnet", "chaos", "--validators", "4", "--byzantine", "1", "--seed", str(SEED), "--duration", "110"]
    run = subprocess.run(
        [sys.executable, "-m", NODE_PROGRAM, *argv, "--dir", str(out), "--output", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return run, json.loads(run.stdout) if run.stdout.strip() else None, out


def test_one_adversary_of_four_neither_halts_nor_forks_the_honest_nodes(byzantine_run):
    run, summary, _ = byzantine_run
    assert summary is not None, run.stderr[-3000:]
    assert summary["problems"] == [] and summary["ok"] and run.returncode == 0, run.stderr[-3000:]
    byzantine = summary["byzantine"]
    assert len(byzantine["adversaries"]) == 1
    assert byzantine["longest_stall_outside_faults_s"] < STALL_BOUND_S
    assert byzantine["status_latency"]["count"] > 500 and byzantine["status_latency"]["max_s"] <= STATUS_BOUND_S
    assert summary["txs"]["lost"] == 0 and summary["conflicting_heights"] == 0 and summary["epochs_checked"] >= 5
    assert summary["faults"], "crash faults ran beside the adversary"


def test_the_adversary_ran_every_attack_and_every_equivocation_it_delivered_is_evidence(byzantine_run):
    _, summary, out = byzantine_run
    assert summary is not None
    byzantine = summary["byzantine"]
    assert all(byzantine["attack_windows"][k] >= 1 for k in ATTACK_KINDS)
    assert all(byzantine["attacks"][k] > 0 for k in ALWAYS_ACTING), byzantine["attacks"]
    equivocations = byzantine["equivocations"]
    assert equivocations["due"] > 0
    assert equivocations["committed_on_every_honest_node"] == equivocations["due"]
    assert equivocations["equivocators_jailed_and_slashed"] == [liar_address(out, byzantine["adversaries"][0])]
    liar = out / byzantine["adversaries"][0]
    assert (liar / RECORD_FILE).exists() and "adversary attacks now" in (liar / "node.log").read_text()
    honest = [name for name in equivocations["evidence_committed_per_honest_node"]]
    assert byzantine["adversaries"][0] not in honest and len(honest) == 3  # its own store is never judged

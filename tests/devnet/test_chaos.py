"""uocd devnet chaos: the seeded fault plan, the verdict's checks, and a fixed-seed run against real processes
in real network namespaces (and one behind the TCP fault relay)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devnet.chaos import compute_rss_growth
from devnet.chaos_load import BAD_INPUTS
from devnet.chaos_nodes import (
    ChaosNode,
    create_chaos_homes,
    get_network_height,
    kill_process,
    open_fabric,
    start_process,
    wait_all_at,
)
from devnet.chaos_plan import FAULT_KINDS, ChaosConfig, compute_fault_plan
from devnet.chaos_verdict import compute_conflicts, judge_stores
from devnet.launch import NODE_PROGRAM

ROOT = Path(__file__).resolve().parents[2]


def uocd(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `python -m NODE_PROGRAM ARGS` (uocd) from the repo root."""
    return subprocess.run(
        [sys.executable, "-m", NODE_PROGRAM, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def chaos(out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict | None]:
    """Run `uocd devnet chaos` with 4 validators into `out` with JSON output: the process and its summary."""
    run = uocd("devnet", "chaos", "--validators", "4", "--dir", str(out), "--output", "json", *args)
    return run, json.loads(run.stdout) if run.stdout.strip() else None


# -- the plan -----------------------------------------------------------------------------------
@given(seed=st.integers(0, 2**32), validators=st.integers(4, 7))
def test_every_round_of_the_plan_has_each_fault_kind_once_with_sane_targets(seed, validators):
    plan = compute_fault_plan(seed, validators, 3 * len(FAULT_KINDS))
    for start in range(0, len(plan), len(FAULT_KINDS)):
        assert sorted(f.kind for f in plan[start : start + len(FAULT_KINDS)]) == sorted(FAULT_KINDS)
    for fault in plan:
        assert all(0 <= i < validators for i in fault.targets) and len(set(fault.targets)) == len(fault.targets)
        assert (5.0 <= fault.hold_s <= 10.0) if fault.kind == "pause" else (2.0 <= fault.hold_s <= 5.0)
        if fault.kind in ("kill", "pause", "wipe"):
            assert len(fault.targets) == 1
        if fault.kind == "partition":
            assert 1 <= len(fault.targets) <= validators // 2
        if fault.kind == "loss":
            assert 0.1 <= fault.loss <= 0.4
        if fault.kind == "delay":
            assert 100 <= fault.delay_ms <= 300 and fault.jitter_ms > 0


def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    assert compute_fault_plan(7, 5, 12) == compute_fault_plan(7, 5, 12)
    assert compute_fault_plan(7, 5, 12) != compute_fault_plan(8, 5, 12)


# -- the verdict's pieces -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stores", "conflicts"),
    [
        ({"n0": {1: "a", 2: "b"}, "n1": {1: "a", 2: "b"}}, []),
        ({"n0": {1: "a", 2: "b"}, "n1": {1: "a"}}, []),  # a store that is behind is no conflict
        ({"n0": {1: "a", 2: "b"}, "n1": {1: "a", 2: "c"}}, ["height 2: n0=b, n1=c"]),
        ({"n0": {1: "x"}, "n1": {1: "a"}, "n2": {1: "a"}}, ["height 1: n0=x, n1=a, n2=a"]),
    ],
)
def test_conflicting_blocks_are_the_heights_where_two_stores_differ(stores, conflicts):
    assert compute_conflicts(stores) == conflicts


def test_rss_growth_compares_the_half_way_window_with_the_last_one():
    samples = [{"t": float(t), "node": "n0", "rss_kib": 1000 if t <= 300 else 1050} for t in range(0, 601, 2)]
    assert compute_rss_growth(samples, 600.0) == {"n0": {"half_kib": 1000, "end_kib": 1050, "growth_pct": 5.0}}


# -- real runs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def netns_run(tmp_path_factory):
    """A fixed-seed ~2-minute chaos run: its exit code, summary, stderr and directory."""
    out = tmp_path_factory.mktemp("chaos") / "run"
    run, summary = chaos(out, "--seed", "3", "--duration", "100")
    return run, summary, out


def test_a_fixed_seed_chaos_run_agrees_and_loses_nothing_in_namespaces_when_root(netns_run, netns_expected):
    run, summary, _ = netns_run
    assert summary is not None, run.stderr[-3000:]
    assert summary["problems"] == [] and summary["ok"] and run.returncode == 0, run.stderr[-3000:]
    if netns_expected:  # CI runs as root, with iproute2 and iptables installed by .ci/run
        assert summary["fabric"] == "netns", "namespaces were refused: " + run.stderr[:500]
    else:  # not root, or no iptables: namespaces are refused, and the run says so loudly before it uses the relay
        assert summary["fabric"] == "proxy" and "WARNING" in run.stderr.splitlines()[0]
    assert set(summary["faults"]) == set(FAULT_KINDS)  # every kind happened
    assert summary["txs"]["lost"] == 0
    assert summary["txs"]["committed"] >= 100
    assert summary["epochs_checked"] >= 10 and summary["blocks_compared"] >= summary["final_height"]
    assert summary["recovery_after_heal"]["count"] >= 1 and summary["recovery_after_restart"]["count"] >= 1
    assert summary["pricing_reads"]["ok"] > 0
    assert set(summary["bad_inputs"]) == set(BAD_INPUTS)  # each tried, none answered 5xx or 2xx (no problem)


def test_the_verdict_catches_a_forked_block_a_lost_tx_and_a_wrong_price(netns_run, tmp_path):
    _, summary, out = netns_run
    assert summary is not None
    doc = json.loads((out / "chaos.json").read_text())
    nodes = []
    for i in range(4):
        home = tmp_path / f"n{i}"
        shutil.copytree(out / f"n{i}", home)
        nodes.append(ChaosNode(i, home, public="", admin="", token="", key=None))  # type: ignore[arg-type]
    committed = [{"kind": "price_vote", "tx_hash": "AB" * 32, "height": 5, "code": "ok"}]
    assert judge_stores(nodes, [], [])["problems"] == []
    db = sqlite3.connect(nodes[1].home / "data" / "node.db")
    with db:
        db.execute("UPDATE blocks SET block_id = 'forged' WHERE height = 3")
        last = "(SELECT MAX(key) FROM state WHERE space = 'hist')"
        db.execute(f"UPDATE state SET value = json_set(value, '$.price', 1) WHERE space = 'hist' AND key = {last}")
    db.close()
    verdict = judge_stores(nodes, committed, [])
    problems = "\n".join(verdict["problems"])
    assert "conflicting blocks at height 3" in problems
    assert verdict["lost"] == 1 and "lost price_vote ABABABABABABABAB" in problems
    assert "n1: epoch" in problems and "price 1, votes give" in problems
    assert doc["rss_samples"], "the run samples each node's RSS"


def test_four_nodes_keep_committing_with_100_ms_delay_on_every_link(tmp_path):
    # Found by the chaos delay fault: each peer link sent one gossip call per round trip, so 100 ms on
    # every link stopped the chain (0 blocks in 20 s); consensus gossip is now pipelined (node/network.py).
    with open_fabric("auto", "delay-test", echo=lambda line: None) as fabric:
        fabric.setup(4)
        nodes = create_chaos_homes(tmp_path, fabric, ChaosConfig())
        try:
            for node in nodes:
                start_process(node, fabric)
            assert wait_all_at(nodes, 2, 60.0) is not None
            fabric.set_delay([0, 1, 2, 3], 100, 20)
            before = get_network_height(nodes)
            assert wait_all_at(nodes, before + 8, 20.0) is not None, "8 blocks within 20 s with 100 ms links"
        finally:
            fabric.heal()
            for node in nodes:
                kill_process(node)


def test_a_short_run_behind_the_tcp_fault_relay_agrees_and_loses_nothing(tmp_path):
    run, summary = chaos(tmp_path / "run", "--seed", "5", "--duration", "45", "--fabric", "proxy")
    assert summary is not None, run.stderr[-3000:]
    assert summary["problems"] == [] and run.returncode == 0, run.stderr[-3000:]
    assert summary["fabric"] == "proxy" and summary["faults"] and summary["txs"]["lost"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--validators", "3"], "--validators must be 4 to 7, got 3"),
        (["--validators", "8"], "--validators must be 4 to 7, got 8"),
        (["--duration", "10"], "--duration must be at least 30 seconds"),
        (["--fabric", "docker"], "invalid choice: 'docker'"),
        (["--byzantine", "2"], "--byzantine must be below a third of the validators (3K < N): at most 1 of 4, got 2"),
        (["--validators", "7", "--byzantine", "3"], "at most 2 of 7, got 3"),
        (["--attacks", "pad,bribe"], "unknown attack kind 'bribe'"),
    ],
)
def test_chaos_refuses_bad_arguments_in_one_line(tmp_path, args, message):
    run = uocd("devnet", "chaos", "--dir", str(tmp_path / "x"), *args, timeout=60)
    assert run.returncode != 0 and message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x").exists()


def test_chaos_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    run = uocd("devnet", "chaos", "--dir", str(tmp_path), timeout=60)
    assert run.returncode == 1 and "exists and is not empty" in run.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]

"""A chaos run: a devnet of real node processes under steady load while seeded faults hit it, then a verdict.

`uocd devnet chaos --validators 5 --seed 7 --duration 120` (and `bench/soak.py`, which is a run with no
faults) goes through these steps:

1. **Network** (`devnet.chaos_nodes`). `open_fabric` gives every node its own network namespace on one
   bridge (or, when namespaces are refused, says so loudly and puts a TCP fault relay between every pair
   of nodes). The homes are ordinary devnet homes whose listeners bind to the node's own address.
2. **Load** (`devnet.chaos_load`), in threads, for the whole run: each validator's worker votes a price
   through its own node's admin API (`POST /v1/admin/unit-of-compute-price-proposal`), now and then
   registers a model (`POST /v1/admin/models`) or votes on an open proposal (a signed `MsgVote` posted
   to `/v1/txs?wait=commit`); a reader reads `/v1/pricing` from every node in turn. Every reply that
   says "committed" is written down with its tx hash and height. An abuser sends about five bad inputs a
   second (`BAD_INPUTS`: malformed JSON, a 2 MiB body, a badly signed tx, a 20 kB header, a wrong admin
   token, junk gRPC consensus messages, raw garbage on the gRPC port); each must get a 4xx, a gRPC
   rejection or a closed connection, never a 5xx or a 2xx.
3. **Faults** (`devnet.chaos_plan`), one at a time, in an order and with targets and durations drawn
   from the seed: every round has each kind once — SIGKILL and restart; SIGSTOP, then SIGCONT (a pause);
   SIGKILL, a wiped data directory and sign state file and a restart that must resync from peers; a
   partition into two groups; packet loss; delay with jitter. After each, the run measures the
   recovery: the time from the restart or the heal until every node has reached the height the
   network had then, plus one block.
4. **Verdict** (`devnet.chaos_verdict`, reading the stores through `node.store.SqliteStore`), after the
   load stops and every fault is healed: every node reaches the same height and app hash; the stores
   hold the same block at every height; every transaction whose submission answered "committed" is in
   every store at that height, with that result; `PRAGMA integrity_check` passes on every store; and
   each epoch's price equals the weighted median that `chain.median` computes from the committed votes
   (the validator set is the genesis one: the load sends no bonds), as the in-process engine does.

5. **Adversaries** (`--byzantine K`, K < N/3; `devnet.adversary_plan`, `devnet.adversary`). K validators, drawn
   from the seed, run `python -m devnet.adversary` instead of `uocd start`: the same node, with a NodeCore that
   lies in seeded windows of one to three attacks at a time (equivocate, time_future, time_past, tamper_relay,
   flood_txs, flood_future, pad, lie_height, withhold, replay; `--attacks` picks some), timed from the load's
   start (the runner writes it to the adversary's HOME/attack_clock). Crash faults go on beside them and may
   hit them too. The verdict is then judged on the honest nodes only, and adds: the longest stretch without a
   new block, outside crash faults of honest nodes (from a fault's start to 6 s after it ended, or after a
   restarted node answers again: more than a third may be down then), stays under 10 s; every /v1/status of
   an honest node, sampled four times a second by a probe process, is answered within 1 s; every
   equivocation an adversary delivered is held as evidence by an honest node. The summary reports the
   attacks by kind (windows and actions), the equivocations and the evidence, the longest stall and the
   status latency (max and p99).

A wiped validator keeps its keys, config and sign state file (`HOME/validator_state.json`, beside
the validator key) but loses its data directory, as a node reset to resync does; it is restarted at
once, resyncs, and its sign state keeps it from signing a second, different vote at a height it voted
on before. A lost sign state file is another matter (docs/consensus.md, "double_sign_check_height"):
the node then signs nothing until the others have decided 2 heights without it, which halts a chain
that needs its vote; the node tests cover it, the chaos runs do not inject it.

The summary (printed and in DIR/chaos.json): duration, faults by kind, transactions submitted,
committed and lost (must be 0), recovery times, the /v1/pricing reads, and each node's RSS over time.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.process
import os
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.config import DB_FILE

from .adversary import CLOCK_FILE as ADVERSARY_CLOCK_FILE
from .adversary import RECORD_FILE
from .adversary_plan import (
    ATTACK_KINDS,
    compute_adversaries,
    compute_attack_plan,
    compute_attack_seed,
    is_byzantine_count_allowed,
)
from .chaos_load import (
    REQUEST_TIMEOUT_S,
    STATUS_SAMPLE_TIMEOUT_S,
    Ledger,
    run_abuse_load,
    run_guarded,
    run_reader_load,
    run_rss_sampler,
    run_status_probe,
    run_validator_load,
)
from .chaos_nodes import (
    SETTLE_TIMEOUT_S,
    ChaosNode,
    create_chaos_homes,
    get_network_height,
    kill_process,
    open_fabric,
    pause_process,
    settle,
    start_process,
    terminate_process,
    wait_all_at,
)
from .chaos_plan import FAULT_KINDS, RESTART_KINDS, ChaosConfig, Fault, compute_fault_plan
from .chaos_verdict import judge_equivocations, judge_liveness, judge_stores
from .errors import DevnetError
from .fabric import Fabric

RECOVERY_TIMEOUT_S = 90.0
FAULT_GAP_S = (1.0, 3.0)
TAIL_RESERVE_S = 15.0  # no fault starts this close to the end of the run
STATUS_PROBE_FILE = "status_probe.jsonl"
RECOVERY_GRACE_S = 6.0  # a byzantine run excuses a stall for this long after a crash fault of an honest node ends


# =============================================================================================
# faults
# =============================================================================================
@dataclass
class FaultRecord:
    """A fault as it ran: what, when, and how long the network took to recover."""

    fault: Fault
    started_s: float
    recovered_s: float | None = None
    kind_of_recovery: str = "heal"
    healed_s: float | None = None  # when the fault ended: the restart, the SIGCONT or the heal
    up_s: float | None = None  # a restarted honest node: when it first answered /v1/status again

    def to_json(self) -> dict[str, Any]:
        """The summary entry."""
        return {
            "kind": self.fault.kind,
            "targets": [f"n{i}" for i in self.fault.targets],
            "hold_s": self.fault.hold_s,
            "loss": self.fault.loss,
            "delay_ms": self.fault.delay_ms,
            "jitter_ms": self.fault.jitter_ms,
            "started_s": round(self.started_s, 1),
            "recovery": self.kind_of_recovery,
            "recovery_s": None if self.recovered_s is None else round(self.recovered_s, 2),
            "healed_s": None if self.healed_s is None else round(self.healed_s, 1),
            "up_s": None if self.up_s is None else round(self.up_s, 1),
        }


def apply_fault(fault: Fault, nodes: list[ChaosNode], fabric: Fabric) -> None:
    """Start the fault."""
    targets = [nodes[i] for i in fault.targets]
    if fault.kind in RESTART_KINDS:
        for node in targets:
            kill_process(node)
    elif fault.kind == "pause":
        for node in targets:
            pause_process(node, True)
    elif fault.kind == "partition":
        rest = [n.index for n in nodes if n.index not in fault.targets]
        fabric.partition([list(fault.targets), rest])
    elif fault.kind == "loss":
        fabric.set_loss(list(fault.targets), fault.loss)
    elif fault.kind == "delay":
        fabric.set_delay(list(fault.targets), fault.delay_ms, fault.jitter_ms)
    else:
        raise DevnetError(f"unknown fault kind {fault.kind!r}")


def end_fault(fault: Fault, nodes: list[ChaosNode], fabric: Fabric) -> None:
    """End the fault: restart (a wiped node without its data directory), continue, or heal."""
    targets = [nodes[i] for i in fault.targets]
    if fault.kind == "wipe":
        for node in targets:
            shutil.rmtree(node.home / Path(DB_FILE).parent)
    if fault.kind in RESTART_KINDS:
        for node in targets:
            start_process(node, fabric)
    elif fault.kind == "pause":
        for node in targets:
            pause_process(node, False)
    else:
        fabric.heal()


def run_fault(
    fault: Fault, nodes: list[ChaosNode], fabric: Fabric, t0: float, echo: Callable[[str], None]
) -> FaultRecord:
    """Apply a fault, hold it, end it and measure the recovery (to the network's height then, plus one block)."""
    record = FaultRecord(
        fault, time.monotonic() - t0, kind_of_recovery="restart" if fault.kind in RESTART_KINDS else "heal"
    )
    apply_fault(fault, nodes, fabric)
    time.sleep(fault.hold_s)
    end_fault(fault, nodes, fabric)
    ended = time.monotonic()
    record.healed_s = ended - t0
    target = get_network_height(nodes) + 1
    waited = wait_all_at(nodes, target, RECOVERY_TIMEOUT_S)
    record.recovered_s = None if waited is None else time.monotonic() - ended
    took = "NOT RECOVERED" if record.recovered_s is None else f"recovered in {record.recovered_s:.2f} s"
    echo(f"[{record.started_s:6.1f} s] {fault.describe()}: {took} (height {target})")
    return record


# =============================================================================================
# the run
# =============================================================================================
def compute_recovery_stats(records: list[FaultRecord], kind: str) -> dict[str, Any]:
    """Count, median and max recovery seconds of the faults recovered by `kind` ("heal" or "restart")."""
    times = sorted(r.recovered_s for r in records if r.kind_of_recovery == kind and r.recovered_s is not None)
    if not times:
        return {"count": 0}
    return {"count": len(times), "median_s": round(times[len(times) // 2], 2), "max_s": round(times[-1], 2)}


def compute_rss_growth(samples: list[dict[str, Any]], duration_s: float) -> dict[str, dict[str, Any]]:
    """Per node: RSS (KiB) at the half-way mark and at the end (each the mean of a window), and the growth between."""
    window = max(10.0, duration_s / 20)
    half = duration_s / 2
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({s["node"] for s in samples}):
        mine = [s for s in samples if s["node"] == name]
        end = max(s["t"] for s in mine)
        mid = [s["rss_kib"] for s in mine if half - window <= s["t"] <= half]
        last = [s["rss_kib"] for s in mine if s["t"] >= end - window]
        if not mid or not last:
            continue
        a, b = sum(mid) / len(mid), sum(last) / len(last)
        out[name] = {"half_kib": round(a), "end_kib": round(b), "growth_pct": round(100 * (b - a) / a, 2)}
    return out


def run_chaos(root: Path, config: ChaosConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a chaos run in `root` (which must not exist or be empty) and return its summary (also in root/chaos.json)."""
    if not 4 <= config.validators <= 7:
        raise DevnetError(f"--validators must be 4 to 7, got {config.validators}")
    if config.duration_s < 30:
        raise DevnetError(f"--duration must be at least 30 seconds, got {config.duration_s:g}")
    if not is_byzantine_count_allowed(config.byzantine, config.validators):
        raise DevnetError(
            f"--byzantine must be below a third of the validators (3K < N): at most {(config.validators - 1) // 3} "
            f"of {config.validators}, got {config.byzantine}"
        )
    root = root.resolve()
    if root.exists() and any(root.iterdir()):
        raise DevnetError(f"{root} exists and is not empty; pick another --dir")
    root.mkdir(parents=True, exist_ok=True)
    run_id = f"{os.getpid() % 100000}"
    with open_fabric(config.fabric, run_id, echo=echo) as fabric:
        fabric.setup(config.validators)
        nodes = create_chaos_homes(root, fabric, config)
        echo(fabric.describe())
        try:
            return run_on_network(root, config, nodes, fabric, echo)
        finally:
            for node in nodes:
                kill_process(node)


def run_on_network(
    root: Path, config: ChaosConfig, nodes: list[ChaosNode], fabric: Fabric, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Start the nodes (the adversaries among them), load them, inject the faults, heal, stop and judge."""
    adversaries = compute_adversaries(config.seed, config.validators, config.byzantine)
    for i in adversaries:
        nodes[i].adversary = compute_adversary_args(config, i)
    honest = [n for n in nodes if n.is_honest]
    for node in nodes:
        start_process(node, fabric)
    if wait_all_at(nodes, 1, 60.0) is None:
        raise DevnetError("the network did not commit its first block within 60 s; see the nodes' node.log")
    if adversaries:
        echo(f"adversaries: {', '.join(nodes[i].name for i in adversaries)} (attacks: {', '.join(config.attacks)})")
    ledger, stop, rss = Ledger(), threading.Event(), list[dict[str, Any]]()
    probe = start_status_probe({n.name: n.public for n in honest}, root / STATUS_PROBE_FILE)
    t0, t0_wall = time.monotonic(), time.time()
    for i in adversaries:  # the adversaries' schedules start now (devnet/adversary.py reads the file)
        (nodes[i].home / ADVERSARY_CLOCK_FILE).write_text(f"{t0_wall:.3f}\n")
    threads = [
        threading.Thread(target=run_guarded, args=(ledger, run_validator_load, n, ledger, stop, config.seed))
        for n in nodes
    ]
    threads.append(threading.Thread(target=run_guarded, args=(ledger, run_reader_load, nodes, ledger, stop)))
    threads.append(
        threading.Thread(target=run_guarded, args=(ledger, run_abuse_load, nodes, ledger, stop, config.seed))
    )
    threads.append(threading.Thread(target=run_rss_sampler, args=(nodes, rss, stop, t0)))
    for t in threads:
        t.daemon = True
        t.start()
    echo(f"load running on {len(nodes)} validators for {config.duration_s:g} s (seed {config.seed})")
    records: list[FaultRecord] = []
    rng = random.Random(config.seed)
    plan = iter(compute_fault_plan(config.seed, config.validators, 10_000) if config.faults else [])
    try:
        for fault in plan:
            if time.monotonic() - t0 + fault.hold_s + TAIL_RESERVE_S > config.duration_s:
                break
            records.append(run_fault(fault, nodes, fabric, t0, echo))
            time.sleep(rng.uniform(*FAULT_GAP_S))
        time.sleep(max(0.0, config.duration_s - (time.monotonic() - t0)))
    finally:
        fabric.heal()
        for node in nodes:
            if node.stopped:
                pause_process(node, False)
        stop.set()
        probe_stop, probe_process = probe
        probe_stop.set()
        for t in threads:
            t.join(REQUEST_TIMEOUT_S + 5)
        probe_process.join(STATUS_SAMPLE_TIMEOUT_S + 5)
    duration = time.monotonic() - t0
    echo(f"load stopped after {duration:.1f} s; waiting for every honest node to agree")
    tip = settle(honest)
    for node in nodes:
        terminate_process(node)
    verdict = judge_stores(honest, ledger.committed, [tx["tx_hash"] for tx in ledger.pending])
    problems = [f"load thread crashed: {line}" for line in ledger.crashes] + verdict.pop("problems")
    byzantine: dict[str, Any] = {}
    status_samples = read_status_samples(root / STATUS_PROBE_FILE, t0_wall, duration, records, nodes)
    if adversaries:
        hit_honest = [r for r in records if any(nodes[i].is_honest for i in r.fault.targets)]
        windows = [compute_fault_window(r, duration) for r in hit_honest]
        liveness = judge_liveness(status_samples, 0.0, duration, windows)
        attacks = read_adversary_records([nodes[i] for i in adversaries])
        final_height = tip[0] if tip else 0  # no agreed tip is a failed verdict already
        evidence = judge_equivocations(honest, attacks.pop("equivocation_log"), final_height)
        problems += liveness.pop("problems") + evidence.pop("problems")
        byzantine = {
            "adversaries": [nodes[i].name for i in adversaries],
            "attack_windows": compute_attack_windows(config, adversaries),
            **attacks,
            **evidence,
            **liveness,
        }
    problems += [f"bad input answered wrongly: {line}" for line in ledger.bad_answers]
    if tip is None:
        problems.insert(0, f"the nodes did not reach one height and app hash within {SETTLE_TIMEOUT_S:g} s")
    problems.extend(
        f"{r.fault.describe()} did not recover within {RECOVERY_TIMEOUT_S:g} s"
        for r in records
        if r.recovered_s is None
    )
    summary = {
        "ok": not problems,
        "problems": problems,
        "fabric": fabric.kind,
        "seed": config.seed,
        "validators": config.validators,
        "duration_s": round(duration, 1),
        "final_height": tip[0] if tip else None,
        "final_app_hash": tip[1] if tip else None,
        "faults": dict(sorted(Counter(r.fault.kind for r in records).items())),
        "fault_log": [r.to_json() for r in records],
        "recovery_after_heal": compute_recovery_stats(records, "heal"),
        "recovery_after_restart": compute_recovery_stats(records, "restart"),
        "txs": {
            "submitted": sum(ledger.submitted.values()),
            "committed": len(ledger.committed),
            "lost": verdict.pop("lost"),
            "pending": len(ledger.pending),
            "pending_later_committed": verdict.pop("pending_later_committed"),
            "by_kind": dict(sorted(ledger.submitted.items())),
            "outcomes": dict(sorted(ledger.outcomes.items())),
        },
        "pricing_reads": dict(sorted(ledger.reads.items())),
        "bad_inputs": dict(sorted(ledger.bad_inputs.items())),
        "rss_growth": compute_rss_growth(rss, duration),
        **verdict,
        "byzantine": byzantine,
    }
    (root / "chaos.json").write_text(
        json.dumps(
            {
                **summary,
                "rss_samples": rss,
                "status_samples": status_samples,
                "committed": ledger.committed,
                "pending": ledger.pending,
            },
            indent=2,
        )
        + "\n"
    )
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The human summary of a run."""
    txs = summary["txs"]
    heal, restart = summary["recovery_after_heal"], summary["recovery_after_restart"]

    def recovery(stats: dict[str, Any]) -> str:
        return f"{stats['count']} (median {stats['median_s']} s, max {stats['max_s']} s)" if stats["count"] else "none"

    lines = [
        f"verdict: {'PASS' if summary['ok'] else 'FAIL'}  ({summary['fabric']} fabric, seed {summary['seed']}, "
        f"{summary['validators']} validators, {summary['duration_s']} s)",
        f"final height {summary['final_height']}, app hash {summary['final_app_hash']}",
        "faults: " + (", ".join(f"{k} {v}" for k, v in summary["faults"].items()) or "none"),
        f"recoveries after heal: {recovery(heal)}; after restart: {recovery(restart)}",
        f"transactions: {txs['submitted']} submitted, {txs['committed']} committed, {txs['lost']} lost "
        f"({', '.join(f'{k} {v}' for k, v in txs['outcomes'].items())}); "
        f"of the {txs['pending']} still pending at the commit wait's end, {txs['pending_later_committed']} "
        "were committed later",
        f"stores: {summary['blocks_compared']} blocks compared, {summary['conflicting_heights']} conflicting heights, "
        f"{summary['epochs_checked']} epoch prices recomputed",
        "pricing reads: " + ", ".join(f"{k} {v}" for k, v in summary["pricing_reads"].items()),
        "bad inputs (each answered 4xx, refused or dropped): "
        + (", ".join(f"{k} {v}" for k, v in summary["bad_inputs"].items()) or "none"),
        "RSS growth over the last half: "
        + (", ".join(f"{n} {g['growth_pct']}%" for n, g in summary["rss_growth"].items()) or "too short to tell"),
    ]
    lines.extend(format_byzantine(summary["byzantine"]))
    lines.extend(f"PROBLEM: {p}" for p in summary["problems"])
    return "\n".join(lines)


# =============================================================================================
# byzantine runs
# =============================================================================================
def compute_adversary_args(config: ChaosConfig, index: int) -> tuple[str, ...]:
    """The arguments of validator `index`'s `python -m devnet.adversary`: its seed, attacks and last window's end
    (its schedule starts when the runner writes HOME/attack_clock)."""
    return (
        "--seed",
        str(compute_attack_seed(config.seed, index)),
        "--attacks",
        ",".join(config.attacks),
        "--until",
        f"{compute_attack_until_s(config):g}",
    )


def compute_attack_until_s(config: ChaosConfig) -> float:
    """No attack window is open this close to the end of the run (so the honest nodes settle)."""
    return max(0.0, config.duration_s - TAIL_RESERVE_S)


def start_status_probe(urls: dict[str, str], out: Path) -> tuple[Any, multiprocessing.process.BaseProcess]:
    """Start `chaos_load.run_status_probe` of the nodes at `urls` in a process of its own: (its stop event, it)."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(target=run_status_probe, args=(urls, str(out), stop), daemon=True)
    process.start()
    return stop, process


def read_status_samples(
    path: Path, t0_wall: float, duration_s: float, records: list[FaultRecord], nodes: list[ChaosNode]
) -> list[tuple[float, str, float, int | None]]:
    """The status probe's samples in the run's time, without those of a node while a fault held it or it was
    recovering (from the fault's start to the network's recovery), when slowness is the fault's: a request
    still in flight when the fault began counts as held too."""
    lines = path.read_text().splitlines() if path.exists() else []
    raw = sorted((round(at - t0_wall, 3), name, took, height) for at, name, took, height in map(json.loads, lines))
    held: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        end = duration_s if r.healed_s is None or r.recovered_s is None else r.healed_s + r.recovered_s
        for i in r.fault.targets:
            held.setdefault(nodes[i].name, []).append((r.started_s, end))
        if r.fault.kind in RESTART_KINDS and r.healed_s is not None:
            names = {nodes[i].name for i in r.fault.targets}
            after = [(t, h) for t, name, _, h in raw if name in names and t >= r.healed_s and h is not None]
            r.up_s = after[0][0] if after else None
    return [
        s
        for s in raw
        if 0 <= s[0] <= duration_s and not any(a <= s[0] + s[2] and s[0] <= b for a, b in held.get(s[1], []))
    ]


def compute_fault_window(record: FaultRecord, duration_s: float) -> tuple[float, float]:
    """The time a crash fault excuses a stall: from its start to RECOVERY_GRACE_S after it ended (for a restart,
    after the restarted node answered again: starting a process takes seconds on a loaded machine). The grace is
    the longest recovery of the crash-only runs (docs/reliability.md); a slower recovery is a stall."""
    healed = record.healed_s if record.healed_s is not None else duration_s
    return (record.started_s, min(duration_s, max(healed, record.up_s or 0.0) + RECOVERY_GRACE_S))


def read_adversary_records(adversaries: list[ChaosNode]) -> dict[str, Any]:
    """What the adversaries did, from their HOME/adversary.jsonl: actions by kind, windows by kind, the
    equivocations delivered."""
    actions: Counter[str] = Counter()
    equivocations: list[dict[str, Any]] = []
    for node in adversaries:
        path = node.home / RECORD_FILE
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            entry = json.loads(line)
            actions.update(entry.get("counts", {}))
            if "equivocation" in entry:
                equivocations.append(entry["equivocation"])
    return {
        "attacks": {k: actions.get(k, 0) for k in ATTACK_KINDS},
        "equivocation_log": equivocations,
    }


def compute_attack_windows(config: ChaosConfig, adversaries: tuple[int, ...]) -> dict[str, int]:
    """How many attack windows each kind had, over every adversary's plan."""
    windows: Counter[str] = Counter()
    for i in adversaries:
        plan = compute_attack_plan(compute_attack_seed(config.seed, i), compute_attack_until_s(config), config.attacks)
        for window in plan:
            windows.update(window.kinds)
    return {k: windows.get(k, 0) for k in ATTACK_KINDS}


def format_byzantine(byzantine: dict[str, Any]) -> list[str]:
    """The summary lines of a byzantine run (none for a run without adversaries)."""
    if not byzantine:
        return []
    eq, status = byzantine["equivocations"], byzantine["status_latency"]
    return [
        f"adversaries: {', '.join(byzantine['adversaries'])}; attack windows: "
        + ", ".join(f"{k} {v}" for k, v in byzantine["attack_windows"].items()),
        "attack actions: " + ", ".join(f"{k} {v}" for k, v in byzantine["attacks"].items()),
        f"equivocations delivered {eq['delivered']}, of which {eq['due']} at least {eq['margin_blocks']} blocks "
        f"before the end: committed as evidence on every honest node {eq['committed_on_every_honest_node']}; "
        f"jailed and slashed: {', '.join(eq['equivocators_jailed_and_slashed']) or 'none'}",
        f"longest stretch without a block: {byzantine['longest_stall_s']} s, "
        f"{byzantine['longest_stall_outside_faults_s']} s outside crash faults of honest nodes "
        f"(bound {byzantine['stall_bound_s']:g} s)",
        f"/v1/status of honest nodes: {status['count']} samples, max {status.get('max_s')} s, "
        f"p99 {status.get('p99_s')} s, {status['over_bound']} over {status['bound_s']:g} s or failed",
    ]


__all__ = ["ChaosConfig", "FAULT_KINDS", "Fault", "compute_fault_plan", "format_summary", "run_chaos"]

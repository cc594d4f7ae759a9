"""The verdict of a chaos run on the stores of its stopped nodes, read through the node's `SqliteStore`:
every store passes `PRAGMA integrity_check`; no two stores hold different blocks at one height; every
transaction whose submission answered "committed" is in every store at that height, with that result;
and each epoch's recorded price equals the weighted median recomputed from the committed price votes."""

from __future__ import annotations

import json
from typing import Any

from chain.epochs import compute_effective_epoch, is_epoch_end
from chain.errors import InvalidTx
from chain.median import weighted_median
from chain.params import Params
from chain.tx import MsgSubmitPriceProposal, Tx, decode_tx
from node.blocks import Evidence
from node.config import DB_FILE, GENESIS_FILE
from node.store import SqliteStore

from .chaos_nodes import ChaosNode


def read_block_ids(store: SqliteStore) -> dict[int, str]:
    """Height → block id of every stored block."""
    return store.get_block_ids(0, store.get_max_block_height())


def compute_conflicts(block_ids: dict[str, dict[int, str]]) -> list[str]:
    """Every height at which two stores hold different blocks, as lines."""
    heights = sorted({h for ids in block_ids.values() for h in ids})
    conflicts = []
    for height in heights:
        seen = {name: ids[height] for name, ids in sorted(block_ids.items()) if height in ids}
        if len(set(seen.values())) > 1:
            conflicts.append(f"height {height}: " + ", ".join(f"{n}={b[:12]}" for n, b in seen.items()))
    return conflicts


def compute_lost(store: SqliteStore, committed: list[dict[str, Any]]) -> list[str]:
    """The committed transactions that are not in this store at their height with their result."""
    lost = []
    for tx in committed:
        row = store.get_tx_row(tx["tx_hash"].upper())
        found = None if row is None else (row[0], row[2])
        if found is None or found != (tx["height"], tx["code"]):
            lost.append(f"{tx['kind']} {tx['tx_hash'][:16]} (answered height {tx['height']}, store has {found})")
    return lost


def get_ok_tx(store: SqliteStore, raw_hex: str, height: int, index: int) -> Tx | None:
    """The decoded transaction at (height, index) if the store's tx index says it succeeded there, else None."""
    try:
        tx = decode_tx(bytes.fromhex(raw_hex))
    except InvalidTx:
        return None  # undecodable: it cannot have succeeded
    row = store.get_tx_row(tx.hash)
    return tx if row is not None and (row[0], row[1], row[2]) == (height, index, "ok") else None


def compute_expected_prices(store: SqliteStore, genesis: dict[str, Any]) -> dict[int, int]:
    """Epoch → unit price recomputed from the committed price votes: each genesis validator's vote in force (or the
    current price if it never voted), weighted by its genesis stake, through `chain.median.weighted_median`."""
    params = Params.from_json(genesis.get("params"))
    price = params.default_unit_of_compute_price
    powers = {v["address"]: int(v["stake"]) for v in genesis["validators"]}
    votes: dict[str, int] = {}
    last = store.get_max_block_height()
    prices = {0: price}
    for height, block_text, _ in store.iterate_block_rows(0, last):
        for index, raw in enumerate(json.loads(block_text)["txs"]):
            tx = get_ok_tx(store, raw, height, index)
            if tx is None:
                continue
            for msg in tx.messages:
                if isinstance(msg, MsgSubmitPriceProposal) and tx.sender in powers:
                    votes[tx.sender] = msg.price_ngonka
        if is_epoch_end(params, height):
            ballot = sorted((votes.get(a, price), p, a) for a, p in powers.items())
            median = weighted_median([(v, p) for v, p, _ in ballot])
            price = price if median is None else median
            prices[compute_effective_epoch(params, height)] = price
    return prices


def read_history_prices(store: SqliteStore) -> dict[int, int]:
    """Epoch → price as the node's state records it."""
    return {record["epoch"]: record["price"] for record in (json.loads(v) for _, v in store.iterate("hist"))}


def count_in_chain(store: SqliteStore, hashes: list[str]) -> int:
    """How many of the transaction hashes the store's tx index holds."""
    return sum(store.get_tx_row(h.upper()) is not None for h in hashes)


def judge_stores(nodes: list[ChaosNode], committed: list[dict[str, Any]], pending: list[str]) -> dict[str, Any]:
    """The store checks of the verdict (nodes stopped): integrity, no conflicting blocks, nothing lost, prices."""
    genesis = json.loads((nodes[0].home / GENESIS_FILE).read_text())
    problems: list[str] = []
    pending_committed = 0
    block_ids: dict[str, dict[int, str]] = {}
    lost: set[str] = set()
    epochs_checked = 0
    for node in nodes:
        store = SqliteStore(node.home / DB_FILE)
        try:
            integrity = store.check_integrity()
            if integrity != "ok":
                problems.append(f"{node.name}: integrity_check: {integrity}")
            block_ids[node.name] = read_block_ids(store)
            for line in compute_lost(store, committed):
                lost.add(line)
                problems.append(f"{node.name}: lost {line}")
            expected, recorded = compute_expected_prices(store, genesis), read_history_prices(store)
            for epoch in sorted(recorded):
                if expected.get(epoch) != recorded[epoch]:
                    problems.append(
                        f"{node.name}: epoch {epoch} price {recorded[epoch]}, votes give {expected.get(epoch)}"
                    )
            epochs_checked = max(epochs_checked, len(recorded))
            pending_committed = count_in_chain(store, pending)
        finally:
            store.close()
    conflicts = compute_conflicts(block_ids)
    problems.extend(f"conflicting blocks at {line}" for line in conflicts)
    return {
        "problems": problems,
        "lost": len(lost),
        "conflicting_heights": len(conflicts),
        "epochs_checked": epochs_checked,
        "pending_later_committed": pending_committed,
        "blocks_compared": min(len(ids) for ids in block_ids.values()) if block_ids else 0,
    }


# =============================================================================================
# byzantine runs: liveness, responsiveness and evidence
# =============================================================================================
STALL_BOUND_S = 10.0  # the honest nodes commit a block at least this often outside crash faults
STATUS_BOUND_S = 1.0  # every sampled /v1/status of an honest node is answered this fast


def compute_overlap_s(start: float, end: float, windows: list[tuple[float, float]]) -> float:
    """How much of (start, end) the union of `windows` covers."""
    covered, cursor = 0.0, start
    for a, b in sorted(windows):
        a, b = max(a, cursor), min(b, end)
        if b > a:
            covered += b - a
            cursor = b
    return covered


def compute_longest_stall(
    commits: list[float], start: float, end: float, windows: list[tuple[float, float]]
) -> tuple[float, float]:
    """The longest time without a new block, from `start` to `end` with new blocks at `commits`: as measured,
    and without the time covered by `windows` (faults of honest nodes, when more than a third may be down)."""
    marks = [start, *sorted(t for t in commits if start < t < end), end]
    raw = clean = 0.0
    for a, b in zip(marks, marks[1:]):
        raw = max(raw, b - a)
        clean = max(clean, b - a - compute_overlap_s(a, b, windows))
    return round(raw, 2), round(clean, 2)


def compute_commit_times(samples: list[tuple[float, str, float, int | None]]) -> list[float]:
    """The times at which the highest height any honest node reported went up."""
    tip, times = -1, []
    for t, _, _, height in sorted(samples):
        if height is not None and height > tip:
            if tip >= 0:
                times.append(t)
            tip = height
    return times


def compute_latency_stats(samples: list[tuple[float, str, float, int | None]]) -> dict[str, Any]:
    """Count, max, p99 of the sampled /v1/status latencies (a failed request counts as its time), and how many
    were over STATUS_BOUND_S or failed."""
    times = sorted(latency for _, _, latency, _ in samples)
    if not times:
        return {"count": 0, "over_bound": 0, "failed": 0}
    p99 = times[min(len(times) - 1, (99 * len(times)) // 100)]
    return {
        "count": len(times),
        "max_s": round(times[-1], 3),
        "p99_s": round(p99, 3),
        "over_bound": sum(t > STATUS_BOUND_S for t in times),
        "failed": sum(h is None for _, _, _, h in samples),
    }


def judge_liveness(
    samples: list[tuple[float, str, float, int | None]], start: float, end: float, windows: list[tuple[float, float]]
) -> dict[str, Any]:
    """The liveness part of a byzantine run's verdict: the longest stall (outside honest nodes' crash faults)
    stays under STALL_BOUND_S and every /v1/status sample of an honest node is answered within STATUS_BOUND_S."""
    raw, clean = compute_longest_stall(compute_commit_times(samples), start, end, windows)
    status = compute_latency_stats(samples)
    problems = []
    if clean >= STALL_BOUND_S:
        problems.append(
            f"the honest nodes committed no block for {clean} s outside crash faults (bound {STALL_BOUND_S:g} s)"
        )
    if status["over_bound"]:
        slow = sorted((s for s in samples if s[2] > STATUS_BOUND_S), key=lambda s: -s[2])[:3]
        worst = ", ".join(f"{n} {lat:.2f} s at {t:.0f} s" for t, n, lat, _ in slow)
        problems.append(
            f"{status['over_bound']} /v1/status samples of honest nodes took over {STATUS_BOUND_S:g} s or failed "
            f"(worst: {worst})"
        )
    return {
        "problems": problems,
        "longest_stall_s": raw,
        "longest_stall_outside_faults_s": clean,
        "stall_bound_s": STALL_BOUND_S,
        "status_latency": {**status, "bound_s": STATUS_BOUND_S},
    }


def read_evidence_keys(store: SqliteStore) -> set[str]:
    """The keys (validator/height/round/type) of the double signs a store holds."""
    return {Evidence.from_json(e).key for e in store.get_evidence(0)}


def judge_equivocations(nodes: list[ChaosNode], equivocations: list[dict[str, Any]]) -> dict[str, Any]:
    """Every equivocation an adversary delivered (a twin vote a peer accepted) is held as evidence by the honest
    nodes' stores. Today that is the evidence each node detected itself (`SqliteStore.add_evidence`), so the check
    is that at least one honest store holds it. Once evidence is committed in blocks, this must read the committed
    evidence (then in every honest store) and check the offender was jailed and slashed."""
    held: dict[str, set[str]] = {}
    for node in nodes:
        store = SqliteStore(node.home / DB_FILE)
        try:
            held[node.name] = read_evidence_keys(store)
        finally:
            store.close()
    keys = sorted({e["key"] for e in equivocations})
    missing = [k for k in keys if not any(k in h for h in held.values())]
    everywhere = sum(all(k in h for h in held.values()) for k in keys)
    problems = [f"equivocation {k} is held as evidence by no honest node" for k in missing[:20]]
    if len(missing) > 20:
        problems.append(f"and {len(missing) - 20} more equivocations held by no honest node")
    return {
        "problems": problems,
        "equivocations": {
            "delivered": len(keys),
            "held_by_some_honest_node": len(keys) - len(missing),
            "held_by_every_honest_node": everywhere,
            "evidence_per_honest_node": {name: len(h) for name, h in sorted(held.items())},
        },
    }

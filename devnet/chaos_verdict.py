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
from node.config import DB_FILE, GENESIS_FILE
from node.consensus.evidence_pool import MAX_PENDING_PER_VALIDATOR
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
    current price if it never voted), weighted by its genesis stake, through `chain.median.weighted_median`. A
    validator whose double sign a block committed is jailed from that block on and leaves the ballot at the
    next boundary (the load sends no bonds or unjails; slashing changes only a jailed validator's stake)."""
    params = Params.from_json(genesis.get("params", {}))
    price = params.default_unit_of_compute_price
    powers = {v["address"]: int(v["stake"]) for v in genesis["validators"]}
    votes: dict[str, int] = {}
    last = store.get_max_block_height()
    prices = {0: price}
    for height, block_text, _ in store.iterate_block_rows(0, last):
        block = json.loads(block_text)
        for piece in block.get("evidence", []):
            powers.pop(piece["vote_a"]["validator"], None)
        for index, raw in enumerate(block["txs"]):
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
EVIDENCE_MARGIN_BLOCKS = 5  # a double sign this close to the final height may still be on its way into a block


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


def compute_evidence_key(equivocation: dict[str, Any]) -> str:
    """The chain's key of a committed double sign (`evid/<height:012d>/<validator>/<round>/<type>`)."""
    e = equivocation
    return f"{e['height']:012d}/{e['validator']}/{e['round']}/{e['type']}"


def read_committed_evidence(store: SqliteStore) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """The offences a store's state has committed (`evid/` keys) and its jail records by address."""
    committed = {key for key, _ in store.iterate("evid")}
    jail = {address: json.loads(value) for address, value in store.iterate("jail")}
    return committed, jail


def is_beyond_pool_cap(key: str, committed: set[str]) -> bool:
    """Whether the offence `key` (height/validator/round/type) need not be committed: its validator already
    has `MAX_PENDING_PER_VALIDATOR` offences of that height committed. The engine's pool keeps that many
    pending per validator and drops the rest of a burst (one offence jails and slashes; a jailed validator
    is not slashed again), so an equivocator that double-signs in many rounds of one height has the first
    ones committed."""
    height, validator = key.split("/")[:2]
    return sum(k.startswith(f"{height}/{validator}/") for k in committed) >= MAX_PENDING_PER_VALIDATOR


def judge_equivocations(
    nodes: list[ChaosNode], equivocations: list[dict[str, Any]], final_height: int
) -> dict[str, Any]:
    """Every equivocation an adversary delivered (a twin vote a peer accepted) at a height at least
    `EVIDENCE_MARGIN_BLOCKS` below the final one was committed as evidence on every honest node (unless it is
    beyond the pool's cap: `is_beyond_pool_cap`), and every
    adversary that delivered one is jailed and slashed there (the chain slashes once per jailing)."""
    committed: dict[str, set[str]] = {}
    jails: dict[str, dict[str, dict[str, Any]]] = {}
    for node in nodes:
        store = SqliteStore(node.home / DB_FILE)
        try:
            committed[node.name], jails[node.name] = read_committed_evidence(store)
        finally:
            store.close()
    due = [e for e in equivocations if e["height"] <= final_height - EVIDENCE_MARGIN_BLOCKS]
    keys = sorted({compute_evidence_key(e) for e in due})
    capped = [k for k in keys if all(k not in c and is_beyond_pool_cap(k, c) for c in committed.values())]
    missing = [k for k in keys if not all(k in c or is_beyond_pool_cap(k, c) for c in committed.values())]
    problems = [f"equivocation {k} is not committed as evidence on every honest node" for k in missing[:20]]
    if len(missing) > 20:
        problems.append(f"and {len(missing) - 20} more equivocations not committed on every honest node")
    offenders = sorted({e["validator"] for e in due})
    for address in offenders:
        for name, jail in sorted(jails.items()):
            record = jail.get(address)
            if record is None or record["slashes"] < 1 or record["slashed"] <= 0:
                problems.append(f"{name}: equivocator {address} was not jailed and slashed ({record})")
    return {
        "problems": problems,
        "equivocations": {
            "delivered": len({compute_evidence_key(e) for e in equivocations}),
            "due": len(keys),
            "committed_on_every_honest_node": len(keys) - len(missing) - len(capped),
            "beyond_the_pool_cap": len(capped),
            "evidence_committed_per_honest_node": {name: len(c) for name, c in sorted(committed.items())},
            "equivocators_jailed_and_slashed": offenders,
            "margin_blocks": EVIDENCE_MARGIN_BLOCKS,
        },
    }

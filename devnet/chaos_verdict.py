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

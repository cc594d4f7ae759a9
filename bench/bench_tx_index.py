"""What the node's tx index costs a block to write, against the hash-keyed layout it replaced.

    .venv/bin/python bench/bench_tx_index.py [--blocks 100] [--txs 2000]

Writes `--blocks` blocks of `--txs` committed transactions (300 random bytes each, so random hashes,
from 400 senders, as `bench_network.py`'s saturation load sends them) through `SqliteStore.apply_block`:
the block row, each sender's account, the tx index and the sender index, in one transaction per block,
as the node writes a height. The reference is the same rows in the layout before `tx_index` (a `txs`
table keyed by the hex hash, a `tx_senders` table holding the hash again), written by plain SQL in the
same process beside it, block by block in turn, so the machine's drift hits both alike.

Prints the CPU time (user + system, `getrusage`: the page copies of the WAL and its checkpoints are
system time) per transaction over the blocks after the first fifth (the index is then larger than
one block's inserts, which is where random keys cost), each file's size, and the ratio
node / reference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import sqlite3
import tempfile
from functools import partial
from pathlib import Path

from chain.store import CommitInfo
from node.store import WAL_CHECKPOINT_PAGES, BlockWrite, SqliteStore, compute_tx_position

SENDERS = [f"uoc1{hashlib.sha256(str(i).encode()).hexdigest()[:38]}" for i in range(400)]
OLD_TABLES = (
    "CREATE TABLE state (space TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (space, key))"
    " WITHOUT ROWID",
    "CREATE TABLE meta (id INTEGER PRIMARY KEY, height INTEGER NOT NULL)",
    "CREATE TABLE blocks (height INTEGER PRIMARY KEY, block_id TEXT NOT NULL, block TEXT NOT NULL,"
    " commit_json TEXT NOT NULL)",
    "CREATE TABLE txs (hash TEXT PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL, code TEXT NOT NULL,"
    " log TEXT NOT NULL, tx BLOB NOT NULL)",
    "CREATE TABLE tx_senders (sender TEXT NOT NULL, pos TEXT NOT NULL, hash TEXT NOT NULL,"
    " PRIMARY KEY (sender, pos)) WITHOUT ROWID",
)


def get_cpu_s() -> float:
    """This process's CPU time so far, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_block(height: int, count: int, rng: random.Random) -> tuple[list[bytes], list[tuple[str, str, str, str]]]:
    """`count` random txs and their results (hash, code, log, sender)."""
    txs = [rng.randbytes(300) for _ in range(count)]
    results = [(hashlib.sha256(t).hexdigest().upper(), "ok", "", SENDERS[i % len(SENDERS)]) for i, t in enumerate(txs)]
    return txs, results


def write_node(store: SqliteStore, height: int, txs: list[bytes], results, block: dict, accounts: list) -> None:
    """One height through the node's store."""
    write = BlockWrite(height, lambda: None, "ab" * 32, block, {"height": height}, tuple(results), 0, tuple(txs))
    info = CommitInfo(height, "cd" * 32, bytes(2048))
    store.apply_block(write, lambda: store.write_block(info, accounts))


def write_reference(conn: sqlite3.Connection, height: int, txs: list[bytes], results, block: dict, accounts) -> None:
    """The same height in the hash-keyed layout."""
    with conn:
        conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?)", accounts)
        conn.execute("INSERT OR REPLACE INTO meta VALUES (1, ?)", (height,))
        conn.execute(
            "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)",
            (height, "ab" * 32, json.dumps(block, separators=(",", ":")), json.dumps({"height": height})),
        )
        conn.executemany(
            "INSERT OR REPLACE INTO txs VALUES (?, ?, ?, ?, ?, ?)",
            [(h, height, i, code, log, raw) for i, ((h, code, log, _), raw) in enumerate(zip(results, txs))],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO tx_senders VALUES (?, ?, ?)",
            [(sender, compute_tx_position(height, i), h) for i, (h, _, _, sender) in enumerate(results)],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--txs", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "node.db")
        ref_path = Path(tmp) / "reference.db"
        ref = sqlite3.connect(ref_path)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"wal_autocheckpoint={WAL_CHECKPOINT_PAGES}"):
            ref.execute(f"PRAGMA {pragma}")
        for statement in OLD_TABLES:
            ref.execute(statement)
        warmup = args.blocks // 5
        cpu = {"node": 0.0, "reference": 0.0}
        for height in range(1, args.blocks + 1):
            txs, results = make_block(height, args.txs, rng)
            block = {"height": height, "txs": [t.hex() for t in txs]}
            accounts = [
                ("accounts", s, json.dumps({"balance": rng.randrange(10**12), "sequence": height})) for s in SENDERS
            ]
            sides = [("node", partial(write_node, store)), ("reference", partial(write_reference, ref))]
            for name, write in sides if height % 2 else reversed(sides):
                started = get_cpu_s()
                write(height, txs, results, block, accounts)
                if height > warmup:
                    cpu[name] += get_cpu_s() - started
        counted = (args.blocks - warmup) * args.txs
        sizes = {"node": os.path.getsize(store.path), "reference": os.path.getsize(ref_path)}
        store.close()
        ref.close()
    per_tx = {name: cpu[name] / counted * 1e6 for name in cpu}
    for name in ("node", "reference"):
        print(f"{name:>9}: {per_tx[name]:5.1f} µs CPU per tx written, file {sizes[name] / 2**20:,.0f} MiB")
    ratio = per_tx["node"] / per_tx["reference"]
    print(f"node / reference: {ratio:.2f} (CPU per tx), {sizes['node'] / sizes['reference']:.2f} (file)")
    print(
        json.dumps(
            {
                "node_us_per_tx": round(per_tx["node"], 1),
                "reference_us_per_tx": round(per_tx["reference"], 1),
                "ratio": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()

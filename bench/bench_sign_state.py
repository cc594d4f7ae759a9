"""Cost of persisting the sign state, which a validator does before every vote and proposal it sends.

    .venv/bin/python bench/bench_sign_state.py [--writes 300] [--block-txs 1000]

1. Measures `node.sign_state_file.save_sign_state` (its own file beside the validator key: write a
   temporary file, fdatasync, rename, fsync the directory) against the reference, what the node did
   before: a one-row upsert in the node's SQLite database (WAL) under `synchronous=FULL`, in its own
   transaction. Both write the same sign state (a height with three signed steps and no lock) into a
   temporary directory on the same file system; the median and the 95th percentile of single writes
   are printed, with the ratio of the medians.
2. A sign state locked on a block of `--block-txs` transactions of 300 bytes, its valid block the
   same (a lock sets both): `save_sign_state` writes the block once (`valid_block_is_locked`); the
   reference writes it twice, as the file format before did, through the same durable write. Prints
   both files' sizes and write times, with the ratios.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.crypto import PrivateKey  # noqa: E402
from chain.encoding import canonical_json  # noqa: E402
from node.blocks import Block, Header, compute_txs_hash  # noqa: E402
from node.consensus import SignState  # noqa: E402
from node.secret_files import replace_secret  # noqa: E402
from node.sign_state_file import SIGN_STATE_FILE, save_sign_state  # noqa: E402


def make_states(count: int) -> list[SignState]:
    """Sign states of consecutive heights, each with a proposal, a prevote and a precommit."""
    out = []
    for height in range(1, count + 1):
        state = SignState(height=height)
        for step in ("propose", "prevote", "precommit"):
            state = state.with_signed(height, 0, step, f"{height:064x}")
        out.append(state)
    return out


def time_file(directory: Path, states: list[SignState]) -> list[float]:
    """Seconds per save_sign_state."""
    path = directory / SIGN_STATE_FILE
    times = []
    for state in states:
        start = time.perf_counter()
        save_sign_state(path, state)
        times.append(time.perf_counter() - start)
    return times


def time_sqlite(directory: Path, states: list[SignState]) -> list[float]:
    """Seconds per one-row upsert under synchronous=FULL in a WAL database (the former store method)."""
    conn = sqlite3.connect(directory / "node.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE sign_state (id INTEGER PRIMARY KEY CHECK (id = 1), value TEXT NOT NULL)")
    times = []
    for state in states:
        start = time.perf_counter()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN")
        conn.execute("INSERT OR REPLACE INTO sign_state (id, value) VALUES (1, ?)", (canonical_json(state.to_json()),))
        conn.execute("COMMIT")
        conn.execute("PRAGMA synchronous=NORMAL")
        times.append(time.perf_counter() - start)
    conn.close()
    return times


def make_locked_state(txs: int) -> SignState:
    """A sign state locked on a block of `txs` transactions of 300 bytes, its valid block the same."""
    block_txs = tuple(i.to_bytes(4, "big") * 75 for i in range(txs))
    h = "ab" * 32
    proposer = PrivateKey.from_name("bench").address
    header = Header("uoc-bench", 7, 5000, h, h, compute_txs_hash(block_txs), "cd" * 32, h, proposer)
    block = Block(header, block_txs, None)
    return SignState(height=7, locked_round=0, locked_block=block, valid_round=0, valid_block=block)


def time_locked(directory: Path, state: SignState, writes: int) -> tuple[list[float], list[float], int, int]:
    """Seconds per write of the locked state as saved now and as the earlier format wrote it (the block
    twice), alternating; and the two files' sizes."""
    path = directory / SIGN_STATE_FILE
    assert state.locked_block is not None
    earlier = {**state.to_json(), "valid_block": state.locked_block.to_json()}
    del earlier["valid_block_is_locked"]
    now_times, earlier_times = [], []
    for _ in range(writes):
        start = time.perf_counter()
        save_sign_state(path, state)
        now_times.append(time.perf_counter() - start)
        now_size = path.stat().st_size
        start = time.perf_counter()
        replace_secret(path, canonical_json(earlier).encode())
        earlier_times.append(time.perf_counter() - start)
        earlier_size = path.stat().st_size
    return now_times, earlier_times, now_size, earlier_size


def describe(times: list[float]) -> str:
    """Median and p95 in ms."""
    ordered = sorted(times)
    return f"median {statistics.median(ordered) * 1000:.3f} ms, p95 {ordered[int(len(ordered) * 0.95)] * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--block-txs", type=int, default=1000, help="transactions of the locked block (case 2)")
    args = parser.parse_args()
    states = make_states(args.writes)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        file_times = time_file(Path(tmp), states)
        sqlite_times = time_sqlite(Path(tmp), states)
    print(f"sign state file (write, fdatasync, rename, fsync dir): {describe(file_times)}")
    print(f"reference: SQLite row, synchronous=FULL:           {describe(sqlite_times)}")
    ratio = statistics.median(file_times) / statistics.median(sqlite_times)
    print(f"ratio file / SQLite (medians): {ratio:.2f}")
    locked = make_locked_state(args.block_txs)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        now, earlier, now_size, earlier_size = time_locked(Path(tmp), locked, max(1, args.writes // 10))
    print(f"locked on a block of {args.block_txs} txs, written once: {now_size:,} bytes, {describe(now)}")
    print(f"reference: the block written twice (before):      {earlier_size:,} bytes, {describe(earlier)}")
    print(
        f"ratio once / twice: bytes {now_size / earlier_size:.2f}, "
        f"write time (medians) {statistics.median(now) / statistics.median(earlier):.2f}"
    )


if __name__ == "__main__":
    main()

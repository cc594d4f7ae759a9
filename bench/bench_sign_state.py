"""Cost of persisting the sign state, which a validator does before every vote and proposal it sends.

    .venv/bin/python bench/bench_sign_state.py [--writes 300]

Measures `node.sign_state_file.save_sign_state` (its own file beside the validator key: write a
temporary file, fdatasync, rename, fsync the directory) against the reference, what the node did before:
a one-row upsert in the node's SQLite database (WAL) under `synchronous=FULL`, in its own transaction.
Both write the same sign state (a height with three signed steps and no lock) into a temporary
directory on the same file system; the median and the 95th percentile of single writes are printed,
with the ratio of the medians.
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

from chain.encoding import canonical_json  # noqa: E402
from node.consensus import SignState  # noqa: E402
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


def describe(times: list[float]) -> str:
    """Median and p95 in ms."""
    ordered = sorted(times)
    return f"median {statistics.median(ordered) * 1000:.3f} ms, p95 {ordered[int(len(ordered) * 0.95)] * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    states = make_states(args.writes)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        file_times = time_file(Path(tmp), states)
        sqlite_times = time_sqlite(Path(tmp), states)
    print(f"sign state file (write, fdatasync, rename, fsync dir): {describe(file_times)}")
    print(f"reference: SQLite row, synchronous=FULL:           {describe(sqlite_times)}")
    ratio = statistics.median(file_times) / statistics.median(sqlite_times)
    print(f"ratio file / SQLite (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()

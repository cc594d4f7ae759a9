"""The block at which proposals expire, against the number of open proposals in the state.

    .venv/bin/python bench/bench_gov_expiry.py

Part 1 (the target). Two SQLite states hold 1,000 and 100,000 open proposals in their deposit period
(one deposit each, below min_deposit). In both, 10 of them end their deposit period at each of the
heights 101 … 100+BLOCKS; the rest end later. Timed: an empty block at each of those heights,
`finalize_block` (the queue of the height read by key prefix, the 10 proposals dropped and their
deposits burned, the app hash) plus `commit` (the SQLite write). The states take their blocks in
turn so the machine's drift hits both alike; the chain's decode and entry-hash caches are cleared
before each block (the expiring entries are cold in a real chain). Prints the median wall and CPU
time per block and the ratios 100k / 1k (CPU time is what other jobs on a shared machine disturb
least), and the state rows each block reads (the same for both sizes when the work follows the
change). Target: at most 2.

Part 2. N = 512, 1,024, 2,048 proposals all ending at one empty block (the case measured on main
before range scans: 0.39 / 1.46 / 9.48 s): the time of that block and the time per proposal, which
is flat when the work is linear (median of 3 fresh states each). `--all-at-once` runs part 2 only;
it also runs on a checkout from before range scans, for a comparison on one machine:

    git worktree add --detach /tmp/base 0278043
    PYTHONPATH=/tmp/base .venv/bin/python bench/bench_gov_expiry.py --all-at-once
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chain import encoding, rules, store
from chain.app import Application
from chain.crypto import PrivateKey
from chain.params import Params
from chain.store import State
from chain.tx import MsgSubmitProposal, RegisterModel
from node.store import SqliteStore

SIZES = (1_000, 100_000)
DUE_PER_BLOCK = 10
BLOCKS = 30
ALL_AT_ONCE = (512, 1_024, 2_048)
REPEATS_ALL_AT_ONCE = 3
PROPOSER = PrivateKey.from_name("proposer", "bench-gov").address
DEPOSIT_PERIOD = 100
PARAMS = Params().to_json()


# the chain's decode and entry-hash caches (byte-bounded maps since issue 22; lru_cache functions
# before: --all-at-once runs on older checkouts, for a before/after comparison)
def clear_caches() -> None:
    """Empty the chain's decode and entry-lanes caches, whichever kind this checkout has."""
    for holder, names in (
        (encoding, ("DECODE_CACHE", "_decode_cached")),
        (store, ("LANES_CACHE", "_compute_entry_lanes_cached")),
    ):
        cache = next((getattr(holder, name) for name in names if hasattr(holder, name)), None)
        if cache is not None:
            (cache.clear if hasattr(cache, "clear") else cache.cache_clear)()


class CountingStore(SqliteStore):
    """A SqliteStore that counts the state rows it reads (point reads and rows of range scans)."""

    rows_read = 0

    def get(self, space: str, key: str) -> str | None:
        self.rows_read += 1
        return super().get(space, key)

    def iterate(self, space: str, *bounds: Any) -> Iterator[tuple[str, str]]:
        for row in super().iterate(space, *bounds):
            self.rows_read += 1
            yield row


def make_app(path: Path) -> Application:
    """A chain whose one proposer may open any number of proposals, each below min_deposit."""
    app = Application(CountingStore(path))
    app.init_chain(
        {
            "chain_id": "bench",
            "params": {
                "epoch_length": 1_000_000,
                "min_deposit": 1_000,
                "max_deposit_period": DEPOSIT_PERIOD,
                **({"max_open_proposals_per_account": 10**9} if "max_open_proposals_per_account" in PARAMS else {}),
            },
            "accounts": [{"address": PROPOSER, "balance": 10**15}],
            "validators": [{"address": PROPOSER, "stake": 1000}],
        }
    )
    return app


def commit_state(app: Application, state: State) -> None:
    """Write a state built outside finalize_block as the next committed height."""
    info, changes = state.compute_commit()
    app.store.write_block(info, changes)
    app._after_commit(info)


def submit(app: Application, height: int, count: int) -> None:
    """Commit a state at `height` where `count` proposals are submitted (written through the rules,
    unsigned: signatures are not what is measured)."""
    state = State(app.store, height, app._lthash)
    rules.process_block_start(state, height)
    for i in range(count):
        msg = MsgSubmitProposal(RegisterModel(f"model-{height}-{i}", 10), 1)
        rules.process_msg_submit_proposal(state, PROPOSER, msg)
    commit_state(app, state)


def skip_to(app: Application, height: int) -> None:
    """Commit an empty state at `height` (no proposal ends between)."""
    state = State(app.store, height, app._lthash)
    rules.process_block_start(state, height)
    commit_state(app, state)


def run_block(app: Application, cpu: list[float] | None = None) -> float:
    """Time one empty block: finalize_block + commit, with the chain's caches cold; its CPU time
    goes to `cpu`."""
    clear_caches()
    started, cpu_started = time.perf_counter(), time.process_time()
    app.finalize_block(app.height + 1, [])
    app.commit()
    if cpu is not None:
        cpu.append(time.process_time() - cpu_started)
    return time.perf_counter() - started


def build_open(path: Path, size: int) -> Application:
    """`size` open proposals: DUE_PER_BLOCK end at each of heights 101 … 100+BLOCKS, the rest after."""
    app = make_app(path)
    for height in range(1, BLOCKS + 1):
        submit(app, height, DUE_PER_BLOCK)
    submit(app, BLOCKS + 1, size - BLOCKS * DUE_PER_BLOCK)
    skip_to(app, DEPOSIT_PERIOD)
    return app


def all_proposals(app: Application) -> list[dict[str, Any]]:
    """Every proposal: every page of the paginated query (one list on checkouts from before pagination)."""
    query_all = getattr(app, "query_all", None)
    return query_all("proposals") if query_all is not None else app.query("proposals")


def count_open(app: Application) -> int:
    return sum(1 for p in all_proposals(app) if p["status"] == "deposit_period")


def part1(tmp: Path) -> None:
    apps = {}
    for size in SIZES:
        started = time.perf_counter()
        apps[size] = build_open(tmp / f"open-{size}.db", size)
        print(f"built {size:,} open proposals in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    times: dict[int, list[float]] = {size: [] for size in SIZES}
    cpu: dict[int, list[float]] = {size: [] for size in SIZES}
    reads_before = {size: app.store.rows_read for size, app in apps.items()}  # type: ignore[attr-defined]
    for _ in range(BLOCKS):
        for size, app in apps.items():
            times[size].append(run_block(app, cpu[size]))
    reads = {size: (app.store.rows_read - reads_before[size]) / BLOCKS for size, app in apps.items()}  # type: ignore[attr-defined]
    for app in apps.values():
        dropped = sum(1 for p in all_proposals(app) if p["status"] == "dropped")
        assert dropped == BLOCKS * DUE_PER_BLOCK, dropped
    medians = {size: statistics.median(t) for size, t in times.items()}
    cpu_medians = {size: statistics.median(t) for size, t in cpu.items()}
    for size, seconds in medians.items():
        print(
            f"{size:>7,} open proposals: {seconds * 1e3:.2f} ms per empty block ending {DUE_PER_BLOCK} of them, "
            f"{cpu_medians[size] * 1e3:.2f} ms CPU (finalize_block + commit, medians of {BLOCKS})"
        )
    for size in SIZES:
        print(
            f"{size:>7,} open proposals: {reads[size]:.0f} state rows read per block (point reads and range-scan rows)"
        )
    for what, figures in (("wall", medians), ("CPU", cpu_medians)):
        ratio = figures[SIZES[1]] / figures[SIZES[0]]
        print(f"100k / 1k ({what}) = {ratio:.2f} ({'PASS' if ratio <= 2.0 else 'FAIL'}: target ≤ 2.0)")


def part2(tmp: Path) -> None:
    times: dict[int, list[float]] = {count: [] for count in ALL_AT_ONCE}
    for repeat in range(REPEATS_ALL_AT_ONCE):
        for count in ALL_AT_ONCE:
            app = make_app(tmp / f"once-{count}-{repeat}.db")
            submit(app, 1, count)
            skip_to(app, DEPOSIT_PERIOD)
            times[count].append(run_block(app))
            assert count_open(app) == 0
            app.store.close()  # type: ignore[attr-defined]
    for count, runs in times.items():
        seconds = statistics.median(runs)
        print(
            f"{count:>5,} proposals ending at one empty block: {seconds * 1e3:.1f} ms "
            f"({seconds / count * 1e6:.0f} µs per proposal, median of {REPEATS_ALL_AT_ONCE})"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if "--all-at-once" not in sys.argv[1:]:
            part1(Path(tmp))
        part2(Path(tmp))


if __name__ == "__main__":
    main()

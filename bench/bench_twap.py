"""`GET /v1/pricing/twap` over 100,000 epochs of history against over 10 (issue 19): p99 of each, and the ratio.

    .venv/bin/python bench/bench_twap.py [--large 100000] [--small 10] [--requests 2000]

The history is written straight into a node's SQLite store (as bench_queries.py does): after genesis,
`--large` (or `--small`) epoch records with their running sums (`chain.rules.compute_running_sums`, the
prices a random walk) and the current epoch moved to the last of them. Then a real validator node starts
in this process on that home (its public API on a loopback port) and the bench sends sequential HTTP
requests with aiohttp, timing each from send to the last byte of the answer (the node commits a block
every BLOCK_MS, on the same event loop as its API: a request that waits for a commit counts):

- on the large history: the TWAP of the whole history (from 0 to the last epoch) and of its last 10 epochs;
- on the small history: the TWAP of the whole history (10 epochs).

Each case is requested `--requests` times (after 50 warm-up requests), the cases interleaved so that the
machine's drift hits all of them. Prints p50 and p99 of each and the ratio large / small of the p99s. The
same answers are also timed in-process through `Application.query` (what the route calls), to separate
the query's cost from HTTP's. Target: p99 <= 10 ms whatever the window, ratio near 1 (two point reads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from chain.rules import compute_index_key, compute_running_sums  # noqa: E402
from chain.store import State  # noqa: E402
from node.config import compute_loopback_timeouts, load_home, write_json  # noqa: E402
from node.node import Node  # noqa: E402
from node.store import SqliteStore  # noqa: E402
from tests.node.netutil import make_homes  # noqa: E402

WARMUP = 50
BLOCK_MS = 5000  # one block every 5 s: a commit runs on the node's event loop, between the requests


async def run_first_block(home: Path) -> None:
    """Let the node write genesis and commit a block (its ledger then knows the validator sets)."""
    node = Node(load_home(home))
    await node.start()
    try:
        while node.app is None or node.app.height < 1:
            await asyncio.sleep(0.05)
    finally:
        await node.stop(0.1)


def make_history_home(root: Path, epochs: int) -> Path:
    """A one-validator home whose store holds `epochs` epoch records after genesis's (a random walk)."""
    [home] = make_homes(root, 1, validators=1, timeouts=compute_loopback_timeouts(BLOCK_MS))
    genesis = json.loads((home / "genesis.json").read_text())
    genesis["params"]["epoch_length"] = 10**6  # no epoch ends during the bench
    write_json(home / "genesis.json", genesis)
    asyncio.run(run_first_block(home))
    store = SqliteStore(load_home(home).db_path)
    info = store.last_commit()
    assert info is not None
    state = State(store, info.height, info.lthash)  # the last height committed again, its app hash recomputed
    previous = state.get("hist", compute_index_key(0))
    current = state.get("epoch", "current")
    rng = random.Random(19)
    price = previous["price"]
    for epoch in range(1, epochs + 1):
        price = max(1, price + rng.randint(-3, 3))
        record = {**previous, "epoch": epoch, "price": price, **compute_running_sums(previous, price)}
        state.set("hist", compute_index_key(epoch), record)
        previous = record
    state.set("epoch", "current", {**current, "index": epochs, "price": price})
    store.write_block(*state.compute_commit())
    store.close()
    return home


def compute_percentile(times: list[float], share: float) -> float:
    """The nearest-rank percentile of times, in ms."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1e3


async def time_http(home: Path, cases: dict[str, dict[str, int]], requests: int) -> dict[str, list[float]]:
    """Start a node on `home` and time `requests` sequential GETs of each case, interleaved; also check
    each case's answer against the in-process query."""
    node = Node(load_home(home))
    await node.start()
    base = f"http://{load_home(home).config.api_public}/v1/pricing/twap"
    times: dict[str, list[float]] = {name: [] for name in cases}
    try:
        while node.app is None or node.app.height < 1:
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http:
            for name, params in cases.items():
                async with http.get(base, params=params) as response:
                    assert response.status == 200, await response.text()
                    answer = await response.json()
                assert answer == node.app.query("twap", **params), name
            for turn in range(WARMUP + requests):
                for name, params in cases.items():
                    started = time.perf_counter()
                    async with http.get(base, params=params) as response:
                        await response.read()
                    if turn >= WARMUP:
                        times[name].append(time.perf_counter() - started)
            for name, params in cases.items():  # the query alone, in process
                inproc = []
                for _ in range(requests):
                    started = time.perf_counter()
                    node.app.query("twap", **params)
                    inproc.append(time.perf_counter() - started)
                times[f"{name} (Application.query)"] = inproc
    finally:
        await node.stop(0.1)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        large = make_history_home(Path(tmp) / "large", args.large)
        small = make_history_home(Path(tmp) / "small", args.small)
        print(f"built {args.large:,} and {args.small} epoch records in {time.perf_counter() - started:.1f} s")
        big = asyncio.run(
            time_http(
                large,
                {
                    f"whole history ({args.large + 1:,} epochs)": {"from_epoch": 0, "to_epoch": args.large},
                    "last 10 epochs": {"from_epoch": args.large - 9, "to_epoch": args.large},
                },
                args.requests,
            )
        )
        little = asyncio.run(
            time_http(small, {f"whole history ({args.small + 1} epochs)": {"from_epoch": 0}}, args.requests)
        )
    print(f"{'GET /v1/pricing/twap':72} {'p50 ms':>8} {'p99 ms':>8}")
    for label, results in ((f"history of {args.large:,}", big), (f"history of {args.small}", little)):
        for name, times in results.items():
            row = f"{label}: {name}"
            print(f"{row:72} {compute_percentile(times, 0.5):8.3f} {compute_percentile(times, 0.99):8.3f}")
    large_p99 = compute_percentile(next(iter(big.values())), 0.99)
    small_p99 = compute_percentile(next(iter(little.values())), 0.99)
    verdict = "PASS" if large_p99 <= 10 else "FAIL"
    ratio = large_p99 / small_p99
    print(f"p99 over {args.large:,} epochs / over {args.small}: {ratio:.2f} ({verdict}: {large_p99:.2f} ms <= 10 ms)")


if __name__ == "__main__":
    main()

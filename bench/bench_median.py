"""Benchmark chain.median: the chain's ballot path against the Go peer, numpy selection against
np.sort, and the pure Python path.

Run: .venv/bin/python bench/bench_median.py

Part 1 (issue 22, the target). One ballot of 1,000,000 validators (prices in [1, 2^62), powers in
[1, 10^6], one in ten never voted and counts at the current price), timed three ways in the same run:

- the chain's path, `chain.rules.compute_ballot` on the ballot in columns as `get_ballot_votes`
  loads it (the never-voters filled in, the checks on the arrays, the weighted selection, the
  summary): from the loaded votes to the price;
- `weighted_median(pairs)`, the function the chain called before, on the same ballot as Python
  (price, power) pairs (per-entry checks in Python, then the arrays);
- the Go peer (bench/go/median.go: sort by price, cumulative power, first index past half), built
  with `go build` into a temporary directory when `go` is on PATH, fed the same ballot as a file of
  int64 pairs; its sort runs on a fresh copy each time.

All three must give the same price. Prints each median time and the ratio chain / Go. Target:
<= 0.1. Also prints what building the columns from Python lists costs (`compute_column`, part of
loading the votes from the state, which reads one entry per validator: bench_scaling.py prices it
per validator).

Part 2. `weighted_median_arrays` against np.sort of the same prices (target <= 1.5), and the pure
Python path against the numpy path at 10k and 100k votes.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.median import compute_column, compute_weighted_median_pure, weighted_median, weighted_median_arrays  # noqa: E402
from chain.rules import BallotVotes, compute_ballot  # noqa: E402

SEED = 20240917
REPEATS = 7
TARGET_RATIO = 1.5
GO_TARGET = 0.1
ROUNDS = 3
CHAIN_VOTES = 1_000_000
CURRENT_PRICE = 2**61
GO_SOURCE = Path(__file__).resolve().parent / "go"


def random_ballot(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return n random votes: prices in [1, 2**62), powers in [1, 10**6]."""
    prices = rng.integers(1, 2**62, size=n, dtype=np.int64)
    powers = rng.integers(1, 10**6, size=n, dtype=np.int64, endpoint=True)
    return prices, powers


def median_time(fn, repeats: int = REPEATS) -> float:
    """Return the median wall time of fn() in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_go_peer(workdir: Path) -> Path | None:
    """Build bench/go into workdir and return the binary, or None (and say why) when Go is absent."""
    go = shutil.which("go")
    if go is None:
        print("Go peer: not measured, `go` is not on PATH (apt-get install golang-go, then run again)")
        return None
    binary = workdir / "median"
    env = {"GOCACHE": str(workdir / "gocache"), "GOPATH": str(workdir / "gopath"), "HOME": str(workdir)}
    env["PATH"] = str(Path(go).parent)
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=GO_SOURCE, env=env, check=True)
    version = subprocess.run([go, "version"], capture_output=True, text=True, env=env, check=True).stdout.strip()
    print(f"Go peer: built with {version}")
    return binary


def write_ballot(prices: np.ndarray, powers: np.ndarray, path: Path) -> Path:
    """Write (price, power) pairs as little-endian int64s, the Go peer's input."""
    np.stack([prices, powers], axis=1).astype("<i8").tofile(path)
    return path


def run_go_peer(binary: Path, ballot: Path) -> tuple[int | None, list[float]]:
    """The Go peer's median and its REPEATS times in seconds on the ballot file."""
    out = subprocess.run([str(binary), str(ballot), str(REPEATS)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    return (None if result["median"] is None else int(result["median"])), [t / 1e3 for t in result["times_ms"]]


def sample_times(fn, repeats: int = REPEATS) -> list[float]:
    """The wall times of repeats calls of fn(), in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_chain_against_go(rng: np.random.Generator, n: int) -> None:
    """Print the chain's ballot path, weighted_median(pairs) and the Go peer on one ballot, and the ratio.
    The chain path and the Go peer take ROUNDS turns of REPEATS runs each (the machine's drift hits both)."""
    prices, powers = random_ballot(rng, n)
    prices[rng.random(n) < 0.1] = 0  # never voted: counts at the current price
    votes = BallotVotes([f"v{i}" for i in range(n)], powers, prices)
    filled = np.where(prices > 0, prices, CURRENT_PRICE)
    pairs = list(zip(filled.tolist(), powers.tolist()))
    price, _ = compute_ballot(votes, CURRENT_PRICE)
    assert price == weighted_median(pairs) == weighted_median_arrays(filled, powers)
    pairs_s = median_time(lambda: weighted_median(pairs))
    price_list, power_list = filled.tolist(), powers.tolist()
    columns_s = median_time(lambda: (compute_column(price_list), compute_column(power_list)))
    print(f"N={n:,}: weighted_median(pairs) {pairs_s * 1e3:.2f} ms (the function the chain called before)")
    print(f"N={n:,}: building the two int64 columns from Python lists (part of loading) {columns_s * 1e3:.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_go_peer(Path(tmp))
        chain_times: list[float] = []
        go_times: list[float] = []
        ballot = write_ballot(filled, powers, Path(tmp) / "ballot.bin")
        for _ in range(ROUNDS):
            chain_times += sample_times(lambda: compute_ballot(votes, CURRENT_PRICE))
            if binary is not None:
                go_median, times = run_go_peer(binary, ballot)
                assert go_median == price, f"the Go peer found {go_median}, the chain {price}"
                go_times += times
    chain_s = statistics.median(chain_times)
    print(f"N={n:,}: chain compute_ballot on the loaded columns {chain_s * 1e3:.2f} ms (median of {len(chain_times)})")
    if binary is None:
        return
    go_s = statistics.median(go_times)
    ratio, pairs_ratio = chain_s / go_s, pairs_s / go_s
    print(f"N={n:,}: Go peer {go_s * 1e3:.2f} ms (median of {len(go_times)}, same price)")
    print(f"weighted_median(pairs) / Go = {pairs_ratio:.2f}")
    verdict = "PASS" if ratio <= GO_TARGET else "FAIL"
    print(f"{verdict}: chain / Go = {ratio:.3f} vs target <= {GO_TARGET}")


def bench_against_sort(rng: np.random.Generator, n: int) -> None:
    """Print weighted_median_arrays time against np.sort on the same prices, and PASS/FAIL."""
    prices, powers = random_ballot(rng, n)
    sort_s = median_time(lambda: np.sort(prices))
    median_s = median_time(lambda: weighted_median_arrays(prices, powers))
    ratio = median_s / sort_s
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"N={n:,}: np.sort {sort_s * 1e3:.2f} ms, weighted_median_arrays {median_s * 1e3:.2f} ms, ratio {ratio:.2f}")
    print(f"{verdict}: ratio {ratio:.2f} vs target <= {TARGET_RATIO}")


def bench_pure_vs_numpy(rng: np.random.Generator, n: int) -> None:
    """Print the pure Python path against the numpy path on the same ballot."""
    prices, powers = random_ballot(rng, n)
    pairs = list(zip(prices.tolist(), powers.tolist()))
    assert compute_weighted_median_pure(pairs) == weighted_median_arrays(prices, powers)
    pure_s = median_time(lambda: compute_weighted_median_pure(pairs))
    numpy_s = median_time(lambda: weighted_median_arrays(prices, powers))
    print(f"N={n:,}: pure Python {pure_s * 1e3:.2f} ms, numpy {numpy_s * 1e3:.2f} ms, speedup {pure_s / numpy_s:.1f}x")


def main() -> None:
    """Run every benchmark with a fixed seed."""
    rng = np.random.default_rng(SEED)
    print(f"numpy {np.__version__}, median of {REPEATS} runs")
    bench_chain_against_go(rng, CHAIN_VOTES)
    bench_against_sort(rng, 1_000_000)
    for n in (10_000, 100_000):
        bench_pure_vs_numpy(rng, n)


if __name__ == "__main__":
    main()

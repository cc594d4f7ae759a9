"""Benchmark chain.median: numpy weighted selection against np.sort and the pure Python path.

Run: .venv/bin/python bench/bench_median.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.median import compute_weighted_median_pure, weighted_median_arrays  # noqa: E402

SEED = 20240917
REPEATS = 7
TARGET_RATIO = 1.5


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
    bench_against_sort(rng, 1_000_000)
    for n in (10_000, 100_000):
        bench_pure_vs_numpy(rng, n)


if __name__ == "__main__":
    main()

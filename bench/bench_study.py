"""A Monte Carlo study of examples/basic.toml on the local process pool: 2 workers against 1, and the
driver's memory against the number of runs.

    .venv/bin/python bench/bench_study.py [--runs N] [--scenario S.toml]

Runs the same study (`uocd devnet simulate S --runs N --workers W`: the in-process engine, one
process per run, every finished run's rows streamed to Parquet and CSV) twice, with W = 1 and
W = 2, and prints the runs per minute of each and their ratio (target: at least 1.7). The plots and
the report after the runs are left out of the timing.

The driver's memory: its resident set size (RSS, /proc/self/statm) is sampled after every finished
run; the bench prints the peak after the first tenth of the runs and the peak over all of them,
and their difference per 1,000 runs (flat: a few MB at most, whatever N).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from devnet.study import plan_study, run_study

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


def read_rss() -> int:
    """This process's resident set size in bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def measure(scenario: str, runs: int, workers: int) -> tuple[float, int, int]:
    """(runs per minute, peak RSS after the first tenth of the runs, peak RSS over all) of one study."""
    study = plan_study(scenario, runs=runs, seed=None, sets=[], sweeps=[])
    peaks = {"early": 0, "all": 0}

    def on_done(done: int) -> None:
        rss = read_rss()
        peaks["all"] = max(peaks["all"], rss)
        if done <= max(1, runs // 10):
            peaks["early"] = max(peaks["early"], rss)

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        manifest = run_study(study, Path(out), workers=workers, progress=False, on_done=on_done)
        elapsed = time.perf_counter() - started
    assert manifest["runs_done"] == runs, manifest
    return runs / elapsed * 60, peaks["early"], peaks["all"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="runs per study (default 1000)")
    parser.add_argument("--scenario", default=str(REPO / "examples" / "basic.toml"))
    args = parser.parse_args()
    print(f"{args.runs} runs of {Path(args.scenario).name} per study; {os.cpu_count()} CPUs", flush=True)
    results = {}
    for workers in (1, 2):
        rate, early, peak = measure(args.scenario, args.runs, workers)
        results[workers] = rate
        growth = (peak - early) / 2**20 / (args.runs * 0.9) * 1000
        print(
            f"workers={workers}: {rate:,.1f} runs/min; driver RSS peak {early / 2**20:.1f} MB after the first "
            f"{max(1, args.runs // 10)} runs, {peak / 2**20:.1f} MB after all {args.runs} "
            f"({growth:+.2f} MB per 1,000 runs)",
            flush=True,
        )
    ratio = results[2] / results[1]
    print(f"ratio 2 workers / 1 worker: {ratio:.2f} (target >= 1.7)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

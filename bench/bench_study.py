"""A Monte Carlo study of examples/basic.toml on the local process pool: 2 workers against 1, and the
driver's memory against the number of runs.

    .venv/bin/python bench/bench_study.py [--runs N] [--chunk C] [--rounds R] [--scenario S.toml]

Throughput: the machine is shared and its load drifts by minutes, so the two pool sizes are
interleaved: R rounds, each a study of C runs on 1 worker then one of C runs on 2 workers (fresh
seeds each time, as `uocd devnet simulate S --runs C --seed S0 --workers W` runs them: the
in-process engine, one process per run, every run's rows streamed to Parquet and CSV). The bench
prints each pool's runs per minute over its R × C runs and their ratio (target: at least 1.7).

Memory: one study of N runs on 2 workers (the Monte Carlo itself; its runs per minute are printed
too). The driver's resident set size (RSS, /proc/self/statm) is sampled after every finished run;
the bench prints its peak after the first tenth, the first half and all of the runs, and the growth
over the second half per 1,000 runs (flat: the table buffers are bounded, so about 0). The plots
and the report after the runs are left out.
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


def measure(scenario: str, runs: int, workers: int, seed: int) -> tuple[float, dict[int, int]]:
    """(seconds, the driver's peak RSS after the first tenth, half and all of the runs) of one study."""
    study = plan_study(scenario, runs=runs, seed=seed, sets=[], sweeps=[])
    marks = sorted({max(1, runs // 10), max(1, runs // 2), runs})
    peaks = dict.fromkeys(marks, 0)

    def on_done(done: int) -> None:
        rss = read_rss()
        for mark in marks:
            if done <= mark:
                peaks[mark] = max(peaks[mark], rss)

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        manifest = run_study(study, Path(out), workers=workers, progress=False, on_done=on_done)
        elapsed = time.perf_counter() - started
    assert manifest["runs_done"] == runs, manifest
    return elapsed, peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="runs of the memory study (default 1000)")
    parser.add_argument("--chunk", type=int, default=100, help="runs per throughput study (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 1 then 2 workers (default 5)")
    parser.add_argument("--scenario", default=str(REPO / "examples" / "basic.toml"))
    args = parser.parse_args()
    name = Path(args.scenario).name
    print(f"{name}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    seconds = {1: 0.0, 2: 0.0}
    seed = 0
    for round_ in range(args.rounds):
        for workers in (1, 2):
            elapsed, _ = measure(args.scenario, args.chunk, workers, seed)
            seconds[workers] += elapsed
            seed += args.chunk
            rate = args.chunk / elapsed * 60
            print(f"round {round_ + 1}, workers={workers}: {rate:,.1f} runs/min", flush=True)
    total = args.chunk * args.rounds
    rates = {w: total / s * 60 for w, s in seconds.items()}
    for workers, rate in rates.items():
        print(f"workers={workers}: {rate:,.1f} runs/min over {total} runs", flush=True)
    print(f"ratio 2 workers / 1 worker: {rates[2] / rates[1]:.2f} (target >= 1.7)", flush=True)
    elapsed, peaks = measure(args.scenario, args.runs, 2, seed)
    shown = ", ".join(f"{peak / 2**20:.1f} MB after {mark}" for mark, peak in peaks.items())
    (half, half_peak), (_, end_peak) = list(peaks.items())[-2:]
    growth = (end_peak - half_peak) / 2**20 / max(1, args.runs - half) * 1000
    print(f"{args.runs} runs on 2 workers: {args.runs / elapsed * 60:,.1f} runs/min")
    print(f"driver RSS peak {shown} runs (second half: {growth:+.2f} MB per 1,000 runs)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())

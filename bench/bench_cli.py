"""How long the command line takes to start: what every `uocd` run, and every TAB of shell completion, pays
before it does anything.

    .venv/bin/python bench/bench_cli.py [--runs 15]

Times whole processes (wall clock, `time.perf_counter` around `subprocess.run`), alternated run by run:
`uocd --help` (builds the whole argument tree and prints it), `uocd version`, `uocd keys list` (a command
that reads files only) and `uocd devnet attack --help` (a help whose epilog loads its module); the
reference is the same interpreter starting and doing nothing (`python -c pass`). Prints the median and the
ratio of each to the reference. The tree is built from the command modules' own arguments; what a command
runs is imported when it runs (see `uocd/options.py`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_run(argv: list[str]) -> float:
    """The wall seconds of one process running `argv` to its end (its output discarded)."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command, alternated (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        cases = {
            "python -c pass (reference)": [sys.executable, "-c", "pass"],
            "uocd --help": [sys.executable, "-m", "uocd", "--help"],
            "uocd version": [sys.executable, "-m", "uocd", "version"],
            "uocd keys list": [sys.executable, "-m", "uocd", "keys", "list", "--home", home],
            "uocd devnet attack --help": [sys.executable, "-m", "uocd", "devnet", "attack", "--help"],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                times[name].append(time_run(argv))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    reference = medians["python -c pass (reference)"]
    for name, median in medians.items():
        print(f"{name:<28} median {median * 1000:7.1f} ms  ({median / reference:5.1f}× the reference)")
    print(json.dumps({name: round(median * 1000, 1) for name, median in medians.items()}))


if __name__ == "__main__":
    main()

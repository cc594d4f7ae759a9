"""A simulation's peak memory against its length: the same 1,000 validators over 20 and over 200 epochs.

    .venv/bin/python bench/bench_sim_memory.py [--validators V] [--epochs E]

Each run is `run_inproc` (helpers, the chain, every output file) in a fresh process, so its peak
resident set size (ru_maxrss) is its own. All validators vote every epoch, so the votes table has
V × E rows. A run that kept every epoch's ballot until its end grew by ~0.9 KB a row (275 MiB at
200 epochs against 114 MiB at 20); the run now hands each epoch's rows to votes.csv as the epoch
ends. Prints each run's peak RSS, votes.csv's size and the ratio of the long run's peak to the
short one's (target: at most 1.2, i.e. flat in the epochs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, tempfile
from pathlib import Path
sys.path.insert(0, {bench!r})
from bench_sim import make_scenario
from devnet.scenario import parse_scenario
from devnet.simulate import run_inproc
validators, epochs = {validators}, {epochs}
with tempfile.TemporaryDirectory() as out:
    summary = run_inproc(parse_scenario(make_scenario(validators, epochs), "memory"), Path(out), progress=False)
    votes_bytes = (Path(out) / "votes.csv").stat().st_size
print(json.dumps({{"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "txs": summary["txs_committed"], "votes_csv_bytes": votes_bytes}}))
"""


def measure(validators: int, epochs: int) -> dict[str, float]:
    """The peak RSS (MiB), committed txs and votes.csv bytes of one run in a fresh process."""
    code = CHILD.format(bench=str(REPO / "bench"), validators=validators, epochs=epochs)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validators", type=int, default=1000, help="validators, all voting (default 1000)")
    parser.add_argument(
        "--epochs", type=int, default=200, help="epochs of the long run (default 200; the short: a tenth)"
    )
    args = parser.parse_args()
    short, long = max(2, args.epochs // 10), args.epochs
    results = {}
    for epochs in (short, long):
        figures = measure(args.validators, epochs)
        results[epochs] = figures
        print(
            f"{args.validators:,} validators × {epochs} epochs: {figures['txs']:,} txs, votes.csv "
            f"{figures['votes_csv_bytes'] / 2**20:.1f} MiB, peak RSS {figures['peak_mib']:.1f} MiB",
            flush=True,
        )
    ratio = results[long]["peak_mib"] / results[short]["peak_mib"]
    print(f"peak RSS {long} / {short} epochs: {ratio:.2f} ({'PASS' if ratio <= 1.2 else 'FAIL'}: target ≤ 1.2)")
    print(
        json.dumps(
            {
                "peak_mib_short": results[short]["peak_mib"],
                "peak_mib_long": results[long]["peak_mib"],
                "ratio": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()

"""In-process simulator throughput against the raw ed25519 verification rate, in one run.

    .venv/bin/python bench/bench_sim.py [--txs N] [--repeat R]

For 100 and 1,000 validators that all vote every epoch, measures the committed signed vote
transactions per second of `run_inproc` (signing, signature verification, finalize_block and
commit on SQLite; the CSV and plot excluded) and the single-core raw ed25519 verification rate
right before and right after each run. The machine's speed drifts, so each run's ratio is taken
against the mean of its own two raw measurements; the median of R runs is reported.
Target: at least 0.70 of the raw rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from chain.crypto import PrivateKey, verify_signature
from devnet.scenario import parse_scenario
from devnet.simulate import run_inproc


def measure_raw_verify_rate(n: int = 3000) -> float:
    """Verifications per second of distinct signed messages, one core."""
    key = PrivateKey.from_name("bench")
    items = [(key.pubkey, key.sign(m), m) for m in (os.urandom(300) for _ in range(n))]
    started = time.perf_counter()
    assert all(verify_signature(*item) for item in items)
    return n / (time.perf_counter() - started)


def make_scenario(validators: int, epochs: int) -> str:
    """TOML for `validators` honest voters over `epochs` epochs of 10 blocks."""
    lines = [f"seed = 1\nepochs = {epochs}\nepoch_length = 10\n"]
    for i in range(validators):
        lines.append(f'[[validators]]\nname = "v{i}"\nstake = {100 + i}\nstrategy = "honest"\n')
        lines.append("true_cost = 1000\nnoise_bps = 500\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=40_000, help="signed vote transactions per run (default 40000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is reported (default 3)")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}")
    for validators in (100, 1000):
        epochs = max(2, args.txs // validators)
        scenario = parse_scenario(make_scenario(validators, epochs), f"bench-{validators}")
        runs = []
        for _ in range(args.repeat):
            before = measure_raw_verify_rate()
            with tempfile.TemporaryDirectory() as out:
                summary = run_inproc(scenario, Path(out), progress=False)
            raw = (before + measure_raw_verify_rate()) / 2
            rate = summary["txs_committed"] / summary["elapsed_seconds"]
            runs.append((rate / raw, rate, raw))
        ratio, rate, raw = statistics.median(runs)
        print(
            f"{validators:>5} validators, {epochs} epochs of 10 blocks, {summary['txs_committed']:,} txs: "
            f"median {rate:,.0f} tx/s against raw ed25519 verification {raw:,.0f}/s = {ratio:.2f} "
            f"(runs: {', '.join(f'{r[0]:.2f}' for r in runs)}; {'PASS' if ratio >= 0.70 else 'FAIL'}: target ≥ 0.70)"
        )


if __name__ == "__main__":
    main()

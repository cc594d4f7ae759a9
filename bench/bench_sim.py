"""In-process simulator throughput against the raw ed25519 verification rate, in one run.

    .venv/bin/python bench/bench_sim.py [--txs N] [--repeat R]

For 100 and 1,000 validators that all vote every epoch, measures the committed signed vote
transactions per second of `run_inproc` (signing, signature verification, finalize_block and
commit on SQLite; plotting excluded) and, right before each run, the single-core raw ed25519
verification rate. Each figure is the best of R runs; the machine's speed drifts, so only the
ratio within a run means much. Target: at least 0.70 of the raw rate.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is kept (default 3)")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}")
    for validators in (100, 1000):
        epochs = max(2, args.txs // validators)
        scenario = parse_scenario(make_scenario(validators, epochs), f"bench-{validators}")
        best_raw = best_rate = 0.0
        for _ in range(args.repeat):
            best_raw = max(best_raw, measure_raw_verify_rate())
            with tempfile.TemporaryDirectory() as out:
                summary = run_inproc(scenario, Path(out), progress=False)
            best_rate = max(best_rate, summary["txs_committed"] / summary["elapsed_seconds"])
        print(
            f"{validators:>5} validators, {epochs} epochs of 10 blocks, {summary['txs_committed']:,} txs: "
            f"{best_rate:,.0f} tx/s; raw ed25519 verification {best_raw:,.0f}/s; ratio {best_rate / best_raw:.2f} "
            f"({'PASS' if best_rate / best_raw >= 0.70 else 'FAIL'}: target ≥ 0.70)"
        )


if __name__ == "__main__":
    main()

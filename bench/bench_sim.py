"""In-process simulator throughput against the raw ed25519 verification rate, in one run.

    .venv/bin/python bench/bench_sim.py [--epochs N]

Prints the single-core raw verification rate, then, for 100 and 1,000 validators that all vote
every epoch, the committed signed vote transactions per second of `run_inproc` (signing,
admission with check_tx, finalize_block and commit on SQLite; plotting excluded) and its ratio to
the raw rate. Target: at least 0.70.
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


def measure_raw_verify_rate(n: int = 5000) -> float:
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
    parser.add_argument("--txs", type=int, default=40_000, help="signed vote transactions per case (default 40000)")
    args = parser.parse_args()
    raw = measure_raw_verify_rate()
    print(f"cores: {os.cpu_count()}; raw ed25519 verification: {raw:,.0f}/s (one core)")
    for validators in (100, 1000):
        epochs = max(2, args.txs // validators)
        scenario = parse_scenario(make_scenario(validators, epochs), f"bench-{validators}")
        with tempfile.TemporaryDirectory() as out:
            summary = run_inproc(scenario, Path(out), progress=False)
        rate = summary["txs_committed"] / summary["elapsed_seconds"]
        print(
            f"{validators:>5} validators, {epochs} epochs: {summary['txs_committed']:,} txs in "
            f"{summary['elapsed_seconds']:.1f} s = {rate:,.0f} tx/s = {rate / raw:.2f} of raw verification"
        )
    raw_after = measure_raw_verify_rate()
    print(f"raw ed25519 verification again: {raw_after:,.0f}/s")


if __name__ == "__main__":
    main()

"""In-process simulator throughput against the raw ed25519 verification rate, in one run, in both vote modes.

    .venv/bin/python bench/bench_sim.py [--txs N] [--repeat R]

For 100 and 1,000 validators that all vote every epoch, measures the committed signed vote
transactions per second of `run_inproc` (signing, signature verification, finalize_block and
commit on SQLite; the CSV and plot excluded) and the single-core raw ed25519 verification rate
right before and right after each run. The machine's speed drifts, so each run's ratio is taken
against the mean of its own two raw measurements; the median of R runs is reported.
Target: at least 0.70 of the raw rate (open mode).

Each case runs in vote_mode "open" (one MsgSubmitPriceProposal per transaction) and "commit_reveal"
(a MsgRevealPrice and a MsgCommitPrice per transaction), the two modes interleaved run by run; the
commit–reveal / open ratio of the medians of their raw-rate ratios is the cost of commit–reveal.
"""

from __future__ import annotations

import argparse
import dataclasses
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
        opened = parse_scenario(make_scenario(validators, epochs), f"bench-{validators}")
        modes = {"open": opened, "commit_reveal": dataclasses.replace(opened, vote_mode="commit_reveal")}
        runs: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in modes}
        committed = {}
        for _ in range(args.repeat):
            for mode, scenario in modes.items():
                before = measure_raw_verify_rate()
                with tempfile.TemporaryDirectory() as out:
                    summary = run_inproc(scenario, Path(out), progress=False)
                raw = (before + measure_raw_verify_rate()) / 2
                rate = summary["txs_committed"] / summary["elapsed_seconds"]
                runs[mode].append((rate / raw, rate, raw))
                committed[mode] = summary["txs_committed"]
        medians = {mode: statistics.median(mode_runs) for mode, mode_runs in runs.items()}
        for mode, (ratio, rate, raw) in medians.items():
            target = f"; {'PASS' if ratio >= 0.70 else 'FAIL'}: target ≥ 0.70" if mode == "open" else ""
            print(
                f"{validators:>5} validators, {mode:<13} {epochs} epochs of 10 blocks, {committed[mode]:,} txs: "
                f"median {rate:,.0f} tx/s against raw ed25519 verification {raw:,.0f}/s = {ratio:.2f} "
                f"(runs: {', '.join(f'{r[0]:.2f}' for r in runs[mode])}{target})"
            )
        print(
            f"{validators:>5} validators, commit_reveal / open throughput (ratios to raw): "
            f"{medians['commit_reveal'][0] / medians['open'][0]:.2f}"
        )


if __name__ == "__main__":
    main()

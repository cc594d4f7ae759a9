"""Time per committed block of the consensus engine with 4, 16 and 64 validators, in-process.

    .venv/bin/python bench/bench_consensus.py [--heights 40 12 4]

Runs the in-process network of tests/consensus_harness.py: every validator has its own
Consensus engine and Application (MemoryStore), messages go to every other node at once (no
delay, no loss, no relay: a full mesh), on the harness's virtual clock. The wall time from the
first start_height to the last height every node applied, divided by the number of heights, is
the time per committed block of the whole network in one Python process (the CPU time of the
process is printed too: the machine is shared, and wall time includes other processes' load): each node signs its
votes, verifies every peer's vote and the proposal's last commit, validates the proposal
(process_proposal) and applies the block. So the work per height grows about with N² signature
checks; per node it grows with N. Empty blocks; equal powers.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.consensus_harness import Network  # noqa: E402

SIZES = (4, 16, 64)


def measure(validators: int, heights: int) -> dict[str, float]:
    """Run `heights` heights with `validators` validators; wall seconds per height and messages per height."""
    names = [f"val{i:03d}" for i in range(validators)]
    net = Network(names, seed=1, delay_ms=(0, 0), resend_ms=None, relay=False)
    start, cpu_start = time.perf_counter(), time.process_time()
    net.run(until_height=heights, max_ms=10_000_000)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    assert net.committed_height() >= heights and net.check_safety() >= heights
    rounds = max(c.round for c in net.nodes[names[0]].commits.values())
    return {
        "per_block_s": wall / heights,
        "cpu_per_block_s": cpu / heights,
        "messages": net.delivered / heights,
        "max_round": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, nargs=3, default=[40, 12, 4], help="heights for 4, 16, 64 validators")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print("| validators | heights | CPU per committed block | CPU per node | wall per block | messages per block |")
    print("|---|---|---|---|---|---|")
    for validators, heights in zip(SIZES, args.heights):
        r = measure(validators, heights)
        cpu_ms = r["cpu_per_block_s"] * 1000
        print(
            f"| {validators} | {heights} | {cpu_ms:,.1f} ms | {cpu_ms / validators:.2f} ms "
            f"| {r['per_block_s'] * 1000:,.1f} ms | {r['messages']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""The epoch transition and the block cost against the number of validators (1k, 10k, 100k).

    .venv/bin/python bench/bench_scaling.py [--sizes 1000,10000,100000] [--epochs 3]

For each size N, a SQLite chain through `Application` with N validators of equal stake, all with
power (max_validators = N), epochs of 10 blocks, vote_reward_share 0.5 and a miss window of 10
epochs, so the boundary does all its per-validator work: vote rewards (the reward band of the
ballot), the fee distribution (every validator paid), the miss windows, the stake changes and
the next validator set, the price (the weighted median of N votes), the epoch record. Every block
carries 10 MsgSends paying 10^9 ngonka of fee each (the pool pays every validator). In each epoch,
every validator votes a price: the votes are written into the block before the boundary directly
through the rules (unsigned, untimed: signatures are not what is measured). Timed:

- the boundary block: `finalize_block` + `commit` of the epoch's last block (its 10 MsgSends and the
  epoch transition), median over the epochs;
- an ordinary block: the same for the other heights with MsgSends only, median over them.

The chain's caches are left as a running chain has them (not cleared). The sizes take their
epochs in turn, so the machine's drift hits all alike. Prints a table: N, boundary block, per
validator, ordinary block, and the ratios of the per-validator cost to the smallest size's (flat
when the transition is linear), and of the ordinary block to the smallest size's (flat when a block
does not depend on N). Process CPU time is printed beside the wall time (what other jobs on a
shared machine disturb least). --profile N prints the top functions of one boundary at size N.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from chain import rules
from chain.app import Application
from chain.crypto import PrivateKey
from chain.store import State
from chain.tx import MsgSend, MsgSubmitPriceProposal, sign_tx
from node.store import SqliteStore

CHAIN_ID = "bench-scaling"
EPOCH_LENGTH = 10
TXS_PER_BLOCK = 10
FEE = 10**9
SENDERS = [PrivateKey.from_name(f"sender-{i}", CHAIN_ID) for i in range(TXS_PER_BLOCK)]


def validator_address(i: int) -> str:
    """A validator's address: derived from its index (no key is needed, its txs are written directly)."""
    return PrivateKey.from_name(f"val-{i}", CHAIN_ID).address


class Case:
    """One chain of N validators: its application and the timings of its blocks."""

    def __init__(self, validators: int, workdir: Path, full: bool, stale: bool = False) -> None:
        self.n = validators
        self.addresses = [validator_address(i) for i in range(validators)]
        self.app = Application(SqliteStore(workdir / f"scaling-{validators}.db"))
        self.app.init_chain(
            {
                "chain_id": CHAIN_ID,
                "params": {
                    "epoch_length": EPOCH_LENGTH,
                    "max_validators": validators,
                    **({"vote_reward_share": "0.5", "miss_window": 10} if full else {}),
                },
                "accounts": [{"address": k.address, "balance": 10**15} for k in SENDERS],
                "validators": [{"address": a, "stake": 1_000_000} for a in self.addresses],
            }
        )
        self.sequences = [0] * len(SENDERS)
        self.boundary: list[tuple[float, float]] = []
        self.ordinary: list[tuple[float, float]] = []
        self.epoch = 0
        self.fee = FEE if full else None
        self.stale = stale  # votes cast once, empty blocks: the boundary only reads

    def sends(self) -> list[bytes]:
        """TXS_PER_BLOCK signed MsgSends, one from each sender, admitted to the mempool (none if stale)."""
        txs: list[bytes] = []
        if self.stale:
            return txs
        for i, key in enumerate(SENDERS):
            msg = MsgSend(SENDERS[(i + 1) % len(SENDERS)].address, 1)
            txs.append(sign_tx(key, CHAIN_ID, self.sequences[i], [msg], fee=self.fee))
            self.sequences[i] += 1
        assert all(r.ok for r in self.app.check_txs(txs))
        return txs

    def timed_block(self, profile: bool = False) -> tuple[float, float]:
        """finalize_block + commit of the next height with TXS_PER_BLOCK MsgSends: (wall, CPU) seconds."""
        txs = self.sends()
        height = self.app.height + 1
        profiler = cProfile.Profile() if profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        result = self.app.finalize_block(height, txs)
        self.app.commit()
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        elapsed = (time.perf_counter() - started, time.process_time() - cpu)
        assert all(r.ok for r in result.tx_results), [r.log for r in result.tx_results if not r.ok]
        return elapsed

    def vote_block(self) -> None:
        """The block before the boundary, untimed: every validator votes a price (written through the rules)."""
        height = self.app.height + 1
        state = State(self.app.store, height, self.app._lthash)
        rules.process_block_start(state, height)
        for i, address in enumerate(self.addresses):
            price = 1_000 + (i * 7919 + self.epoch * 104729) % 1_000
            rules.process_msg_submit_price_proposal(state, address, MsgSubmitPriceProposal(price, "ngonka"))
        rules.process_block_end(state)
        info, changes = state.compute_commit()
        self.app.store.write_block(info, changes)
        self.app._after_commit(info)
        self.app._check_state = self.app._new_state()
        self.app.verify_cache.clear()

    def run_epoch(self, profile: bool = False) -> None:
        """One epoch: ordinary blocks, the votes, then the boundary block."""
        self.epoch += 1
        while (self.app.height + 2) % EPOCH_LENGTH:
            self.ordinary.append(self.timed_block())
        if self.stale and self.epoch > 1:
            self.ordinary.append(self.timed_block())
        else:
            self.vote_block()
        self.boundary.append(self.timed_block(profile))
        assert self.app.height % EPOCH_LENGTH == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="validator counts, comma-separated")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per size (after one warm-up)")
    parser.add_argument("--profile", type=int, default=0, help="profile the last boundary of this size")
    parser.add_argument(
        "--stale",
        action="store_true",
        help="with --defaults: votes cast once and empty blocks, so each boundary only reads (votes, sets)",
    )
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="default params (no vote rewards, no miss windows) and least fees: the boundary's lightest work",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for n in sizes:
            started = time.perf_counter()
            cases.append(Case(n, Path(tmp), full=not args.defaults, stale=args.stale))
            print(f"genesis of {n:,} validators: {time.perf_counter() - started:.1f} s", flush=True)
        for case in cases:  # warm-up epoch: the first boundary writes every miss record and balance anew
            case.run_epoch()
            case.boundary.clear()
            case.ordinary.clear()
        for epoch in range(args.epochs):
            for case in cases:
                case.run_epoch(profile=args.profile == case.n and epoch == args.epochs - 1)
    rows = []
    for case in cases:
        wall = statistics.median(t for t, _ in case.boundary)
        cpu = statistics.median(c for _, c in case.boundary)
        block = statistics.median(t for t, _ in case.ordinary)
        block_cpu = statistics.median(c for _, c in case.ordinary)
        rows.append((case.n, wall, cpu, block, block_cpu))
    base = rows[0]
    print(
        "| validators | boundary block (wall / CPU) | per validator (wall / CPU) | per-validator ratio to "
        f"{base[0]:,} (wall / CPU) | ordinary block (wall / CPU) | ordinary ratio (wall / CPU) |"
    )
    print("|---|---|---|---|---|---|")
    for n, wall, cpu, block, block_cpu in rows:
        per, per_cpu = wall / n, cpu / n
        print(
            f"| {n:,} | {wall * 1e3:,.1f} / {cpu * 1e3:,.1f} ms | {per * 1e6:.1f} / {per_cpu * 1e6:.1f} µs | "
            f"{per / (base[1] / base[0]):.2f} / {per_cpu / (base[2] / base[0]):.2f} | "
            f"{block * 1e3:.2f} / {block_cpu * 1e3:.2f} ms | {block / base[3]:.2f} / {block_cpu / base[4]:.2f} |"
        )


if __name__ == "__main__":
    main()

"""finalize_block + app hash + commit for a 10-transaction block, against the size of the state.

    .venv/bin/python bench/bench_block.py

Builds states of 1k, 10k and 100k accounts on SQLite stores, then runs blocks of 10 signed
MsgSend transactions on them in turn (round robin, so the machine's drift hits every size
alike). Each block's transactions are admitted with check_txs first (not timed: signatures are
verified there); finalize_block (which computes the app hash) plus commit is timed. Prints the
median per block and the ratio of the 100k case to the 1k case. Target: at most 2.0.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from chain.app import Application
from chain.crypto import PrivateKey
from chain.tx import MsgSend, sign_tx
from node.store import SqliteStore

SIZES = (1_000, 10_000, 100_000)
TXS_PER_BLOCK = 10
BLOCKS = 600
SENDERS = 200


class Case:
    """One state size: its application, its accounts and its senders' sequences."""

    def __init__(self, accounts: int, workdir: Path) -> None:
        self.senders = [PrivateKey.from_name(f"sender-{i}", "bench") for i in range(SENDERS)]
        others = [PrivateKey.from_name(f"acct-{i}", "bench").address for i in range(accounts - SENDERS)]
        self.addresses = [k.address for k in self.senders] + others
        self.app = Application(SqliteStore(workdir / f"state-{accounts}.db"))
        self.app.init_chain(
            {
                "chain_id": "bench",
                "params": {"epoch_length": 1_000_000},
                "accounts": [{"address": a, "balance": 10**12} for a in self.addresses],
                "validators": [{"address": self.senders[0].address, "stake": 1000}],
            }
        )
        self.rng = random.Random(accounts)
        self.sequences = [0] * SENDERS
        self.times: list[float] = []

    def run_block(self) -> None:
        """Admit 10 random transfers, then time finalize_block + commit."""
        txs = []
        for _ in range(TXS_PER_BLOCK):
            i = self.rng.randrange(SENDERS)
            send = MsgSend(self.rng.choice(self.addresses), 1 + self.rng.randrange(1000))
            txs.append(sign_tx(self.senders[i], "bench", self.sequences[i], [send]))
            self.sequences[i] += 1
        assert all(r.ok for r in self.app.check_txs(txs))
        started = time.perf_counter()
        result = self.app.finalize_block(self.app.height + 1, txs)
        self.app.commit()
        self.times.append(time.perf_counter() - started)
        assert all(r.ok for r in result.tx_results)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = {n: Case(n, Path(tmp)) for n in SIZES}
        for _ in range(BLOCKS):
            for case in cases.values():
                case.run_block()
    medians = {n: statistics.median(case.times) for n, case in cases.items()}
    for n, seconds in medians.items():
        print(f"{n:>7,} accounts: {seconds * 1e6:,.0f} µs per 10-tx block (finalize_block + app hash + commit)")
    ratio = medians[100_000] / medians[1_000]
    print(f"100k / 1k = {ratio:.2f} ({'PASS' if ratio <= 2.0 else 'FAIL'}: target ≤ 2.0)")


if __name__ == "__main__":
    main()

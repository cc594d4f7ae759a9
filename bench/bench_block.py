"""finalize_block + app hash + commit for a 10-transaction block, against the size of the state.

    .venv/bin/python bench/bench_block.py

For states of 1k, 10k and 100k accounts on a SQLite store, admits 10 signed MsgSend
transactions per block with check_txs (not timed: signatures are verified there), then times
finalize_block (which computes the app hash) plus commit. Prints the median per block and the
ratio of the 100k case to the 1k case. Target: at most 2.0.
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

TXS_PER_BLOCK = 10
BLOCKS = 300
SENDERS = 200


def measure(accounts: int, workdir: Path) -> float:
    """Median seconds of finalize_block + commit over BLOCKS blocks with `accounts` accounts."""
    senders = [PrivateKey.from_name(f"sender-{i}", "bench") for i in range(SENDERS)]
    others = [PrivateKey.from_name(f"acct-{i}", "bench").address for i in range(accounts - SENDERS)]
    addresses = [k.address for k in senders] + others
    genesis = {
        "chain_id": "bench",
        "params": {"epoch_length": 1_000_000},
        "accounts": [{"address": a, "balance": 10**12} for a in addresses],
        "validators": [{"address": senders[0].address, "stake": 1000}],
    }
    app = Application(SqliteStore(workdir / f"state-{accounts}.db"))
    app.init_chain(genesis)
    rng = random.Random(accounts)
    sequences = [0] * SENDERS
    times = []
    for height in range(1, BLOCKS + 1):
        txs = []
        for _ in range(TXS_PER_BLOCK):
            i = rng.randrange(SENDERS)
            send = MsgSend(rng.choice(addresses), 1 + rng.randrange(1000))
            txs.append(sign_tx(senders[i], "bench", sequences[i], [send]))
            sequences[i] += 1
        assert all(r.ok for r in app.check_txs(txs))
        started = time.perf_counter()
        result = app.finalize_block(height, txs)
        app.commit()
        times.append(time.perf_counter() - started)
        assert all(r.ok for r in result.tx_results)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: measure(n, Path(tmp)) for n in (1_000, 10_000, 100_000)}
    for n, seconds in results.items():
        print(f"{n:>7,} accounts: {seconds * 1e6:,.0f} µs per 10-tx block (finalize_block + app hash + commit)")
    ratio = results[100_000] / results[1_000]
    print(f"100k / 1k = {ratio:.2f} ({'PASS' if ratio <= 2.0 else 'FAIL'}: target ≤ 2.0)")


if __name__ == "__main__":
    main()

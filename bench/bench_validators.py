"""Per-height cost and bytes written with 10,000 bonded accounts and max_validators = 100, against a
chain of 100 validators.

    .venv/bin/python bench/bench_validators.py

Two chains on SQLite, each applied through the node's `Ledger.apply` (finalize_block, then one
store transaction with the state changes, the block, its commit, the tx index and, when due, the
validator set of the next height): "100 validators" (100 bonded accounts) and "10,000 bonded"
(the same 100 with the most stake, plus 9,900 accounts bonded at 1 ngonka each), both with
max_validators = 100 and epochs of 10 blocks. Every block carries 10 MsgSends; in every epoch two
of the top validators bond 1 more ngonka, so the validator set changes at every boundary. The
chains take their heights in turn (the machine's drift hits both alike); transactions are admitted
with check_txs and the commit's vote signed before the clock starts. Prints, for each chain, the
median and mean time per height, the median of the boundary heights, the mean CPU time per height
(the machine is shared: CPU time is what other jobs disturb least), and the bytes written per
height (state changes: space + key + value; validator-set rows), then the ratios. Target: both
ratios within 20% (≤ 1.2).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from chain.app import Application
from chain.crypto import PrivateKey
from chain.store import Change, CommitInfo
from chain.tx import MsgBond, MsgSend, sign_tx
from node.blocks import Block, Commit, Header, compute_commit_hash, compute_txs_hash, sign_vote
from node.consensus import ValidatorSet
from node.ledger import Ledger
from node.store import BlockWrite, SqliteStore

CHAIN_ID = "bench-validators"
TOP = 100
BONDED = 10_000
EPOCH_LENGTH = 10
HEIGHTS = 300
TXS_PER_BLOCK = 10
SENDERS = 100
TOP_KEYS = [PrivateKey.from_name(f"top-{i}", "bench-validators") for i in range(TOP)]
SENDER_KEYS = [PrivateKey.from_name(f"sender-{i}", "bench-validators") for i in range(SENDERS)]
SMALL = [PrivateKey.from_name(f"small-{i}", "bench-validators").address for i in range(BONDED - TOP)]


class CountingStore(SqliteStore):
    """A SqliteStore that counts the bytes of the state changes it writes."""

    state_bytes = 0

    def write_block(self, info: CommitInfo, changes: list[Change]) -> None:
        self.state_bytes += sum(len(s) + len(k) + len(v or "") for s, k, v in changes)
        super().write_block(info, changes)


class Case:
    """One chain: its ledger, its senders' sequences and the timings of its heights."""

    def __init__(self, name: str, bonded: int, workdir: Path) -> None:
        self.name = name
        self.store = CountingStore(workdir / f"{bonded}.db")
        app = Application(self.store)
        validators = [{"address": k.address, "stake": 1_000_000 + i} for i, k in enumerate(TOP_KEYS)]
        validators += [{"address": a, "stake": 1} for a in SMALL[: bonded - TOP]]
        genesis = {
            "chain_id": CHAIN_ID,
            "params": {"epoch_length": EPOCH_LENGTH, "max_validators": TOP},
            "accounts": [{"address": k.address, "balance": 10**12} for k in SENDER_KEYS + TOP_KEYS],
            "validators": validators,
        }
        self.store.apply_block(
            BlockWrite(0, lambda: ValidatorSet.from_powers(list(app.get_validator_powers())).to_json()),
            lambda: app.init_chain(genesis),
        )
        self.ledger = Ledger(self.store, app, CHAIN_ID)
        self.sequences: dict[str, int] = {}
        self.rng = random.Random(7)
        self.last: tuple[Block, Commit] | None = None
        self.times: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self.state_bytes_before = self.store.state_bytes

    def tx(self, key: PrivateKey, msg: MsgSend | MsgBond) -> bytes:
        sequence = self.sequences.get(key.address, 0)
        self.sequences[key.address] = sequence + 1
        return sign_tx(key, CHAIN_ID, sequence, [msg])

    def run_height(self) -> None:
        """Build, admit and sign the next block (untimed), then time Ledger.apply."""
        height = self.ledger.height + 1
        txs = [
            self.tx(self.rng.choice(SENDER_KEYS), MsgSend(self.rng.choice(SENDER_KEYS).address, 1))
            for _ in range(TXS_PER_BLOCK)
        ]
        if height % EPOCH_LENGTH == 1:
            txs += [self.tx(TOP_KEYS[(height + i) % TOP], MsgBond(1)) for i in range(2)]
        assert all(r.ok for r in self.ledger.app.check_txs(txs))
        vset = self.ledger.get_validator_set(height)
        header = Header(
            chain_id=CHAIN_ID,
            height=height,
            time_ms=1_000 * height,
            last_block_id=self.last[0].id if self.last else "",
            last_commit_hash=compute_commit_hash(self.last[1] if self.last else None),
            txs_hash=compute_txs_hash(tuple(txs)),
            app_hash=self.ledger.app.app_hash,
            validators_hash=vset.hash,
            proposer=vset.proposer(0),
        )
        block = Block(header, tuple(txs), self.last[1] if self.last else None)
        vote = sign_vote(TOP_KEYS[0], CHAIN_ID, "precommit", height, 0, block.id, 1_000 * height)
        commit = Commit(height, 0, block.id, (vote,))
        started, cpu = time.perf_counter(), time.process_time()
        result = self.ledger.apply(block, commit)
        self.times[height] = time.perf_counter() - started
        self.cpu[height] = time.process_time() - cpu
        assert all(r.ok for r in result.tx_results)
        self.last = (block, commit)

    def figures(self) -> dict[str, float]:
        times = list(self.times.values())
        boundaries = [t for h, t in self.times.items() if h % EPOCH_LENGTH == 0]
        conn = self.store._conn
        rows, set_bytes = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM validator_sets WHERE height > 1"
        ).fetchone()
        return {
            "cpu": statistics.fmean(self.cpu.values()),
            "median": statistics.median(times),
            "mean": statistics.fmean(times),
            "boundary": statistics.median(boundaries),
            "state_bytes": (self.store.state_bytes - self.state_bytes_before) / len(times),
            "set_bytes": set_bytes / len(times),
            "set_rows": rows,
            "validators": len(self.ledger.get_validator_set(self.ledger.height + 1)),
        }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = [Case("100 validators", TOP, Path(tmp)), Case("10,000 bonded", BONDED, Path(tmp))]
        for _ in range(HEIGHTS):
            for case in cases:
                case.run_height()
        figures = [case.figures() for case in cases]
    for case, f in zip(cases, figures):
        print(
            f"{case.name:>15}: {f['median'] * 1e3:.2f} ms median, {f['mean'] * 1e3:.2f} ms mean per height, "
            f"{f['boundary'] * 1e3:.2f} ms median at a boundary, {f['cpu'] * 1e3:.2f} ms CPU mean; written per height: "
            f"{f['state_bytes']:,.0f} B of state + {f['set_bytes']:,.0f} B of validator sets "
            f"({f['set_rows']} set rows in {HEIGHTS} heights, {f['validators']} validators with power)"
        )
    small, big = figures
    for what, key in (
        ("median time", "median"),
        ("mean time", "mean"),
        ("boundary time", "boundary"),
        ("mean CPU time", "cpu"),
    ):
        ratio = big[key] / small[key]
        print(f"{what} per height, 10k / 100 = {ratio:.2f} ({'PASS' if ratio <= 1.2 else 'FAIL'}: target ≤ 1.2)")
    written = (big["state_bytes"] + big["set_bytes"]) / (small["state_bytes"] + small["set_bytes"])
    print(f"bytes written per height, 10k / 100 = {written:.2f} ({'PASS' if written <= 1.2 else 'FAIL'}: target ≤ 1.2)")


if __name__ == "__main__":
    main()

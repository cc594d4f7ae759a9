"""The end of a proposal's voting period with 1,000 and 10,000 validators voting.

    .venv/bin/python bench/bench_tally.py

For each size, a SQLite state holds N validators of equal power, one proposal in its voting
period and a vote from every validator (written directly through the rules, unsigned: signatures
are not what is measured). Timed: `process_voting_end` on a fresh block state — read the votes and
the epoch's powers, tally in exact rationals, delete the votes, refund the deposit and record the
result — plus `compute_commit` (the app hash of those changes). The state is thrown away after
each repetition, and the two sizes take turns so the machine's drift hits both alike. The chain's
decode and entry-hash caches are cleared before each repetition: a real tally meets its votes
cold, and the 1k case would otherwise fit in those caches while the 10k case does not. Prints the
median per size and the ratio 10k / 1k. Target: at most 12 (linear would be 10).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from chain import rules
from chain.app import Application
from chain.crypto import PrivateKey
from chain.encoding import _decode_cached
from chain.store import State, _compute_entry_lanes_cached
from chain.tx import MsgSubmitProposal, MsgVote, RegisterModel
from node.store import SqliteStore

SIZES = (1_000, 10_000)
REPEATS = 15
OPTIONS = ("yes", "no", "abstain", "no_with_veto")


class Case:
    """One validator-set size with a proposal whose every validator has voted."""

    def __init__(self, validators: int, workdir: Path) -> None:
        addresses = [PrivateKey.from_name(f"val-{i}", "bench-tally").address for i in range(validators)]
        self.app = Application(SqliteStore(workdir / f"tally-{validators}.db"))
        self.app.init_chain(
            {
                "chain_id": "bench",
                "params": {
                    "epoch_length": 1_000_000,
                    "min_deposit": 100,
                    "voting_period": 10,
                    "max_validators": 10_000,
                },
                "accounts": [{"address": addresses[0], "balance": 1_000}],
                "validators": [{"address": a, "stake": 100} for a in addresses],
            }
        )
        state = State(self.app.store, 1, self.app._lthash)
        rules.process_block_start(state, 1)
        rules.process_msg_submit_proposal(state, addresses[0], MsgSubmitProposal(RegisterModel("m", 10), 100))
        for i, address in enumerate(addresses):
            # 60% yes, then the other options: the proposal passes
            option = "yes" if i % 10 < 6 else OPTIONS[1 + i % 3]
            rules.process_msg_vote(state, address, MsgVote(1, option))
        info, changes = state.compute_commit()
        self.app.store.write_block(info, changes)
        self.app._after_commit(info)
        self.times: list[float] = []

    def run(self) -> str:
        """Time one voting end on a throw-away state; return the resulting status."""
        _compute_entry_lanes_cached.cache_clear()
        _decode_cached.cache_clear()
        started = time.perf_counter()
        state = State(self.app.store, 2, self.app._lthash)
        proposal = rules.process_voting_end(state, rules.get_proposal(state, 1))
        state.compute_commit()
        self.times.append(time.perf_counter() - started)
        return proposal["status"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = {n: Case(n, Path(tmp)) for n in SIZES}
        for case in cases.values():
            assert case.run() == "passed"  # warm-up
            case.times.clear()
        for _ in range(REPEATS):
            for case in cases.values():
                case.run()
    medians = {n: statistics.median(case.times) for n, case in cases.items()}
    for n, seconds in medians.items():
        print(f"{n:>6,} validators voting: {seconds * 1e3:,.1f} ms to tally and settle one proposal (median)")
    ratio = medians[10_000] / medians[1_000]
    print(f"10k / 1k = {ratio:.2f} ({'PASS' if ratio <= 12 else 'FAIL'}: target ≤ 12)")


if __name__ == "__main__":
    main()

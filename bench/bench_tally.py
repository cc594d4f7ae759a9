"""The end of a proposal's voting period with 1,000 and 10,000 validators voting.

    .venv/bin/python bench/bench_tally.py          # 1k and 10k validators, one proposal
    .venv/bin/python bench/bench_tally.py --grid   # closing P proposals at once × V voters (issue 22)

For each size, a SQLite state holds N validators of equal power, one proposal in its voting
period and a vote from every validator (written directly through the rules, unsigned: signatures
are not what is measured). Timed: `process_voting_end` on a fresh block state — read the votes and
the epoch's powers, tally in exact rationals, delete the votes, refund the deposit and record the
result — plus `compute_commit` (the app hash of those changes). The state is thrown away after
each repetition, and the two sizes take turns so the machine's drift hits both alike. The chain's
decode and entry-hash caches are cleared before each repetition: a real tally meets its votes
cold, and the 1k case would otherwise fit in those caches while the 10k case does not. Prints the
median per size and the ratio 10k / 1k. Target: at most 12 (linear would be 10).

`--grid`: governance closing against open proposals × voters. For P in 1, 4, 16 proposals and V in
100, 1,000, 10,000 validators, every proposal in its voting period with a vote from every
validator, all P ending at the same block: the time to end them all (each tally, vote deletion,
refund and record, then the app hash), caches cleared, median of GRID_REPEATS. Prints a table of
milliseconds and of microseconds per (proposal, voter) pair: the work is P × V votes, so the second
table is flat when closing costs the same per vote whatever the mix, and each proposal also
re-reads the V powers of the validator set (`get_validator_set`), also P × V.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from chain import rules
from chain.app import Application
from chain.crypto import PrivateKey
from chain.encoding import DECODE_CACHE
from chain.store import State
from chain.tx import MsgSubmitProposal, MsgVote, RegisterModel
from node.store import SqliteStore

SIZES = (1_000, 10_000)
REPEATS = 15
GRID_PROPOSALS = (1, 4, 16)
GRID_VOTERS = (100, 1_000, 10_000)
GRID_REPEATS = 3
OPTIONS = ("yes", "no", "abstain", "no_with_veto")


class Case:
    """One validator-set size with a proposal whose every validator has voted."""

    def __init__(self, validators: int, workdir: Path, proposals: int = 1) -> None:
        addresses = [PrivateKey.from_name(f"val-{i}", "bench-tally").address for i in range(validators)]
        self.proposals = proposals
        self.store = SqliteStore(workdir / f"tally-{validators}-{proposals}.db")
        self.app = Application(self.store)
        self.app.init_chain(
            {
                "chain_id": "bench",
                "params": {
                    "epoch_length": 1_000_000,
                    "min_deposit": 100,
                    "voting_period": 10,
                    "max_validators": 10_000,
                },
                "accounts": [{"address": a, "balance": 1_000} for a in addresses[:proposals]],
                "validators": [{"address": a, "stake": 100} for a in addresses],
            }
        )
        state = State(self.app.store, 1, self.app._lthash)
        rules.process_block_start(state, 1)
        for p in range(proposals):
            content = RegisterModel(f"m{p}", 10)
            rules.process_msg_submit_proposal(state, addresses[p], MsgSubmitProposal(content, 100))
        for p in range(1, proposals + 1):
            for i, address in enumerate(addresses):
                # 60% yes, then the other options: the proposal passes
                option = "yes" if i % 10 < 6 else OPTIONS[1 + i % 3]
                rules.process_msg_vote(state, address, MsgVote(p, option))
        info, changes = state.compute_commit()
        self.app.store.write_block(info, changes)
        self.app._after_commit(info)
        self.times: list[float] = []
        self.cpu: list[float] = []

    def run(self) -> str:
        """Time the voting end of every proposal on a throw-away state; return the last status."""
        DECODE_CACHE.clear()
        started, cpu = time.perf_counter(), time.process_time()
        state = State(self.app.store, 2, self.app._lthash)
        for proposal_id in range(1, self.proposals + 1):
            proposal = rules.process_voting_end(state, rules.get_proposal(state, proposal_id))
        state.compute_commit()
        self.times.append(time.perf_counter() - started)
        self.cpu.append(time.process_time() - cpu)
        return str(proposal["status"])


def grid() -> None:
    """Print the closing time (wall and CPU) of P proposals × V voters, and per (proposal, voter) pair."""
    medians: dict[tuple[int, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for voters in GRID_VOTERS:
            for proposals in GRID_PROPOSALS:
                case = Case(voters, Path(tmp), proposals)
                assert case.run() == "passed"  # warm-up
                case.times.clear()
                case.cpu.clear()
                for _ in range(GRID_REPEATS):
                    case.run()
                medians[voters, proposals] = (statistics.median(case.times), statistics.median(case.cpu))
                case.store.close()
                wall, cpu = medians[voters, proposals]
                print(f"{proposals} × {voters:,}: {wall * 1e3:,.1f} ms wall, {cpu * 1e3:,.1f} ms CPU", flush=True)
    header = " | ".join(f"{p} proposal{'s' if p > 1 else ''}" for p in GRID_PROPOSALS)
    for title, scale, per_pair in (
        ("ms to close them all (wall / CPU)", 1e3, False),
        ("µs per pair (wall / CPU)", 1e6, True),
    ):
        print(f"\n{title}\n| voters | {header} |\n|---|{'---|' * len(GRID_PROPOSALS)}")
        for voters in GRID_VOTERS:
            cells = []
            for proposals in GRID_PROPOSALS:
                divisor = proposals * voters if per_pair else 1
                wall, cpu = (x / divisor * scale for x in medians[voters, proposals])
                cells.append(f"{wall:,.1f} / {cpu:,.1f}")
            print(f"| {voters:,} | {' | '.join(cells)} |")
    cpu_per_pair = [medians[k][1] / (k[0] * k[1]) for k in medians]
    print(
        f"\nCPU per pair, max / min over the grid: {max(cpu_per_pair) / min(cpu_per_pair):.2f} (1.00: linear in P × V)"
    )


def main() -> None:
    if "--grid" in sys.argv[1:]:
        grid()
        return
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

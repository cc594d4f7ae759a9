"""The epoch transition with the reference index over 200 active models against 2 (issue 19 item 4).

    .venv/bin/python bench/bench_index.py [--models 2,200] [--validators 100] [--epochs 15]

For each model count M, and a reference chain without any model or index, a SQLite chain through
`Application` with V validators of equal stake and epochs of 10 empty blocks. Set up untimed, through
the rules (as a passed proposal would): M models registered with units 1…M and an `IndexConfig` of
three tiers (weights 3/10, 3/10, 2/5; two, 2/5 and 3/5, under 3 models) assigning model i to tier i mod
the tiers. In every epoch each validator
votes a price (written through the rules in the block before the boundary, so the unit price moves
every epoch). Timed, in process CPU time (and wall), the boundary block: `finalize_block` + `commit`
of the epoch's last block, whose end runs the whole `process_epoch` with the index:

- steady: an epoch where no member and no config changed, median over the epochs;
- re-price: an epoch where governance re-priced one model (its tier is recomputed), median;
- reconstitution: the first boundary, which adds all M models to the index (one epoch).

The cases take their epochs in turn, so the machine's drift hits all alike. Prints one row per case
and the ratios of the largest M to the smallest (target: steady ≤ 2). --profile prints the top
functions of the last steady boundary of the largest M.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from chain import index, rules
from chain.app import Application
from chain.crypto import PrivateKey
from chain.store import State
from chain.tx import IndexConfig, MsgSubmitPriceProposal
from node.store import SqliteStore

CHAIN_ID = "bench-index"
EPOCH_LENGTH = 10
TIERS = (("frontier", "0.3"), ("lightweight", "0.3"), ("standard", "0.4"))
TWO_TIERS = (("frontier", "0.4"), ("standard", "0.6"))  # for fewer than 3 models: no weighted tier is empty


class Case:
    """One chain with `models` models in its index (None: no model and no index at all)."""

    def __init__(self, models: int | None, validators: int, workdir: Path) -> None:
        self.models = models
        self.addresses = [PrivateKey.from_name(f"val-{i}", CHAIN_ID).address for i in range(validators)]
        self.app = Application(SqliteStore(workdir / f"index-{models}.db"))
        self.app.init_chain(
            {
                "chain_id": CHAIN_ID,
                "params": {"epoch_length": EPOCH_LENGTH, "max_validators": validators},
                "accounts": [],
                "validators": [{"address": a, "stake": 1_000_000} for a in self.addresses],
            }
        )
        self.epoch = 0
        self.steady: list[tuple[float, float]] = []
        self.repriced: list[tuple[float, float]] = []
        self.reconstitution: tuple[float, float] = (0.0, 0.0)
        self.proposal = 0

    @property
    def name(self) -> str:
        return "no index" if self.models is None else f"{self.models} models"

    def write_block(self, write: object) -> None:
        """One untimed block whose changes `write(state)` makes through the rules before its end."""
        height = self.app.height + 1
        state = State(self.app.store, height, self.app._lthash)
        rules.process_block_start(state, height)
        write(state)  # type: ignore[operator]
        rules.process_block_end(state)
        info, changes = state.compute_commit()
        self.app.store.write_block(info, changes)
        self.app._after_commit(info)
        self.app._check_state = self.app._new_state()

    def setup(self, state: State) -> None:
        """Register the models and pass the index's config, as passed proposals would."""
        if not self.models:
            return
        for i in range(self.models):
            self.proposal += 1
            content = {"@type": "RegisterModel", "id": f"model-{i:04d}", "units_of_compute_per_token": i + 1}
            assert rules.process_model_change(state, self.proposal, content) is None
        tiers = TIERS if self.models >= len(TIERS) else TWO_TIERS
        assign = tuple((f"model-{i:04d}", tiers[i % len(tiers)][0]) for i in range(self.models))
        self.proposal += 1
        config = IndexConfig(tiers=tiers, assign=assign).to_json()
        assert index.process_index_config(state, self.proposal, config) is None

    def votes(self, state: State, reprice: bool) -> None:
        """Every validator votes a price; with `reprice`, governance also changes one model's units."""
        for i, address in enumerate(self.addresses):
            price = 1_000 + (i * 7919 + self.epoch * 104729) % 1_000
            rules.process_msg_submit_price_proposal(state, address, MsgSubmitPriceProposal(price, "ngonka"))
        if reprice and self.models:
            self.proposal += 1
            content = {"@type": "RegisterModel", "id": "model-0000", "units_of_compute_per_token": 1 + self.epoch}
            assert rules.process_model_change(state, self.proposal, content) is None

    def timed_block(self, profile: bool = False) -> tuple[float, float]:
        """finalize_block + commit of the next (empty) height: (wall, CPU) seconds."""
        profiler = cProfile.Profile() if profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        self.app.finalize_block(self.app.height + 1, [])
        self.app.commit()
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return time.perf_counter() - started, time.process_time() - cpu

    def run_epoch(self, kind: str, profile: bool = False) -> tuple[float, float]:
        """One epoch: empty blocks, the votes (and the setup or a re-price), then the timed boundary."""
        self.epoch += 1
        while (self.app.height + 2) % EPOCH_LENGTH:
            self.app.finalize_block(self.app.height + 1, [])
            self.app.commit()
        self.write_block(
            lambda state: (self.setup(state) if kind == "setup" else None, self.votes(state, kind == "reprice"))
        )
        timing = self.timed_block(profile)
        assert self.app.height % EPOCH_LENGTH == 0
        return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="2,200", help="model counts, comma-separated (smallest first)")
    parser.add_argument("--validators", type=int, default=100, help="validators (each votes every epoch)")
    parser.add_argument("--epochs", type=int, default=15, help="timed steady epochs per case (re-price: a third)")
    parser.add_argument("--profile", action="store_true", help="profile the last steady boundary of the largest")
    args = parser.parse_args()
    counts: list[int | None] = [None, *(int(m) for m in args.models.split(","))]
    with tempfile.TemporaryDirectory() as tmp:
        cases = [Case(m, args.validators, Path(tmp)) for m in counts]
        for case in cases:
            case.reconstitution = case.run_epoch("setup")
            if case.models:
                record = index.get_latest_index_record(case.app._new_state())
                assert record is not None and record["value"] == "100", record
                assert sum(t["members"] for t in record["tiers"].values()) == case.models
        for epoch in range(args.epochs):
            for case in cases:
                last = epoch == args.epochs - 1 and case is cases[-1]
                case.steady.append(case.run_epoch("steady", profile=args.profile and last))
                if epoch % 3 == 0:
                    case.repriced.append(case.run_epoch("reprice"))
    print(f"{args.validators} validators voting every epoch; boundary block (finalize + commit), CPU / wall:")
    print("| case | steady epoch | one model re-priced | reconstitution (all models added) |")
    print("|---|---|---|---|")
    rows = {}
    for case in cases:
        steady = statistics.median(c for _, c in case.steady), statistics.median(w for w, _ in case.steady)
        repriced = statistics.median(c for _, c in case.repriced), statistics.median(w for w, _ in case.repriced)
        rows[case.models] = (steady, repriced, case.reconstitution[::-1])
        print(
            f"| {case.name} | {steady[0] * 1e3:.2f} / {steady[1] * 1e3:.2f} ms | "
            f"{repriced[0] * 1e3:.2f} / {repriced[1] * 1e3:.2f} ms | "
            f"{case.reconstitution[1] * 1e3:.2f} / {case.reconstitution[0] * 1e3:.2f} ms |"
        )
    small, large = cases[1].models, cases[-1].models
    for label, column in (("steady", 0), ("one model re-priced", 1), ("reconstitution", 2)):
        ratio = rows[large][column][0] / rows[small][column][0]
        print(f"{label}: {large} models / {small} models = {ratio:.2f}x CPU")


if __name__ == "__main__":
    main()

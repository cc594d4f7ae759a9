"""The in-process engine: drive the real state machine with signed transactions in blocks.

Each validator's key is derived from its name. In epoch `e` the validators that act send one
transaction each, spread over the epoch's blocks: a joiner bonds (and votes) in its join epoch, a
leaver unbonds in its leave epoch, and a voter votes every `vote_every` epochs. Votes are drawn
from a `random.Random` seeded by (seed, name, epoch), so a run depends on the scenario alone.

Transactions are signed in a worker process, a few epochs ahead, while this process admits them
with `check_tx` (verifying each signature once) and runs `finalize_block` and `commit` on a SQLite
store in the output directory.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chain.app import Application
from chain.crypto import PrivateKey
from chain.tx import Msg, MsgBond, MsgSubmitPriceProposal, MsgUnbond, sign_tx
from node.store import SqliteStore

from .errors import DevnetError
from .report import plot_prices, write_epochs_csv, write_summary
from .scenario import Scenario, ValidatorSpec

SIGN_AHEAD = 4  # epochs signed ahead of the chain
KEY_SALT = "uoc-sim"


@lru_cache(maxsize=None)
def get_key(name: str) -> PrivateKey:
    """The simulated provider's key, derived from its name."""
    return PrivateKey.from_name(name, KEY_SALT)


def compute_vote(spec: ValidatorSpec, seed: int, epoch: int) -> tuple[int, str] | None:
    """The (price, denom) a validator votes in `epoch`, or None if it does not vote then."""
    if spec.strategy == "silent" or not spec.is_active(epoch) or (epoch - spec.join_epoch) % spec.vote_every:
        return None
    if spec.strategy == "fixed":
        return spec.price, spec.denom
    if spec.strategy == "extreme":
        return (spec.high if epoch % 2 == 0 else spec.low), "ngonka"
    rng = random.Random(f"{seed}/{spec.name}/{epoch}")
    noise = rng.randint(-spec.noise_bps, spec.noise_bps)
    return max(1, spec.true_cost * (10_000 + noise) // 10_000), "ngonka"


def compute_messages(spec: ValidatorSpec, seed: int, epoch: int) -> list[Msg]:
    """The messages a validator sends in `epoch` (one transaction, or none)."""
    msgs: list[Msg] = []
    if epoch == spec.join_epoch and not spec.is_genesis():
        msgs.append(MsgBond(spec.stake))
    if epoch == spec.leave_epoch:
        msgs.append(MsgUnbond(spec.stake))
    vote = compute_vote(spec, seed, epoch)
    if vote is not None:
        msgs.append(MsgSubmitPriceProposal.of(*vote))
    return msgs


@dataclass(frozen=True)
class EpochJob:
    """What a signing worker needs for one epoch: who sends what, from which sequence."""

    chain_id: str
    epoch: int
    epoch_length: int
    sends: tuple[tuple[int, str, int, tuple[Msg, ...]], ...]  # (validator index, name, sequence, msgs)


def sign_epoch(job: EpochJob) -> list[list[bytes]]:
    """Sign an epoch's transactions and spread them over its blocks (validator i → block i mod L)."""
    blocks: list[list[bytes]] = [[] for _ in range(job.epoch_length)]
    for index, name, sequence, msgs in job.sends:
        blocks[index % job.epoch_length].append(sign_tx(get_key(name), job.chain_id, sequence, msgs))
    return blocks


def plan_jobs(scenario: Scenario) -> list[EpochJob]:
    """Every epoch's signing job, with sequences assuming every transaction commits."""
    sequences = [0] * len(scenario.validators)
    jobs = []
    for epoch in range(scenario.epochs):
        sends = []
        for i, spec in enumerate(scenario.validators):
            msgs = compute_messages(spec, scenario.seed, epoch)
            if msgs:
                sends.append((i, spec.name, sequences[i], tuple(msgs)))
                sequences[i] += 1
        jobs.append(EpochJob(scenario.chain_id, epoch, scenario.epoch_length, tuple(sends)))
    return jobs


def make_genesis(scenario: Scenario) -> dict[str, Any]:
    """The genesis of a scenario: every provider holds its stake liquid; genesis ones also bonded."""
    return {
        "chain_id": scenario.chain_id,
        "genesis_time": "1970-01-01T00:00:00Z",
        "params": {
            "epoch_length": scenario.epoch_length,
            "default_unit_of_compute_price": scenario.default_unit_of_compute_price,
        },
        "accounts": [{"address": get_key(v.name).address, "balance": v.stake} for v in scenario.validators],
        "validators": [
            {"address": get_key(v.name).address, "stake": v.stake} for v in scenario.validators if v.is_genesis()
        ],
    }


def open_store(out: Path) -> SqliteStore:
    """A fresh SQLite state store in the output directory (a previous run's is replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (out / f"state.db{suffix}").unlink(missing_ok=True)
    return SqliteStore(out / "state.db")


def run_inproc(scenario: Scenario, out: Path, *, progress: bool | None = None) -> dict[str, Any]:
    """Run a scenario on the in-process engine and write its outputs; return the summary."""
    from tqdm import tqdm

    store = open_store(out)
    app = Application(store)
    app.init_chain(make_genesis(scenario))
    committed = rejected = 0
    reasons: dict[str, int] = {}
    started = time.perf_counter()
    jobs = plan_jobs(scenario)
    bar = tqdm(total=scenario.epochs * scenario.epoch_length, unit="block", desc="simulating",
               disable=(not progress) if progress is not None else None, file=sys.stderr)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        window: deque[Future[list[list[bytes]]]] = deque()
        next_job = 0
        for epoch in range(scenario.epochs):
            while next_job < len(jobs) and len(window) < SIGN_AHEAD:
                window.append(pool.submit(sign_epoch, jobs[next_job]))
                next_job += 1
            for offset, txs in enumerate(window.popleft().result()):
                admitted = []
                for raw in txs:
                    result = app.check_tx(raw)
                    if result.ok:
                        admitted.append(raw)
                    else:
                        rejected += 1
                        reasons[result.code] = reasons.get(result.code, 0) + 1
                block = app.finalize_block(epoch * scenario.epoch_length + offset + 1, admitted)
                app.commit()
                for result in block.tx_results:
                    if result.ok:
                        committed += 1
                    else:
                        rejected += 1
                        reasons[result.code] = reasons.get(result.code, 0) + 1
                bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - started
    history = app.query("history")
    status = app.query("status")
    store.close()
    summary = {
        "engine": "inproc",
        "scenario": scenario.path,
        "seed": scenario.seed,
        "chain_id": scenario.chain_id,
        "epochs": scenario.epochs,
        "epoch_length": scenario.epoch_length,
        "validators": len(scenario.validators),
        "final_height": status["height"],
        "final_epoch": status["epoch"],
        "final_price": status["unit_of_compute_price"],
        "final_app_hash": status["app_hash"],
        "txs_committed": committed,
        "txs_rejected": rejected,
        "rejections": dict(sorted(reasons.items())),
    }
    write_epochs_csv(out / "epochs.csv", history)
    write_summary(out / "summary.json", summary)
    plot_prices(out / "price.png", history, f"{Path(scenario.path).name}: unit-of-compute price, seed {scenario.seed}")
    summary["elapsed_seconds"] = elapsed
    if rejected:
        raise DevnetError(f"{rejected} simulated transaction(s) were rejected ({summary['rejections']}); outputs in {out}")
    return summary

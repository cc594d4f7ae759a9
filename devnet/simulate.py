"""The in-process engine: drive the real state machine with signed transactions in blocks.

Each validator's key is derived from its name. In epoch `e` the validators that act send one
transaction each, spread over the epoch's blocks: a joiner bonds (and votes) in its join epoch, a
leaver unbonds in its leave epoch, and a voter votes every `vote_every` epochs. Honest noise is
drawn from sha256(seed, name, epoch), so a run depends on the scenario alone.

Three processes share the work, so both cores stay busy: a signer signs transactions a few epochs
ahead; a verifier checks their signatures as soon as they are signed (`PrefetchingVerifier`); and
this process admits them with `check_txs` and runs `finalize_block` and `commit` on a SQLite store
in the output directory. The application still decides what is verified: it asks the verifier
about the exact (pubkey, signature, sign bytes) it decoded, and anything not prefetched is
verified on the spot.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chain.app import Application
from chain.crypto import PrivateKey, verify_many, verify_signature
from chain.tx import Msg, MsgBond, MsgSubmitPriceProposal, MsgUnbond, compute_sign_bytes, compute_tx_bytes, make_body
from node.store import SqliteStore

from .errors import DevnetError
from .report import plot_prices, write_epochs_csv, write_summary
from .scenario import Scenario, ValidatorSpec

SIGN_AHEAD_TXS = 20_000  # transactions signed (and verified) ahead of the chain, at least two epochs
KEY_SALT = "uoc-sim"


@cache
def get_key(name: str) -> PrivateKey:
    """The simulated provider's key, derived from its name."""
    return PrivateKey.from_name(name, KEY_SALT)


def is_voting(spec: ValidatorSpec, epoch: int) -> bool:
    """True if the validator votes in `epoch`."""
    return spec.strategy != "silent" and spec.is_active(epoch) and (epoch - spec.join_epoch) % spec.vote_every == 0


def is_sending(spec: ValidatorSpec, epoch: int) -> bool:
    """True if the validator sends a transaction in `epoch`: it joins, leaves or votes."""
    return (epoch == spec.join_epoch and not spec.is_genesis()) or epoch == spec.leave_epoch or is_voting(spec, epoch)


def compute_vote(spec: ValidatorSpec, seed: int, epoch: int) -> tuple[int, str]:
    """The (price, denom) a voting validator votes in `epoch`."""
    if spec.strategy == "fixed":
        return spec.price, spec.denom
    if spec.strategy == "extreme":
        return (spec.high if epoch % 2 == 0 else spec.low), "ngonka"
    draw = int.from_bytes(hashlib.sha256(f"{seed}/{spec.name}/{epoch}".encode()).digest()[:8], "big")
    noise = draw % (2 * spec.noise_bps + 1) - spec.noise_bps
    return max(1, spec.true_cost * (10_000 + noise) // 10_000), "ngonka"


def compute_messages(spec: ValidatorSpec, seed: int, epoch: int) -> list[Msg]:
    """The messages of the validator's transaction in `epoch`."""
    msgs: list[Msg] = []
    if epoch == spec.join_epoch and not spec.is_genesis():
        msgs.append(MsgBond(spec.stake))
    if epoch == spec.leave_epoch:
        msgs.append(MsgUnbond(spec.stake))
    if is_voting(spec, epoch):
        msgs.append(MsgSubmitPriceProposal.of(*compute_vote(spec, seed, epoch)))
    return msgs


@dataclass(frozen=True)
class EpochJob:
    """What a signer needs for one epoch: who sends, from which sequence."""

    chain_id: str
    seed: int
    epoch: int
    epoch_length: int
    sends: tuple[tuple[int, ValidatorSpec, int], ...]  # (validator index, spec, sequence)


Claim = tuple[bytes, bytes, bytes]  # (pubkey, signature, sign bytes)
SignedEpoch = tuple[list[list[bytes]], list[Claim]]


def sign_epoch(job: EpochJob) -> SignedEpoch:
    """Sign an epoch's transactions, spread over its blocks (validator i → block i mod L), and
    return them with their (pubkey, signature, sign bytes) claims in block order, for the verifier."""
    blocks: list[list[bytes]] = [[] for _ in range(job.epoch_length)]
    claims: list[list[Claim]] = [[] for _ in range(job.epoch_length)]
    for index, spec, sequence in job.sends:
        key = get_key(spec.name)
        msgs = compute_messages(spec, job.seed, job.epoch)
        sign_bytes = compute_sign_bytes(make_body(job.chain_id, key.address, sequence, msgs))
        signature = key.sign(sign_bytes)
        blocks[index % job.epoch_length].append(compute_tx_bytes(sign_bytes, key.pubkey, signature))
        claims[index % job.epoch_length].append((key.pubkey, signature, sign_bytes))
    return blocks, [claim for block in claims for claim in block]


class PrefetchingVerifier:
    """A `verify_many` for the Application that verifies in another process ahead of time.

    `prefetch` sends signatures to the pool, in chunks, as soon as they exist. A later call with
    the same (pubkey, signature, message) takes the chunk's result; a chunk the pool has not
    started yet is cancelled and verified here instead (work stealing, nothing verified twice);
    anything never prefetched is verified here too.
    """

    CHUNK = 128

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.pool = pool
        self.pending: dict[Claim, tuple[Future[list[bool]], list[Claim], int]] = {}
        self.stolen: dict[Future[list[bool]], list[bool]] = {}
        self.unread: dict[Future[list[bool]], int] = {}

    def prefetch(self, items: list[Claim]) -> None:
        """Start verifying `items` in the pool."""
        for start in range(0, len(items), self.CHUNK):
            chunk = items[start : start + self.CHUNK]
            future = self.pool.submit(verify_many, chunk)
            self.unread[future] = len(chunk)
            for i, item in enumerate(chunk):
                self.pending[item] = (future, chunk, i)

    def prefetch_signed(self, signed: Future[SignedEpoch]) -> None:
        """Done-callback for a signing job: prefetch its claims (a failed job is reported by its result)."""
        if signed.cancelled() or signed.exception() is not None:
            return
        try:
            self.prefetch(signed.result()[1])
        except RuntimeError:  # the pool is shutting down: the claims are verified on the spot if needed
            pass

    def __call__(self, items: list[Claim]) -> list[bool]:
        out = []
        for item in items:
            entry = self.pending.pop(item, None)
            if entry is None:
                out.append(verify_signature(*item))
                continue
            future, chunk, i = entry
            if future not in self.stolen and future.cancel():
                self.stolen[future] = verify_many(chunk)
            out.append((self.stolen[future] if future in self.stolen else future.result())[i])
            self.unread[future] -= 1
            if not self.unread[future]:
                del self.unread[future]
                self.stolen.pop(future, None)
        return out


def plan_jobs(scenario: Scenario) -> list[EpochJob]:
    """Every epoch's signing job, with sequences assuming every transaction commits."""
    sequences = [0] * len(scenario.validators)
    jobs = []
    for epoch in range(scenario.epochs):
        sends = []
        for i, spec in enumerate(scenario.validators):
            if is_sending(spec, epoch):
                sends.append((i, spec, sequences[i]))
                sequences[i] += 1
        jobs.append(EpochJob(scenario.chain_id, scenario.seed, epoch, scenario.epoch_length, tuple(sends)))
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
    committed = rejected = 0
    reasons: dict[str, int] = {}
    started = time.perf_counter()
    jobs = plan_jobs(scenario)
    bar = tqdm(
        total=scenario.epochs * scenario.epoch_length,
        unit="block",
        desc="simulating",
        disable=(not progress) if progress is not None else None,
        file=sys.stderr,
    )
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as signer, ProcessPoolExecutor(1, mp_context=ctx) as checker:
        verifier = PrefetchingVerifier(checker)
        app = Application(store, verify=verifier)
        app.init_chain(make_genesis(scenario))
        window: deque[Future[SignedEpoch]] = deque()
        next_job = 0
        for epoch in range(scenario.epochs):
            while next_job < len(jobs) and (
                len(window) < 2 or sum(len(j.sends) for j in jobs[next_job - len(window) : next_job]) < SIGN_AHEAD_TXS
            ):
                future = signer.submit(sign_epoch, jobs[next_job])
                future.add_done_callback(verifier.prefetch_signed)
                window.append(future)
                next_job += 1
            blocks, _ = window.popleft().result()
            for offset, txs in enumerate(blocks):
                admitted = []
                for raw, result in zip(txs, app.check_txs(txs)):
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
        raise DevnetError(
            f"{rejected} simulated transaction(s) were rejected ({summary['rejections']}); outputs in {out}"
        )
    return summary

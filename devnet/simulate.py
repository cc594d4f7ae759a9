"""The in-process engine: drive the real state machine with signed transactions in blocks.

Each validator's key is derived from its name. In epoch `e` the validators that act send one
transaction each, spread over the epoch's blocks: a joiner bonds (and votes) in its join epoch, a
leaver unbonds in its leave epoch, and a voter votes every `vote_every` epochs. With vote_mode
"commit_reveal" a vote of epoch `e` is committed in `e` and revealed in `e+1` (the reveal and the
next commit in one transaction), its salt drawn from sha256(seed, name, e), so it counts one epoch
later than the same vote in "open" mode. Honest noise is
drawn from sha256(seed, name, epoch), so a run depends on the scenario alone. A governance event
is a proposal submitted in the first block of its epoch and the validators' votes in the second;
proposal ids follow the order of submission.

The blocks go straight to `finalize_block` and `commit`; there is no mempool in between (that is
the node's part). Without clients the state is a few entries per validator and per epoch: it lives
in a `MemoryStore` and the state committed last is written to `state.db` in the output directory
at the end, in one SQLite transaction (also when the run fails: what it committed). With clients
it grows with the jobs settled, so the blocks are committed to `state.db` one by one, as before.
Two helper processes, at the chain process's priority, keep both cores busy: each takes whole
epochs, signs their transactions and runs the application's stateless admission step
(`decode_and_verify`) on them (`EpochPipeline`); this process does the epochs the helpers have not
started when it would otherwise wait. Every
signature is verified exactly once. The strategies that read the chain (copycat, cartel,
free_rider: `devnet.strategies`) are signed here instead, right before their block, from the
state committed so far. After each epoch the ballot that set the price is read (one pass over
the validator set), and each validator's holdings at the start and the end, for the summary's
`strategies` and `price_vs_honest`.

Clients (`devnet.demand`): each funds its escrow in the first block of epoch 0; at the start of
each epoch the engine plans the epoch's jobs from the prices then in force, and every provider
settles its jobs in the epoch's last block, after everything else in it, in transactions of at
most 32 `MsgSettleUsage` signed here (each with its client's signature of the receipt, which
expires at the epoch's last height). Those transactions move the providers' later sequences, and
they are known only once the epoch's prices are, so with clients the helpers sign one epoch ahead
of the chain, not more (`EpochPipeline.add_sequences`); without clients nothing changes.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from chain.app import Application
from chain.crypto import PrivateKey
from chain.epochs import compute_epoch_start_height
from chain.errors import InvalidTx
from chain.params import DEFAULT_PARAMS
from chain.rules import (
    get_account,
    get_epoch_record,
    get_jail,
    get_miss_record,
    get_price_vote,
    get_unbondings,
    get_validator,
    get_validator_set,
)
from chain.store import MemoryStore, State
from chain.tx import (
    Msg,
    MsgBond,
    MsgCommitPrice,
    MsgRevealPrice,
    MsgSubmitPriceProposal,
    MsgSubmitProposal,
    MsgUnbond,
    MsgUnjail,
    MsgVote,
    RegisterModel,
    RemoveModel,
    Tx,
    compute_price_commit_hash,
    decode_and_verify,
    decode_tx,
    sign_tx,
)
from node.heap import frozen_for_fork, settled_heap
from node.store import SqliteStore

from .demand import (
    DemandPlan,
    Job,
    compute_fund_messages,
    compute_message_batches,
    compute_prices,
    compute_revenue_summary,
    compute_settle_message,
    compute_usage_rows,
    get_client_key,
)
from .errors import DevnetError
from .report import (
    VotesWriter,
    compute_governance_summary,
    compute_scenario_summary,
    write_run_files,
    write_usage_files,
)
from .scenario import ProposalSpec, Scenario, ValidatorSpec
from .strategies import (
    Account,
    ChainView,
    Observation,
    StrategyTally,
    compute_chain_vote,
    is_chain_reading,
    is_unjailing,
)
from .tables import compute_vote_rows

log = logging.getLogger(__name__)

SIGN_AHEAD_TXS = 8_000  # transactions signed (and admitted) ahead of the chain
KEY_SALT = "uoc-sim"


@cache
def get_key(name: str) -> PrivateKey:
    """The simulated provider's key, derived from its name."""
    return PrivateKey.from_name(name, KEY_SALT)


def is_joining(spec: ValidatorSpec, epoch: int) -> bool:
    """True if the validator bonds in `epoch`."""
    return epoch == spec.join_epoch and not spec.is_genesis()


def is_leaving(spec: ValidatorSpec, epoch: int) -> bool:
    """True if the validator unbonds in `epoch`."""
    return epoch == spec.leave_epoch


def is_voting(spec: ValidatorSpec, epoch: int) -> bool:
    """True if the validator votes in `epoch`."""
    return (
        spec.strategy not in ("silent", "free_rider")
        and spec.is_active(epoch)
        and (epoch - spec.join_epoch) % spec.vote_every == 0
    )


def is_revealing(spec: ValidatorSpec, epoch: int, vote_mode: str) -> bool:
    """True if, in commit_reveal mode, the validator reveals in `epoch` the vote it committed in the one before."""
    return vote_mode == "commit_reveal" and epoch > 0 and is_voting(spec, epoch - 1)


def is_sending(spec: ValidatorSpec, epoch: int, vote_mode: str = "open") -> bool:
    """True if the validator sends a transaction in `epoch`: it joins, leaves, votes or reveals."""
    return (
        is_joining(spec, epoch)
        or is_leaving(spec, epoch)
        or is_voting(spec, epoch)
        or is_revealing(spec, epoch, vote_mode)
    )


def compute_salt(spec: ValidatorSpec, seed: int, epoch: int) -> str:
    """The 32-byte salt (hex) of the validator's commit of `epoch`, drawn from the scenario."""
    return hashlib.sha256(f"{seed}/{spec.name}/{epoch}/salt".encode()).hexdigest()


def compute_vote(spec: ValidatorSpec, seed: int, epoch: int) -> tuple[int, str]:
    """The (price, denom) a voting validator votes in `epoch` (a strategy that reads the chain: see
    `compute_chain_messages`)."""
    if spec.strategy in ("fixed", "sybil"):
        return spec.price, spec.denom
    if spec.strategy == "extreme":
        return (spec.high if epoch % 2 == 0 else spec.low), "ngonka"
    draw = int.from_bytes(hashlib.sha256(f"{seed}/{spec.name}/{epoch}".encode()).digest()[:8], "big")
    noise = draw % (2 * spec.noise_bps + 1) - spec.noise_bps
    return max(1, spec.true_cost * (10_000 + noise) // 10_000), "ngonka"


def compute_messages(spec: ValidatorSpec, seed: int, epoch: int, vote_mode: str = "open") -> list[Msg]:
    """The messages of the validator's transaction in `epoch`: a bond or an unbond, and its vote (in
    commit_reveal mode: the reveal of last epoch's vote, then the commit of this epoch's)."""
    msgs: list[Msg] = []
    if is_joining(spec, epoch):
        msgs.append(MsgBond(spec.stake))
    if is_leaving(spec, epoch):
        msgs.append(MsgUnbond(spec.stake))
    if vote_mode == "open":
        if is_voting(spec, epoch):
            msgs.append(MsgSubmitPriceProposal.of(*compute_vote(spec, seed, epoch)))
        return msgs
    if is_revealing(spec, epoch, vote_mode):
        msgs.append(MsgRevealPrice(compute_salt(spec, seed, epoch - 1), *compute_vote(spec, seed, epoch - 1)))
    if is_voting(spec, epoch):
        price, denom = compute_vote(spec, seed, epoch)
        salt = compute_salt(spec, seed, epoch)
        msgs.append(MsgCommitPrice(compute_price_commit_hash(salt, price, denom, get_key(spec.name).address)))
    return msgs


def compute_proposal_message(scenario: Scenario, proposal: ProposalSpec) -> MsgSubmitProposal:
    """The MsgSubmitProposal of a governance event."""
    if proposal.kind == "register_model":
        assert proposal.units_of_compute_per_token is not None
        content: RegisterModel | RemoveModel = RegisterModel(proposal.id, proposal.units_of_compute_per_token)
    else:
        content = RemoveModel(proposal.id)
    return MsgSubmitProposal(content, scenario.deposit_of(proposal))


@dataclass(frozen=True)
class GovTx:
    """A governance transaction of the plan: block offset in the epoch, sender, sequence, messages."""

    offset: int
    sender: str
    sequence: int
    messages: tuple[Msg, ...]


@dataclass(frozen=True)
class EpochJob:
    """What a signer needs for one epoch: who sends, from which sequence."""

    chain_id: str
    seed: int
    epoch: int
    epoch_length: int
    sends: tuple[tuple[int, ValidatorSpec, int], ...]  # (validator index, spec, sequence)
    gov: tuple[GovTx, ...] = ()
    gas_price: str = DEFAULT_PARAMS.min_gas_price  # the fee: the gas table's bound at this price
    vote_mode: str = DEFAULT_PARAMS.vote_mode


def sign_epoch(job: EpochJob) -> list[list[bytes]]:
    """Sign an epoch's transactions, spread over its blocks (validator i → block i mod L); a
    block's governance transactions come first. The strategies that read the chain are left to
    the chain process (`compute_chain_txs`)."""
    blocks: list[list[bytes]] = [[] for _ in range(job.epoch_length)]
    for gov in job.gov:
        raw = sign_tx(get_key(gov.sender), job.chain_id, gov.sequence, gov.messages, gas_price=job.gas_price)
        blocks[gov.offset].append(raw)
    for index, spec, sequence in job.sends:
        if is_chain_reading(spec):
            continue
        msgs = compute_messages(spec, job.seed, job.epoch, job.vote_mode)
        raw = sign_tx(get_key(spec.name), job.chain_id, sequence, msgs, gas_price=job.gas_price)
        blocks[index % job.epoch_length].append(raw)
    return blocks


def compute_shifted_job(job: EpochJob, shift: dict[str, int]) -> EpochJob:
    """The job with each sender's sequences moved by its transactions outside the plan (settlements)."""
    if not shift:
        return job
    sends = tuple((i, spec, sequence + shift.get(spec.name, 0)) for i, spec, sequence in job.sends)
    gov = tuple(replace(g, sequence=g.sequence + shift.get(g.sender, 0)) for g in job.gov)
    return replace(job, sends=sends, gov=gov)


def sign_and_admit_epoch(job: EpochJob) -> tuple[list[list[bytes]], list[Tx | InvalidTx]]:
    """Sign an epoch's blocks, then run the application's admission step (`decode_and_verify`) on
    every signed transaction: the blocks, and the admission results in block order."""
    blocks = sign_epoch(job)
    return blocks, decode_and_verify([raw for block in blocks for raw in block])


class EpochPipeline:
    """Signed and admitted epochs, prepared ahead of the chain by a pool of helper processes.

    Each epoch is one job: a helper signs its transactions and decodes and verifies them (every
    signature once), and hands back the blocks with the admission results, which the
    application's `admit` then looks up (`__call__`). Jobs are submitted in epoch order, at least
    two and `SIGN_AHEAD_TXS` transactions ahead. While the chain process would wait for an epoch,
    it runs the newest job no helper has started yet itself (work stealing: nothing is done twice).

    Only the first `sequenced` jobs have their final sequences: with clients, an epoch's settlement
    transactions are known at its start, and `add_sequences` then releases the next epoch's job.
    """

    def __init__(
        self, pool: ProcessPoolExecutor, jobs: Iterator[EpochJob], count: int, sequenced: int | None = None
    ) -> None:
        self.pool = pool
        self.jobs = jobs  # taken in order, one job as it is submitted (`iterate_jobs`)
        self.count = count
        self.sequenced = count if sequenced is None else sequenced
        self.shift: dict[str, int] = {}  # validator name → its transactions outside the plan so far
        self.window: deque[tuple[EpochJob, Future[tuple[list[list[bytes]], list[Tx | InvalidTx]]]]] = deque()
        self.submitted = 0
        self.done_here = 0  # epochs this process signed and admitted itself
        self.ready: dict[bytes, Tx | InvalidTx] = {}
        self.fees_paid: dict[str, int] = {}  # address → fees of its admitted transactions

    def _fill(self) -> None:
        """Submit jobs until two epochs and SIGN_AHEAD_TXS transactions are under way."""
        while self.submitted < self.sequenced and (
            len(self.window) < 2 or sum(len(job.sends) + len(job.gov) for job, _ in self.window) < SIGN_AHEAD_TXS
        ):
            job = compute_shifted_job(next(self.jobs), self.shift)
            self.window.append((job, self.pool.submit(sign_and_admit_epoch, job)))
            self.submitted += 1

    def add_sequences(self, sent: dict[str, int]) -> None:
        """Count the transactions each validator sends outside the plan in the epoch being run (its
        settlements): the sequences of the next epochs move by them, and the next epoch's job may start."""
        for name, count in sent.items():
            if count:
                self.shift[name] = self.shift.get(name, 0) + count
        self.sequenced = min(self.sequenced + 1, self.count)
        self._fill()

    def next_epoch(self) -> list[list[bytes]]:
        """The next epoch's blocks of signed transactions, their admission results ready."""
        self._fill()
        job, future = self.window.popleft()
        if future.cancel():
            blocks, results = sign_and_admit_epoch(job)
            self.done_here += 1
        else:
            while not future.done() and self._steal():
                pass
            blocks, results = future.result()
        self.ready.update(zip((raw for block in blocks for raw in block), results))
        return blocks

    def _steal(self) -> bool:
        """Run the newest job that no helper has started here; False if there is none."""
        for i in range(len(self.window) - 1, -1, -1):
            job, future = self.window[i]
            if future.cancel():
                done: Future[tuple[list[list[bytes]], list[Tx | InvalidTx]]] = Future()
                done.set_result(sign_and_admit_epoch(job))
                self.window[i] = (job, done)
                self.done_here += 1
                return True
        return False

    def __call__(self, raws: list[bytes]) -> list[Tx | InvalidTx]:
        """The application's `admit`: each transaction's admission result (done here if unknown)."""
        out: list[Tx | InvalidTx] = []
        for raw in raws:
            result = self.ready.pop(raw, None)
            out.extend(decode_and_verify([raw]) if result is None else [result])
        for tx in out:
            if isinstance(tx, Tx):
                self.fees_paid[tx.sender] = self.fees_paid.get(tx.sender, 0) + tx.fee
        return out


def iterate_jobs(scenario: Scenario) -> Iterator[EpochJob]:
    """Every epoch's signing job in order, made as it is asked for (a run of many epochs starts at once and
    holds only the jobs under way), with sequences assuming every transaction commits.

    Sequences follow block order: a validator's governance transactions (block 0 submits, block 1
    votes) precede its regular one when they share a block."""
    index = {spec.name: i for i, spec in enumerate(scenario.validators)}
    sequences = [0] * len(scenario.validators)
    proposal_id = 0
    for epoch in range(scenario.epochs):
        # (block offset, rank, order, validator, gov messages): governance first, in file order
        planned: list[tuple[int, int, int, int, tuple[Msg, ...] | None]] = []
        for proposal in (p for p in scenario.proposals if p.at_epoch == epoch):
            proposal_id += 1
            submit = (compute_proposal_message(scenario, proposal),)
            planned.append((0, 0, len(planned), index[proposal.proposer], submit))
            for name, option in proposal.votes:
                planned.append((1, 0, len(planned), index[name], (MsgVote(proposal_id, option),)))
        for i, spec in enumerate(scenario.validators):
            if is_sending(spec, epoch, scenario.vote_mode):
                planned.append((i % scenario.epoch_length, 1, i, i, None))
        sends, gov = [], []
        for offset, _, _, i, msgs in sorted(planned, key=lambda p: p[:3]):
            if msgs is None:
                sends.append((i, scenario.validators[i], sequences[i]))
            else:
                gov.append(GovTx(offset, scenario.validators[i].name, sequences[i], msgs))
            sequences[i] += 1
        sends.sort(key=lambda send: send[0])
        yield EpochJob(
            scenario.chain_id,
            scenario.seed,
            epoch,
            scenario.epoch_length,
            tuple(sends),
            tuple(gov),
            scenario.params.min_gas_price,
            scenario.vote_mode,
        )


def read_chain_view(app: Application) -> ChainView:
    """What a strategy that reads the chain sees now: the committed state after the last block."""
    status = app.query("status")
    validators = {v["address"]: v for v in app.query_all("validators")}
    return ChainView(status["epoch"], status["unit_of_compute_price"], app.get_params(), validators)


def compute_chain_messages(
    app: Application, scenario: Scenario, spec: ValidatorSpec, epoch: int, committed: dict[tuple[str, int], int]
) -> list[Msg]:
    """The messages of a chain-reading validator's transaction in `epoch`, read from the chain just
    before its block: its bond or unbond as any validator's, a copycat's or cartel's vote (in
    commit_reveal mode: the reveal of the price it committed last epoch, kept in `committed`, and
    the commit of this epoch's), a free rider's MsgUnjail once its jail has run out."""
    msgs: list[Msg] = []
    if is_joining(spec, epoch):
        msgs.append(MsgBond(spec.stake))
    if is_leaving(spec, epoch):
        msgs.append(MsgUnbond(spec.stake))
    if is_revealing(spec, epoch, scenario.vote_mode):
        price = committed.pop((spec.name, epoch - 1))
        msgs.append(MsgRevealPrice(compute_salt(spec, scenario.seed, epoch - 1), price, "ngonka"))
    if is_voting(spec, epoch):
        addresses = {v.name: get_key(v.name).address for v in scenario.validators}
        price = compute_chain_vote(spec, read_chain_view(app), scenario, addresses)
        if scenario.vote_mode == "open":
            msgs.append(MsgSubmitPriceProposal.of(price, "ngonka"))
        else:
            committed[(spec.name, epoch)] = price
            salt = compute_salt(spec, scenario.seed, epoch)
            msgs.append(MsgCommitPrice(compute_price_commit_hash(salt, price, "ngonka", addresses[spec.name])))
    elif spec.is_active(epoch) and is_unjailing(
        spec, app.query(f"validator/{get_key(spec.name).address}"), app.height + 1
    ):
        msgs.append(MsgUnjail())
    return msgs


def compute_chain_txs(
    app: Application, scenario: Scenario, epoch: int, offset: int, committed: dict[tuple[str, int], int]
) -> list[bytes]:
    """The signed transactions of the chain-reading validators whose block is `offset` of `epoch`
    (validator i → block i mod L, as the others), each at its account's sequence."""
    txs = []
    for i, spec in enumerate(scenario.validators):
        if i % scenario.epoch_length != offset or not is_chain_reading(spec):
            continue
        msgs = compute_chain_messages(app, scenario, spec, epoch, committed)
        if msgs:
            key = get_key(spec.name)
            sequence = app.query(f"account/{key.address}")["sequence"]
            txs.append(sign_tx(key, scenario.chain_id, sequence, msgs, gas_price=scenario.params.min_gas_price))
    return txs


def plan_settlements(app: Application, scenario: Scenario, demand: DemandPlan, epoch: int) -> dict[str, list[Job]]:
    """The jobs of `epoch` by provider name, planned from the prices the chain has in force at its start."""
    pricing = app.query("pricing")
    if pricing["epoch"] != epoch:
        raise DevnetError(f"the chain is in epoch {pricing['epoch']} at the start of epoch {epoch}")
    by_provider: dict[str, list[Job]] = {}
    for job in demand.plan(epoch, compute_prices(pricing)):
        by_provider.setdefault(job.provider, []).append(job)
    return by_provider


def compute_fund_txs(scenario: Scenario) -> list[bytes]:
    """Every client's escrow funding, its first transaction (sequence 0)."""
    gas_price = scenario.params.min_gas_price
    return [
        sign_tx(get_client_key(c.name), scenario.chain_id, 0, compute_fund_messages(c), gas_price=gas_price)
        for c in scenario.clients
    ]


def compute_settlement_txs(
    app: Application, scenario: Scenario, jobs: dict[str, list[Job]], epoch: int, block: list[bytes]
) -> list[bytes]:
    """The providers' settlement transactions, to follow `block`'s transactions in the epoch's last
    block: each at its account's sequence after the ones it already has in the block."""
    expires_at = compute_epoch_start_height(scenario.params, epoch + 1) - 1
    in_block = Counter(decode_tx(raw).sender for raw in block)
    txs = []
    for spec in scenario.validators:
        if spec.name not in jobs:
            continue
        key = get_key(spec.name)
        sequence = app.query(f"account/{key.address}")["sequence"] + in_block[key.address]
        msgs = [compute_settle_message(job, key.address, scenario.chain_id, expires_at) for job in jobs[spec.name]]
        for batch in compute_message_batches(msgs):
            txs.append(sign_tx(key, scenario.chain_id, sequence, batch, gas_price=scenario.params.min_gas_price))
            sequence += 1
    return txs


def read_usage(app: Application, scenario: Scenario) -> list[list[Any]]:
    """usage.csv's rows, read back from the chain's settlements by provider."""
    names = {get_key(v.name).address: v.name for v in scenario.validators}
    settlements = [s for address in names for s in app.query_all("settlements", provider=address)]
    return compute_usage_rows(settlements, names, 0)


def read_accounts(app: Application, scenario: Scenario, fees_paid: dict[str, int]) -> dict[str, Account]:
    """Each validator's wealth (balance, tokens held bonded, deposits of its proposals spent or
    held), fees paid, misses, jails and slashes, now."""
    spent: dict[str, int] = {}
    for p in app.query_all("proposals"):
        if p["burned"] or p["status"] in ("deposit_period", "voting_period"):
            spent[p["proposer"]] = spent.get(p["proposer"], 0) + p["total_deposit"]
    state = State(app.store, app.height)  # the fields of the account and validator queries, read directly
    out = {}
    for spec in scenario.validators:
        address = get_key(spec.name).address
        stakes, jail = get_validator(state, address), get_jail(state, address)
        wealth = (
            get_account(state, address)["balance"]
            + max(stakes["stake"], stakes["pending_stake"])
            + sum(record["amount"] for _, record in get_unbondings(state, address))
            + spent.get(address, 0)
        )
        missed = get_miss_record(state, address)["missed"]
        out[spec.name] = Account(wealth, fees_paid.get(address, 0), missed, jail["slashes"], jail["slashed"])
    return out


FEE_FUND = 10**9  # ngonka each provider (and client) holds for fees: one gonka, about a million price votes


def make_genesis(scenario: Scenario) -> dict[str, Any]:
    """The genesis of a scenario: every provider holds its stake liquid, plus the deposits of the
    proposals it submits and FEE_FUND for its fees; genesis ones are also bonded. Every client holds
    its escrow and FEE_FUND."""
    deposits = {v.name: 0 for v in scenario.validators}
    for proposal in scenario.proposals:
        deposits[proposal.proposer] += scenario.deposit_of(proposal)
    return {
        "chain_id": scenario.chain_id,
        "genesis_time": "1970-01-01T00:00:00Z",
        "params": scenario.params.to_json(),
        "accounts": [
            {"address": get_key(v.name).address, "balance": v.stake + deposits[v.name] + FEE_FUND}
            for v in scenario.validators
        ]
        + [{"address": get_client_key(c.name).address, "balance": c.escrow + FEE_FUND} for c in scenario.clients],
        "validators": [
            {"address": get_key(v.name).address, "stake": v.stake} for v in scenario.validators if v.is_genesis()
        ],
    }


def remove_state_file(out: Path) -> None:
    """Create the output directory if needed and remove a previous run's `state.db` from it."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (out / f"state.db{suffix}").unlink(missing_ok=True)


def open_store(out: Path) -> SqliteStore:
    """A fresh SQLite state store in the output directory (a previous run's is replaced)."""
    remove_state_file(out)
    return SqliteStore(out / "state.db")


def write_state_file(out: Path, store: MemoryStore) -> None:
    """Write the state `store` last committed to `state.db` in the output directory, in one transaction
    (a previous run's file is replaced): the file a run on SQLite would have left, at a fraction of its
    cost (one SQLite transaction instead of one a block)."""
    info = store.last_commit()
    if info is None:
        return
    with closing(open_store(out)) as db:
        db.write_block(info, list(store.entries()))


def get_helper_context() -> Any:
    """The multiprocessing context helper processes start in: fork (fast) while this process has no
    other thread, else spawn (safe: a fork copies no other thread, and a lock one held stays held)."""
    return multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")


def start_helpers(scenario: Scenario) -> ProcessPoolExecutor:
    """Two helper processes at this process's priority (at a lower one, any other job on the machine
    took their CPU: the throughput halved under load): forked at once (fast) while this process has no
    other thread, else spawned (safe). The validators' keys are derived first: forked helpers inherit
    them instead of each deriving every key again."""
    for spec in scenario.validators:
        get_key(spec.name)
    pool = ProcessPoolExecutor(2, mp_context=get_helper_context())
    with frozen_for_fork():  # their collections never walk (and so copy) the pages they inherit
        pool.submit(int).result()  # starts the workers before any thread (progress bar, pool manager) exists
    return pool


class InlineExecutor:
    """An executor that never starts a job: `EpochPipeline` then signs and admits every epoch itself
    (work stealing), so one run uses one process (as each task of a study does)."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        return Future()

    def __enter__(self) -> InlineExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class RunResult:
    """What one in-process run produced: the chain's records and what was read after each epoch."""

    summary: dict[str, Any]
    history: list[dict[str, Any]]
    models: list[tuple[int, list[dict[str, Any]]]]
    proposals: list[dict[str, Any]]
    usage: list[list[Any]] | None
    rejections: dict[str, int]
    prices: list[dict[str, int]] = field(default_factory=list)  # per epoch: model → price per token in its last block


def read_ballot(app: Application, names: dict[str, str]) -> list[dict[str, Any]]:
    """Every validator's power, vote in force (and the epoch it was cast in), jail and slashes, now: the
    fields of the `validators` query that the run records, read straight from the committed state (the
    query's other fields, such as a validator's unbondings, cost a range scan each)."""
    state = State(app.store, app.height)
    ballot = []
    for address, power in get_validator_set(state):
        if address not in names:
            continue
        vote = get_price_vote(state, address)
        jail = get_jail(state, address)
        ballot.append(
            {
                "validator": names[address],
                "power": power,
                "vote": vote["price_ngonka"] if vote else None,
                "vote_epoch": vote["epoch"] if vote else None,
                "jailed": jail["jailed"],
                "slashes": jail["slashes"],
            }
        )
    return ballot


def simulate(
    scenario: Scenario,
    store: Any,
    pool: Any,
    *,
    progress: bool | None = None,
    votes: Callable[[list[dict[str, Any]]], None] | None = None,
) -> RunResult:
    """Run a scenario on the in-process engine over `store`, its epochs signed by `pool` (helper
    processes, or `InlineExecutor` for none); write nothing. After each epoch its rows of the votes
    table (`compute_vote_rows`) go to `votes`, if given: the run keeps no ballot past its epoch."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: it would outlive the run and make later forks unsafe
    started, cpu_started = time.perf_counter(), time.process_time()
    demand = DemandPlan(scenario) if scenario.clients else None
    pipeline = EpochPipeline(pool, iterate_jobs(scenario), scenario.epochs, sequenced=None if demand is None else 1)
    app = Application(store, admit=pipeline)
    app.init_chain(make_genesis(scenario))
    rejections: dict[str, int] = {}
    committed = 0
    models = [(0, app.query_all("models"))]
    names = {get_key(v.name).address: v.name for v in scenario.validators}
    start = read_accounts(app, scenario, {})
    tally = StrategyTally(scenario.validators)
    strategies = {v.name: v.strategy for v in scenario.validators}
    price = scenario.default_unit_of_compute_price  # in force during the epoch being run
    output_seconds = output_cpu = 0.0  # spent on the summary's figures and the votes rows (left out of the timings)
    chain_reading = any(is_chain_reading(spec) for spec in scenario.validators)
    commitments: dict[tuple[str, int], int] = {}  # (name, epoch) → the price a chain reader committed
    dynamic = scenario.params.pricing_mode != "voted"
    prices: list[dict[str, int]] = []  # per epoch: each active model's price per token in its last block
    with (
        settled_heap(),  # the run's long-lived objects out of the collector's scans, as a node's (node.heap)
        tqdm(
            total=scenario.epochs * scenario.epoch_length,
            unit="block",
            desc="simulating",
            disable=(not progress) if progress is not None else None,
            file=sys.stderr,
        ) as bar,
    ):
        for epoch in range(scenario.epochs):
            blocks = pipeline.next_epoch()
            jobs: dict[str, list[Job]] = {}
            if demand is not None and not dynamic:
                jobs = plan_settlements(app, scenario, demand, epoch)
                pipeline.add_sequences({name: len(compute_message_batches(js)) for name, js in jobs.items()})
            if demand is not None and epoch == 0:
                blocks[0] = compute_fund_txs(scenario) + blocks[0]
            for offset, txs in enumerate(blocks):
                if chain_reading:
                    txs = txs + compute_chain_txs(app, scenario, epoch, offset, commitments)
                if offset == scenario.epoch_length - 1:
                    prices.append(compute_prices(app.query("pricing")))  # what the last block's settlements pay
                    if demand is not None and dynamic:  # a dynamic price moves each block: plan at the last
                        jobs = plan_settlements(app, scenario, demand, epoch)
                        pipeline.add_sequences({name: len(compute_message_batches(js)) for name, js in jobs.items()})
                if jobs and offset == scenario.epoch_length - 1:
                    txs = txs + compute_settlement_txs(app, scenario, jobs, epoch, txs)
                height = compute_epoch_start_height(scenario.params, epoch) + offset
                block = app.finalize_block(height, txs)
                app.commit()
                for result in block.tx_results:
                    if result.ok:
                        committed += 1
                    else:
                        rejections[result.code] = rejections.get(result.code, 0) + 1
                bar.update(1)
            models.append((epoch + 1, app.query_all("models")))
            ballot = read_ballot(app, names)
            previous, price = price, app.query("status")["unit_of_compute_price"]
            # the summary's figures and the votes rows: output, not the run's work (before, both were made
            # after the timed run), so their time is left out of the run's
            output_started, output_cpu_started = time.perf_counter(), time.process_time()
            tally.add(Observation(epoch, price, previous, {v["validator"]: (v["power"], v["vote"]) for v in ballot}))
            if votes is not None:
                record = get_epoch_record(State(app.store, app.height), epoch + 1)  # the price this ballot set
                votes(compute_vote_rows(strategies, epoch, ballot, None if record is None else record["price"]))
            output_seconds += time.perf_counter() - output_started
            output_cpu += time.process_time() - output_cpu_started
    elapsed = time.perf_counter() - started - output_seconds
    cpu = time.process_time() - cpu_started - output_cpu
    history = app.query_all("history")
    status = app.query("status")
    proposals = [app.query(f"proposal/{p['id']}") for p in app.query_all("proposals")]
    registry_version = app.query("models")["registry_version"]
    end = read_accounts(app, scenario, pipeline.fees_paid)
    usage = read_usage(app, scenario) if demand is not None else None
    revenue = None if usage is None else compute_revenue_summary(usage, [v.name for v in scenario.validators])
    if revenue is not None:  # the strategies' rewards are vote rewards and fee shares, not pay for jobs served
        end = {name: replace(account, wealth=account.wealth - revenue[name]["payout"]) for name, account in end.items()}
    log.info(
        "simulated %d blocks, %d transactions committed in %.2f s (%d of %d epochs signed and admitted here)",
        app.height,
        committed,
        elapsed,
        pipeline.done_here,
        scenario.epochs,
    )
    summary = {
        **compute_scenario_summary(scenario, "inproc"),
        "epoch_offset": 0,
        "final_height": status["height"],
        "final_epoch": status["epoch"],
        "final_price": status["unit_of_compute_price"],
        "final_app_hash": status["app_hash"],
        "registry_version": registry_version,
        **compute_governance_summary(models, proposals),
        "txs_committed": committed,
        "txs_rejected": sum(rejections.values()),
        "rejections": dict(sorted(rejections.items())),
        "price_vs_honest": tally.price_vs_honest(),
        "strategies": tally.summarize(start, end),
    }
    if revenue is not None:
        summary["revenue"] = revenue
    summary["elapsed_seconds"] = elapsed
    summary["cpu_seconds"] = cpu  # this process's CPU (its threads included; not the helpers')
    return RunResult(summary, history, models, proposals, usage, rejections, prices)


def run_inproc(scenario: Scenario, out: Path, *, progress: bool | None = None) -> dict[str, Any]:
    """Run a scenario on the in-process engine and write its outputs; return the summary."""
    return run_inproc_result(scenario, out, progress=progress).summary


def run_inproc_result(scenario: Scenario, out: Path, *, progress: bool | None = None) -> RunResult:
    """Run a scenario on the in-process engine and write its outputs; return what it produced."""
    log.info(
        "simulating %s: %d validators, %d epochs of %d blocks, seed %d",
        scenario.path,
        len(scenario.validators),
        scenario.epochs,
        scenario.epoch_length,
        scenario.seed,
    )
    out.mkdir(parents=True, exist_ok=True)
    with VotesWriter(out / "votes.csv") as votes:  # written epoch by epoch; in place only if the run ends
        if scenario.clients:  # the state grows with the jobs settled: on disk, as a node keeps it
            with start_helpers(scenario) as pool, closing(open_store(out)) as db:
                result = simulate(scenario, db, pool, progress=progress, votes=votes.write)
            written = written_cpu = 0.0
        else:  # the state is a few entries per validator and per epoch: in memory, written once at the end
            store = MemoryStore()
            remove_state_file(out)  # no state.db of an earlier run survives this one, even if it fails
            try:
                with start_helpers(scenario) as pool:
                    result = simulate(scenario, store, pool, progress=progress, votes=votes.write)
            finally:
                started, cpu_started = time.perf_counter(), time.process_time()
                write_state_file(out, store)  # what was committed, also when the run failed
                written, written_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    summary = result.summary
    elapsed = summary.pop("elapsed_seconds") + written  # the state file is part of the run's cost
    cpu = summary.pop("cpu_seconds") + written_cpu
    title = Path(scenario.path).name
    write_run_files(out, title, scenario, result.history, result.models, result.proposals, summary, votes.marks)
    write_usage_files(out, title, result.usage, [v.name for v in scenario.validators], scenario.epochs)
    summary["elapsed_seconds"] = elapsed  # the timings are returned, not written: the files follow the scenario alone
    summary["cpu_seconds"] = cpu
    if result.rejections:
        raise DevnetError(
            f"{summary['txs_rejected']} simulated transaction(s) were rejected ({summary['rejections']}); "
            f"outputs in {out}"
        )
    return result

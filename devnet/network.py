"""The network engine: a scenario driven through a devnet of real node processes and their HTTP API.

The devnet is shaped by the scenario: one node per scenario validator, whose home holds the
simulator's key for that name (so addresses, and the median's tie-breaks, are the in-process
engine's), and one shared genesis, `devnet.simulate.make_genesis(scenario)` (joiners are funded
accounts whose nodes start as non-validators). Every action is a real request:

- a price vote is `POST /v1/admin/unit-of-compute-price-proposal` on the validator's own node, with
  the price and denom of `compute_vote` (the node signs with its validator key; in vote_mode
  commit_reveal it commits the price at once and its price feeder reveals it in the next epoch, as
  the in-process engine does);
- bonds, unbonds, proposals and governance votes are transactions signed with the home's key and
  posted with `POST /v1/txs?wait=commit` to the validator's own node;
- a client's escrow funding is a transaction signed with the client's key (`devnet.demand`) and
  posted to the first node in scenario epoch 0;
- a job is settled by its provider: at the start of each epoch the engine plans the epoch's jobs
  from `GET /v1/pricing` (the in-process engine's plan, `devnet.demand.DemandPlan`), and after its
  other actions each validator posts the client-signed receipt of each of its jobs to
  `POST /v1/admin/usage` on its own node (the node signs the MsgSettleUsage with the validator key,
  as it does the price vote), a few at once, each answered once committed.

`uocd devnet up --scenario S.toml` starts that devnet alone (idle); `devnet simulate S.toml --engine
network --dir D` then uses it, provided it was made for the same scenario and no account has sent a
transaction yet. Any other devnet is refused: its keys, stakes and params would give other prices.

Timing. The nodes start, and the chain runs idle until the next epoch boundary: scenario epoch `k`
runs in chain epoch `k + offset`. Nothing happens before, so the price stays at the genesis default
and the validator set is the genesis one, exactly as in the in-process engine; `epochs.csv` row 0 is
the genesis record and row `k ≥ 1` the chain's record of epoch `k + offset`, renumbered. In each
epoch the engine waits for the chain to enter it, then every validator acts at once, each in order:
the proposals it submits (each after the epoch's previous one, so ids follow the file order, as
in-process), its bond or unbond, its price vote, and its governance votes (each once the proposal
is on its node), each waiting for its commit. Every committed height is checked to lie inside the
epoch (and a governance vote before its proposal's voting end): if the network cannot keep up,
the run stops with an error instead of giving another price series. The in-process engine submits
a proposal in an epoch's first block and votes in the second; with the default voting period of
one epoch, a proposal submitted anywhere in epoch `e` ends in `e + 1` and its change is active from
`e + 2` in both engines. Votes count at the epoch end in both.

The outputs are read back from the chain through the API: `epochs.csv` from
`/v1/pricing/history`, `proposals.csv` from `/v1/governance/proposals/{id}`, and `models.csv` from
the passed proposals (a change passed in chain epoch `e` is active from `e + 1`) priced with each
epoch's unit price; with clients, `usage.csv` from `/v1/settlements?provider=…` (epochs renumbered).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey
from chain.epochs import compute_effective_epoch, compute_epoch_at_height, compute_epoch_start_height
from chain.queries import compute_number_with_twin
from chain.tx import Msg, MsgBond, MsgUnbond, MsgVote
from node.client import ApiError, Client, broadcast

from .demand import (
    DemandPlan,
    Job,
    compute_fund_messages,
    compute_prices,
    compute_revenue_summary,
    compute_settle_message,
    compute_usage_rows,
    get_client_key,
)
from .devnet import NodeSpec, create_homes, read_state, running_nodes, start_devnet, stop_devnet
from .errors import DevnetError, ScenarioError
from .report import compute_governance_summary, compute_scenario_summary, write_run_files, write_usage_files
from .scenario import STRATEGIES, ClientSpec, ProposalSpec, Scenario, ValidatorSpec
from .simulate import compute_proposal_message, compute_vote, get_key, is_joining, is_leaving, is_voting, make_genesis
from .strategies import CHAIN_READING_STRATEGIES, is_chain_reading

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02
EPOCH_WAIT_SLACK = 30.0  # seconds beyond the expected epoch time before giving up on the chain
SEQUENCE_RETRIES = 10
SETTLEMENTS_IN_FLIGHT = 8  # receipts one validator's thread posts to its node at once


@dataclass
class Driver:
    """The running scenario: the scenario, its devnet's nodes by validator name, the epoch offset."""

    scenario: Scenario
    nodes: dict[str, dict[str, Any]]
    offset: int = 0
    block_ms: int = 200
    committed: int = 0
    proposal_ids: list[int] = field(default_factory=list)
    demand: DemandPlan | None = None
    jobs: dict[str, list[Job]] = field(default_factory=dict)  # this epoch's, by provider name

    @property
    def head(self) -> Client:
        """The first node's public API (the engine's view of the chain)."""
        return public(self.nodes[self.scenario.validators[0].name])

    def wait_for_epoch(self, epoch: int) -> dict[str, Any]:
        """Wait until the chain is in chain epoch `epoch`; DevnetError if it is already past it."""
        blocks = self.scenario.epoch_length * max(1, epoch - self.current_epoch() + 1)
        deadline = time.monotonic() + blocks * self.block_ms / 1000 * 4 + EPOCH_WAIT_SLACK
        while True:
            status = self.head.get("/v1/status")
            if status["epoch"] == epoch:
                return status
            if status["epoch"] > epoch:
                raise DevnetError(
                    f"the chain passed epoch {epoch} (scenario epoch {epoch - self.offset}) before the engine acted "
                    "in it; use a longer epoch_length or a shorter --block-time"
                )
            if time.monotonic() > deadline:
                raise DevnetError(f"the chain did not reach epoch {epoch} in time (it is at height {status['height']})")
            time.sleep(POLL_SECONDS)

    def current_epoch(self) -> int:
        """The chain's current epoch."""
        return self.head.get("/v1/status")["epoch"]

    def check_height(self, height: int, epoch: int, what: str) -> None:
        """DevnetError unless `height` lies in chain epoch `epoch`."""
        committed_in = compute_epoch_at_height(self.scenario.params, height)
        if committed_in != epoch:
            raise DevnetError(
                f"{what} was committed at height {height}, in chain epoch {committed_in} instead of "
                f"{epoch} (scenario epoch {epoch - self.offset}): the network is too slow for this scenario's "
                "epochs; use a longer epoch_length or a shorter --block-time"
            )

    def send(
        self, name: str, messages: list[Msg], epoch: int, what: str, key: PrivateKey | None = None
    ) -> dict[str, Any]:
        """Sign `messages` with validator `name`'s key (or `key`), post them to its node and wait for the
        commit. In vote_mode commit_reveal the node's price feeder signs with the same key on its own: a
        sequence it took first is retried after a block."""
        for _ in range(SEQUENCE_RETRIES):
            try:
                result = broadcast(public(self.nodes[name]), key or get_key(name), messages, self.scenario.chain_id)
                break
            except ApiError as exc:
                if exc.code != "wrong_sequence" or self.scenario.vote_mode != "commit_reveal":
                    raise
                time.sleep(self.block_ms / 1000)
        else:
            raise DevnetError(f"{what} kept losing its sequence to the node's own transactions")
        if result.get("status") != "committed":
            raise DevnetError(f"{what} was not committed in time (tx {result.get('tx_hash')})")
        if result.get("code") != "ok":
            raise DevnetError(f"the chain rejected {what}: {result.get('code')}: {result.get('log')}")
        self.check_height(result["height"], epoch, what)
        self.committed += 1
        return result

    def vote_price(self, spec: ValidatorSpec, epoch: int) -> None:
        """The validator's price vote of this scenario epoch, through its node's admin API."""
        price, denom = compute_vote(spec, self.scenario.seed, epoch - self.offset)
        node = self.nodes[spec.name]
        admin = Client(node["admin"], token=node["admin_token"], timeout=30.0)
        status, reply = admin.request(
            "POST", "/v1/admin/unit-of-compute-price-proposal", body={"price": price, "denom": denom}
        )
        what = f"{spec.name}'s price vote"
        if status != 200:
            raise DevnetError(f"{what} was not committed in time (tx {reply.get('tx_hash')})")
        self.check_height(reply["height"], epoch, what)
        self.committed += 1

    def fund_escrow(self, client: ClientSpec, epoch: int) -> None:
        """A client's escrow funding, its one transaction, posted to the first validator's node."""
        first = self.scenario.validators[0].name
        key = get_client_key(client.name)
        self.send(first, compute_fund_messages(client), epoch, f"client {client.name}'s escrow", key)

    def plan_jobs(self, epoch: int) -> None:
        """This epoch's jobs by provider, planned from the prices the chain has in force in it."""
        assert self.demand is not None
        pricing = self.head.get("/v1/pricing")
        if pricing["epoch"] != epoch:
            raise DevnetError(f"the chain's pricing is of epoch {pricing['epoch']}, not {epoch}: it moved on too soon")
        self.jobs = {}
        for job in self.demand.plan(epoch - self.offset, compute_prices(pricing)):
            self.jobs.setdefault(job.provider, []).append(job)

    def settle(self, spec: ValidatorSpec, epoch: int) -> None:
        """The validator's jobs of this epoch, each receipt posted to its node's POST /v1/admin/usage."""
        jobs = self.jobs.get(spec.name, [])
        if not jobs:
            return
        expires_at = compute_epoch_start_height(self.scenario.params, epoch + 1) - 1
        address = get_key(spec.name).address
        messages = [compute_settle_message(job, address, self.scenario.chain_id, expires_at) for job in jobs]
        with ThreadPoolExecutor(min(SETTLEMENTS_IN_FLIGHT, len(messages))) as pool:
            for error in [f.exception() for f in [pool.submit(self.post_settlement, spec, m, epoch) for m in messages]]:
                if error is not None:
                    raise error
        self.committed += len(messages)  # counted here, not in the pool's threads (`+=` is not atomic)

    def post_settlement(self, spec: ValidatorSpec, msg: Any, epoch: int) -> None:
        """One job's settlement through the provider's node; DevnetError unless committed in the epoch."""
        node = self.nodes[spec.name]
        admin = Client(node["admin"], token=node["admin_token"], timeout=30.0)
        body = {k: v for k, v in msg.to_json().items() if k != "@type"}
        status, reply = admin.request("POST", "/v1/admin/usage", body=body)
        what = f"{spec.name}'s settlement of {msg.receipt.request_id}"
        if status != 200:
            raise DevnetError(f"{what} was not committed: {status} {reply}")
        self.check_height(reply["height"], epoch, what)

    def wait_for_height(self, name: str, height: int) -> None:
        """Wait until validator `name`'s node has committed `height` (it may lag the others by a block)."""
        node = public(self.nodes[name])
        deadline = time.monotonic() + EPOCH_WAIT_SLACK
        while node.get("/v1/status")["height"] < height:
            if time.monotonic() > deadline:
                raise DevnetError(f"{name}'s node did not reach height {height} in time")
            time.sleep(POLL_SECONDS)

    def submit_proposal(self, proposal: ProposalSpec, epoch: int) -> tuple[int, int]:
        """Submit a governance event's proposal from its proposer; (its id, the height it was committed at)."""
        node = public(self.nodes[proposal.proposer])
        msg = compute_proposal_message(self.scenario, proposal)
        result = self.send(proposal.proposer, [msg], epoch, f"{proposal.proposer}'s proposal for {proposal.id}")
        newest = node.get("/v1/governance/proposals", **{"pagination.reverse": "true"})["proposals"]
        proposer = get_key(proposal.proposer).address
        mine = [p for p in newest if (p["proposer"], p["submit_height"]) == (proposer, result["height"])]
        if not mine:
            raise DevnetError(f"the proposal for {proposal.id} does not appear in /v1/governance/proposals")
        return max(p["id"] for p in mine), result["height"]

    def act(self, spec: ValidatorSpec, epoch: int, slots: list[ProposalSlot]) -> None:
        """One validator's actions in an epoch, in order: the proposals it submits (each after the
        previous one of the epoch: ids follow file order), its bond or unbond, its price vote, then its
        governance votes (each once the proposal is on its node)."""
        k = epoch - self.offset
        for i, slot in enumerate(slots):
            if slot.spec.proposer == spec.name:
                if i > 0:
                    slots[i - 1].wait()
                try:
                    slot.proposal_id, slot.height = self.submit_proposal(slot.spec, epoch)
                    proposer = public(self.nodes[spec.name])
                    slot.end = proposer.get(f"/v1/governance/proposals/{slot.proposal_id}").get("voting_end_height")
                    self.check_voting_end(slot, epoch)
                finally:
                    slot.done.set()
        if is_joining(spec, k):
            self.send(spec.name, [MsgBond(spec.stake)], epoch, f"{spec.name}'s bond")
        if is_leaving(spec, k):
            self.send(spec.name, [MsgUnbond(spec.stake)], epoch, f"{spec.name}'s unbond")
        if is_voting(spec, k):
            self.vote_price(spec, epoch)
        for slot in slots:
            for name, option in slot.spec.votes:
                if name == spec.name:
                    self.vote_proposal(spec.name, slot, option, epoch)
        self.settle(spec, epoch)

    def check_voting_end(self, slot: ProposalSlot, epoch: int) -> None:
        """DevnetError unless the proposal's voting ends in the epoch where the in-process engine's does
        (submitted in the epoch's first block): the tally's powers and the activation epoch depend on it."""
        params = self.scenario.params
        if slot.end is None:
            return
        inproc_end = compute_epoch_start_height(params, epoch) + params.voting_period
        if compute_epoch_at_height(params, slot.end) != compute_epoch_at_height(params, inproc_end):
            raise DevnetError(
                f"proposal {slot.proposal_id} ({slot.spec.id}) ends at height {slot.end}, in another epoch than "
                f"in-process (submitted in the epoch's first block); a voting_period of a whole number of epochs "
                "avoids this"
            )

    def vote_proposal(self, name: str, slot: ProposalSlot, option: str, epoch: int) -> None:
        """A governance vote, once the proposal is committed and on the voter's node, before its end."""
        slot.wait()
        assert slot.proposal_id is not None and slot.height is not None
        self.wait_for_height(name, slot.height)
        what = f"{name}'s vote on proposal {slot.proposal_id}"
        result = self.send(name, [MsgVote(slot.proposal_id, option)], epoch, what)
        if slot.end is not None and result["height"] >= slot.end:
            raise DevnetError(
                f"{what} was committed at height {result['height']}, at or after its voting end {slot.end}: "
                "use a longer voting_period or a shorter --block-time"
            )

    def run_epoch(self, k: int, pool: ThreadPoolExecutor) -> None:
        """Scenario epoch k: every validator's actions at once (see `act`), and in epoch 0 the clients'
        escrow funding (no model is active before epoch 2, so no job needs it earlier)."""
        epoch = k + self.offset
        self.wait_for_epoch(epoch)
        if self.demand is not None:
            self.plan_jobs(epoch)
        slots = [ProposalSlot(p) for p in self.scenario.proposals if p.at_epoch == k]
        futures = [pool.submit(self.act, spec, epoch, slots) for spec in self.scenario.validators]
        if k == 0:
            futures += [pool.submit(self.fund_escrow, client, epoch) for client in self.scenario.clients]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, ProposalMissing)), errors[0])
        self.proposal_ids.extend(slot.proposal_id for slot in slots if slot.proposal_id is not None)


class ProposalMissing(DevnetError):
    """A governance vote whose proposal was not submitted (its submission failed: that is the error to show)."""


@dataclass
class ProposalSlot:
    """A proposal of the current epoch: set once its proposer's thread has submitted it."""

    spec: ProposalSpec
    proposal_id: int | None = None
    height: int | None = None
    end: int | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> None:
        """Wait for the submission; ProposalMissing if it failed or never came."""
        if not self.done.wait(EPOCH_WAIT_SLACK) or self.proposal_id is None:
            raise ProposalMissing(f"the proposal for {self.spec.id} was not submitted")


def public(node: dict[str, Any]) -> Client:
    """A node's public API client (long timeout: posts wait for commits)."""
    return Client(node["public"], timeout=30.0)


def scenario_genesis(scenario: Scenario) -> dict[str, Any]:
    """The scenario's genesis (the in-process engine's), timed now."""
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {**make_genesis(scenario), "genesis_time": now}


def genesis_digest(genesis: dict[str, Any]) -> str:
    """A digest of what makes two genesis files equivalent for a scenario (not the time)."""
    shape = {k: v for k, v in genesis.items() if k != "genesis_time"}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def prepare_devnet(
    scenario: Scenario, root: Path, block_ms: int, *, replace_stopped: bool = False
) -> tuple[dict[str, Any], bool]:
    """The scenario's devnet in `root`: a running one made for this scenario and still unused, or a
    fresh one (replacing a stopped devnet only with `replace_stopped`); (devnet state, True if this
    call started it)."""
    check_network_strategies(scenario)
    root = root.resolve()
    genesis = scenario_genesis(scenario)
    state = read_state(root)
    if state is not None:
        if running_nodes(state):
            check_reusable(scenario, state, genesis)
            return state, False
        if not replace_stopped:
            raise DevnetError(f"{root} holds a stopped devnet; remove it (rm -r {root}) or pick another --dir")
        shutil.rmtree(root)
    elif root.exists() and any(root.iterdir()):
        raise DevnetError(f"{root} exists and is not a devnet directory; pick another --dir")
    root.mkdir(parents=True, exist_ok=True)
    specs = [NodeSpec(v.name, get_key(v.name)) for v in scenario.validators]
    homes = create_homes(root, specs, epoch_length=scenario.epoch_length, block_ms=block_ms, genesis=genesis)
    extra = {
        "epoch_length": scenario.epoch_length,
        "block_ms": block_ms,
        "scenario": scenario.path,
        "scenario_genesis": genesis_digest(genesis),
    }
    return start_devnet(root, homes, extra), True


def check_network_strategies(scenario: Scenario) -> None:
    """Refuse the strategies that read the chain as they act (copycat, cartel, free_rider): this
    engine drives nodes through their APIs from plans made ahead; they run in-process only."""
    for spec in scenario.validators:
        if is_chain_reading(spec):
            raise ScenarioError(
                f"{scenario.path}: validator {spec.name} is a {spec.strategy}, which reads the chain as it acts; "
                f"the network engine runs {', '.join(s for s in STRATEGIES if s not in CHAIN_READING_STRATEGIES)} "
                "validators only: use the in-process engine (--engine inproc)"
            )


def up_scenario(scenario: Scenario, root: Path, block_ms: int = 200) -> dict[str, Any]:
    """`uocd devnet up --scenario`: start the scenario's devnet in `root` and leave it idle for
    `devnet simulate --engine network --dir root`; DevnetError if a devnet runs there."""
    state = read_state(root.resolve())
    if state is not None and running_nodes(state):
        raise DevnetError(
            f"a devnet is already running in {root.resolve()}; stop it with `uocd devnet down --dir {root}`"
        )
    return prepare_devnet(scenario, root, block_ms)[0]


def check_reusable(scenario: Scenario, state: dict[str, Any], genesis: dict[str, Any]) -> None:
    """DevnetError unless a running devnet was made for this scenario and no account has sent a tx."""
    if state.get("scenario_genesis") != genesis_digest(genesis):
        raise DevnetError(
            f"the devnet running in {state['dir']} was not made for this scenario (its genesis differs); the network "
            f"engine needs its own: stop it (uocd devnet down --dir {state['dir']}) and pick another --dir"
        )
    node = state["nodes"][0]
    accounts = [(v.name, get_key(v.name)) for v in scenario.validators]
    accounts += [(f"client {c.name}", get_client_key(c.name)) for c in scenario.clients]
    for name, key in accounts:
        try:
            sequence = public(node).get(f"/v1/accounts/{key.address}")["sequence"]
        except ApiError as exc:
            raise DevnetError(f"cannot read {name}'s account: {exc}") from None
        if sequence:
            raise DevnetError(
                f"the devnet in {state['dir']} has already run a scenario ({name} has sent {sequence} tx); "
                f"stop it (uocd devnet down --dir {state['dir']}), remove it and run again"
            )


def read_models(
    driver: Driver, proposals: list[dict[str, Any]], prices: list[int]
) -> list[tuple[int, list[dict[str, Any]]]]:
    """(scenario epoch, active models with their price per token) for epochs 0..E, from the passed
    proposals: a change passed in chain epoch e is active from e + 1."""
    changes = sorted(
        (
            compute_effective_epoch(driver.scenario.params, p["voting_end_height"]) - driver.offset,
            p["voting_end_height"],
            p["id"],
            p["content"],
        )
        for p in proposals
        if p["status"] == "passed"
    )
    out = []
    for k, price in enumerate(prices):
        units: dict[str, int] = {}
        for active_from, _, _, content in changes:
            if active_from <= k:
                if content["@type"] == "RemoveModel":
                    units.pop(content["id"], None)
                else:
                    units[content["id"]] = content["units_of_compute_per_token"]
        models = [
            {"id": m, "units_of_compute_per_token": u, **compute_number_with_twin("price_per_token", u * price)}
            for m, u in sorted(units.items())
        ]
        out.append((k, models))
    return out


def read_history(driver: Driver) -> list[dict[str, Any]]:
    """epochs.csv's records: genesis, then the chain's records of the scenario's epochs, renumbered."""
    epochs = driver.scenario.epochs
    records = driver.head.get_all("/v1/pricing/history", "epochs", from_epoch=0, to_epoch=driver.offset + epochs)
    by_epoch = {r["epoch"]: r for r in records}
    missing = [e for e in [0, *range(driver.offset + 1, driver.offset + epochs + 1)] if e not in by_epoch]
    if missing:
        raise DevnetError(f"the chain's history lacks the records of epochs {missing}")
    rows = [by_epoch[0]]
    rows += [{**by_epoch[driver.offset + k], "epoch": k} for k in range(1, epochs + 1)]
    return rows


def run_network(
    scenario: Scenario,
    out: Path,
    *,
    devnet_dir: Path | None = None,
    block_ms: int = 200,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run a scenario on the network engine, write its outputs and return the summary. Without
    `devnet_dir` the devnet lives in OUT/devnet and is stopped at the end; with it, it keeps running."""
    from tqdm import tqdm

    if scenario.clients and scenario.params.pricing_mode != "voted":
        raise DevnetError(
            f"params.pricing_mode {scenario.params.pricing_mode!r} with [[clients]] runs on the inproc engine only: "
            "the network engine plans an epoch's jobs from the prices at its start, and a dynamic price moves "
            "every block; drop --engine network"
        )
    out.mkdir(parents=True, exist_ok=True)
    root = (devnet_dir or out / "devnet").resolve()
    started = time.perf_counter()
    state, created = prepare_devnet(scenario, root, block_ms, replace_stopped=devnet_dir is None)
    keep = devnet_dir is not None
    try:
        nodes = {n["name"]: n for n in state["nodes"]}
        driver = Driver(scenario, nodes, block_ms=state.get("block_ms", block_ms))
        driver.demand = DemandPlan(scenario) if scenario.clients else None
        driver.offset = driver.current_epoch() + 1
        log.info("network engine: scenario epoch 0 is chain epoch %d", driver.offset)
        with (
            ThreadPoolExecutor(max(1, len(scenario.validators) + len(scenario.clients))) as pool,
            tqdm(
                total=scenario.epochs,
                unit="epoch",
                desc="simulating (network)",
                disable=(not progress) if progress is not None else None,
                file=sys.stderr,
            ) as bar,
        ):
            for k in range(scenario.epochs):
                driver.run_epoch(k, pool)
                bar.update(1)
        driver.wait_for_epoch(driver.offset + scenario.epochs)
        elapsed = time.perf_counter() - started
        summary = write_outputs(driver, out, elapsed, root)
    finally:
        if not keep:
            stop_devnet(root, grace=5.0)
    summary["devnet_running"] = keep
    summary["devnet_created"] = created
    summary["elapsed_seconds"] = elapsed
    return summary


def write_outputs(driver: Driver, out: Path, elapsed: float, root: Path) -> dict[str, Any]:
    """Read the run back from the chain and write the in-process engine's files; the summary."""
    scenario = driver.scenario
    history = read_history(driver)
    head = driver.head
    listed = head.get_all("/v1/governance/proposals", "proposals")
    proposals = [head.get(f"/v1/governance/proposals/{p['id']}") for p in listed]
    for p in proposals:
        p["submit_epoch"] -= driver.offset
    models = read_models(driver, proposals, [r["price"] for r in history])
    status = head.get("/v1/status")
    usage = read_usage(driver) if driver.demand is not None else None
    summary = {
        **compute_scenario_summary(scenario, "network"),
        "epoch_offset": driver.offset,
        "devnet_dir": str(root),
        "final_height": status["height"],
        "final_epoch": status["epoch"],
        "final_price": history[-1]["price"],
        "final_app_hash": status["app_hash"],
        "registry_version": history[-1].get("registry_version"),
        **compute_governance_summary(models, proposals),
        "txs_committed": driver.committed,
        "txs_rejected": 0,
        "rejections": {},
    }
    providers = [v.name for v in scenario.validators]
    if usage is not None:
        summary["revenue"] = compute_revenue_summary(usage, providers)
    title = f"{Path(scenario.path).name} (network engine)"
    write_run_files(out, title, scenario, history, models, proposals, summary)
    write_usage_files(out, title, usage, providers, scenario.epochs)
    return summary


def read_usage(driver: Driver) -> list[list[Any]]:
    """usage.csv's rows, read back from the chain's settlements by provider (scenario epochs)."""
    names = {get_key(v.name).address: v.name for v in driver.scenario.validators}
    settlements = [
        s for address in names for s in driver.head.get_all("/v1/settlements", "settlements", provider=address)
    ]
    return compute_usage_rows(settlements, names, driver.offset)


__all__ = ["run_network", "up_scenario"]

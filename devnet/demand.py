"""Demand in the simulator: the jobs the scenario's clients ask each epoch, who serves them, and their
receipts; the same plan for both engines.

Every number is an integer or an exact Fraction, so both engines plan the same jobs from the same
prices. In scenario epoch `k`, with the prices in force in `k` read from the chain at its start:

1. a client's demand for a model before the price (`compute_base_demand`): `constant` asks `jobs`
   every epoch; `ramp` goes from `jobs` in epoch 0 to `to_jobs` in the last, floor of the straight
   line; `spike` asks `peak_jobs` in `peak_epochs` epochs from `peak_epoch` and `jobs` otherwise;
   `random_walk` starts at `jobs` and moves each epoch by a step drawn uniformly from `± step`
   (the first 8 bytes of `sha256(f"{seed}/{client}/{model}/{k}/demand")`), held in `[0, max_jobs]`;
   then its `shocks` in force in `k` multiply it (`floor(jobs × factor)`, at most MAX_JOBS);
2. the price lowers it (`compute_price_factor`): above `reference_price_per_token` the jobs are
   `floor(base × max(0, 1 − sensitivity_bps/10000 × (price − reference) / reference))`;
3. no job of a model that is not active in `k`, and no more jobs than the client's escrow still pays
   for (its models in file order);
4. the jobs go to the providers with power in `k`, in proportion to their stake (largest
   remainder, ties to the validator earlier in the file), each provider's a contiguous run of the
   client's request ids `e<k>.<demand index>.<n>`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from math import floor
from typing import Any

from chain.crypto import PrivateKey
from chain.tx import MAX_MESSAGES, Msg, MsgFundEscrow, MsgSettleUsage, Receipt, Tokens, sign_receipt

from .scenario import MAX_JOBS, ClientSpec, DemandSpec, Scenario

CLIENT_KEY_SALT = "uoc-sim-client"
REVENUE_FIELDS = ("jobs", "charged", "payout", "fee")


def get_client_key(name: str) -> PrivateKey:
    """The simulated client's key, derived from its name (never a validator's: another salt)."""
    return PrivateKey.from_name(name, CLIENT_KEY_SALT)


@dataclass(frozen=True)
class Job:
    """One planned inference job: who asks, which model, who serves it, its id, tokens and charge."""

    client: str
    model: str
    provider: str
    request_id: str
    tokens_in: int
    tokens_out: int
    charge: int


def compute_walk_step(seed: int, client: str, model: str, epoch: int, step: int) -> int:
    """A random walk's move in `epoch`: uniform in [-step, step], drawn from the scenario seed."""
    draw = int.from_bytes(hashlib.sha256(f"{seed}/{client}/{model}/{epoch}/demand".encode()).digest()[:8], "big")
    return draw % (2 * step + 1) - step


def compute_base_demand(spec: DemandSpec, client: str, seed: int, epochs: int) -> tuple[int, ...]:
    """The jobs a demand asks in each epoch before the price lowers them: its kind's, times its shocks."""
    jobs = compute_kind_demand(spec, client, seed, epochs)
    if not spec.shocks:
        return jobs
    return tuple(compute_shocked_jobs(spec, k, n) for k, n in enumerate(jobs))


def compute_shocked_jobs(spec: DemandSpec, epoch: int, jobs: int) -> int:
    """An epoch's jobs under the demand's shocks in force then: `floor(jobs × their factors)`, at most MAX_JOBS."""
    factor = Fraction(1)
    for shock in spec.shocks:
        if shock.from_epoch <= epoch <= shock.to_epoch:
            factor *= shock.factor
    return jobs if factor == 1 else min(MAX_JOBS, floor(jobs * factor))


def compute_kind_demand(spec: DemandSpec, client: str, seed: int, epochs: int) -> tuple[int, ...]:
    """The jobs a demand's kind asks in each epoch (before shocks and the price)."""
    if spec.kind == "constant":
        return (spec.jobs,) * epochs
    if spec.kind == "ramp":
        span = max(epochs - 1, 1)
        return tuple(spec.jobs + floor(Fraction((spec.to_jobs - spec.jobs) * k, span)) for k in range(epochs))
    if spec.kind == "spike":
        end = spec.peak_epoch + spec.peak_epochs
        return tuple(spec.peak_jobs if spec.peak_epoch <= k < end else spec.jobs for k in range(epochs))
    walk, jobs = [], spec.jobs
    for k in range(epochs):
        if k > 0:
            jobs = min(max(jobs + compute_walk_step(seed, client, spec.model, k, spec.step), 0), spec.max_jobs)
        walk.append(jobs)
    return tuple(walk)


def compute_price_factor(spec: DemandSpec, price_per_token: int) -> Fraction:
    """How much of its demand a client keeps at this price: 1 up to the reference, then falling by
    sensitivity × the relative rise above it, never below 0."""
    reference = spec.reference_price_per_token
    if reference is None or price_per_token <= reference:
        return Fraction(1)
    rise = Fraction(price_per_token - reference, reference)
    return max(Fraction(0), 1 - Fraction(spec.sensitivity_bps, 10_000) * rise)


def compute_demand(spec: DemandSpec, base: int, price_per_token: int) -> int:
    """The jobs asked at this price: the base demand times the price factor, rounded down."""
    return floor(base * compute_price_factor(spec, price_per_token))


def compute_provider_shares(jobs: int, providers: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Split `jobs` over (name, stake) providers in proportion to stake: each its floor, the rest one
    each to the largest remainders (ties: the earlier provider); providers in the given order."""
    total = sum(stake for _, stake in providers)
    exact = [Fraction(jobs * stake, total) for _, stake in providers]
    shares = [floor(x) for x in exact]
    order = sorted(range(len(providers)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: jobs - sum(shares)]:
        shares[i] += 1
    return [(name, n) for (name, _), n in zip(providers, shares)]


def compute_charge(spec: DemandSpec, price_per_token: int) -> int:
    """What one job of a demand costs at this price, as the chain charges it."""
    return (spec.tokens_in + spec.tokens_out) * price_per_token


class DemandPlan:
    """The clients' jobs epoch by epoch: the base demand drawn once, the escrow each client has left."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.base = {
            (client.name, d.model): compute_base_demand(d, client.name, scenario.seed, scenario.epochs)
            for client in scenario.clients
            for d in client.demand
        }
        self.escrow_left = {client.name: client.escrow for client in scenario.clients}

    def plan(self, epoch: int, prices: dict[str, int]) -> list[Job]:
        """The jobs of scenario epoch `epoch`, given the price per token of each active model; clients
        in file order, then their demands, then providers in file order."""
        providers = [(v.name, v.stake) for v in self.scenario.validators if v.is_validator_in(epoch)]
        jobs: list[Job] = []
        for client in self.scenario.clients:
            for index, spec in enumerate(client.demand):
                jobs += self._plan_demand(client, index, spec, epoch, prices, providers)
        return jobs

    def _plan_demand(
        self,
        client: ClientSpec,
        index: int,
        spec: DemandSpec,
        epoch: int,
        prices: dict[str, int],
        providers: list[tuple[str, int]],
    ) -> list[Job]:
        """One demand's jobs in `epoch` (none if its model is not active), as many as the escrow pays."""
        if spec.model not in prices or not providers:
            return []
        price = prices[spec.model]
        charge = compute_charge(spec, price)
        wanted = compute_demand(spec, self.base[(client.name, spec.model)][epoch], price)
        count = min(wanted, self.escrow_left[client.name] // charge) if charge else wanted
        self.escrow_left[client.name] -= count * charge
        out, n = [], 0
        for provider, share in compute_provider_shares(count, providers):
            for _ in range(share):
                request_id = f"e{epoch}.{index}.{n}"
                out.append(Job(client.name, spec.model, provider, request_id, spec.tokens_in, spec.tokens_out, charge))
                n += 1
        return out


def compute_prices(pricing: dict[str, Any]) -> dict[str, int]:
    """The price per token of each active model, from the chain's `pricing` read (query or `GET /v1/pricing`)."""
    return {m["id"]: int(m["price_per_token_str"]) for m in pricing["models"]}


def compute_fund_messages(client: ClientSpec) -> list[Msg]:
    """The client's one transaction of the run, in scenario epoch 0: fund its escrow."""
    return [MsgFundEscrow(client.escrow)]


def compute_receipt(job: Job, provider_address: str, expires_at: int) -> Receipt:
    """The receipt of a job, its ceiling the charge at the epoch's price (attribution: the client)."""
    return Receipt(
        request_id=job.request_id,
        requester=get_client_key(job.client).address,
        provider=provider_address,
        model=job.model,
        tokens=Tokens(job.tokens_in, job.tokens_out),
        price_ceiling=job.charge,
        expires_at=expires_at,
        workforce=job.client,
    )


def compute_settle_message(job: Job, provider_address: str, chain_id: str, expires_at: int) -> MsgSettleUsage:
    """The provider's MsgSettleUsage of a job, with the client's signature of its receipt."""
    receipt = compute_receipt(job, provider_address, expires_at)
    return MsgSettleUsage(receipt, sign_receipt(get_client_key(job.client), chain_id, receipt))


def compute_message_batches(messages: list[Any]) -> list[list[Any]]:
    """Messages in transactions of at most MAX_MESSAGES each."""
    return [messages[i : i + MAX_MESSAGES] for i in range(0, len(messages), MAX_MESSAGES)]


def compute_usage_rows(settlements: list[dict[str, Any]], names: dict[str, str], epoch_offset: int) -> list[list[Any]]:
    """usage.csv's rows: the settlements (as the chain's settlement reads show them) summed by
    (scenario epoch, model, provider name), in that order."""
    totals: dict[tuple[int, str, str], list[int]] = {}
    for s in settlements:
        key = (s["epoch"] - epoch_offset, s["model"], names[s["provider"]])
        row = totals.setdefault(key, [0] * 6)
        for n, value in enumerate(
            (
                1,
                s["tokens"]["in"],
                s["tokens"]["out"],
                s["amountCharged"]["amount"],
                s["providerPayout"]["amount"],
                s["exchangeFee"]["amount"],
            )
        ):
            row[n] += value
    return [[*key, *totals[key]] for key in sorted(totals)]


def compute_revenue_summary(rows: list[list[Any]], providers: list[str]) -> dict[str, dict[str, int]]:
    """summary.json's `revenue`: each provider's jobs, charged, payout and fee over the run."""
    revenue = {name: dict.fromkeys(REVENUE_FIELDS, 0) for name in providers}
    for row in rows:
        entry = revenue[row[2]]
        entry["jobs"] += row[3]
        entry["charged"] += row[6]
        entry["payout"] += row[7]
        entry["fee"] += row[8]
    return revenue

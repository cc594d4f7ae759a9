"""Demand in the simulator (devnet/demand.py): the jobs the clients ask each epoch, how the price
lowers them, how the escrow caps them, and how they are split over the providers."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.tx import Receipt, compute_receipt_sign_bytes
from devnet.demand import (
    DemandPlan,
    Job,
    compute_base_demand,
    compute_demand,
    compute_message_batches,
    compute_price_factor,
    compute_provider_shares,
    compute_revenue_summary,
    compute_settle_message,
    compute_usage_rows,
    get_client_key,
)
from devnet.scenario import DemandSpec, parse_scenario
from devnet.simulate import get_key


def demand(kind: str = "constant", jobs: int = 5, **extra: int) -> DemandSpec:
    return DemandSpec(model="m", kind=kind, jobs=jobs, tokens_in=10, tokens_out=5, **extra)


@pytest.mark.parametrize(
    ("spec", "epochs", "expected"),
    [
        pytest.param(demand(jobs=3), 4, (3, 3, 3, 3), id="constant"),
        pytest.param(demand("ramp", jobs=0, to_jobs=10), 6, (0, 2, 4, 6, 8, 10), id="ramp up"),
        pytest.param(demand("ramp", jobs=10, to_jobs=0), 6, (10, 8, 6, 4, 2, 0), id="ramp down"),
        pytest.param(demand("ramp", jobs=1, to_jobs=4), 3, (1, 2, 4), id="ramp rounds down"),
        pytest.param(demand("ramp", jobs=7, to_jobs=0), 1, (7,), id="ramp of one epoch stays at jobs"),
        pytest.param(
            demand("spike", jobs=1, peak_jobs=9, peak_epoch=2, peak_epochs=2), 6, (1, 1, 9, 9, 1, 1), id="spike"
        ),
        pytest.param(demand("spike", jobs=2, peak_jobs=0, peak_epoch=0), 3, (0, 2, 2), id="a dip is a spike down"),
    ],
)
def test_base_demand_follows_its_kind_epoch_by_epoch(spec: DemandSpec, epochs: int, expected: tuple[int, ...]) -> None:
    assert compute_base_demand(spec, "acme", seed=1, epochs=epochs) == expected


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    jobs=st.integers(0, 50),
    step=st.integers(1, 20),
    headroom=st.integers(0, 50),
    epochs=st.integers(1, 40),
)
def test_random_walk_starts_at_jobs_moves_at_most_step_and_stays_in_0_to_max_jobs(
    seed: int, jobs: int, step: int, headroom: int, epochs: int
) -> None:
    spec = demand("random_walk", jobs=jobs, step=step, max_jobs=max(jobs, 1) + headroom)
    walk = compute_base_demand(spec, "acme", seed, epochs)
    assert walk[0] == jobs and len(walk) == epochs
    assert all(0 <= w <= spec.max_jobs for w in walk)
    assert all(abs(b - a) <= step for a, b in zip(walk, walk[1:]))
    assert compute_base_demand(spec, "acme", seed, epochs) == walk


def test_random_walk_is_drawn_from_the_seed_and_the_client() -> None:
    spec = demand("random_walk", jobs=50, step=10, max_jobs=100)
    walks = {compute_base_demand(spec, client, seed, 30) for client in ("acme", "beta") for seed in (1, 2)}
    assert len(walks) == 4


@pytest.mark.parametrize(
    ("reference", "sensitivity_bps", "price", "factor"),
    [
        pytest.param(None, 0, 10**9, Fraction(1), id="no reference: the price never lowers demand"),
        pytest.param(1000, 10_000, 900, Fraction(1), id="below the reference"),
        pytest.param(1000, 10_000, 1000, Fraction(1), id="at the reference"),
        pytest.param(1000, 10_000, 1100, Fraction(9, 10), id="10% above, sensitivity 1: 10% fewer"),
        pytest.param(1000, 20_000, 1100, Fraction(8, 10), id="10% above, sensitivity 2: 20% fewer"),
        pytest.param(1000, 5_000, 1500, Fraction(3, 4), id="50% above, sensitivity 0.5: 25% fewer"),
        pytest.param(1000, 10_000, 2000, Fraction(0), id="double the reference, sensitivity 1: none"),
        pytest.param(1000, 10_000, 5000, Fraction(0), id="far above: none, never negative"),
        pytest.param(1000, 0, 5000, Fraction(1), id="sensitivity 0: never lowers"),
    ],
)
def test_price_factor_falls_linearly_above_the_reference(
    reference: int | None, sensitivity_bps: int, price: int, factor: Fraction
) -> None:
    spec = demand(reference_price_per_token=reference, sensitivity_bps=sensitivity_bps)  # type: ignore[arg-type]
    assert compute_price_factor(spec, price) == factor


def test_demand_at_a_price_is_the_base_times_the_factor_rounded_down() -> None:
    spec = demand(reference_price_per_token=1000, sensitivity_bps=10_000)
    assert [compute_demand(spec, 7, price) for price in (1000, 1100, 1500, 1999, 2000)] == [7, 6, 3, 0, 0]


@pytest.mark.parametrize(
    ("jobs", "providers", "expected"),
    [
        pytest.param(10, [("a", 1), ("b", 1)], [("a", 5), ("b", 5)], id="equal stakes"),
        pytest.param(3, [("a", 1), ("b", 1)], [("a", 2), ("b", 1)], id="a tie goes to the earlier provider"),
        pytest.param(3, [("a", 100), ("b", 300)], [("a", 1), ("b", 2)], id="largest remainder"),
        pytest.param(1, [("a", 400), ("b", 300), ("c", 200)], [("a", 1), ("b", 0), ("c", 0)], id="one job"),
        pytest.param(0, [("a", 1)], [("a", 0)], id="no jobs"),
    ],
)
def test_jobs_are_split_over_providers_in_proportion_to_stake(
    jobs: int, providers: list[tuple[str, int]], expected: list[tuple[str, int]]
) -> None:
    assert compute_provider_shares(jobs, providers) == expected


@settings(max_examples=200, deadline=None)
@given(jobs=st.integers(0, 10_000), stakes=st.lists(st.integers(1, 10**12), min_size=1, max_size=30))
def test_every_job_goes_to_one_provider_each_within_one_job_of_its_stake_share(jobs: int, stakes: list[int]) -> None:
    providers = [(f"v{i}", stake) for i, stake in enumerate(stakes)]
    shares = compute_provider_shares(jobs, providers)
    assert [name for name, _ in shares] == [name for name, _ in providers]
    assert sum(n for _, n in shares) == jobs
    total = sum(stakes)
    assert all(abs(n - Fraction(jobs * stake, total)) < 1 for (_, n), stake in zip(shares, stakes))


PLAN = """
seed = 3
epochs = 4
epoch_length = 2

[[validators]]
name = "alice"
stake = 300
strategy = "fixed"
price = 100

[[validators]]
name = "bob"
stake = 100
strategy = "fixed"
price = 100
join_epoch = 1
leave_epoch = 2

[[proposals]]
at_epoch = 0
proposer = "alice"
kind = "register_model"
id = "m"
units_of_compute_per_token = 1
votes = { alice = "yes" }

[[clients]]
name = "acme"
escrow = 100000

[[clients.demand]]
model = "m"
kind = "constant"
jobs = 8
tokens_in = 60
tokens_out = 40
"""


def test_plan_gives_no_job_of_a_model_not_active_and_none_beyond_the_escrow() -> None:
    plan = DemandPlan(parse_scenario(PLAN))
    assert plan.plan(0, {}) == []
    first = plan.plan(1, {"m": 50})  # 8 jobs of 100 tokens at 50: 40,000 of the 100,000
    second = plan.plan(2, {"m": 100})  # 8 jobs at 10,000 each, but 60,000 left: 6
    assert (len(first), len(second)) == (8, 6)
    assert plan.escrow_left == {"acme": 0}
    assert plan.plan(3, {"m": 1}) == []


@settings(max_examples=100, deadline=None)
@given(prices=st.lists(st.one_of(st.none(), st.integers(1, 100_000)), min_size=4, max_size=4))
def test_plan_never_charges_a_client_more_than_its_escrow_whatever_the_prices(prices: list[int | None]) -> None:
    plan = DemandPlan(parse_scenario(PLAN))
    charged = 0
    for epoch, price in enumerate(prices):
        jobs = plan.plan(epoch, {} if price is None else {"m": price})
        assert all(job.charge == 100 * price for job in jobs)  # type: ignore[operator]
        charged += sum(job.charge for job in jobs)
    assert charged == 100_000 - plan.escrow_left["acme"] and plan.escrow_left["acme"] >= 0


def test_plan_serves_with_the_providers_that_have_power_in_the_epoch() -> None:
    plan = DemandPlan(parse_scenario(PLAN))
    providers = [{job.provider for job in plan.plan(epoch, {"m": 1})} for epoch in range(4)]
    # bob bonds in epoch 1 (power from 2) and unbonds in epoch 2 (power until its end)
    assert providers == [{"alice"}, {"alice"}, {"alice", "bob"}, {"alice"}]


def test_plan_request_ids_are_unique_per_client_and_name_the_epoch() -> None:
    plan = DemandPlan(parse_scenario(PLAN))
    jobs = [job for epoch in range(4) for job in plan.plan(epoch, {"m": 1})]
    assert len({job.request_id for job in jobs}) == len(jobs) == 32
    assert jobs[0].request_id == "e0.0.0" and jobs[-1].request_id == "e3.0.7"
    assert all(job.charge == 100 and (job.tokens_in, job.tokens_out) == (60, 40) for job in jobs)


def test_settle_message_carries_the_clients_signature_of_the_receipt() -> None:
    job = Job("acme", "m", "alice", "e2.0.1", 60, 40, 5000)
    provider = get_key("alice").address
    msg = compute_settle_message(job, provider, "uoc-test", 99)
    receipt: Receipt = msg.receipt
    assert (receipt.request_id, receipt.provider, receipt.price_ceiling, receipt.expires_at) == (
        "e2.0.1",
        provider,
        5000,
        99,
    )
    assert receipt.requester == get_client_key("acme").address and receipt.workforce == "acme"
    assert get_client_key("alice").address != provider  # a client named like a validator has its own key
    key = get_client_key("acme")
    assert key.sign(compute_receipt_sign_bytes("uoc-test", receipt)) == msg.requester_signature


def test_messages_are_batched_at_most_32_to_a_transaction() -> None:
    assert [len(b) for b in compute_message_batches(list(range(70)))] == [32, 32, 6]
    assert compute_message_batches([]) == []


def settlement(epoch: int, model: str, provider: str, tokens: tuple[int, int], charged: int, fee: int) -> dict:
    money = lambda amount: {"amount": amount, "currency": "NGONKA"}  # noqa: E731
    return {
        "epoch": epoch,
        "model": model,
        "provider": provider,
        "tokens": {"in": tokens[0], "out": tokens[1]},
        "amountCharged": money(charged),
        "providerPayout": money(charged - fee),
        "exchangeFee": money(fee),
    }


def test_usage_rows_sum_settlements_by_epoch_model_and_provider_in_scenario_epochs() -> None:
    settlements = [
        settlement(7, "m", "addr-b", (10, 5), 150, 3),
        settlement(6, "m", "addr-a", (1, 1), 20, 1),
        settlement(7, "m", "addr-b", (20, 5), 250, 5),
        settlement(7, "l", "addr-a", (2, 2), 40, 0),
    ]
    rows = compute_usage_rows(settlements, {"addr-a": "alice", "addr-b": "bob"}, epoch_offset=4)
    assert rows == [
        [2, "m", "alice", 1, 1, 1, 20, 19, 1],
        [3, "l", "alice", 1, 2, 2, 40, 40, 0],
        [3, "m", "bob", 2, 30, 10, 400, 392, 8],
    ]
    assert compute_revenue_summary(rows, ["alice", "bob", "carol"]) == {
        "alice": {"jobs": 2, "charged": 60, "payout": 59, "fee": 1},
        "bob": {"jobs": 2, "charged": 400, "payout": 392, "fee": 8},
        "carol": {"jobs": 0, "charged": 0, "payout": 0, "fee": 0},
    }

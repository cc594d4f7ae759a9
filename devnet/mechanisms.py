"""Pricing mechanisms side by side (issue 19, item 6): `uocd devnet simulate S.toml --pricing voted,dynamic,hybrid`.

Each mechanism is the scenario with `params.pricing_mode` set to it, run on the in-process engine
with the same seed, validators, proposals and clients (the demand before the price is drawn from the
scenario alone, so only the price and what it does to the price-sensitive demand differ). Each run
writes its usual files in OUT/<mechanism>/; then OUT/mechanisms.csv holds one row per (mechanism,
epoch, active model):

- `price`: ngonka per token that the epoch's settlements paid (the price in force in its last block,
  where the simulator settles every job);
- `utilization`: the epoch's settled tokens / (capacity per block × epoch_length), the capacity as
  `chain.dynamic` computes it (the model's throughput_per_nonce, or default_throughput_per_nonce,
  × the epoch's total power / power_per_nonce), a decimal string rounded down to 6 places: the same
  measure for every mechanism, so they compare;
- `revenue`: ngonka charged for the model's jobs in the epoch (providers' payouts plus protocol fees).

OUT/mechanisms.png draws price and utilization against epoch, one column of panels per mechanism,
the demand shocks (a demand's `shocks` and a `spike` demand's peak) shaded.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from chain.dynamic import compute_decimal_text, compute_model_capacity
from chain.params import PRICING_MODES

from .scenario import Scenario

MECHANISM_COLUMNS = ("epoch", "mechanism", "model", "price", "utilization", "revenue")


def parse_mechanisms(text: str) -> tuple[str, ...]:
    """`voted,dynamic,hybrid` (any non-empty subset, each once), or ValueError naming the bad name."""
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in PRICING_MODES:
            raise ValueError(f"unknown pricing mechanism {name!r}; choose from {', '.join(PRICING_MODES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"each pricing mechanism at most once, got {text!r}")
    return tuple(names)


def compute_mechanism_scenario(scenario: Scenario, mechanism: str) -> Scenario:
    """The scenario with its chain params' pricing_mode set to `mechanism`."""
    params = {**dict(scenario.chain_params), "pricing_mode": mechanism}
    return replace(scenario, chain_params=tuple(sorted(params.items())))


def compute_mechanism_rows(
    scenario: Scenario,
    mechanism: str,
    prices: list[dict[str, int]],
    models: list[tuple[int, list[dict[str, Any]]]],
    history: list[dict[str, Any]],
    usage: list[list[Any]] | None,
) -> list[list[Any]]:
    """mechanisms.csv's rows of one run: per epoch and model active in it, the price its settlements
    paid, its utilization and its revenue."""
    params = scenario.params
    active = dict(models)
    power = {record["epoch"]: record["total_power"] for record in history}
    tokens: dict[tuple[int, str], int] = {}
    charged: dict[tuple[int, str], int] = {}
    for epoch, model, _provider, _jobs, tokens_in, tokens_out, amount, *_ in usage or []:
        tokens[(epoch, model)] = tokens.get((epoch, model), 0) + tokens_in + tokens_out
        charged[(epoch, model)] = charged.get((epoch, model), 0) + amount
    rows = []
    for epoch, by_model in enumerate(prices):
        specs = {m["id"]: m for m in active.get(epoch, [])}
        for model in sorted(by_model):
            capacity = compute_model_capacity(specs.get(model, {}), power.get(epoch, 0), params)
            utilization = Fraction(tokens.get((epoch, model), 0), capacity * params.epoch_length)
            rows.append(
                [
                    epoch,
                    mechanism,
                    model,
                    by_model[model],
                    compute_decimal_text(utilization),
                    charged.get((epoch, model), 0),
                ]
            )
    return rows


def compute_shock_spans(scenario: Scenario) -> list[tuple[int, int, str]]:
    """The demand shocks as (first epoch, last epoch, label): each demand's `shocks` and each `spike`
    demand's peak, in file order."""
    spans = []
    for client in scenario.clients:
        for spec in client.demand:
            if spec.kind == "spike":
                last = spec.peak_epoch + spec.peak_epochs - 1
                spans.append((spec.peak_epoch, last, f"{client.name}/{spec.model} spike"))
            for shock in spec.shocks:
                factor = f"{float(shock.factor):g}"
                spans.append((shock.from_epoch, shock.to_epoch, f"{client.name}/{spec.model} ×{factor}"))
    return spans


def write_mechanism_files(out: Path, scenario: Scenario, mechanisms: tuple[str, ...], rows: list[list[Any]]) -> None:
    """OUT/mechanisms.csv and OUT/mechanisms.png."""
    from .plots import plot_mechanisms

    with (out / "mechanisms.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MECHANISM_COLUMNS)
        writer.writerows(rows)
    title = f"{Path(scenario.path).name}: pricing mechanisms on the same demand (seed {scenario.seed})"
    plot_mechanisms(out / "mechanisms.png", scenario, mechanisms, rows, compute_shock_spans(scenario), title)


def run_mechanisms(
    scenario: Scenario, out: Path, mechanisms: tuple[str, ...], *, progress: bool | None = None
) -> dict[str, dict[str, Any]]:
    """Run the scenario once per mechanism (OUT/<mechanism>/), then write the comparison; return each
    run's summary."""
    from .simulate import run_inproc_result

    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[Any]] = []
    summaries = {}
    for mechanism in mechanisms:
        variant = compute_mechanism_scenario(scenario, mechanism)
        result = run_inproc_result(variant, out / mechanism, progress=progress)
        summaries[mechanism] = result.summary
        rows += compute_mechanism_rows(variant, mechanism, result.prices, result.models, result.history, result.usage)
    write_mechanism_files(out, scenario, mechanisms, rows)
    return summaries

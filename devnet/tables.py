"""The tidy tables of a run: one row per epoch, per validator and epoch, per model and epoch, per
proposal, and one summary row, each a list of dicts keyed by the columns of `TABLES`.

The reference a price is judged against is the honest true cost: the lower stake-weighted median of
the `true_cost` of the honest validators with power in the epoch whose ballot set the price (what
the price would be if every honest provider voted its cost without noise and nobody else voted).
`price_error_bps` is the price's signed distance from it in basis points of it.

Types: every count, amount and epoch is an integer column (int64; a missing value is null, never a
float), flags are booleans, ratios (bps) are float64. An amount of 2^63 ngonka or more (only a
model's price per token can reach it) does not fit int64 and is written as null.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from chain.median import weighted_median

from .scenario import Scenario

INT64_MAX = 2**63 - 1

# table → (column, type) in file order; the run's own columns (run, seed, swept parameters) come first
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "epochs": (
        ("epoch", "int"),
        ("price", "int"),
        ("honest_true_cost", "int"),
        ("price_error_bps", "float"),
        ("total_power", "int"),
        ("voters", "int"),
        ("non_voters", "int"),
        ("min_vote", "int"),
        ("max_vote", "int"),
        ("fees_collected", "int"),
    ),
    "votes": (
        ("epoch", "int"),
        ("validator", "str"),
        ("strategy", "str"),
        ("power", "int"),
        ("vote", "int"),
        ("vote_epoch", "int"),
        ("fresh", "bool"),
        ("price", "int"),
        ("distance", "int"),
        ("distance_bps", "float"),
        ("jailed", "bool"),
        ("slashes", "int"),
    ),
    "models": (
        ("epoch", "int"),
        ("model", "str"),
        ("units_of_compute_per_token", "int"),
        ("price_per_token", "int"),
    ),
    "proposals": (
        ("id", "int"),
        ("model", "str"),
        ("kind", "str"),
        ("submitted_epoch", "int"),
        ("status", "str"),
        ("yes", "int"),
        ("no", "int"),
        ("abstain", "int"),
        ("no_with_veto", "int"),
    ),
    "runs": (
        ("epochs", "int"),
        ("final_height", "int"),
        ("final_price", "int"),
        ("honest_true_cost", "int"),
        ("final_price_error_bps", "float"),
        ("mean_abs_price_error_bps", "float"),
        ("max_abs_price_error_bps", "float"),
        ("epochs_outside_honest_range", "int"),
        ("txs_committed", "int"),
        ("txs_rejected", "int"),
        ("deposits_burned", "int"),
        ("final_app_hash", "str"),
        ("elapsed_seconds", "float"),
    ),
}
KINDS = {"RegisterModel": "register_model", "RemoveModel": "remove_model"}


def compute_true_cost(scenario: Scenario, epoch: int) -> int | None:
    """The honest true cost of `epoch`: the lower stake-weighted median of the true costs of the
    honest validators with power in it; None if none has."""
    return weighted_median(
        (v.true_cost, v.stake) for v in scenario.validators if v.strategy == "honest" and v.is_validator_in(epoch)
    )


def compute_error_bps(price: int, reference: int | None) -> float | None:
    """The signed distance of `price` from `reference` in bps of the reference (None without one)."""
    if not reference:
        return None
    return float(Fraction(price - reference, reference) * 10_000)


def compute_epoch_rows(scenario: Scenario, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per history record (row 0 is genesis): the price in force in the epoch, against the
    honest true cost of the epoch before, whose ballot set it."""
    rows = []
    for record in history:
        true_cost = compute_true_cost(scenario, max(record["epoch"] - 1, 0))
        rows.append(
            {
                **{column: record.get(column) for column, _ in TABLES["epochs"]},
                "honest_true_cost": true_cost,
                "price_error_bps": compute_error_bps(record["price"], true_cost) if record["epoch"] else None,
            }
        )
    return rows


def compute_vote_rows(
    strategies: dict[str, str], epoch: int, ballot: list[dict[str, Any]], price: int | None
) -> list[dict[str, Any]]:
    """One row per validator at an epoch's end: its power and vote in force in the ballot that set the
    next epoch's price (`price`, None if no record has it), whether it was cast in this epoch (`fresh`),
    its distance from that price. `strategies`: each validator's strategy, by name."""
    rows = []
    for entry in ballot:
        vote = entry["vote"]
        rows.append(
            {
                "epoch": epoch,
                "validator": entry["validator"],
                "strategy": strategies[entry["validator"]],
                "power": entry["power"],
                "vote": vote,
                "vote_epoch": entry["vote_epoch"],
                "fresh": vote is not None and entry["vote_epoch"] == epoch,
                "price": price,
                "distance": None if vote is None or price is None else vote - price,
                "distance_bps": None if vote is None or price is None else compute_error_bps(vote, price),
                "jailed": entry["jailed"],
                "slashes": entry["slashes"],
            }
        )
    return rows


def compute_model_rows(models: list[tuple[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per model active in each epoch (its price per token null past int64)."""
    rows = []
    for epoch, active in models:
        for m in active:
            price = int(m["price_per_token_str"])
            rows.append(
                {
                    "epoch": epoch,
                    "model": m["id"],
                    "units_of_compute_per_token": m["units_of_compute_per_token"],
                    "price_per_token": price if price <= INT64_MAX else None,
                }
            )
    return rows


def compute_proposal_rows(proposals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per proposal with its status and final (or live) tally."""
    rows = []
    for p in proposals:
        tally = p["tally"] or {}
        rows.append(
            {
                "id": p["id"],
                "model": p["content"]["id"],
                "kind": KINDS[p["content"]["@type"]],
                "submitted_epoch": p["submit_epoch"],
                "status": p["status"],
                **{option: tally.get(option) for option in ("yes", "no", "abstain", "no_with_veto")},
            }
        )
    return rows


def compute_run_row(summary: dict[str, Any], epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's summary row: final price and its error, the mean and largest |error| over the
    epochs after genesis, and what the chain committed."""
    errors = [abs(r["price_error_bps"]) for r in epochs if r["price_error_bps"] is not None]
    last = epochs[-1]
    return {
        "epochs": summary["epochs"],
        "final_height": summary["final_height"],
        "final_price": summary["final_price"],
        "honest_true_cost": last["honest_true_cost"],
        "final_price_error_bps": last["price_error_bps"],
        "mean_abs_price_error_bps": sum(errors) / len(errors) if errors else None,
        "max_abs_price_error_bps": max(errors) if errors else None,
        "epochs_outside_honest_range": summary["price_vs_honest"]["epochs_outside_honest_range"],
        "txs_committed": summary["txs_committed"],
        "txs_rejected": summary["txs_rejected"],
        "deposits_burned": summary["deposits_burned"],
        "final_app_hash": summary["final_app_hash"],
        "elapsed_seconds": summary["elapsed_seconds"],
    }

"""Simulation outputs: epochs.csv, models.csv, proposals.csv, summary.json, price.png and models.png;
with clients, usage.csv and revenue.png too."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

EPOCH_COLUMNS = (
    "epoch",
    "price",
    "total_power",
    "voters",
    "non_voters",
    "min_vote",
    "max_vote",
    "fees_collected",  # ngonka of fees the epoch's transactions paid (0 until the epoch has ended)
    "chain_epoch",
)
MODEL_COLUMNS = ("epoch", "model", "units_of_compute_per_token", "price_per_token", "chain_epoch")
PROPOSAL_COLUMNS = ("id", "model", "kind", "submitted_epoch", "status", "yes", "no", "abstain", "no_with_veto")
KINDS = {"RegisterModel": "register_model", "RemoveModel": "remove_model"}
USAGE_COLUMNS = ("epoch", "model", "provider", "jobs", "tokens_in", "tokens_out", "charged", "payout", "fee")
MAX_PLOTTED_PROVIDERS = 8  # revenue.png shows the providers paid most; the others as one band


def compute_chain_epoch(epoch: int, epoch_offset: int) -> int:
    """The chain epoch of scenario epoch `epoch`: scenario epoch k ≥ 1 runs in chain epoch k + offset
    (the network engine starts at the first boundary after its devnet is up); row 0 is genesis."""
    return 0 if epoch == 0 else epoch + epoch_offset


def write_epochs_csv(path: Path, history: list[dict[str, Any]], epoch_offset: int = 0) -> None:
    """One row per epoch record; a missing min/max vote is an empty cell; `chain_epoch` last."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(EPOCH_COLUMNS)
        for record in history:
            row = {**record, "chain_epoch": compute_chain_epoch(record["epoch"], epoch_offset)}
            writer.writerow(["" if row[c] is None else row[c] for c in EPOCH_COLUMNS])


def write_models_csv(path: Path, models: list[tuple[int, list[dict[str, Any]]]], epoch_offset: int = 0) -> None:
    """One row per model active in each epoch, from (epoch, active models) pairs; `chain_epoch` last."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MODEL_COLUMNS)
        for epoch, active in models:
            chain_epoch = compute_chain_epoch(epoch, epoch_offset)
            for m in active:
                writer.writerow(
                    [epoch, m["id"], m["units_of_compute_per_token"], m["price_per_token_str"], chain_epoch]
                )


def write_proposals_csv(path: Path, proposals: list[dict[str, Any]]) -> None:
    """One row per proposal with its status and final (or live) tally; no tally is empty cells."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(PROPOSAL_COLUMNS)
        for p in proposals:
            tally = p["tally"] or {}
            content = p["content"]
            row = [p["id"], content["id"], KINDS[content["@type"]], p["submit_epoch"], p["status"]]
            writer.writerow(row + [tally.get(option, "") for option in PROPOSAL_COLUMNS[5:]])


def compute_scenario_summary(scenario: Any, engine: str) -> dict[str, Any]:
    """The summary fields that describe the run itself, the same for both engines."""
    return {
        "engine": engine,
        "scenario": scenario.path,
        "seed": scenario.seed,
        "chain_id": scenario.chain_id,
        "epochs": scenario.epochs,
        "epoch_length": scenario.epoch_length,
        "validators": len(scenario.validators),
    }


def compute_governance_summary(
    models: list[tuple[int, list[dict[str, Any]]]], proposals: list[dict[str, Any]]
) -> dict[str, Any]:
    """The summary fields of governance: the final models, proposals by status, deposits burned."""
    return {
        "final_models": {m["id"]: m["units_of_compute_per_token"] for m in models[-1][1]},
        "proposals": {s: sum(p["status"] == s for p in proposals) for s in sorted({p["status"] for p in proposals})},
        "deposits_burned": sum(p["total_deposit"] for p in proposals if p["burned"]),
    }


def write_run_files(
    out: Path,
    title: str,
    seed: int,
    history: list[dict[str, Any]],
    models: list[tuple[int, list[dict[str, Any]]]],
    proposals: list[dict[str, Any]],
    summary: dict[str, Any],
) -> None:
    """Every output file of a run: the three CSVs, summary.json, price.png and (if any model was
    ever active) models.png; `title` names the run in the plots, `summary["epoch_offset"]` maps its
    epochs to the chain's."""
    write_epochs_csv(out / "epochs.csv", history, summary["epoch_offset"])
    write_models_csv(out / "models.csv", models, summary["epoch_offset"])
    write_proposals_csv(out / "proposals.csv", proposals)
    write_summary(out / "summary.json", summary)
    plot_prices(out / "price.png", history, f"{title}: unit-of-compute price, seed {seed}")
    (out / "models.png").unlink(missing_ok=True)
    plot_models(out / "models.png", models, f"{title}: price per token of the active models")


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """The run summary as pretty, key-sorted JSON."""
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def plot_prices(path: Path, history: list[dict[str, Any]], title: str) -> None:
    """The price over epochs against the spread (min to max) of the votes in force."""
    epochs = [r["epoch"] for r in history]
    prices = [r["price"] for r in history]
    spread = [(r["epoch"], r["min_vote"], r["max_vote"]) for r in history if r["min_vote"] is not None]
    fig, ax = new_plot()
    if spread:
        xs, lows, highs = zip(*spread)
        ax.fill_between(xs, lows, highs, step="post", alpha=0.25, color="tab:orange", label="votes in force (min–max)")
    ax.step(
        epochs, prices, where="post", color="tab:blue", linewidth=2, label="unit-of-compute price (weighted median)"
    )
    values = [v for v in prices + [x for s in spread for x in s[1:]] if v]
    if values and max(values) > 100 * min(values):
        ax.set_yscale("log")
    save_plot(fig, ax, path, "ngonka per unit of compute", title)


def plot_models(path: Path, models: list[tuple[int, list[dict[str, Any]]]], title: str) -> None:
    """Each model's price per token over the epochs in which it is active (nothing if none ever is)."""
    series: dict[str, list[tuple[int, int]]] = {}
    for epoch, active in models:
        for m in active:
            series.setdefault(m["id"], []).append((epoch, int(m["price_per_token_str"])))
    if not series:
        return
    fig, ax = new_plot()
    for model in sorted(series):
        epochs, prices = zip(*series[model])
        ax.step(epochs, prices, where="post", linewidth=2, marker=".", label=model)
    ax.set_xlim(models[0][0], models[-1][0])
    save_plot(fig, ax, path, "ngonka per token", title)


def write_usage_files(out: Path, title: str, rows: list[list[Any]] | None, providers: list[str], epochs: int) -> None:
    """usage.csv (one row per epoch, model and provider that settled jobs; money in ngonka) and
    revenue.png; with no clients (rows None) neither, and a previous run's are removed."""
    for name in ("usage.csv", "revenue.png"):
        (out / name).unlink(missing_ok=True)
    if rows is None:
        return
    with (out / "usage.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(USAGE_COLUMNS)
        writer.writerows(rows)
    plot_revenue(
        out / "revenue.png", rows, providers, epochs, f"{title}: provider payouts (charge − protocol fee) per epoch"
    )


def plot_revenue(path: Path, rows: list[list[Any]], providers: list[str], epoch_count: int, title: str) -> None:
    """Each provider's payout per epoch of the scenario (the charge less the protocol fee), stacked, the
    providers paid most first and the others as one band; the protocol fees as a line."""
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    epochs = list(range(epoch_count))
    payout: dict[str, dict[int, int]] = {name: {} for name in providers}
    fees: dict[int, int] = {}
    for epoch, _, provider, *_rest, paid, fee in rows:
        payout[provider][epoch] = payout[provider].get(epoch, 0) + paid
        fees[epoch] = fees.get(epoch, 0) + fee
    # the providers paid most first, ties in file order (the sort is stable)
    ranked = sorted((name for name in providers if payout[name]), key=lambda n: -sum(payout[n].values()))
    shown, rest = ranked[:MAX_PLOTTED_PROVIDERS], ranked[MAX_PLOTTED_PROVIDERS:]
    series = [(name, [payout[name].get(e, 0) for e in epochs]) for name in shown]
    if rest:
        others = [sum(payout[n].get(e, 0) for n in rest) for e in epochs]
        series.append((f"{len(rest)} other providers", others))
    fig, ax = new_plot()
    bottom = [0] * len(epochs)
    for name, values in series:
        ax.bar(epochs, values, bottom=bottom, label=f"{name} (payout)")
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.plot(epochs, [fees.get(e, 0) for e in epochs], color="black", marker="o", label="protocol fees (all providers)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlim(-0.6, epoch_count - 0.4)
    ax.set_ylim(0, max(bottom + [1]) * 1.05)
    save_plot(fig, ax, path, "ngonka per epoch", title, legend_outside=True)


def new_plot() -> tuple[Any, Any]:
    """A figure and axes of the size every plot here uses (headless backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(9, 4.5), dpi=110)


def save_plot(
    fig: Any, ax: Any, path: Path, ylabel: str, title: str, xlabel: str = "epoch", *, legend_outside: bool = False
) -> None:
    """Label the axes, add grid and legend (beside the axes if `legend_outside`: it never covers the
    data), write the PNG and free the figure."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if legend_outside:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

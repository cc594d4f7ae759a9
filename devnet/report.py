"""Simulation outputs: epochs.csv, models.csv, proposals.csv, summary.json, price.png and models.png;
with clients, usage.csv and revenue.png too."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from .plots import VoteMarks, plot_models, plot_revenue, plot_run_prices
from .scenario import Scenario
from .tables import TABLES, compute_epoch_rows

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
    scenario: Scenario,
    history: list[dict[str, Any]],
    models: list[tuple[int, list[dict[str, Any]]]],
    proposals: list[dict[str, Any]],
    summary: dict[str, Any],
    votes: VoteMarks | None = None,
) -> None:
    """Every output file of a run but votes.csv: the three CSVs, summary.json, price.png and (if any
    model was ever active) models.png. With `votes` (the in-process engine, whose `VotesWriter` wrote
    votes.csv as it ran) price.png draws the honest and the other votes apart; without, a previous
    run's votes.csv is removed. `title` names the run in the plots, `summary["epoch_offset"]` maps its
    epochs to the chain's."""
    write_epochs_csv(out / "epochs.csv", history, summary["epoch_offset"])
    write_models_csv(out / "models.csv", models, summary["epoch_offset"])
    write_proposals_csv(out / "proposals.csv", proposals)
    write_summary(out / "summary.json", summary)
    if votes is None:
        (out / "votes.csv").unlink(missing_ok=True)
    plot_run_prices(
        out / "price.png",
        scenario,
        compute_epoch_rows(scenario, history),
        votes,
        f"{title}: unit-of-compute price, seed {scenario.seed}",
    )
    (out / "models.png").unlink(missing_ok=True)
    plot_models(out / "models.png", models, f"{title}: price per token of the active models")


class VotesWriter:
    """votes.csv written epoch by epoch as a run goes (`write`: one epoch's rows), with what price.png
    draws of the votes (`marks`), so a long run holds neither its ballots nor its rows. The rows go to
    votes.csv.part, which replaces votes.csv when the run ends without an exception and is removed if not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.marks = VoteMarks()
        self.columns = [c for c, _ in TABLES["votes"]]
        self.file = self.part.open("w", newline="")
        self.csv = csv.writer(self.file, lineterminator="\n")
        self.csv.writerow(self.columns)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append one epoch's rows."""
        for row in rows:
            self.csv.writerow([format_cell(row[c]) for c in self.columns])
            self.marks.add(row)

    def __enter__(self) -> VotesWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.file.close()
        if kind is None:
            os.replace(self.part, self.path)
        else:
            self.part.unlink(missing_ok=True)


def format_cell(value: Any) -> Any:
    """A CSV cell: null as empty, booleans as true/false, the rest as Python writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """The run summary as pretty, key-sorted JSON."""
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


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

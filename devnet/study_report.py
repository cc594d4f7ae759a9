"""What a study's outputs say across runs: `uocd devnet report DIR` and the study's plots.

The figure of merit is each run's price error against the honest true cost (`devnet.tables`): the
mean |error| over the epochs after genesis, and the error of the final price, in bps of the honest
true cost. The report gives their median and 5–95% range (linear interpolation between runs) over
all runs, and per value of each swept parameter (pooling the other parameters and the seeds).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import DevnetError
from .plots import plot_study_errors, plot_study_prices

METRICS = (("mean_abs_price_error_bps", "mean_abs_error"), ("final_price_error_bps", "final_error"))


def read_study(out: Path) -> dict[str, Any]:
    """A study's manifest (study.json)."""
    try:
        manifest = json.loads((out / "study.json").read_text())
    except FileNotFoundError:
        raise DevnetError(
            f"{out}: no study here (study.json is missing); run `uocd devnet simulate S.toml --runs N --out {out}`"
        ) from None
    except (OSError, ValueError) as exc:
        raise DevnetError(f"{out}/study.json: cannot read it: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sweep"), dict):
        raise DevnetError(f"{out}/study.json: not a study manifest (no sweep table)")
    return manifest


def read_table(out: Path, name: str, columns: list[str]) -> Any:
    """Columns of OUT/<name>.parquet as a pandas frame (integers as nullable Int64)."""
    import pandas as pd

    path = out / f"{name}.parquet"
    try:
        return pd.read_parquet(path, columns=columns)
    except FileNotFoundError:
        raise DevnetError(f"{path}: missing; the study did not finish writing it") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, KeyError … for a broken file
        raise DevnetError(f"{path}: cannot read it: {str(exc).splitlines()[0]}") from None


def compute_quantiles(values: Any) -> dict[str, float | None]:
    """Median and 5–95% range of a series (nulls dropped), each None for no value."""
    clean = values.dropna().astype(float)
    if clean.empty:
        return {"median": None, "p5": None, "p95": None}
    return {name: round(float(clean.quantile(q)), 2) for name, q in (("median", 0.5), ("p5", 0.05), ("p95", 0.95))}


def compute_report(out: Path) -> dict[str, Any]:
    """The study's summary statistics: over all runs, then per value of each swept parameter."""
    manifest = read_study(out)
    swept = list(manifest["sweep"])
    runs = read_table(out, "runs", ["run", "seed", *swept, *(m for m, _ in METRICS)])
    groups = [("all", "", runs)]
    for key in swept:
        groups += [(key, value, group) for value, group in runs.groupby(key, sort=True)]
    rows = []
    for key, value, group in groups:
        row: dict[str, Any] = {"parameter": key, "value": value.item() if hasattr(value, "item") else value}
        row["runs"] = int(group["run"].nunique())
        for metric, name in METRICS:
            row[name] = compute_quantiles(group[metric])
        rows.append(row)
    return {
        "dir": str(out),
        "scenario": manifest.get("scenario"),
        "runs_done": manifest.get("runs_done"),
        "runs_planned": manifest.get("runs_planned"),
        "interrupted": manifest.get("interrupted"),
        "set": manifest.get("set", {}),
        "sweep": manifest["sweep"],
        "unit": "bps of the honest true cost",
        "groups": rows,
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as one table: a line per group, the median and [5%, 95%] of both errors."""

    def cell(q: dict[str, float | None]) -> str:
        if q["median"] is None:
            return "-"
        return f"{q['median']:.1f} [{q['p5']:.1f}, {q['p95']:.1f}]"

    header = ("parameter", "value", "runs", "mean |error| bps", "final error bps")
    lines = [
        (r["parameter"], str(r["value"]), str(r["runs"]), cell(r["mean_abs_error"]), cell(r["final_error"]))
        for r in report["groups"]
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    render = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    done = f"{report['runs_done']} of {report['runs_planned']} runs" + (
        " (interrupted)" if report["interrupted"] else ""
    )
    title = f"price error against the honest true cost, median [5%, 95%] across runs ({done}):"
    return "\n".join([title, render(header), *(render(line) for line in lines)])


def plot_study(out: Path, manifest: dict[str, Any]) -> list[str]:
    """The study's price.png and error.png; the names written."""
    swept = list(manifest["sweep"])
    name = Path(manifest["scenario"]).name
    epochs = read_table(out, "epochs", ["run", "epoch", "price", "honest_true_cost", *swept])
    runs = read_table(out, "runs", ["run", "mean_abs_price_error_bps", *swept])
    plot_study_prices(out / "price.png", epochs, swept, f"{name}: unit-of-compute price across runs")
    plot_study_errors(out / "error.png", runs, swept, f"{name}: price error against the honest true cost")
    return ["price.png", "error.png"]

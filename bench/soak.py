"""Soak: a 4-node devnet under the chaos run's steady load, with no faults, for ten minutes; each node's RSS.

    .venv/bin/python bench/soak.py [--minutes 10] [--validators 4] [--dir out/soak]

The load is `uocd devnet chaos`'s (each validator votes a price through its admin API about every 0.2 s,
now and then registers a model or votes on a proposal; a reader reads /v1/pricing about 20 times a
second), and so is the verdict at the end. Every node's RSS is sampled every 2 s. Prints the RSS of
each node at each minute, its growth over the last half of the run (the mean of a window at the half-way
mark against the mean of the last window; target: below 10 %), and writes DIR/rss.png and DIR/chaos.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devnet.chaos import ChaosConfig, format_summary, run_chaos  # noqa: E402

GROWTH_TARGET_PCT = 10.0


def format_rss_table(samples: list[dict], nodes: list[str]) -> str:
    """RSS in MiB of each node at each whole minute (the first sample at or after it)."""
    end = max(s["t"] for s in samples)
    rows = [["minute", *nodes]]
    for minute in range(int(end // 60) + 1):
        row = [str(minute)]
        for name in nodes:
            at = [s for s in samples if s["node"] == name and s["t"] >= minute * 60]
            row.append(f"{at[0]['rss_kib'] / 1024:.1f}" if at else "-")
        rows.append(row)
    return "\n".join("  ".join(cell.rjust(8) for cell in row) for row in rows)


def plot_rss(samples: list[dict], nodes: list[str], path: Path) -> None:
    """RSS (MiB) over time, one line per node."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name in nodes:
        mine = [s for s in samples if s["node"] == name]
        ax.plot([s["t"] / 60 for s in mine], [s["rss_kib"] / 1024 for s in mine], label=name)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)  # growth against the whole, not a zoomed-in slope
    ax.set_title("node RSS under steady load")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    """Run the soak and print its figures; exit 1 if the verdict fails or a node's RSS grows 10 % or more."""
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--dir", default="out/soak")
    args = parser.parse_args()
    out = Path(args.dir)
    config = ChaosConfig(validators=args.validators, duration_s=args.minutes * 60, faults=False)
    summary = run_chaos(out, config)
    samples = json.loads((out / "chaos.json").read_text())["rss_samples"]
    nodes = sorted({s["node"] for s in samples})
    print(format_summary(summary))
    print(format_rss_table(samples, nodes))
    plot_rss(samples, nodes, out / "rss.png")
    growth = summary["rss_growth"]
    worst = max((g["growth_pct"] for g in growth.values()), default=float("nan"))
    print(f"RSS growth over the last half: worst {worst}% (target < {GROWTH_TARGET_PCT:g}%); plot: {out / 'rss.png'}")
    return 0 if summary["ok"] and growth and worst < GROWTH_TARGET_PCT else 1


if __name__ == "__main__":
    sys.exit(main())

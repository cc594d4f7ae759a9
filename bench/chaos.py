"""The long chaos run: several seeds of `uocd devnet chaos` back to back, at least 15 minutes in all.

    .venv/bin/python bench/chaos.py [--seeds 1 2 3] [--minutes 5] [--validators 5] [--dir out/chaos-long]

Each seed is one run (`devnet/chaos.py`: the load, the seeded faults one at a time, the bad inputs
and the verdict) of `--minutes`, in DIR/seed-N. Prints each run's summary, then one table of all
runs: load held, faults survived by kind, recovery times, bad inputs tried, transactions lost. The
figures go in docs/reliability.md. Exits 1 if any verdict fails. Namespaces need root.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devnet.chaos import FAULT_KINDS, ChaosConfig, format_summary, run_chaos  # noqa: E402


def format_table(summaries: list[dict]) -> str:
    """One markdown row per run and a total row."""
    head = (
        "| seed | s | height | txs submitted / committed / lost | tx/s committed | pricing reads ok | "
        + " | ".join(FAULT_KINDS)
        + " | recovery heal med/max s | restart med/max s | bad inputs | verdict |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    faults: Counter[str] = Counter()
    for s in summaries:
        faults.update(s["faults"])
        heal, restart = s["recovery_after_heal"], s["recovery_after_restart"]
        lines.append(
            f"| {s['seed']} | {s['duration_s']:.0f} | {s['final_height']} | "
            f"{s['txs']['submitted']:,} / {s['txs']['committed']:,} / **{s['txs']['lost']}** | "
            f"{s['txs']['committed'] / s['duration_s']:.1f} | {s['pricing_reads'].get('ok', 0):,} | "
            + " | ".join(str(s["faults"].get(k, 0)) for k in FAULT_KINDS)
            + f" | {heal.get('median_s', '-')} / {heal.get('max_s', '-')}"
            f" | {restart.get('median_s', '-')} / {restart.get('max_s', '-')}"
            f" | {sum(s['bad_inputs'].values()):,} | {'PASS' if s['ok'] else 'FAIL'} |"
        )
    total_s = sum(s["duration_s"] for s in summaries)
    lines.append(
        f"| all | {total_s:.0f} | | {sum(s['txs']['submitted'] for s in summaries):,} / "
        f"{sum(s['txs']['committed'] for s in summaries):,} / **{sum(s['txs']['lost'] for s in summaries)}** | | | "
        + " | ".join(str(faults.get(k, 0)) for k in FAULT_KINDS)
        + f" | | | {sum(sum(s['bad_inputs'].values()) for s in summaries):,} | "
        f"{'PASS' if all(s['ok'] for s in summaries) else 'FAIL'} |"
    )
    return "\n".join(lines)


def main() -> int:
    """Run every seed and print the table; exit 1 on a failed verdict."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--minutes", type=float, default=5.0, help="per seed (default 5)")
    parser.add_argument("--validators", type=int, default=5)
    parser.add_argument("--dir", default="out/chaos-long")
    args = parser.parse_args()
    out = Path(args.dir)
    summaries = []
    for seed in args.seeds:
        config = ChaosConfig(validators=args.validators, seed=seed, duration_s=args.minutes * 60)
        summary = run_chaos(out / f"seed-{seed}", config, echo=lambda line: print(line, flush=True))
        print(format_summary(summary), flush=True)
        summaries.append(summary)
    (out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    print(format_table(summaries))
    bad = Counter()
    for s in summaries:
        bad.update(s["bad_inputs"])
    print("bad inputs tried: " + ", ".join(f"{k} {v:,}" for k, v in sorted(bad.items())))
    return 0 if all(s["ok"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())

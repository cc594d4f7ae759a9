"""The long chaos run: several seeds of `uocd devnet chaos` back to back, at least 15 minutes in all.

    .venv/bin/python bench/chaos.py [--seeds 1 2 3] [--minutes 5] [--validators 5] [--dir out/chaos-long]
    .venv/bin/python bench/chaos.py --byzantine [--seeds 1 2 3] [--minutes 5] [--dir out/chaos-byzantine]

Each seed is one run (`devnet/chaos.py`: the load, the seeded faults one at a time, the bad inputs
and the verdict) of `--minutes`, in DIR/seed-N. Prints each run's summary, then one table of all
runs: load held, faults survived by kind, recovery times, bad inputs tried, transactions lost. The
figures go in docs/reliability.md. Exits 1 if any verdict fails. Namespaces need root.

`--byzantine` runs every seed twice, with 1 adversary of 4 validators and 2 of 7
(`uocd devnet chaos --byzantine K`, devnet/adversary.py), in DIR/K-of-N/seed-S, and prints a second
table: attacks by kind, blocks committed, the longest stall, /v1/status latency, equivocations and
the evidence the honest nodes hold. `--duration S` replaces `--minutes` (for a short smoke run).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devnet.adversary_plan import ATTACK_KINDS  # noqa: E402
from devnet.chaos import FAULT_KINDS, ChaosConfig, format_summary, run_chaos  # noqa: E402

BYZANTINE_SHAPES = ((1, 4), (2, 7))  # (adversaries, validators)


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


def format_byzantine_table(summaries: list[dict]) -> str:
    """One markdown row per byzantine run: attacks by kind, blocks, longest stall, status latency, evidence."""
    head = (
        "| K of N | seed | s | height | "
        + " | ".join(ATTACK_KINDS)
        + " | faults | longest stall s (outside crash faults) | status max / p99 s | equivocations / held as "
        "evidence | txs lost | verdict |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        b = s["byzantine"]
        eq, status = b["equivocations"], b["status_latency"]
        lines.append(
            f"| {len(b['adversaries'])} of {s['validators']} | {s['seed']} | {s['duration_s']:.0f} | "
            f"{s['final_height']} | "
            + " | ".join(f"{b['attack_windows'][k]}w/{b['attacks'][k]:,}" for k in ATTACK_KINDS)
            + f" | {sum(s['faults'].values())} | {b['longest_stall_s']} ({b['longest_stall_outside_faults_s']}) | "
            f"{status.get('max_s', '-')} / {status.get('p99_s', '-')} | {eq['delivered']} / "
            f"{eq['committed_on_every_honest_node']} | **{s['txs']['lost']}** | {'PASS' if s['ok'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def run_byzantine(args: argparse.Namespace, out: Path) -> list[dict]:
    """Every seed with each of BYZANTINE_SHAPES; print each summary and the byzantine table."""
    summaries = []
    for byzantine, validators in BYZANTINE_SHAPES:
        for seed in args.seeds:
            config = ChaosConfig(validators=validators, seed=seed, duration_s=get_duration_s(args), byzantine=byzantine)
            where = out / f"{byzantine}-of-{validators}" / f"seed-{seed}"
            summary = run_chaos(where, config, echo=lambda line: print(line, flush=True))
            print(format_summary(summary), flush=True)
            summaries.append(summary)
    print(format_byzantine_table(summaries))
    return summaries


def get_duration_s(args: argparse.Namespace) -> float:
    """Seconds per run: --duration, else --minutes."""
    return args.duration if args.duration is not None else args.minutes * 60


def main() -> int:
    """Run every seed and print the table; exit 1 on a failed verdict."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--minutes", type=float, default=5.0, help="per seed (default 5)")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="per seed, in seconds")
    parser.add_argument("--validators", type=int, default=5)
    parser.add_argument("--byzantine", action="store_true", help="1 adversary of 4 and 2 of 7 for every seed")
    parser.add_argument("--dir", default=None, help="default out/chaos-long (out/chaos-byzantine with --byzantine)")
    args = parser.parse_args()
    out = Path(args.dir or ("out/chaos-byzantine" if args.byzantine else "out/chaos-long"))
    summaries = []
    if args.byzantine:
        summaries = run_byzantine(args, out)
    else:
        for seed in args.seeds:
            config = ChaosConfig(validators=args.validators, seed=seed, duration_s=get_duration_s(args))
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

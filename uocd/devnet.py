"""`uocd devnet simulate|up|status|down|chaos`: local networks, scenario simulations and chaos runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.params import DEFAULT_PARAMS
from devnet.adversary_plan import ATTACK_KINDS, parse_attack_kinds
from devnet.errors import DevnetError
from node.errors import NodeError

from .options import add_output_option, check_block_time, parse_int
from .output import EXIT_INTERRUPTED, emit, print_csv_table, program_name, render_rows

DEFAULT_DIR = "out/devnet"
# the epochs table `devnet simulate` prints: 69 characters, so it fits an 80-column terminal as a table
# (epochs.csv has every column, total_power and non_voters too)
# the per-strategy table: (summary.json key, column), short enough for a 100-column terminal
STRATEGY_COLUMNS = (
    ("validators", "n"),
    ("rewards", "rewards"),
    ("rewards_per_epoch", "per_epoch"),
    ("misses", "misses"),
    ("jails", "jails"),
    ("slashed", "slashed"),
    ("vote_distance_mean_bps", "vote_distance"),
    ("price_effect_mean_bps", "price_effect"),
    ("price_effect_max_bps", "max_effect"),
)
SUMMARY_EPOCH_COLUMNS = ("epoch", "price", "voters", "min_vote", "max_vote", "fees_collected", "chain_epoch")


def add_devnet_commands(commands: argparse._SubParsersAction) -> None:
    """uocd devnet simulate|up|status|down|chaos."""
    devnet = commands.add_parser(
        "devnet", help="local networks and simulations", description="Local networks and simulations."
    )
    sub = devnet.add_subparsers(dest="devnet_command", metavar="COMMAND", required=True)
    add_simulate_command(sub)
    add_attack_command(sub)
    add_up_status_down_commands(sub)
    add_chaos_command(sub)


def add_simulate_command(sub: argparse._SubParsersAction) -> None:
    """uocd devnet simulate."""
    simulate = sub.add_parser(
        "simulate",
        help="run a scenario of provider behaviour over many epochs",
        description="Run a scenario (TOML) of validators voting prices over many epochs, and write "
        "OUT/epochs.csv, OUT/models.csv, OUT/proposals.csv, OUT/summary.json and OUT/price.png (with "
        "[[clients]], also OUT/usage.csv and OUT/revenue.png: every job settled on chain). "
        "The inproc engine drives the chain state machine directly with signed transactions in blocks.",
    )
    simulate.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file (see README: Scenarios)")
    simulate.add_argument(
        "--engine",
        choices=["inproc", "network"],
        default="inproc",
        help="inproc: the state machine in this process (default); network: a devnet of node processes "
        "driven through their HTTP API",
    )
    simulate.add_argument("--out", metavar="DIR", default=None, help="output directory (default: out/<scenario name>)")
    simulate.add_argument(
        "--dir",
        metavar="D",
        default=None,
        help="network engine: the devnet directory (e.g. out/devnet), left running at the end. If D holds "
        "the devnet `uocd devnet up --scenario SCENARIO.toml --dir D` started, still running and unused (no "
        "validator has sent a transaction), the run uses it; if D is absent or empty, the run creates one "
        "there; anything else in D (another scenario's devnet, a used or a stopped one, other files) is "
        "refused. Default: a new devnet in OUT/devnet, stopped at the end",
    )
    simulate.add_argument(
        "--block-time",
        type=float,
        default=0.2,
        metavar="S",
        help="network engine: seconds between blocks (default 0.2)",
    )
    simulate.add_argument(
        "--seed",
        type=parse_int,
        default=None,
        metavar="S0",
        help="the first seed (default: the scenario's); with --runs N the seeds are S0 … S0+N-1",
    )
    simulate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a scenario value by its dotted path before running, e.g. validators.mallory.stake=300, "
        "params.quorum=0.5, epochs=100 (repeatable; an unknown key names the nearest valid one)",
    )
    simulate.add_argument(
        "--runs",
        type=parse_int,
        default=None,
        metavar="N",
        help="a study: N runs (seeds S0 … S0+N-1) of each grid point, on a process pool; writes tidy tables "
        "OUT/{epochs,votes,models,proposals,runs}.{csv,parquet}, OUT/study.json and plots across runs",
    )
    simulate.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a study over these values of KEY (repeatable: the cartesian grid of all --sweep keys), each "
        "swept key a column of every table",
    )
    simulate.add_argument(
        "--workers",
        type=parse_int,
        default=None,
        metavar="W",
        help="a study's local worker processes (default: one per CPU)",
    )
    simulate.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run a study's tasks on the existing Ray cluster at HOST:PORT instead of local processes "
        "(pip install 'uoc[ray]'; every node needs this package)",
    )
    simulate.add_argument(
        "--pricing",
        type=parse_pricing,
        default=None,
        metavar="M1,M2,...",
        help="compare pricing mechanisms (voted, dynamic, hybrid: params.pricing_mode) on the same seed and "
        "demand: one inproc run each in OUT/<mechanism>/, then OUT/mechanisms.csv (epoch, mechanism, model, "
        "price, utilization, revenue) and OUT/mechanisms.png (the demand shocks marked); inproc engine only",
    )
    simulate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    simulate.set_defaults(func=cmd_devnet_simulate)
    report = sub.add_parser(
        "report",
        help="summary statistics across the runs of a study",
        description="Read a study's OUT/runs.parquet and OUT/study.json (written by `devnet simulate --runs N "
        "[--sweep ...]`) and print, per value of each swept parameter (or over all runs), the median and the "
        "5–95% range across runs of the price error against the honest true cost: the mean |error| over the "
        "epochs and the final error, in bps of the honest true cost.",
    )
    report.add_argument("dir", metavar="DIR", help="the study's output directory")
    add_output_option(report)
    report.set_defaults(func=cmd_devnet_report)


def add_attack_command(sub: argparse._SubParsersAction) -> None:
    """uocd devnet attack."""
    attack = sub.add_parser(
        "attack",
        help="the stake it takes to move the price, and what it costs",
        description="Run a scenario on the in-process engine with an attacker holding each share of the stake, "
        "in each vote mode, and report per share and mode the largest deviation of the price from the honest "
        "median (bps), whether it left the honest votes' [min, max], the rewards the attacker lost and its "
        "slashes. Writes DIR/attack.csv and DIR/attack.png (each run's files in DIR/runs/MODE-SHARE).",
        epilog_module="devnet.attack",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    attack.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file: its honest validators are attacked")
    attack.add_argument(
        "--share",
        default="0.05:0.60:0.05",
        metavar="FROM:TO:STEP",
        help="the attacker's shares of the total stake, each strictly between 0 and 1, or one share "
        "(default 0.05:0.60:0.05)",
    )
    attack.add_argument(
        "--dir", metavar="DIR", default=None, help="output directory (default: out/attack/<scenario name>)"
    )
    attack.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_output_option(attack)
    attack.set_defaults(func=cmd_devnet_attack)


def add_up_status_down_commands(sub: argparse._SubParsersAction) -> None:
    """uocd devnet up|status|down."""
    up_cmd = sub.add_parser(
        "up",
        help="create and start a local network",
        description="Create N node homes in D with one shared genesis and free loopback ports, start one "
        "node process each (logs in D/nI/node.log), wait until all have committed a block and print the "
        "endpoints, admin tokens and curl commands (also in D/devnet.json). On a running devnet it refuses; "
        "on a stopped one it restarts the same nodes.",
        epilog_module="devnet.devnet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up_cmd.add_argument("--validators", type=parse_int, default=4, metavar="N", help="number of validators (default 4)")
    up_cmd.add_argument(
        "--epoch-length",
        type=parse_int,
        default=DEFAULT_PARAMS.epoch_length,
        metavar="L",
        help="blocks per epoch (default %(default)s)",
    )
    up_cmd.add_argument(
        "--block-time", type=float, default=None, metavar="S", help="seconds between blocks (default 1)"
    )
    add_dir_option(up_cmd)
    up_cmd.add_argument(
        "--scenario",
        metavar="SCENARIO.toml",
        default=None,
        help="shape the devnet by a scenario (its validators, stakes, params and keys; --validators and "
        "--epoch-length are ignored, --block-time defaults to 0.2) for `devnet simulate --engine network --dir D`",
    )
    add_output_option(up_cmd)
    up_cmd.set_defaults(func=cmd_devnet_up)
    status = sub.add_parser(
        "status", help="each node's height, app hash, epoch and price", description="Show each node's state."
    )
    add_dir_option(status)
    add_output_option(status)
    status.set_defaults(func=cmd_devnet_status)
    down = sub.add_parser(
        "down",
        help="stop the nodes",
        description="Stop every node (SIGTERM, then SIGKILL after a grace period); the homes stay, so "
        "`up` restarts the same chain. Delete D to start afresh.",
    )
    add_dir_option(down)
    add_output_option(down)
    down.set_defaults(func=cmd_devnet_down)
    env = sub.add_parser(
        "env",
        help="shell exports of one node's endpoints and admin token",
        description="Print `export` lines for one node of the devnet (the first by default): UOC_NODE (public "
        "API URL), UOC_ADMIN (admin API URL), UOC_ADMIN_TOKEN, UOC_GRPC and UOC_HOME. Use it as "
        '`eval "$(uocd devnet env alice --dir out/devnet)"`, then `curl $UOC_NODE/v1/pricing`.',
    )
    env.add_argument("name", nargs="?", default=None, metavar="NAME", help="the node (default: the first)")
    add_dir_option(env)
    env.set_defaults(func=cmd_devnet_env)


def add_dir_option(parser: argparse.ArgumentParser) -> None:
    """--dir D, the devnet directory."""
    parser.add_argument("--dir", default=DEFAULT_DIR, metavar="D", help=f"the devnet directory (default {DEFAULT_DIR})")


def add_chaos_command(sub: argparse._SubParsersAction) -> None:
    """uocd devnet chaos."""
    chaos = sub.add_parser(
        "chaos",
        help="a devnet under load and seeded faults, then a verdict",
        description="Start N validators (each in its own network namespace when allowed, else behind a TCP "
        "fault relay), load them with price votes, governance and /v1/pricing reads, inject seeded faults "
        "(kill, pause, wipe, partition, loss, delay) one at a time, heal, and check that every node agrees, "
        "no committed transaction is lost and the epoch prices match the committed votes. With --byzantine K, "
        "K validators lie (see below) and the verdict also checks that the honest nodes kept committing (no "
        "stretch of 10 s without a block outside crash faults), answered /v1/status within 1 s, and hold every "
        "equivocation as evidence. Exits 1 on a failed verdict. Needs root for namespaces.",
        epilog_module="devnet.chaos",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chaos.add_argument("--validators", type=parse_int, default=4, metavar="N", help="validators, 4 to 7 (default 4)")
    chaos.add_argument("--seed", type=parse_int, default=1, metavar="S", help="the faults' seed (default 1)")
    chaos.add_argument("--duration", type=float, default=120.0, metavar="SECONDS", help="run length (default 120)")
    chaos.add_argument(
        "--fabric",
        choices=("auto", "netns", "proxy"),
        default="auto",
        help="network faults by namespaces and kernel rules (netns), by a TCP relay (proxy), or netns with a "
        "loud fallback to the relay (auto, the default)",
    )
    chaos.add_argument("--no-faults", action="store_true", help="load only (a soak run)")
    chaos.add_argument(
        "--byzantine",
        type=parse_int,
        default=0,
        metavar="K",
        help="run K of the N validators (seeded) as adversaries: real nodes that equivocate, forge block times, "
        "tamper and pad what they relay, flood, lie about their height, withhold votes and replay old messages, "
        "in seeded windows (python -m devnet.adversary); K must be below N/3 (default 0)",
    )
    chaos.add_argument(
        "--attacks",
        type=parse_attacks,
        default=ATTACK_KINDS,
        metavar="KINDS",
        help=f"with --byzantine: all (the default) or a comma-separated subset of {','.join(ATTACK_KINDS)}",
    )
    chaos.add_argument(
        "--dir", default="out/chaos", metavar="D", help="where the homes and chaos.json go (new or empty)"
    )
    add_output_option(chaos)
    chaos.set_defaults(func=cmd_devnet_chaos)


def cmd_devnet_simulate(args: argparse.Namespace) -> int:
    """uocd devnet simulate."""
    from devnet.devnet import format_endpoints, read_state
    from devnet.network import run_network
    from devnet.scenario import load_scenario
    from devnet.simulate import run_inproc
    from devnet.study import plan_study

    out = Path(args.out) if args.out else Path("out") / Path(args.scenario).stem
    progress = False if args.no_progress else None
    if args.runs is not None or args.sweep or args.ray or args.workers is not None:
        if args.pricing is not None:
            raise NodeError("--pricing runs one simulation per mechanism; drop --runs, --sweep, --workers and --ray")
        return simulate_study(args, out, progress)
    if args.set or args.seed is not None:
        study = plan_study(args.scenario, runs=1, seed=args.seed, sets=args.set, sweeps=[])
        scenario = next(study.iter_tasks()).scenario
    else:
        scenario = load_scenario(args.scenario)
    if args.pricing is not None:
        return simulate_mechanisms(args, scenario, out, progress)
    if args.engine == "network":
        block_ms = check_block_time(args.block_time)
        keep = Path(args.dir) if args.dir else None
        summary = run_network(scenario, out, devnet_dir=keep, block_ms=block_ms, progress=progress)
    else:
        if args.dir:
            raise NodeError("--dir is for --engine network")
        summary = run_inproc(scenario, out, progress=progress)
    rate = summary["txs_committed"] / summary["elapsed_seconds"] if summary["elapsed_seconds"] else 0
    print(
        f"simulated {summary['epochs']} epochs ({summary['final_height']} blocks, {summary['txs_committed']} "
        f"signed txs) in {summary['elapsed_seconds']:.1f} s ({rate:,.0f} tx/s)"
    )
    offset = summary["epoch_offset"]
    if offset:
        print(
            f"scenario epoch k ≥ 1 ran in chain epoch k + {offset} (the chain's /v1/pricing and history count "
            f"from genesis; row 0 is genesis): the chain_epoch column"
        )
    print_csv_table(out / "epochs.csv", columns=SUMMARY_EPOCH_COLUMNS)
    if summary["proposals"]:
        print()
        print_csv_table(out / "proposals.csv")
    print(f"final price {summary['final_price']} ngonka per unit of compute; app hash {summary['final_app_hash']}")
    for model, units in summary["final_models"].items():
        price = units * summary["final_price"]
        print(f"model {model}: {units} units of compute per token = {price} ngonka per token")
    if "strategies" in summary:
        print(format_strategies(summary))
    if "revenue" in summary:
        print(format_revenue(summary["revenue"]))
    files = ["epochs.csv", "models.csv", "proposals.csv", "summary.json", "price.png"]
    files += [name for name in ("models.png", "usage.csv", "revenue.png") if (out / name).exists()]
    print(f"wrote {', '.join(f'{out}/{name}' for name in files)}")
    if summary.get("devnet_running"):
        where = summary["devnet_dir"]
        uocd = program_name()
        print(f"\nthe devnet keeps running in {where}:")
        print(f"  {uocd} devnet status --dir {where}")
        print(f'  eval "$({uocd} devnet env --dir {where})"   # UOC_NODE, UOC_ADMIN, UOC_ADMIN_TOKEN')
        print(f"  {uocd} devnet down --dir {where}")
        state = read_state(Path(where))
        if summary.get("devnet_created") and state is not None:
            print(format_endpoints(state))
    return 0


def simulate_mechanisms(args: argparse.Namespace, scenario: Any, out: Path, progress: bool | None) -> int:
    """uocd devnet simulate --pricing: one inproc run per pricing mechanism, then their comparison."""
    from devnet.mechanisms import run_mechanisms

    if args.engine != "inproc":
        raise NodeError(
            "--pricing runs the inproc engine only (a dynamic price moves every block; the network engine plans "
            "an epoch's jobs at its start); drop --engine network"
        )
    if args.dir:
        raise NodeError("--dir is for --engine network")
    summaries = run_mechanisms(scenario, out, args.pricing, progress=progress)
    for mechanism, summary in summaries.items():
        revenue = sum(entry["charged"] for entry in summary.get("revenue", {}).values())
        print(
            f"{mechanism}: {summary['final_height']} blocks, revenue {revenue:,} ngonka, outputs in {out / mechanism}"
        )
    print(f"wrote {out}/mechanisms.csv, {out}/mechanisms.png")
    return 0


def parse_pricing(text: str) -> tuple[str, ...]:
    """--pricing: a comma-separated list of pricing mechanisms."""
    from devnet.mechanisms import parse_mechanisms

    try:
        return parse_mechanisms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def simulate_study(args: argparse.Namespace, out: Path, progress: bool | None) -> int:
    """uocd devnet simulate --runs/--sweep: many runs on a pool or a Ray cluster, then plots."""
    from devnet.study import FORMATS, plan_study, run_study
    from devnet.study_report import compute_report, format_report, plot_study
    from devnet.tables import TABLES

    if args.engine != "inproc":
        raise NodeError("--runs, --sweep, --workers and --ray run the inproc engine; drop --engine network")
    if args.dir:
        raise NodeError("--dir is for --engine network")
    if args.ray and args.workers is not None:
        raise NodeError("--workers is for the local pool; a Ray cluster uses its own CPUs")
    study = plan_study(
        args.scenario, runs=1 if args.runs is None else args.runs, seed=args.seed, sets=args.set, sweeps=args.sweep
    )
    manifest = run_study(study, out, workers=args.workers, ray_address=args.ray, progress=progress)
    plots = plot_study(out, manifest) if manifest["runs_done"] else []
    print(
        f"{manifest['runs_done']} of {manifest['runs_planned']} runs ({manifest['executor']}) in "
        f"{manifest['elapsed_seconds']:.1f} s"
        + ("; interrupted, the finished runs are kept" if manifest["interrupted"] else "")
    )
    if manifest["runs_done"]:
        print(format_report(compute_report(out)))
    tables = [f"{name}.{fmt}" for name in TABLES for fmt in FORMATS]
    print(f"wrote {', '.join(f'{out}/{name}' for name in [*tables, 'study.json', *plots])}")
    return EXIT_INTERRUPTED if manifest["interrupted"] else 0


def cmd_devnet_report(args: argparse.Namespace) -> int:
    """uocd devnet report."""
    from devnet.study_report import compute_report, format_report

    return emit(args, compute_report(Path(args.dir)), format_report)


MAX_REVENUE_LINES = 10  # providers the revenue table prints (summary.json has them all)


def format_revenue(revenue: dict[str, dict[str, int]]) -> str:
    """The providers paid most for their jobs (ties in file order), one line each (at most MAX_REVENUE_LINES)."""
    paid = sorted((name for name in revenue if revenue[name]["jobs"]), key=lambda n: -revenue[n]["payout"])
    lines = [f"{'provider':<16} {'jobs':>8} {'charged':>16} {'payout':>16} {'fee':>14}"]
    for name in paid[:MAX_REVENUE_LINES]:
        r = revenue[name]
        lines.append(f"{name:<16} {r['jobs']:>8,} {r['charged']:>16,} {r['payout']:>16,} {r['fee']:>14,}")
    if len(paid) > MAX_REVENUE_LINES:
        lines.append(f"… and {len(paid) - MAX_REVENUE_LINES} more providers paid")
    total = sum(r["jobs"] for r in revenue.values())
    return f"\nrevenue per provider ({total:,} jobs settled; summary.json: revenue; ngonka):\n" + "\n".join(lines)


def format_strategies(summary: dict[str, Any]) -> str:
    """The per-strategy table of an in-process run, and the price against the honest-only median."""
    rows = [
        {"strategy": name, **{column: figures[key] for key, column in STRATEGY_COLUMNS}}
        for name, figures in summary["strategies"].items()
    ]
    honest = summary["price_vs_honest"]
    line = (
        f"price vs the honest-only median: mean {honest['mean_deviation_bps']} bps, "
        f"max {honest['max_deviation_bps']} bps, outside the honest votes' [min, max] in "
        f"{honest['epochs_outside_honest_range']} of {honest['epochs_compared']} epochs"
        if honest["epochs_compared"]
        else "price vs the honest-only median: no honest vote to compare with"
    )
    return (
        "per strategy (summary.json: strategies; rewards in ngonka, distances in bps):\n"
        + render_rows(rows)
        + "\n"
        + line
    )


def cmd_devnet_attack(args: argparse.Namespace) -> int:
    """uocd devnet attack."""
    from devnet.attack import parse_shares, run_attack
    from devnet.scenario import load_scenario

    shares = parse_shares(args.share)
    scenario = load_scenario(args.scenario)
    out = Path(args.dir) if args.dir else Path("out") / "attack" / Path(args.scenario).stem
    report = run_attack(scenario, shares, out, progress=False if args.no_progress else None)
    return emit(args, report, format_attack)


def format_attack(report: dict[str, Any]) -> str:
    """The attack table, where the price first left the honest range, and the files written."""
    columns = (
        "share",
        "vote_mode",
        "max_deviation_bps",
        "outside_honest_range",
        "attacker_rewards",
        "rewards_lost",
        "jails",
        "slashed",
    )
    shown = [
        {c: str(row[c]).lower() if isinstance(row[c], bool) else row[c] for c in columns} for row in report["rows"]
    ]
    lines = [render_rows(shown)]
    for mode, share in report["first_outside_honest_range"].items():
        where = f"at a share of {share}" if share is not None else "at none of the shares run"
        lines.append(f"{mode}: the price first leaves the honest votes' [min, max] {where}")
    lines.append(f"wrote {report['dir']}/attack.csv, {report['dir']}/attack.png")
    return "\n".join(lines)


def cmd_devnet_up(args: argparse.Namespace) -> int:
    """uocd devnet up."""
    from devnet.devnet import format_endpoints, up
    from devnet.network import up_scenario
    from devnet.scenario import load_scenario

    block_ms = check_block_time(args.block_time if args.block_time is not None else (0.2 if args.scenario else 1.0))
    if args.scenario:
        state = up_scenario(load_scenario(args.scenario), Path(args.dir), block_ms)
    else:
        state = up(
            Path(args.dir),
            args.validators,
            epoch_length=args.epoch_length,
            block_ms=block_ms,
            echo=progress_echo(args),
        )
    return emit(args, state, lambda s: f"devnet of {len(s['nodes'])} nodes up in {s['dir']}\n" + format_endpoints(s))


def cmd_devnet_status(args: argparse.Namespace) -> int:
    """uocd devnet status."""
    from devnet.devnet import collect_status

    return emit(args, {"nodes": collect_status(Path(args.dir))}, lambda d: render_rows(d["nodes"]))


def cmd_devnet_down(args: argparse.Namespace) -> int:
    """uocd devnet down."""
    from devnet.devnet import stop_devnet

    stopped = stop_devnet(Path(args.dir))
    return emit(
        args,
        {"stopped": stopped},
        lambda d: (
            f"stopped {len(d['stopped'])} node(s): {', '.join(d['stopped'])}" if d["stopped"] else "no node was running"
        ),
    )


def cmd_devnet_chaos(args: argparse.Namespace) -> int:
    """uocd devnet chaos; exit 1 on a failed verdict."""
    from devnet.chaos import ChaosConfig, format_summary, run_chaos

    config = ChaosConfig(
        validators=args.validators,
        seed=args.seed,
        duration_s=args.duration,
        fabric=args.fabric,
        faults=not args.no_faults,
        byzantine=args.byzantine,
        attacks=args.attacks,
    )
    summary = run_chaos(Path(args.dir), config, echo=progress_echo(args))
    emit(args, summary, format_summary)
    return 0 if summary["ok"] else 1


def parse_attacks(text: str) -> tuple[str, ...]:
    """--attacks: all, or a comma-separated subset of the attack kinds."""
    try:
        return parse_attack_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def progress_echo(args: argparse.Namespace) -> Callable[[str], None]:
    """Where progress lines go: stdout, or stderr when stdout is the --output json document."""
    to_stderr = args.output == "json"

    def echo(line: str) -> None:
        print(line, file=sys.stderr if to_stderr else sys.stdout, flush=True)

    return echo


def cmd_devnet_env(args: argparse.Namespace) -> int:
    """uocd devnet env."""
    from devnet.devnet import format_env, read_state

    root = Path(args.dir).resolve()
    state = read_state(root)
    if state is None:
        raise DevnetError(f"no devnet in {root} (devnet.json is missing)")
    print(format_env(state, args.name))
    return 0

"""`uocd`: the command line of uoc (`python -m node` is the same program)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from chain.errors import ChainError

from .errors import NodeError

EXIT_USAGE = 2


class JsonFormatter(logging.Formatter):
    """One JSON object per log line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: str) -> None:
    """Log to stderr, as text or JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="uocd",
        description="uoc: epoch-based unit-of-compute price voting for decentralized AI inference.",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: warning)",
    )
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="log line format (default: text)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    devnet = commands.add_parser(
        "devnet", help="local networks and simulations", description="Local networks and simulations."
    )
    devnet_commands = devnet.add_subparsers(dest="devnet_command", metavar="COMMAND", required=True)
    simulate = devnet_commands.add_parser(
        "simulate",
        help="run a scenario of provider behaviour over many epochs",
        description="Run a scenario (TOML) of validators voting prices over many epochs, and write "
        "OUT/epochs.csv, OUT/models.csv, OUT/proposals.csv, OUT/summary.json and OUT/price.png. "
        "The inproc engine drives the chain state machine directly with signed transactions in blocks.",
    )
    simulate.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file (see README: Scenarios)")
    simulate.add_argument(
        "--engine", choices=["inproc"], default="inproc", help="inproc: the state machine in this process (default)"
    )
    simulate.add_argument("--out", metavar="DIR", default=None, help="output directory (default: out/<scenario name>)")
    simulate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    simulate.set_defaults(func=cmd_devnet_simulate)
    return parser


def cmd_devnet_simulate(args: argparse.Namespace) -> int:
    """uocd devnet simulate."""
    from devnet.scenario import load_scenario
    from devnet.simulate import run_inproc

    scenario = load_scenario(args.scenario)
    out = Path(args.out) if args.out else Path("out") / Path(args.scenario).stem
    summary = run_inproc(scenario, out, progress=False if args.no_progress else None)
    rate = summary["txs_committed"] / summary["elapsed_seconds"] if summary["elapsed_seconds"] else 0
    print(
        f"simulated {summary['epochs']} epochs ({summary['final_height']} blocks, {summary['txs_committed']} "
        f"signed txs) in {summary['elapsed_seconds']:.1f} s ({rate:,.0f} tx/s)"
    )
    print_csv_table(out / "epochs.csv")
    if summary["proposals"]:
        print()
        print_csv_table(out / "proposals.csv")
    print(f"final price {summary['final_price']} ngonka per unit of compute; app hash {summary['final_app_hash']}")
    for model, units in summary["final_models"].items():
        price = units * summary["final_price"]
        print(f"model {model}: {units} units of compute per token = {price} ngonka per token")
    files = ["epochs.csv", "models.csv", "proposals.csv", "summary.json", "price.png"]
    files += ["models.png"] if (out / "models.png").exists() else []
    print(f"wrote {', '.join(f'{out}/{name}' for name in files)}")
    return 0


def print_csv_table(path: Path, limit: int = 12) -> None:
    """Print a CSV file as an aligned table, eliding the middle of long ones."""
    rows = path.read_text().splitlines()
    header, body = rows[0].split(","), [r.split(",") for r in rows[1:]]
    if len(body) > limit:
        body = body[: limit // 2] + [["…"] * len(header)] + body[-limit // 2 :]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    for row in [header, *body]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run uocd; a failure prints one line and exits non-zero."""
    from devnet.errors import DevnetError

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`uocd … | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ChainError, DevnetError, NodeError, OSError) as exc:
        print(f"uocd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("uocd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

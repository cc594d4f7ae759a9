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

    init = commands.add_parser(
        "init",
        help="create a node home (config.toml, keys, admin token, genesis.json)",
        description="Create a node home: config.toml, node_key.json and validator_key.json, admin_token "
        "(mode 0600) and a one-validator genesis.json. Several homes share one genesis: init each, then "
        "`uocd genesis collect HOME...`.",
    )
    init.add_argument("--home", required=True, metavar="DIR", help="the node home to create")
    init.add_argument("--moniker", required=True, metavar="NAME", help="this node's name")
    init.add_argument("--chain-id", default="uoc-devnet-1", metavar="ID", help="chain id (default uoc-devnet-1)")
    init.add_argument(
        "--key-name", metavar="NAME", help="derive the validator key from NAME (devnets only; default: a random key)"
    )
    init.add_argument("--stake", type=int, default=100, help="this validator's genesis stake, ngonka (default 100)")
    init.add_argument("--balance", type=int, default=10**12, help="its genesis balance, ngonka (default 10^12)")
    init.add_argument("--epoch-length", type=int, default=10, help="blocks per epoch (default 10)")
    init.add_argument("--grpc", default="127.0.0.1:26656", metavar="HOST:PORT", help="gRPC listen address")
    init.add_argument("--block-interval-ms", type=int, default=1000, help="block interval (default 1000)")
    init.set_defaults(func=cmd_init)

    start = commands.add_parser(
        "start", help="run a node", description="Run the node of a home until SIGINT or SIGTERM."
    )
    start.add_argument("--home", required=True, metavar="DIR", help="the node home (see uocd init)")
    start.set_defaults(func=cmd_start)

    genesis = commands.add_parser("genesis", help="shared genesis for several homes", description="Genesis tools.")
    genesis_commands = genesis.add_subparsers(dest="genesis_command", metavar="COMMAND", required=True)
    collect = genesis_commands.add_parser(
        "collect",
        help="merge several homes' validators and accounts into one genesis written to every home",
        description="Merge the validators and accounts of the homes' genesis.json files (chain id, time and "
        "params of the first home) into one genesis, write it to every home, and list every other "
        "home's gRPC address in each config.toml's grpc.peers.",
    )
    collect.add_argument("homes", nargs="+", metavar="HOME")
    collect.add_argument("--no-peers", action="store_true", help="leave grpc.peers unchanged")
    collect.set_defaults(func=cmd_genesis_collect)

    grpc_cmd = commands.add_parser("grpc", help="ask a node over gRPC", description="Ask a node over gRPC.")
    grpc_commands = grpc_cmd.add_subparsers(dest="grpc_command", metavar="COMMAND", required=True)
    for name, text in (("status", "the node's Status"), ("evidence", "the double signs the node recorded")):
        sub = grpc_commands.add_parser(name, help=text, description=f"Print {text} as JSON.")
        sub.add_argument("address", metavar="HOST:PORT", help="the node's gRPC address")
        sub.set_defaults(func=cmd_grpc_query, what=name)
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    """uocd init."""
    from .config import init_home

    home = init_home(
        Path(args.home),
        args.moniker,
        chain_id=args.chain_id,
        key_name=args.key_name,
        stake=args.stake,
        balance=args.balance,
        epoch_length=args.epoch_length,
        listen=args.grpc,
        block_interval_ms=args.block_interval_ms,
    )
    print(f"initialized {home.path} for {home.config.moniker}: validator {home.validator_key.address}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """uocd start."""
    import asyncio

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC core's own log lines; our errors are one line
    from .config import load_home
    from .node import run_node

    asyncio.run(run_node(load_home(Path(args.home))))
    return 0


def cmd_genesis_collect(args: argparse.Namespace) -> int:
    """uocd genesis collect."""
    from .config import collect_genesis

    genesis = collect_genesis([Path(h) for h in args.homes], set_peers=not args.no_peers)
    count = len(genesis["validators"])
    print(f"wrote genesis of {genesis['chain_id']} with {count} validators to {len(args.homes)} homes")
    return 0


def cmd_grpc_query(args: argparse.Namespace) -> int:
    """uocd grpc status|evidence."""
    import asyncio

    import grpc
    from google.protobuf.json_format import MessageToDict

    from .network import PeerClient
    from .pb import services_pb2 as spb

    async def ask() -> dict:
        peer = PeerClient(args.address)
        try:
            if args.what == "status":
                return MessageToDict(await peer.get_status(), always_print_fields_with_no_presence=True)
            reply = await peer.call("GetEvidence", spb.EvidenceRequest().SerializeToString())
            return MessageToDict(reply, always_print_fields_with_no_presence=True)
        except grpc.aio.AioRpcError as exc:
            raise NodeError(f"{args.address}: {exc.code().name}: {exc.details()}") from None
        finally:
            await peer.close()

    print(json.dumps(asyncio.run(ask()), indent=2))
    return 0


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

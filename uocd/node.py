"""`uocd init` and `uocd start`: create a node home, and run its node."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from chain.params import DEFAULT_PARAMS

from .options import DEFAULT_HOME, add_output_option
from .output import emit, fail


def add_node_home_option(parser: argparse.ArgumentParser, text: str) -> None:
    """--home DIR, by default $UOCD_HOME or ~/.uocd (as gaiad's ~/.gaia)."""
    parser.add_argument(
        "--home",
        default=os.environ.get("UOCD_HOME", DEFAULT_HOME),
        metavar="DIR",
        help=f"{text} (default $UOCD_HOME or {DEFAULT_HOME})",
    )


def add_node_commands(commands: argparse._SubParsersAction) -> None:
    """uocd init and uocd start."""
    init = commands.add_parser(
        "init",
        help="create a node home (config.toml, keys, admin token, genesis.json)",
        description="Create a node home: config.toml, node_key.json, validator_key.json with its empty sign "
        "state validator_state.json, admin_token (mode 0600), the TLS key and certificate bound to the node key "
        "(node_tls_key.pem, mode 0600, and node_tls_cert.pem) and a one-validator genesis.json. Several homes "
        "share one genesis: init each, then `uocd genesis collect HOME...`. Keys, the admin token and the sign state "
        "already in DIR are kept (and listed); a home with a config.toml is refused. With --overwrite, every one "
        "of them is replaced by a new one.",
    )
    add_node_home_option(init, "the node home to create")
    init.add_argument("--moniker", required=True, metavar="NAME", help="this node's name")
    init.add_argument("--chain-id", default="uoc-devnet-1", metavar="ID", help="chain id (default uoc-devnet-1)")
    init.add_argument(
        "--key-name", metavar="NAME", help="derive the validator key from NAME (devnets only; default: a random key)"
    )
    init.add_argument("--stake", type=int, default=100, help="this validator's genesis stake, ngonka (default 100)")
    init.add_argument("--balance", type=int, default=10**12, help="its genesis balance, ngonka (default 10^12)")
    init.add_argument(
        "--epoch-length", type=int, default=DEFAULT_PARAMS.epoch_length, help="blocks per epoch (default %(default)s)"
    )
    init.add_argument("--grpc", default="127.0.0.1:26656", metavar="HOST:PORT", help="gRPC listen address")
    init.add_argument("--block-interval-ms", type=int, default=1000, help="block interval (default 1000)")
    init.add_argument(
        "--overwrite", action="store_true", help="replace an existing home, its keys included (they are lost)"
    )
    init.set_defaults(func=cmd_init)

    start = commands.add_parser(
        "start", help="run a node", description="Run the node of a home until SIGINT or SIGTERM."
    )
    add_node_home_option(start, "the node home (see uocd init)")
    start.set_defaults(func=cmd_start)

    show = commands.add_parser(
        "show-node-id",
        help="print a home's node id and peer address",
        description="Print the node id of a home (hex of the first 20 bytes of sha256 of its node key) and "
        "how other nodes list it in grpc.peers: NODE_ID@HOST:PORT.",
    )
    show.add_argument("--home", required=True, metavar="DIR", help="the node home")
    show.set_defaults(func=cmd_show_node_id)

    doctor = commands.add_parser(
        "doctor",
        help="check a node home and say how to fix what is wrong",
        description="Check a node home without changing it: config.toml, genesis.json, every key and token file "
        "(a regular file of mode 0600 that loads; the TLS key bound to the node key), the sign state, and the "
        "store: PRAGMA quick_check, its chain and its app hash against the state (not while a node runs on the "
        "home). Each problem comes with its fix; the exit status is 1 if there is any.",
    )
    doctor.add_argument("--home", required=True, metavar="DIR", help="the node home")
    add_output_option(doctor)
    doctor.set_defaults(func=cmd_doctor)


def cmd_init(args: argparse.Namespace) -> int:
    """uocd init."""
    from node.config import compute_peer_address, get_kept_files, init_home

    kept = get_kept_files(Path(args.home).expanduser())
    home = init_home(
        Path(args.home).expanduser(),
        args.moniker,
        chain_id=args.chain_id,
        key_name=args.key_name,
        stake=args.stake,
        balance=args.balance,
        epoch_length=args.epoch_length,
        listen=args.grpc,
        block_interval_ms=args.block_interval_ms,
        overwrite=args.overwrite,
    )
    if kept:
        print(f"{'replaced' if args.overwrite else 'kept the existing'} {', '.join(kept)} in {home.path}")
    validator = home.validator_key.address if home.validator_key is not None else "none"
    peer = compute_peer_address(home)
    print(f"initialized {home.path} for {home.config.moniker}: validator {validator}, peer address {peer}")
    return 0


def cmd_show_node_id(args: argparse.Namespace) -> int:
    """uocd show-node-id."""
    from node.config import compute_peer_address, load_home
    from node.tls import compute_node_id

    home = load_home(Path(args.home).expanduser())
    print(f"{compute_node_id(home.node_key.pubkey)}\n{compute_peer_address(home)}")
    return 0


def render_findings(doc: dict[str, Any]) -> str:
    """The doctor's findings, one line each (`ok` or `PROBLEM`), each problem followed by its fix."""
    lines = []
    for f in doc["findings"]:
        note = f" ({f['note']})" if f["note"] else ""
        lines.append(f"ok       {f['check']}{note}" if f["ok"] else f"PROBLEM  {f['check']}: {f['problem']}")
        if not f["ok"]:
            lines.append(f"         fix: {f['fix']}")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    """uocd doctor."""
    from node.doctor import check_home

    home = Path(args.home).expanduser()
    findings = check_home(home)
    emit(args, {"home": str(home), "findings": [f.to_json() for f in findings]}, render_findings)
    problems = sum(f.problem is not None for f in findings)
    return fail(f"{problems} problem(s) in {home}") if problems else 0


def cmd_start(args: argparse.Namespace) -> int:
    """uocd start (gRPC core's own log lines are off: see uocd/__init__.py)."""
    import asyncio

    from node.config import load_home
    from node.node import run_node

    asyncio.run(run_node(load_home(Path(args.home).expanduser())))
    return 0

"""`uocd genesis collect`: one shared genesis for several node homes."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_genesis_commands(commands: argparse._SubParsersAction) -> None:
    """uocd genesis collect."""
    genesis = commands.add_parser("genesis", help="shared genesis for several homes", description="Genesis tools.")
    genesis_commands = genesis.add_subparsers(dest="genesis_command", metavar="COMMAND", required=True)
    collect = genesis_commands.add_parser(
        "collect",
        help="merge several homes' validators and accounts into one genesis written to every home",
        description="Merge the validators and accounts of the homes' genesis.json files (chain id, time and "
        "params of the first home) into one genesis, write it to every home, and list every other "
        "home in each config.toml's grpc.peers as NODE_ID@HOST:PORT (its node id and gRPC address).",
    )
    collect.add_argument("homes", nargs="+", metavar="HOME")
    collect.add_argument("--no-peers", action="store_true", help="leave grpc.peers unchanged")
    collect.set_defaults(func=cmd_genesis_collect)


def cmd_genesis_collect(args: argparse.Namespace) -> int:
    """uocd genesis collect."""
    from node.config import collect_genesis

    genesis = collect_genesis([Path(h) for h in args.homes], set_peers=not args.no_peers)
    count = len(genesis["validators"])
    print(f"wrote genesis of {genesis['chain_id']} with {count} validators to {len(args.homes)} homes")
    return 0

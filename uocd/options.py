"""The options the command groups share (--home, --node, --output), integer arguments, and the node
client that --home and --node resolve to."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from node.client import DEFAULT_NODE, Client
from node.config import CONFIG_FILE, parse_config

DEFAULT_HOME = "~/.uocd"


def parse_int(text: str) -> int:
    """An integer argument (underscores allowed); argparse reports anything else."""
    try:
        return int(text.replace("_", ""), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """--output text|json."""
    parser.add_argument(
        "--output", "-o", choices=["text", "json"], default="text", help="text for people (default), json for scripts"
    )


def add_home_option(parser: argparse.ArgumentParser) -> None:
    """--home: a key home (HOME/keys/NAME.json) and possibly a node home (its validator key and API)."""
    parser.add_argument(
        "--home",
        default=os.environ.get("UOCD_HOME", DEFAULT_HOME),
        metavar="DIR",
        help="where keys live, in DIR/keys/NAME.json; a node home also lends its validator key "
        "(NAME 'validator') and its public API address (default $UOCD_HOME or ~/.uocd)",
    )


def add_node_options(parser: argparse.ArgumentParser) -> None:
    """--home, --node, --output."""
    add_home_option(parser)
    parser.add_argument(
        "--node",
        metavar="URL",
        default=None,
        help="the node's public HTTP API (default: the node home's [api] public, else http://127.0.0.1:26650)",
    )
    add_output_option(parser)


def resolve_home(args: argparse.Namespace) -> Path:
    """The --home directory, with ~ expanded."""
    return Path(args.home).expanduser()


def resolve_client(args: argparse.Namespace) -> Client:
    """A client of --node, or of the node home's public listener."""
    if args.node:
        return Client(args.node)
    home = resolve_home(args)
    if (home / CONFIG_FILE).is_file():
        return Client(parse_config((home / CONFIG_FILE).read_text()).api_public)
    return Client(DEFAULT_NODE)

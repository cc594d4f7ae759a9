"""The parser class of every command, the options the command groups share (--home, --node, --output),
integer arguments, the arguments of the commands derived from chain's declarations, and the node client
that --home and --node resolve to.

Building the argument tree is the start of every `uocd` run and of every TAB of shell completion, so the
command modules import what a command runs inside its function: the tree loads only its own arguments'
modules (`tests/uocd/test_program.py` holds that gRPC, aiohttp, numpy and the node do not load)."""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.fields import Arg, EnumKind, FieldError
from chain.queries import BoolKind
from node.client import DEFAULT_NODE, Client
from node.errors import NodeError

DEFAULT_HOME = "~/.uocd"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog may be a module's docstring (`epilog_module`), imported only when
    the help is printed."""

    def __init__(self, *args: Any, epilog_module: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epilog_module = epilog_module

    def format_help(self) -> str:
        """The help, with the epilog module's docstring loaded now."""
        if self.epilog_module is not None:
            self.epilog = importlib.import_module(self.epilog_module).__doc__
        return super().format_help()


def parse_int(text: str) -> int:
    """An integer argument (underscores allowed); argparse reports anything else."""
    try:
        return int(text.replace("_", ""), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def check_block_time(seconds: float) -> int:
    """The milliseconds of a --block-time in seconds; NodeError unless it is from 0.001 (a millisecond, the
    nodes' unit) to 3600."""
    if not 0.001 <= seconds <= 3600:  # NaN fails both comparisons
        raise NodeError(f"--block-time must be from 0.001 to 3600 seconds, got {seconds}")
    return round(seconds * 1000)


def describe_argument(arg: Arg) -> str:
    """The --help line of a declared argument: its description, its choices and its default."""
    text = arg.description
    if isinstance(arg.kind, EnumKind):
        text += ": " + " | ".join(arg.kind.options)
    if arg.default is not None and not isinstance(arg.default, bool) and "default" not in text:
        text += f" (default: {arg.default})"
    return text.replace("%", "%%")


def compute_argument_parser(arg: Arg) -> Callable[[str], Any]:
    """The argparse `type` of a declared argument: its kind's parse_text (a FieldError is argparse's error)."""

    def parse(text: str) -> Any:
        try:
            return arg.parse_text(text)
        except FieldError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_declared_argument(parser: argparse.ArgumentParser, arg: Arg, dest: str, *, parse: bool) -> None:
    """A declared argument as a positional (an optional one may be left out) or an --option, kept in
    `dest`: its string (None when left out), or with `parse` its value (argparse reports a bad one)."""
    options: dict[str, Any] = {"metavar": arg.metavar or arg.name.upper(), "help": describe_argument(arg)}
    if isinstance(arg.kind, BoolKind):  # a flag: given means true
        parser.add_argument(arg.option, dest=dest, action="store_true", default=None, help=options["help"])
        return
    if isinstance(arg.kind, EnumKind):
        options["choices"] = arg.kind.options
    if parse:
        options["type"] = compute_argument_parser(arg)
    if arg.positional:
        parser.add_argument(dest, nargs=None if arg.required else "?", default=None, **options)
    else:
        parser.add_argument(arg.option, dest=dest, required=arg.required, default=None, **options)


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
    from node.config import CONFIG_FILE, parse_config

    if args.node:
        return Client(args.node)
    home = resolve_home(args)
    if (home / CONFIG_FILE).is_file():
        return Client(parse_config((home / CONFIG_FILE).read_text()).api_public)
    return Client(DEFAULT_NODE)

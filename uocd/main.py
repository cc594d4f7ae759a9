"""The `uocd` program: the argument tree of every command group, logging, and the one-line failure."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence

import argcomplete

from chain.encoding import describe_json_error
from chain.errors import ChainError
from devnet.errors import DevnetError
from node.errors import NodeError
from node.logs import DEFAULT_LOG_FORMAT, DEFAULT_LOG_LEVEL, LOG_FORMATS, LOG_LEVELS, configure_logging

from .devnet import add_devnet_commands
from .genesis import add_genesis_commands
from .grpc import add_grpc_commands
from .keys import add_keys_commands
from .node import add_node_commands
from .options import CommandParser
from .output import EXIT_INTERRUPTED, fail
from .query import add_query_commands
from .tx import add_tx_commands

EXIT_BROKEN_PIPE = 141
CLIENT_LOG_LEVEL = "warning"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = CommandParser(
        prog="uocd",
        description="uoc: epoch-based unit-of-compute price voting for decentralized AI inference.",
    )
    parser.add_argument("--version", action="version", version=f"uocd {compute_version()}")
    add_logging_options(parser, None, DEFAULT_LOG_FORMAT)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_devnet_commands(commands)
    add_node_commands(commands)
    add_genesis_commands(commands)
    add_keys_commands(commands)
    add_tx_commands(commands)
    add_query_commands(commands)
    add_grpc_commands(commands)
    add_program_commands(commands)
    for command in iterate_subcommands(parser):
        add_logging_options(command, argparse.SUPPRESS, argparse.SUPPRESS, shown=False)
    return parser


def add_program_commands(commands: argparse._SubParsersAction) -> None:
    """uocd version and uocd completion SHELL."""
    version = commands.add_parser(
        "version", help="print the version", description="Print uocd's version (the installed package's)."
    )
    version.add_argument("--output", "-o", choices=["text", "json"], default="text", help="text or json")
    version.set_defaults(func=cmd_version)
    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print the completion script of SHELL for uocd (argcomplete). Load it in the running shell "
        'with `eval "$(uocd completion bash)"` (zsh: the same; fish: `uocd completion fish | source`), or save '
        "it where the shell reads completions.",
    )
    completion.add_argument("shell", choices=["bash", "zsh", "fish"], metavar="SHELL", help="bash, zsh or fish")
    completion.set_defaults(func=cmd_completion)


def compute_version() -> str:
    """The installed uoc package's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("uoc")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def cmd_version(args: argparse.Namespace) -> int:
    """uocd version."""
    text = compute_version()
    print(json.dumps({"version": text, "name": "uocd"}) if args.output == "json" else text)
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    """uocd completion SHELL."""
    print(argcomplete.shellcode(["uocd"], shell=args.shell))
    return 0


def compute_default_log_level(command: str) -> str:
    """`info` for a node (`start`: a line per block, epoch and own tx); `warning` for a client command, whose
    output is its answer."""
    return DEFAULT_LOG_LEVEL if command == "start" else CLIENT_LOG_LEVEL


def add_logging_options(parser: argparse.ArgumentParser, level: str | None, fmt: str, *, shown: bool = True) -> None:
    """--log-level and --log-format with these defaults; on a subcommand (SUPPRESS: the program's value
    stays unless given there) they are accepted but not listed again in its help."""
    parser.add_argument(
        "--log-level",
        default=level,
        choices=LOG_LEVELS,
        help=f"log verbosity (default: {DEFAULT_LOG_LEVEL} for start, {CLIENT_LOG_LEVEL} for the other commands)"
        if shown
        else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--log-format",
        default=fmt,
        choices=LOG_FORMATS,
        help=f"log line format, before or after the subcommand (default: {DEFAULT_LOG_FORMAT})"
        if shown
        else argparse.SUPPRESS,
    )


def iterate_subcommands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every subcommand's parser under `parser`, at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias maps to the same parser
                yield sub
                yield from iterate_subcommands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Run uocd; a failure prints one line and exits non-zero."""
    parser = build_parser()
    argcomplete.autocomplete(parser)  # answers a shell's completion request (and exits) when one is running
    args = parser.parse_args(argv)
    configure_logging(args.log_level or compute_default_log_level(args.command), args.log_format)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`uocd … | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (ChainError, DevnetError, NodeError, OSError) as exc:
        return fail(str(exc))
    except (RecursionError, UnicodeDecodeError) as exc:  # an input file the command read: in the user's terms
        logging.getLogger("uocd").debug("unreadable input", exc_info=True)  # --log-level debug shows where
        what = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else describe_json_error(exc)
        return fail(f"an input of this command cannot be read: {what}")
    except ValueError as exc:
        if "int_max_str_digits" not in str(exc):
            raise
        return fail(f"an input of this command cannot be read: {describe_json_error(exc)}")
    except KeyboardInterrupt:
        print("uocd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

"""The `uocd` program: the argument tree of every command group, logging, and the one-line failure."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from chain.errors import ChainError
from devnet.errors import DevnetError
from node.errors import NodeError

from .devnet import add_devnet_commands
from .genesis import add_genesis_commands
from .grpc import add_grpc_commands
from .keys import add_keys_commands
from .node import add_node_commands
from .output import fail
from .query import add_query_commands
from .tx import add_tx_commands

EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130


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
    add_devnet_commands(commands)
    add_node_commands(commands)
    add_genesis_commands(commands)
    add_keys_commands(commands)
    add_tx_commands(commands)
    add_query_commands(commands)
    add_grpc_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run uocd; a failure prints one line and exits non-zero."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`uocd … | head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (ChainError, DevnetError, NodeError, OSError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("uocd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

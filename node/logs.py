"""Log lines an operator can read and a machine can parse, rendered by structlog.

Every module logs through the standard library (`logging.getLogger(__name__)`), with its fields as
`extra`: `log.info("committed block", extra={"height": 5, "txs": 0})`. `configure_logging` renders every
record (the node's, the libraries', the devnet's) with structlog, on stderr, one line each:

    text: 2026-12-06T18:55:00.123Z info     committed block                [node.node] height=5 txs=0 round=0
    json: {"time": "2026-12-06T18:55:00.123Z", "level": "info", "logger": "node.node",
           "message": "committed block", "height": 5, "txs": 0, "round": 0}

Times are ISO 8601 in UTC. The fields use the names of docs/design.md ("Logs"): height, round, epoch,
tx_hash, peer, proposal_id. structlog is imported when a formatter is built, not with this module: the
command line reads the options below for its argument tree at every start.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
DEFAULT_LOG_LEVEL = "info"
DEFAULT_LOG_FORMAT = "text"


FIRST_KEYS = ("time", "level", "logger", "message")


def order_keys(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """The event with time, level, logger and message first, then the fields as given."""
    return {**{k: event[k] for k in FIRST_KEYS if k in event}, **event}


def build_formatter(fmt: str) -> logging.Formatter:
    """A logging formatter that renders a record, its `extra` fields included, as one text or JSON line."""
    import structlog

    pre_chain: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%S.%fZ", utc=True, key="time"),
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        tail: list[Any] = [
            structlog.processors.EventRenamer("message"),
            structlog.processors.format_exc_info,
            order_keys,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, timestamp_key="time", exception_formatter=structlog.dev.plain_traceback, sort_keys=False
        )
        tail = []
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )


def configure_logging(
    level: str = DEFAULT_LOG_LEVEL, fmt: str = DEFAULT_LOG_FORMAT, stream: TextIO | None = None
) -> None:
    """Log every record at `level` or above to `stream` (stderr), as text or JSON lines; ValueError on an
    unknown level or format."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(build_formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


__all__ = [
    "DEFAULT_LOG_FORMAT",
    "DEFAULT_LOG_LEVEL",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "build_formatter",
    "configure_logging",
]

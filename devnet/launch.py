"""Start a node process: the one place that knows the command line of `uocd start`, for the devnet, the
chaos runs, the benches and the tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

NODE_PROGRAM = "uocd"  # the module `python -m` runs as uocd
ADVERSARY_PROGRAM = "devnet.adversary"  # the chaos suite's byzantine node
ROOT = Path(__file__).resolve().parents[1]


def node_argv(
    home: Path,
    *,
    log_level: str | None = "info",
    log_format: str | None = "json",
    prefix: Sequence[str] = (),
    adversary: Sequence[str] | None = None,
) -> list[str]:
    """`python [PREFIX] -m NODE_PROGRAM [--log-level L] [--log-format F] start --home HOME`; PREFIX goes between
    the interpreter and `-m` (e.g. `-m cProfile -o FILE`), a None log option is left to uocd's default.
    With `adversary` (its arguments, e.g. `--seed S`), the program is ADVERSARY_PROGRAM instead: the same
    node with a byzantine behaviour switched on (`devnet/adversary.py`)."""
    options = ["--log-level", log_level] if log_level else []
    options += ["--log-format", log_format] if log_format else []
    if adversary is not None:
        return [sys.executable, *prefix, "-m", ADVERSARY_PROGRAM, *options, "--home", str(home), *adversary]
    return [sys.executable, *prefix, "-m", NODE_PROGRAM, *options, "start", "--home", str(home)]


def spawn_node(
    home: Path,
    wrap: Callable[[list[str]], list[str]] = list,
    *,
    log_level: str | None = "info",
    log_format: str | None = "json",
    prefix: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    adversary: Sequence[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `uocd start --home HOME` (see `node_argv`; its argv passed through `wrap`, e.g. into a network
    namespace) from the repository root, in its own session, its stderr appended to HOME/node.log; `env`
    replaces the environment when given; `adversary`: see `node_argv`."""
    argv = node_argv(home, log_level=log_level, log_format=log_format, prefix=prefix, adversary=adversary)
    with open(home / "node.log", "ab") as log:
        return subprocess.Popen(
            wrap(argv),
            cwd=ROOT,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )


__all__ = ["ADVERSARY_PROGRAM", "NODE_PROGRAM", "node_argv", "spawn_node"]

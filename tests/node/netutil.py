"""Helpers for node tests: homes with a shared genesis on free loopback ports, fast timeouts."""

from __future__ import annotations

import socket
from pathlib import Path

from node.config import collect_genesis, init_home, load_home, update_config
from node.consensus import Timeouts

FAST = Timeouts(
    propose_ms=400,
    propose_delta_ms=200,
    prevote_ms=200,
    prevote_delta_ms=100,
    precommit_ms=200,
    precommit_delta_ms=100,
    commit_ms=100,
)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_homes(root: Path, count: int, *, validators: int | None = None, **config) -> list[Path]:
    """`count` node homes sharing one genesis whose validators are the first `validators` homes (all by
    default), each listing the others as peers; fast timeouts unless overridden."""
    validators = count if validators is None else validators
    homes = []
    for i in range(count):
        home = root / f"node{i}"
        init_home(home, f"node{i}", chain_id="uoc-nettest", key_name=f"nettest-{i}", listen=f"127.0.0.1:{free_port()}")
        update_config(home, timeouts=FAST, status_interval_ms=200)
        homes.append(home)
    collect_genesis(homes[:validators])
    genesis = (homes[0] / "genesis.json").read_text()
    for home in homes[validators:]:
        (home / "genesis.json").write_text(genesis)
    addresses = [load_home(h).config.listen for h in homes]
    for home, address in zip(homes, addresses):
        update_config(home, peers=tuple(a for a in addresses if a != address), **config)
    return homes


def with_config(home: Path, **changes) -> None:
    """Change fields of a home's config.toml."""
    update_config(home, **changes)


__all__ = ["FAST", "free_port", "make_homes", "with_config"]

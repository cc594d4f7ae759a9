"""Helpers for node tests: homes with a shared genesis on free loopback ports, fast timeouts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from chain.crypto import PrivateKey
from devnet.launch import spawn_node
from node.config import (
    collect_genesis,
    compute_loopback_timeouts,
    compute_peer_address,
    find_free_port,
    init_home,
    load_home,
    update_config,
)
from node.tls import TlsIdentity, build_self_channel, create_identity, load_identity
from uocd.main import main as uocd

FAST = compute_loopback_timeouts(100)


class NodeProcess:
    """A `uocd start` child process (its own session, JSON logs in HOME/node.log) and its home's addresses."""

    def __init__(self, home: Path, wrap: Callable[[list[str]], list[str]] = list) -> None:
        loaded = load_home(home)
        self.home = home
        self.chain_id = loaded.genesis["chain_id"]
        self.key = loaded.validator_key
        self.grpc = loaded.config.listen
        self.public = loaded.config.api_public
        self.admin = loaded.config.api_admin
        self.metrics = loaded.config.prometheus_listen_addr
        self.token = loaded.admin_token
        self.popen = spawn_node(home, wrap)

    def signal(self, sig: int) -> int:
        """Send `sig` to the node's process group (if it runs) and wait for it; its exit code."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
        return self.popen.wait(timeout=20)

    def stop(self) -> int:
        """SIGTERM (a graceful stop) and wait; the exit code."""
        return self.signal(signal.SIGTERM)


async def wait_for(predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """`wait_until` inside an event loop (an in-process node runs on it): poll `predicate` every 50 ms
    without blocking the loop; AssertionError naming `what` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}")
        await asyncio.sleep(0.05)


def wait_until(
    predicate, what: str, timeout: float = 30.0, *, interval: float = 0.1, ignore: tuple[type[BaseException], ...] = ()
) -> Any:
    """Poll `predicate` until it returns a true value (which is returned); an exception in `ignore` counts as
    false. AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except ignore:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting until {what}")


def read_metrics(address: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The samples of a node's metrics listener (`GET http://ADDRESS/metrics`, parsed by prometheus-client):
    sample name -> sorted label pairs -> value."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def read_metric(address: str, name: str) -> float:
    """One metric's value (summed over its labels) from a node's metrics listener; AssertionError if absent."""
    values = read_metrics(address).get(name)
    assert values, f"{name} is not in /metrics"
    return sum(values.values())


def free_port() -> int:
    """A TCP port free on loopback right now."""
    return find_free_port("127.0.0.1")


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
    addresses = [compute_peer_address(load_home(h)) for h in homes]
    for home, address in zip(homes, addresses):
        update_config(home, peers=tuple(a for a in addresses if a != address), **config)
    return homes


def make_cli_home(
    root: Path,
    moniker: str,
    chain_id: str,
    params: dict[str, Any],
    *,
    accounts: tuple[dict[str, Any], ...] = (),
    validators: tuple[dict[str, Any], ...] = (),
) -> Path:
    """A one-validator home `root/node` made with `uocd init` (key `MONIKER-0`, 100 ms blocks and
    timeouts), its genesis given `params` and the extra `accounts` and `validators`."""
    home = root / "node"
    args = ["init", "--home", str(home), "--moniker", moniker, "--chain-id", chain_id, "--key-name", f"{moniker}-0"]
    assert uocd([*args, "--block-interval-ms", "100", "--grpc", f"127.0.0.1:{free_port()}"]) == 0
    genesis = json.loads((home / "genesis.json").read_text())
    genesis["accounts"] += accounts
    genesis["validators"] += validators
    genesis["params"] = {**genesis.get("params", {}), **params}
    (home / "genesis.json").write_text(json.dumps(genesis, indent=2))
    update_config(home, timeouts=replace(FAST, commit_ms=100), status_interval_ms=200)
    return home


def make_cli_network(root: Path, name: str, params: dict[str, Any], count: int = 4) -> list[Path]:
    """`count` homes made as an operator makes them, `uocd init` (epochs of `params["epoch_length"]`
    blocks of ~200 ms) and `uocd genesis collect`, with `params` in the genesis; fast timeouts."""
    homes = [root / f"node{i}" for i in range(count)]
    for i, home in enumerate(homes):
        args = ["init", "--home", str(home), "--moniker", f"{name}{i}", "--chain-id", f"uoc-{name}test"]
        args += ["--key-name", f"{name}test-{i}", "--epoch-length", str(params["epoch_length"])]
        args += ["--block-interval-ms", "200", "--grpc", f"127.0.0.1:{free_port()}"]
        assert uocd(args) == 0
    assert uocd(["genesis", "collect", *map(str, homes)]) == 0
    genesis = json.loads((homes[0] / "genesis.json").read_text())
    genesis["params"] = {**genesis.get("params", {}), **params}
    for home in homes:
        (home / "genesis.json").write_text(json.dumps(genesis, indent=2))
        update_config(home, timeouts=replace(FAST, commit_ms=200), status_interval_ms=200)
    return homes


class ApiNode(NodeProcess):
    """A `uocd start` child process with its API base URLs and the admin auth header."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.public = f"http://{self.public}"
        self.admin = f"http://{self.admin}"
        self.auth = {"Authorization": f"Bearer {self.token}"}


def with_config(home: Path, **changes) -> None:
    """Change fields of a home's config.toml."""
    update_config(home, **changes)


__all__ = [
    "FAST",
    "ApiNode",
    "NodeProcess",
    "free_port",
    "make_cli_home",
    "make_cli_network",
    "make_homes",
    "read_metric",
    "wait_for",
    "read_metrics",
    "wait_until",
    "with_config",
]


def load_tls_identity(home: Path) -> TlsIdentity:
    """A home's TLS identity (made at init)."""
    return load_identity(home, load_home(home).node_key)


def self_credentials(home: Path) -> tuple[grpc.ChannelCredentials, list[tuple[str, str]]]:
    """Credentials and options of a channel to a home's node as that node itself (which its server accepts)."""
    return build_self_channel(load_tls_identity(home))


def aio_self_channel(home: Path, address: str) -> grpc.aio.Channel:
    """An aio gRPC channel to the node of `home` at `address`, authenticated as that node."""
    credentials, options = self_credentials(home)
    return grpc.aio.secure_channel(address, credentials, options=options)


def self_channel(home: Path, address: str) -> grpc.Channel:
    """A blocking gRPC channel to the node of `home` at `address`, authenticated as that node."""
    credentials, options = self_credentials(home)
    return grpc.secure_channel(address, credentials, options=options)


def make_identity(directory: Path, name: str) -> TlsIdentity:
    """A node TLS identity of its own (the node key derived from `name`) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    return create_identity(directory, PrivateKey.from_name(name, salt="uoc-tests"))


def add_tls_port(server: grpc.aio.Server, directory: Path, *clients: TlsIdentity) -> str:
    """Give a test server a node identity (made in `directory`) and a mutual-TLS loopback port that accepts
    the client identities `clients`; the server's peer address NODE_ID@127.0.0.1:PORT."""
    identity = make_identity(directory, f"server-{directory}")
    roots = b"".join(client.cert_pem for client in clients)
    credentials = grpc.ssl_server_credentials([(identity.key_pem, identity.cert_pem)], roots, require_client_auth=True)
    return f"{identity.node_id}@127.0.0.1:{server.add_secure_port('127.0.0.1:0', credentials)}"

"""The network of a chaos run: the fault fabric, the node homes on it, the node processes, and their heights."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chain.crypto import PrivateKey
from node.client import ApiError, Client
from node.config import (
    ADMIN_TOKEN_FILE,
    collect_genesis,
    compute_loopback_timeouts,
    init_home,
    load_home,
    update_config,
)
from node.tls import compute_node_id

from . import fabric_netns
from .chaos_plan import ChaosConfig
from .devnet import compute_devnet_chain_id, tail
from .errors import DevnetError
from .fabric import Fabric
from .fabric_netns import NetnsFabric
from .fabric_proxy import ProxyFabric
from .launch import spawn_node

SETTLE_TIMEOUT_S = 60.0
STATUS_TIMEOUT_S = 2.0


def open_fabric(kind: str, run_id: str, echo: Callable[[str], None] = print) -> Fabric:
    """kind is "auto", "netns" or "proxy". "auto" tries netns (`fabric_netns.probe_netns`: root, the commands,
    and a real namespace, veth, iptables rule and NFQUEUE, then removed); if that is refused, echo ONE loud
    line with the reason and return the proxy fabric. "netns" explicitly requested but refused ->
    DevnetError with the reason. Never skip silently."""
    if kind == "proxy":
        return ProxyFabric(run_id)
    if kind not in ("auto", "netns"):
        raise DevnetError(f"unknown fabric {kind!r}: use auto, netns or proxy")
    reason = fabric_netns.probe_netns()
    if reason is None:
        return NetnsFabric(run_id)
    if kind == "netns":
        raise DevnetError(f"network namespaces refused: {reason}")
    echo(f"WARNING: network namespaces refused ({reason}); falling back to the TCP fault proxy")
    return ProxyFabric(run_id)


@dataclass
class ChaosNode:
    """A node of the run: its home, addresses, keys and process."""

    index: int
    home: Path
    public: str
    admin: str
    token: str
    key: PrivateKey
    grpc: str = ""
    proc: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    adversary: tuple[str, ...] | None = None  # the adversary's arguments if this validator lies

    @property
    def is_honest(self) -> bool:
        """False for a validator run as an adversary."""
        return self.adversary is None

    @property
    def name(self) -> str:
        """n0, n1, …"""
        return self.home.name

    @property
    def pid(self) -> int | None:
        """The running process's pid, or None."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


def create_chaos_homes(root: Path, fabric: Fabric, config: ChaosConfig) -> list[ChaosNode]:
    """One home per validator, its listeners on the fabric's address for it, its peers through the fabric."""
    grpc_ports: list[int] = []
    homes = []
    chain_id = compute_devnet_chain_id()  # a run's own: no other devnet takes its transactions
    for i in range(config.validators):
        host, port = fabric.node_host(i), fabric.free_port(i)
        home = root / f"n{i}"
        init_home(
            home,
            home.name,
            chain_id=chain_id,
            epoch_length=config.epoch_length,
            listen=f"{host}:{port}",
            api_public=f"{host}:{fabric.free_port(i)}",
            api_admin=f"{host}:{fabric.free_port(i)}",
        )
        update_config(home, timeouts=compute_loopback_timeouts(config.block_ms), status_interval_ms=200)
        grpc_ports.append(port)
        homes.append(home)
    collect_genesis(homes, set_peers=False)
    node_ids = [compute_node_id(load_home(h).node_key.pubkey) for h in homes]
    nodes = []
    for i, home in enumerate(homes):
        peers = tuple(f"{node_ids[j]}@{fabric.peer_address(i, j, grpc_ports[j])}" for j in range(len(homes)) if j != i)
        update_config(home, peers=peers)
        loaded = load_home(home)
        assert loaded.validator_key is not None
        nodes.append(
            ChaosNode(
                i,
                home,
                public=f"http://{loaded.config.api_public}",
                admin=f"http://{loaded.config.api_admin}",
                token=(home / ADMIN_TOKEN_FILE).read_text().strip(),
                key=loaded.validator_key,
                grpc=loaded.config.listen,
            )
        )
    return nodes


def start_process(node: ChaosNode, fabric: Fabric) -> None:
    """Start the node's `uocd start` (an adversary's `python -m devnet.adversary`) through the fabric (in its
    namespace), logging to HOME/node.log."""
    node.proc = spawn_node(node.home, lambda argv: fabric.wrap_command(node.index, argv), adversary=node.adversary)
    node.stopped = False


def kill_process(node: ChaosNode) -> None:
    """SIGKILL the node's process (continuing it first if paused) and reap it."""
    if node.proc is None:
        return
    if node.proc.poll() is None:
        node.proc.kill()
        if node.stopped:
            os.kill(node.proc.pid, signal.SIGCONT)
    node.proc.wait()
    node.stopped = False


def terminate_process(node: ChaosNode, grace_s: float = 15.0) -> None:
    """SIGTERM the node and wait for its graceful stop (SIGKILL after `grace_s`)."""
    if node.proc is None or node.proc.poll() is not None:
        return
    if node.stopped:
        os.kill(node.proc.pid, signal.SIGCONT)
    node.proc.terminate()
    try:
        node.proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        kill_process(node)


def pause_process(node: ChaosNode, paused: bool) -> None:
    """SIGSTOP (paused) or SIGCONT the node's process."""
    if node.pid is not None:
        os.kill(node.pid, signal.SIGSTOP if paused else signal.SIGCONT)
        node.stopped = paused


def fetch_height(node: ChaosNode) -> tuple[int, str] | None:
    """(height, app hash) from the node's /v1/status, or None if it does not answer."""
    try:
        status = Client(node.public, timeout=STATUS_TIMEOUT_S).get("/v1/status")
    except ApiError:
        return None
    return status["height"], status["app_hash"]


def fetch_heights(nodes: list[ChaosNode]) -> list[int | None]:
    """Every node's height (None where it does not answer), asked in parallel."""
    results: list[int | None] = [None] * len(nodes)

    def ask(i: int) -> None:
        got = fetch_height(nodes[i])
        results[i] = got[0] if got else None

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def get_network_height(nodes: list[ChaosNode]) -> int:
    """The highest height any node reports (0 if none answers)."""
    return max((h for h in fetch_heights(nodes) if h is not None), default=0)


def wait_all_at(nodes: list[ChaosNode], height: int, timeout_s: float) -> float | None:
    """Seconds until every node reports `height` or more; None on timeout. DevnetError if a node exits."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is not None:
                raise DevnetError(
                    f"node {node.name} exited ({node.proc.returncode}); its log: {tail(node.home / 'node.log')}"
                )
        heights = fetch_heights(nodes)
        if all(h is not None and h >= height for h in heights):
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def settle(nodes: list[ChaosNode], timeout_s: float = SETTLE_TIMEOUT_S) -> tuple[int, str] | None:
    """Poll until every node reports one (height, app hash); that pair, or None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tips = [fetch_height(n) for n in nodes]
        if all(tips) and len(set(tips)) == 1:
            return tips[0]
        time.sleep(0.05)
    return None

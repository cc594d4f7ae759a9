"""The network under a chaos run: the interface every fault fabric implements, and the checks they share.

Two fabrics implement it:

- `devnet.fabric_netns.NetnsFabric` ("netns"): one network namespace per node on a bridge; faults are
  real kernel rules (iptables, and NFQUEUE for delay, see `devnet.fabric_nfqueue`).
- `devnet.fabric_proxy.ProxyFabric` ("proxy"): everything on 127.0.0.1; node-to-node traffic goes
  through TCP relays that apply the faults to the relayed bytes.

`devnet.chaos_nodes.open_fabric` picks one (namespaces when `fabric_netns.probe_netns` says they work).
"""

from __future__ import annotations

import random

from .errors import DevnetError

COMMAND_TIMEOUT = 30.0


class Fabric:
    """The network of a chaos run: node addresses, how nodes dial each other, faults and cleanup."""

    kind: str = ""

    def setup(self, n: int) -> None:
        """Prepare node slots 0..n-1, after removing the leftovers of earlier crashed runs."""
        raise NotImplementedError

    def node_host(self, i: int) -> str:
        """The IP node i binds all its listeners to; reachable from the runner."""
        raise NotImplementedError

    def free_port(self, i: int) -> int:
        """A free TCP port on node i's host."""
        raise NotImplementedError

    def peer_address(self, src: int, dst: int, dst_port: int) -> str:
        """The "host:port" node src dials to reach node dst's gRPC port dst_port."""
        raise NotImplementedError

    def wrap_command(self, i: int, argv: list[str]) -> list[str]:
        """The command line that runs argv as node i (its own pid, in its own network)."""
        raise NotImplementedError

    def partition(self, groups: list[list[int]]) -> None:
        """Nodes in different groups exchange nothing; replaces any earlier partition."""
        raise NotImplementedError

    def set_loss(self, nodes: list[int], probability: float) -> None:
        """Drop that fraction of the traffic between those nodes and any other node (0 removes it)."""
        raise NotImplementedError

    def set_delay(self, nodes: list[int], delay_ms: int, jitter_ms: int) -> None:
        """Delay the traffic those nodes send to other nodes by delay±jitter ms (0 removes it)."""
        raise NotImplementedError

    def heal(self) -> None:
        """Remove every partition, loss and delay; traffic flows normally again."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Remove everything this fabric made; idempotent, safe after a partial setup."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the run log."""
        raise NotImplementedError

    def __enter__(self) -> Fabric:
        """The fabric itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Tear the fabric down."""
        self.teardown()


def check_groups(groups: list[list[int]], n: int) -> dict[int, int]:
    """Each listed node's group index; DevnetError on an unknown or repeated node. Unlisted nodes are
    not partitioned from anyone."""
    group_of: dict[int, int] = {}
    for g, members in enumerate(groups):
        for i in members:
            if not 0 <= i < n:
                raise DevnetError(f"partition names node {i}, but the fabric has nodes 0..{n - 1}")
            if i in group_of:
                raise DevnetError(f"partition lists node {i} in two groups: {groups}")
            group_of[i] = g
    return group_of


def are_split(group_of: dict[int, int], a: int, b: int) -> bool:
    """True if a and b are both in the partition, in different groups."""
    return a in group_of and b in group_of and group_of[a] != group_of[b]


def check_probability(probability: float) -> None:
    """DevnetError unless 0 <= probability <= 1."""
    if not 0.0 <= probability <= 1.0:
        raise DevnetError(f"loss probability must be within [0, 1], got {probability}")


def check_delay(delay_ms: int, jitter_ms: int) -> None:
    """DevnetError unless 0 <= jitter <= delay."""
    if delay_ms < 0 or jitter_ms < 0 or jitter_ms > delay_ms:
        raise DevnetError(f"delay needs 0 <= jitter <= delay, got delay {delay_ms} ms, jitter {jitter_ms} ms")


def draw_delay(delay_ms: int, jitter_ms: int) -> float:
    """A delay in seconds, uniform in delay±jitter ms."""
    return max(0.0, delay_ms + random.uniform(-jitter_ms, jitter_ms)) / 1000.0

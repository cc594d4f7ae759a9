"""The netns fault fabric: one network namespace per node, faults as kernel rules.

Each node has a network namespace with a veth into a bridge in the root namespace. The bridge holds
`.254` of a free /24 (the runner reaches every node through it) and node `i` is `.i+1`. Faults are
real kernel rules inside the nodes' namespaces, rebuilt as a whole with one `iptables-restore` per
namespace on every change (logged at debug level): partition is `-s/-d PEER -j DROP` on INPUT and
OUTPUT, loss is `-m statistic --mode random --probability P -j DROP` on INPUT and OUTPUT, delay of
node i is `-s NODE_i -j NFQUEUE --queue-num i --queue-bypass` on every other node's INPUT, this
process holding each queued packet for delay±jitter before accepting it (see
`devnet.fabric_nfqueue.Delayer` and `NetnsFabric.set_delay`). Traffic from or to the bridge address
(the runner) and on `lo` is accepted before any fault rule.

`probe_netns` says whether this machine can run it and, if not, why and what to install.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from node.config import find_free_port

from .errors import DevnetError
from .fabric import COMMAND_TIMEOUT, Fabric, are_split, check_delay, check_groups, check_probability
from .fabric_nfqueue import Delayer, open_queue

log = logging.getLogger(__name__)

STATE_DIR = Path("/run/uoc-fabric")
SUBNET_PREFIX = "10.213"
BRIDGE_HOST = 254


# ---------------------------------------------------------------- commands


def run(argv: list[str], stdin: str | None = None) -> str:
    """Run a command; its stdout. DevnetError with the command and its stderr if it fails."""
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevnetError(f"{' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        raise DevnetError(f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def run_quiet(argv: list[str]) -> bool:
    """Run a cleanup command whose failure (already gone) is fine; True if it succeeded."""
    try:
        return subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def netns_names() -> set[str]:
    """The named network namespaces (`ip netns list`)."""
    return {line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()}


def link_names() -> set[str]:
    """The interface names of the root namespace."""
    return {json_link["ifname"] for json_link in json.loads(run(["ip", "-j", "link", "show"]) or "[]")}


def used_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of the root namespace's addresses and routes."""
    nets = []
    for entry in json.loads(run(["ip", "-j", "-4", "addr", "show"]) or "[]"):
        for addr in entry.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default" and ":" not in dst:
            try:
                nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
            except ValueError:
                continue
    return nets


def process_start(pid: int) -> int | None:
    """The start time (clock ticks after boot) of process pid; None if there is no such process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_alive(state: dict[str, Any]) -> bool:
    """True if the process that wrote a state file still runs (same pid and start time)."""
    start = process_start(int(state.get("pid", 0)))
    return start is not None and start == state.get("start", start)


@contextmanager
def state_lock() -> Iterator[None]:
    """Hold the lock of the fabric state directory (naming and /24 choice of concurrent runs)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_resources(namespaces: list[str], links: list[str], kill: bool) -> None:
    """Delete these namespaces (first SIGKILL their processes, if `kill`) and root-namespace links."""
    present = netns_names()
    for ns in namespaces:
        if ns not in present:
            continue
        if kill:
            try:
                pids = run(["ip", "netns", "pids", ns]).split()
            except DevnetError:
                pids = []
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        run_quiet(["ip", "netns", "del", ns])
    existing = link_names()
    for link in links:
        if link in existing:
            run_quiet(["ip", "link", "del", link])


def forward_accept_rule(bridge: str) -> list[str]:
    """The root-namespace FORWARD rule accepting bridged traffic between the bridge's ports (needed when
    br_netfilter is on and FORWARD's policy is DROP, as Docker sets it)."""
    return ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def add_forward_accept(bridge: str) -> None:
    """Insert the bridge's FORWARD accept rule in the root namespace."""
    argv = ["iptables", "-w", "-I", *forward_accept_rule(bridge)]
    log.debug("fabric: %s", " ".join(argv))
    run(argv)


def remove_forward_accept(bridge: str) -> None:
    """Delete every copy of the bridge's FORWARD accept rule, if any."""
    for _ in range(10):
        if not run_quiet(["iptables", "-w", "-D", *forward_accept_rule(bridge)]):
            return


def remove_dead_runs() -> list[str]:
    """Remove the namespaces and links of earlier runs whose owner process is dead; their tags."""
    removed = []
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if owner_alive(state):
            continue
        log.info("removing the network fabric %s left by dead process %s", path.stem, state.get("pid"))
        remove_resources(state.get("namespaces", []), state.get("links", []), kill=True)
        if state.get("forward_bridge"):
            remove_forward_accept(state["forward_bridge"])
        path.unlink(missing_ok=True)
        removed.append(path.stem)
    return removed


# ---------------------------------------------------------------- the fabric


class NetnsFabric(Fabric):
    """One network namespace per node on a bridge of the root namespace; faults are kernel rules."""

    kind = "netns"

    def __init__(self, run_id: str) -> None:
        """A fabric named after run_id and this process (set up by `setup`)."""
        self.run_id = run_id
        self.tag = ""
        self.n = 0
        self.network: ipaddress.IPv4Network | None = None
        self.groups: dict[int, int] = {}
        self.loss: dict[int, float] = {}
        self.delay: dict[int, tuple[int, int]] = {}
        self.delayer: Delayer | None = None

    @property
    def bridge(self) -> str:
        """The bridge's name."""
        return f"uocb{self.tag}"

    @property
    def state_path(self) -> Path:
        """This run's state file (owner pid and resource names, for leftover cleanup)."""
        return STATE_DIR / f"{self.tag}.json"

    def namespace(self, i: int) -> str:
        """Node i's namespace name."""
        return f"uoc{self.tag}n{i}"

    def veth(self, i: int) -> str:
        """The root-namespace end of node i's veth (the namespace end is `eth0`)."""
        return f"uocv{self.tag}{i}"

    def bridge_ip(self) -> str:
        """The bridge's address: the runner's source address towards the nodes."""
        return str(self.require_network()[BRIDGE_HOST])

    def require_network(self) -> ipaddress.IPv4Network:
        """The /24 of the fabric; DevnetError before setup."""
        if self.network is None:
            raise DevnetError("the netns fabric is not set up")
        return self.network

    def check_node(self, i: int) -> None:
        """DevnetError unless i is a node slot."""
        if not 0 <= i < self.n:
            raise DevnetError(f"node {i} is not in the fabric (nodes 0..{self.n - 1})")

    def pick_tag(self) -> str:
        """A 6-hex-digit tag from the run id and pid, not used by any namespace, link or state file."""
        namespaces, links = netns_names(), link_names()
        for attempt in range(100):
            tag = hashlib.sha256(f"{self.run_id}:{os.getpid()}:{attempt}".encode()).hexdigest()[:6]
            taken = any(ns.startswith(f"uoc{tag}") for ns in namespaces) or any(tag in link for link in links)
            if not taken and not (STATE_DIR / f"{tag}.json").exists():
                return tag
        raise DevnetError("no free fabric name tag after 100 tries")

    def pick_network(self) -> ipaddress.IPv4Network:
        """A 10.213.X.0/24 that overlaps no address or route of the root namespace."""
        used = used_networks()
        start = int(self.tag, 16) % 256
        for k in range(256):
            candidate = ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{(start + k) % 256}.0/24")
            if not any(candidate.overlaps(net) for net in used):
                return candidate
        raise DevnetError(f"every {SUBNET_PREFIX}.X.0/24 is in use")

    def write_state(self) -> None:
        """Record the owner pid and every resource name, before creating them."""
        state = {
            "pid": os.getpid(),
            "start": process_start(os.getpid()),
            "forward_bridge": self.bridge,
            "run_id": self.run_id,
            "network": str(self.network),
            "namespaces": [self.namespace(i) for i in range(self.n)],
            "links": [self.bridge, *(self.veth(i) for i in range(self.n))],
        }
        self.state_path.write_text(json.dumps(state))

    def setup(self, n: int) -> None:
        """Remove dead runs' leftovers, then create the bridge and n namespaces wired to it."""
        if self.tag:
            self.teardown()
        if n < 1 or n > 200:
            raise DevnetError(f"the netns fabric takes 1 to 200 nodes, got {n}")
        with state_lock():
            remove_dead_runs()
            self.tag = self.pick_tag()
            self.n = n
            self.network = self.pick_network()
            self.write_state()
            try:
                run(["ip", "link", "add", self.bridge, "type", "bridge"])
                run(["ip", "addr", "add", f"{self.bridge_ip()}/{self.network.prefixlen}", "dev", self.bridge])
            except BaseException:
                self.remove_all()
                raise
        try:
            run(["ip", "link", "set", self.bridge, "up"])
            add_forward_accept(self.bridge)
            for i in range(n):
                self.create_node(i)
        except BaseException:
            self.teardown()
            raise
        log.info("fabric up: %s", self.describe())

    def create_node(self, i: int) -> None:
        """Node i's namespace, `lo` up, veth `eth0` with .i+1 into the bridge, empty fault rules."""
        ns, veth = self.namespace(i), self.veth(i)
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "addr", "add", f"{self.node_host(i)}/{self.require_network().prefixlen}", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        self.apply_rules(i)

    def node_host(self, i: int) -> str:
        """Node i's address: .i+1 of the fabric's /24."""
        self.check_node(i)
        return str(self.require_network()[i + 1])

    def free_port(self, i: int) -> int:
        """A port for node i: any port is free in its own namespace; a fresh one each call anyway."""
        self.check_node(i)
        return find_free_port("127.0.0.1")

    def peer_address(self, src: int, dst: int, dst_port: int) -> str:
        """Node dst's own address: namespaces dial each other directly over the bridge."""
        self.check_node(src)
        return f"{self.node_host(dst)}:{dst_port}"

    def wrap_command(self, i: int, argv: list[str]) -> list[str]:
        """`ip netns exec NS argv`: ip execs argv in place, so the pid is the node's own."""
        self.check_node(i)
        return ["ip", "netns", "exec", self.namespace(i), *argv]

    def rules(self, i: int) -> str:
        """Node i's whole filter table, as iptables-restore input, from the current faults."""
        network = self.require_network()
        bridge = f"{self.bridge_ip()}/32"
        lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
        lines += ["-A INPUT -i lo -j ACCEPT", "-A OUTPUT -o lo -j ACCEPT"]
        lines += [f"-A INPUT -s {bridge} -j ACCEPT", f"-A OUTPUT -d {bridge} -j ACCEPT"]
        for j in range(self.n):
            if j != i and are_split(self.groups, i, j):
                lines += [f"-A INPUT -s {self.node_host(j)}/32 -j DROP", f"-A OUTPUT -d {self.node_host(j)}/32 -j DROP"]
        p = self.loss.get(i, 0.0)
        if p > 0:
            stat = f"-m statistic --mode random --probability {p:.6f} -j DROP"
            lines += [f"-A INPUT -s {network} {stat}", f"-A OUTPUT -d {network} {stat}"]
        for j in range(self.n):
            if j != i and self.delay.get(j, (0, 0))[0] > 0:
                lines.append(f"-A INPUT -s {self.node_host(j)}/32 -j NFQUEUE --queue-num {j} --queue-bypass")
        return "\n".join([*lines, "COMMIT", ""])

    def apply_rules(self, i: int) -> None:
        """Load node i's filter table atomically; the command and rules are logged at debug level."""
        argv = ["ip", "netns", "exec", self.namespace(i), "iptables-restore", "-w"]
        text = self.rules(i)
        log.debug("fabric: %s <<EOF\n%sEOF", " ".join(argv), text)
        run(argv, stdin=text)

    def partition(self, groups: list[list[int]]) -> None:
        """DROP, in each node's INPUT and OUTPUT, the addresses of the nodes of other groups."""
        self.groups = check_groups(groups, self.n)
        for i in range(self.n):
            self.apply_rules(i)

    def set_loss(self, nodes: list[int], probability: float) -> None:
        """`-m statistic --mode random --probability p -j DROP` on INPUT and OUTPUT of each node, for
        traffic from/to the fabric's /24 other than the bridge (so the runner's requests pass)."""
        check_probability(probability)
        for i in nodes:
            self.check_node(i)
            self.loss[i] = probability
            self.apply_rules(i)

    def set_delay(self, nodes: list[int], delay_ms: int, jitter_ms: int) -> None:
        """Delay what those nodes send to other nodes: in every other node's namespace, INPUT `-s NODE_i
        -j NFQUEUE --queue-num i --queue-bypass`, each packet held by this process for delay±jitter ms
        (never reordered).

        On the receiver's INPUT, not the sender's OUTPUT: a packet held on OUTPUT still counts against
        its socket's TCP small-queue budget, so only ~4 packets were ever in flight and 8 MiB took
        over 30 s at 50 ms (110 kB/s); held on INPUT (the veth orphaned it) the same 8 MiB take 0.6 s.

        Not tbf: measured here, `tbf rate 1mbit burst 1600 latency 200ms` added 0.0 ms to the round
        trip of a 100-byte and a 1000-byte request (0.1-0.4 ms with or without it), because a token
        bucket only delays what exceeds its rate; starving it (rate 20kbit) gave 170-830 ms of pure
        bandwidth queueing, not a delay. NFQUEUE gives the configured delay to every packet, small or
        not: 100-byte echoes from a node delayed 100±20 ms took 100-119 ms (0.0-0.4 ms undelayed), with
        both ends delayed 165-214 ms; at 200±20 ms, 200-217 ms, while the runner's round trip to the
        same node stayed at 0.03-0.3 ms (tests/devnet/test_fabric.py asserts these bounds loosely).
        """
        check_delay(delay_ms, jitter_ms)
        for i in nodes:
            self.check_node(i)
        if self.delayer is None:
            self.delayer = Delayer()
        for i in nodes:
            self.delay[i] = (delay_ms, jitter_ms)
            for j in range(self.n):
                if j != i:
                    self.delayer.set((j, i), self.namespace(j), i, delay_ms, jitter_ms)
                    log.debug("fabric: NFQUEUE %d of %s: held %d±%d ms", i, self.namespace(j), delay_ms, jitter_ms)
        for j in range(self.n):
            self.apply_rules(j)

    def heal(self) -> None:
        """Reload every node's filter table with no fault rule, then release any delayed packet."""
        self.groups, self.loss, self.delay = {}, {}, {}
        for i in range(self.n):
            self.apply_rules(i)
        if self.delayer is not None:
            self.delayer.clear()

    def teardown(self) -> None:
        """Stop the delayer; delete the namespaces, veths, bridge and FORWARD rule; remove the state file.
        Node processes are the runner's to stop first: one still running keeps its (unnamed, unwired)
        namespace alive until it exits."""
        if self.delayer is not None:
            self.delayer.close()
            self.delayer = None
        if not self.tag:
            return
        with state_lock():
            self.remove_all()
        self.groups, self.loss, self.delay = {}, {}, {}

    def remove_all(self) -> None:
        """Delete the namespaces, veths, bridge, FORWARD rule and state file (with the state lock held)."""
        links = [self.bridge, *(self.veth(i) for i in range(self.n))]
        remove_resources([self.namespace(i) for i in range(self.n)], links, kill=False)
        remove_forward_accept(self.bridge)
        self.state_path.unlink(missing_ok=True)

    def describe(self) -> str:
        """E.g. "netns: 5 namespaces on bridge uocb1a2b3c, 10.213.7.0/24 (runner at .254)"."""
        if self.network is None:
            return "netns: not set up"
        return f"netns: {self.n} namespaces on bridge {self.bridge}, {self.network} (runner at .{BRIDGE_HOST})"


# ---------------------------------------------------------------- can this machine run it


REQUIRED_COMMANDS = (("ip", "iproute2"), ("iptables", "iptables"), ("iptables-restore", "iptables"))


def probe_netns() -> str | None:
    """None if this machine can run the netns fabric; else why not, in one phrase naming what to install.

    Checks root and the commands first, then really makes a namespace, a veth into it, an iptables rule
    and an NFQUEUE (for delay) in it, and removes them."""
    if os.geteuid() != 0:
        return "not root (network namespaces, veths and iptables rules need root)"
    missing = [command for command, _ in REQUIRED_COMMANDS if shutil.which(command) is None]
    if missing:
        packages = " ".join(sorted({package for command, package in REQUIRED_COMMANDS if command in missing}))
        names = ", ".join(f"`{command}`" for command in missing)
        return f"{names} not found (on Debian or Ubuntu: apt-get install {packages})"
    tag = f"uocp{os.getpid() % 100000}"
    ns, veth = f"{tag}n", f"{tag}v"
    step = "cannot make a network namespace with a veth"
    try:
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        step = "iptables cannot add a rule in a namespace (the kernel needs netfilter support)"
        run(["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-s", "10.213.0.1", "-j", "DROP"])
        step = "the kernel has no NFQUEUE support (needed for delay: the nfnetlink_queue module)"
        open_queue(ns, 0).close()
    except DevnetError as exc:
        return f"{step}: {exc}"
    finally:
        remove_resources([ns], [veth], kill=False)
    return None

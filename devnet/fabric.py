"""The network under a chaos run: where each node listens, how it reaches its peers, and the faults.

Two fabrics share one interface (`Fabric`):

- `NetnsFabric` ("netns"): one network namespace per node, each with a veth into a bridge in the
  root namespace. The bridge holds `.254` of a free /24 (the runner reaches every node through it)
  and node `i` is `.i+1`. Faults are real kernel rules inside the nodes' namespaces, rebuilt as a
  whole with one `iptables-restore` per namespace on every change (logged at debug level):
  partition is `-s/-d PEER -j DROP` on INPUT and OUTPUT, loss is `-m statistic --mode random
  --probability P -j DROP` on INPUT and OUTPUT, delay of node i is `-s NODE_i -j NFQUEUE --queue-num i
  --queue-bypass` on every other node's INPUT, this process holding each queued packet for
  delay±jitter before accepting it (see `Delayer` and `NetnsFabric.set_delay`).
  Traffic from or to the bridge address (the runner) and on `lo` is accepted before any fault rule.
- `ProxyFabric` ("proxy"): everything on 127.0.0.1; node `src` dials node `dst` through a relay
  listener of its own (`src`, `dst`) pair, run by asyncio in a background thread, which applies the
  faults to the relayed bytes. Only node-to-node gRPC goes through relays, never the runner's HTTP.

`open_fabric("auto", ...)` probes namespaces for real and falls back to the proxy with one loud line.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import hashlib
import heapq
import ipaddress
import json
import logging
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from node.config import find_free_port

from .errors import DevnetError

log = logging.getLogger(__name__)

STATE_DIR = Path("/run/uoc-fabric")
SUBNET_PREFIX = "10.213"
BRIDGE_HOST = 254
COMMAND_TIMEOUT = 30.0
CLONE_NEWNET = 0x40000000


# ---------------------------------------------------------------- the interface


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


# ---------------------------------------------------------------- namespaces and NFQUEUE


def open_netns_socket(ns: str, family: int, kind: int, proto: int) -> socket.socket:
    """A socket created inside network namespace `ns` (by a short-lived thread that enters it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: dict[str, Any] = {}

    def make() -> None:
        """Enter the namespace (this thread only) and create the socket."""
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result["sock"] = socket.socket(family, kind, proto)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=make, name=f"netns-{ns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise DevnetError(f"cannot open a socket in namespace {ns}: {result['error']}")
    return result["sock"]


NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
QUEUE_MAXLEN = 8192
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2


def nl_attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def nfq_message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST) -> bytes:
    """A nfnetlink queue message: netlink header, nfgenmsg (AF_UNSPEC, v0, queue) and attributes."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, 0, 0) + body


def nfq_config(sock: socket.socket, queue: int, attr: bytes) -> None:
    """Send one queue config message and wait for its ack; OSError if the kernel refuses it."""
    sock.send(nfq_message(NFQNL_MSG_CONFIG, queue, attr, NLM_F_REQUEST | NLM_F_ACK))
    while True:
        data = sock.recv(65536)
        for kind, payload in nl_messages(data):
            if kind == NLMSG_ERROR:
                code = struct.unpack_from("=i", payload)[0]
                if code:
                    raise OSError(-code, f"NFQUEUE config: {os.strerror(-code)}")
                return


def nl_messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (type, payload) of each netlink message in a datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            return
        yield kind, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


def nfq_packet_id(payload: bytes) -> int | None:
    """The packet id of a queued-packet message payload (nfgenmsg + attributes)."""
    offset = 4
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            return None
        if kind & 0x7FFF == NFQA_PACKET_HDR:
            return struct.unpack_from("!I", payload, offset + 4)[0]
        offset += (length + 3) & ~3
    return None


def open_queue(ns: str, queue: int) -> socket.socket:
    """A netlink socket in `ns` bound to NFQUEUE `queue`, copying packet metadata only."""
    sock = open_netns_socket(ns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.bind((0, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        nfq_config(sock, queue, nl_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
        nfq_config(sock, queue, nl_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        nfq_config(sock, queue, nl_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)))
    except OSError as exc:
        sock.close()
        raise DevnetError(f"cannot bind NFQUEUE {queue} in namespace {ns}: {exc}") from None
    return sock


QueueKey = tuple[int, int]


class Delayer:
    """Holds the packets of NFQUEUE sockets (one per delayed namespace) for delay±jitter, in a thread.

    Each packet is accepted at max(arrival + delay±jitter, the previous packet's release): delays
    are drawn per packet but a queue never reorders its packets, so TCP sees delay and jitter, not
    reordering. The iptables rules use --queue-bypass, so with no listener packets pass undelayed.
    """

    def __init__(self) -> None:
        """An idle delayer; the thread starts with the first queue."""
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.settings: dict[QueueKey, tuple[int, int]] = {}
        self.sockets: dict[QueueKey, socket.socket] = {}
        self.last_release: dict[QueueKey, float] = {}
        self.pending: list[tuple[float, int, QueueKey, int]] = []
        self.seq = 0
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.thread: threading.Thread | None = None
        self.stopping = False

    def set(self, key: QueueKey, ns: str, queue: int, delay_ms: int, jitter_ms: int) -> None:
        """Delay queue `key` (opened in `ns` on first use) by delay±jitter ms; 0 releases at once."""
        with self.lock:
            if key not in self.sockets and delay_ms > 0:
                sock = open_queue(ns, queue)
                sock.setblocking(False)
                self.sockets[key] = sock
                self.selector.register(sock, selectors.EVENT_READ, key)
            self.settings[key] = (delay_ms, jitter_ms)
            if delay_ms == 0:
                now = time.monotonic()
                self.pending = [(now if k == key else t, s, k, p) for t, s, k, p in self.pending]
                heapq.heapify(self.pending)
        if self.thread is None and self.sockets:
            self.thread = threading.Thread(target=self.loop, name="fabric-delayer", daemon=True)
            self.thread.start()
        self.wake_w.send(b"x")

    def clear(self) -> None:
        """Stop delaying: release every held packet now."""
        for key in list(self.settings):
            self.set(key, "", key[1], 0, 0)

    def loop(self) -> None:
        """Read queued packets, release them when due."""
        while not self.stopping:
            with self.lock:
                timeout = max(0.0, self.pending[0][0] - time.monotonic()) if self.pending else 1.0
            for selected, _ in self.selector.select(timeout):
                if selected.data is None:
                    try:
                        self.wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                else:
                    self.receive(selected.data)
            self.release_due()

    def receive(self, key: QueueKey) -> None:
        """Queue every packet waiting on socket `key` for its release time."""
        with self.lock:
            sock = self.sockets.get(key)
            if sock is None:
                return
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    return
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:
                        continue
                    return
                now = time.monotonic()
                delay_ms, jitter_ms = self.settings.get(key, (0, 0))
                for kind, payload in nl_messages(data):
                    if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                        continue
                    packet_id = nfq_packet_id(payload)
                    if packet_id is None:
                        continue
                    queue = socket.ntohs(struct.unpack_from("=H", payload, 2)[0])
                    release = max(now + draw_delay(delay_ms, jitter_ms), self.last_release.get(key, 0.0))
                    self.last_release[key] = release
                    self.seq += 1
                    heapq.heappush(self.pending, (release, self.seq, key, (queue << 32) | packet_id))

    def release_due(self) -> None:
        """Accept every held packet whose time has come."""
        with self.lock:
            now = time.monotonic()
            while self.pending and self.pending[0][0] <= now:
                _, _, key, tagged = heapq.heappop(self.pending)
                sock = self.sockets.get(key)
                if sock is None:
                    continue
                verdict = nl_attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, tagged & 0xFFFFFFFF))
                try:
                    sock.send(nfq_message(NFQNL_MSG_VERDICT, tagged >> 32, verdict))
                except OSError as exc:
                    log.debug("NFQUEUE verdict lost: %s", exc)

    def close(self) -> None:
        """Release every held packet, stop the thread and close the queues."""
        self.clear()
        time.sleep(0.05)
        self.stopping = True
        self.wake_w.send(b"x")
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.release_due()
        with self.lock:
            for sock in self.sockets.values():
                self.selector.unregister(sock)
                sock.close()
            self.sockets.clear()
        self.selector.close()
        self.wake_r.close()
        self.wake_w.close()


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


# ---------------------------------------------------------------- the TCP fault proxy


class Relay:
    """One relayed connection from node src to node dst."""

    def __init__(self, src: int, dst: int, writers: list[asyncio.StreamWriter]) -> None:
        """A relay between these two nodes' streams."""
        self.src, self.dst, self.writers = src, dst, writers
        self.closed = False

    def cut(self) -> None:
        """Reset both sides at once."""
        self.closed = True
        for writer in self.writers:
            writer.transport.abort()


class ProxyFabric(Fabric):
    """Nodes on 127.0.0.1, node-to-node traffic through per-(src, dst) asyncio relays with faults.

    Loss: each chunk a relay reads is, with the probability (the larger of its two ends' settings),
    dropped and both connections reset; gRPC then reconnects, so loss shows as broken connections
    and retries rather than stalls. Delay: each chunk is forwarded delay±jitter ms after it was
    read (the sender's setting), in order, pipelined (not cumulative).
    """

    kind = "proxy"

    def __init__(self, run_id: str) -> None:
        """A proxy fabric with no relay yet (its thread starts in `setup`)."""
        self.run_id = run_id
        self.n = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.servers: dict[tuple[int, int], tuple[asyncio.base_events.Server, int, int]] = {}
        self.relays: set[Relay] = set()
        self.groups: dict[int, int] = {}
        self.loss: dict[int, float] = {}
        self.delay: dict[int, tuple[int, int]] = {}

    def setup(self, n: int) -> None:
        """Start the relay thread and its event loop."""
        self.teardown()
        self.n = n
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fabric-proxy", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the relay loop and return its result (fn may return a coroutine, awaited)."""
        if self.loop is None:
            raise DevnetError("the proxy fabric is not set up")

        async def runner() -> Any:
            """fn's result, awaited if it is a coroutine."""
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout=COMMAND_TIMEOUT)

    def check_node(self, i: int) -> None:
        """DevnetError unless i is a node slot."""
        if not 0 <= i < self.n:
            raise DevnetError(f"node {i} is not in the fabric (nodes 0..{self.n - 1})")

    def node_host(self, i: int) -> str:
        """Every node listens on loopback."""
        self.check_node(i)
        return "127.0.0.1"

    def free_port(self, i: int) -> int:
        """A loopback port never handed out before by this process."""
        self.check_node(i)
        return find_free_port("127.0.0.1")

    def peer_address(self, src: int, dst: int, dst_port: int) -> str:
        """The loopback address of the (src, dst) relay to dst_port, started on first use."""
        self.check_node(src)
        self.check_node(dst)
        known = self.servers.get((src, dst))
        if known is not None and known[2] == dst_port:
            return f"127.0.0.1:{known[1]}"
        port = find_free_port("127.0.0.1")

        async def start() -> asyncio.base_events.Server:
            """Listen for src's connections to dst."""
            return await asyncio.start_server(
                lambda r, w: self.relay(src, dst, dst_port, r, w), "127.0.0.1", port, reuse_address=True
            )

        try:
            server = self.call(start)
        except OSError as exc:
            raise DevnetError(f"cannot listen on 127.0.0.1:{port} for relay {src}->{dst}: {exc}") from None
        if known is not None:
            self.call(known[0].close)
        self.servers[(src, dst)] = (server, port, dst_port)
        return f"127.0.0.1:{port}"

    def wrap_command(self, i: int, argv: list[str]) -> list[str]:
        """argv unchanged: the node runs in the root namespace."""
        self.check_node(i)
        return list(argv)

    async def relay(
        self, src: int, dst: int, dst_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Relay one connection from src to dst unless they are partitioned."""
        if are_split(self.groups, src, dst):
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", dst_port)
        except OSError:
            writer.transport.abort()
            return
        relay = Relay(src, dst, [writer, up_writer])
        self.relays.add(relay)
        try:
            await asyncio.gather(self.pump(relay, src, reader, up_writer), self.pump(relay, dst, up_reader, writer))
        except asyncio.CancelledError:
            pass  # teardown
        finally:
            self.relays.discard(relay)
            relay.cut()

    def loss_of(self, relay: Relay) -> float:
        """The loss probability of a relay: the larger of its two ends' settings."""
        return max(self.loss.get(relay.src, 0.0), self.loss.get(relay.dst, 0.0))

    async def pump(self, relay: Relay, sender: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward sender's chunks with its delay, dropping-and-resetting with the loss probability."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(self.forward(relay, queue, writer))
        last = 0.0
        try:
            while True:
                try:
                    chunk = await reader.read(65536)
                except OSError:
                    relay.cut()
                if relay.closed:
                    break
                if chunk and random.random() < self.loss_of(relay):
                    relay.cut()
                    break
                delay_ms, jitter_ms = self.delay.get(sender, (0, 0))
                last = max(loop.time() + draw_delay(delay_ms, jitter_ms), last) if delay_ms else loop.time()
                queue.put_nowait((last, chunk))
                if not chunk:
                    break
        finally:
            if relay.closed:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def forward(
        self, relay: Relay, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        """Write each queued chunk at its release time; an empty chunk is the sender's EOF."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                release, chunk = await queue.get()
                if not chunk:
                    break
                await asyncio.sleep(max(0.0, release - loop.time()))
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
        except OSError:
            relay.cut()

    def partition(self, groups: list[list[int]]) -> None:
        """Refuse new relays between groups and reset the existing ones."""
        group_of = check_groups(groups, self.n)

        def apply() -> None:
            """Swap the groups in and cut the relays they split."""
            self.groups = group_of
            for relay in list(self.relays):
                if are_split(group_of, relay.src, relay.dst):
                    relay.cut()

        self.call(apply)

    def set_loss(self, nodes: list[int], probability: float) -> None:
        """Each chunk to/from those nodes resets its connection with that probability."""
        check_probability(probability)
        for i in nodes:
            self.check_node(i)
        self.call(lambda: self.loss.update({i: probability for i in nodes}))

    def set_delay(self, nodes: list[int], delay_ms: int, jitter_ms: int) -> None:
        """Chunks those nodes send are forwarded delay±jitter ms after they were read."""
        check_delay(delay_ms, jitter_ms)
        for i in nodes:
            self.check_node(i)
        self.call(lambda: self.delay.update({i: (delay_ms, jitter_ms) for i in nodes}))

    def heal(self) -> None:
        """No partition, loss or delay from now on."""

        def apply() -> None:
            """Clear every fault."""
            self.groups, self.loss, self.delay = {}, {}, {}

        self.call(apply)

    def teardown(self) -> None:
        """Close every listener and relay, stop the loop and its thread."""
        if self.loop is None:
            return

        async def close_all() -> None:
            """Close the listeners, cut the relays and finish their tasks."""
            for server, _, _ in self.servers.values():
                server.close()
            for relay in list(self.relays):
                relay.cut()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(close_all)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self.thread is not None:
                self.thread.join(timeout=5)
            self.loop.close()
            self.loop, self.thread = None, None
            self.servers.clear()
            self.relays.clear()
            self.groups, self.loss, self.delay = {}, {}, {}

    def describe(self) -> str:
        """E.g. "proxy: 5 nodes on 127.0.0.1, 20 relays"."""
        return f"proxy: {self.n} nodes on 127.0.0.1, {len(self.servers)} relays (TCP fault proxy)"


# ---------------------------------------------------------------- choosing one


def probe_netns() -> str | None:
    """None if this process can make a namespace, a veth into it, an iptables rule and an NFQUEUE (for delay)
    in it; else why not."""
    tag = f"uocp{os.getpid() % 100000}"
    ns, veth = f"{tag}n", f"{tag}v"
    try:
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run(["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-s", "10.213.0.1", "-j", "DROP"])
        open_queue(ns, 0).close()
    except DevnetError as exc:
        return str(exc)
    finally:
        remove_resources([ns], [veth], kill=False)
    return None


def open_fabric(kind: str, run_id: str, echo: Callable[[str], None] = print) -> Fabric:
    """kind is "auto", "netns" or "proxy". "auto" tries netns (a real probe: create a namespace, veth and
    an iptables rule, then remove them); if that is refused, echo ONE loud line and return the proxy
    fabric. "netns" explicitly requested but refused -> DevnetError with the reason. Never skip silently."""
    if kind == "proxy":
        return ProxyFabric(run_id)
    if kind not in ("auto", "netns"):
        raise DevnetError(f"unknown fabric {kind!r}: use auto, netns or proxy")
    reason = probe_netns()
    if reason is None:
        return NetnsFabric(run_id)
    if kind == "netns":
        raise DevnetError(f"network namespaces refused: {reason}")
    echo(f"WARNING: network namespaces refused ({reason}); falling back to the TCP fault proxy")
    return ProxyFabric(run_id)

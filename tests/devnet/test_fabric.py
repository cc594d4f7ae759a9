"""The chaos fabrics on real namespaces and real sockets: reachability, partition, loss, delay, cleanup.

Each node runs a tiny TCP echo server (started with `fabric.wrap_command`); a node's view of the
network is checked by a client process started the same way, dialing `fabric.peer_address`.
The `netns` tests need root, iproute2, iptables and NFQUEUE support: where they are missing they are
skipped with the reason (`fabric_netns.probe_netns`), unless UOC_REQUIRE_NETNS=1 (CI) makes that a
failure; the proxy variants run everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import devnet.fabric_netns as fabric_module
from devnet.chaos_nodes import open_fabric
from devnet.errors import DevnetError
from devnet.fabric import Fabric
from devnet.fabric_netns import NetnsFabric, run
from devnet.fabric_proxy import ProxyFabric

N = 3

ECHO = """
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := c.recv(65536):
        c.sendall(data)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""

CHECK = """
import json, socket, sys, threading
out = {}
def check(target):
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1.0) as c:
            c.settimeout(1.0)
            c.sendall(b"ping")
            got = b""
            while len(got) < 4:
                data = c.recv(64)
                if not data:
                    raise ConnectionError("closed")
                got += data
        out[target] = "ok"
    except Exception as exc:
        out[target] = type(exc).__name__
threads = [threading.Thread(target=check, args=(t,)) for t in sys.argv[1:]]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(out))
"""

RTT = """
import json, socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts = []
for _ in range(int(sys.argv[3])):
    start = time.monotonic()
    c.sendall(b"x" * 100)
    got = 0
    while got < 100:
        got += len(c.recv(65536))
    rtts.append((time.monotonic() - start) * 1000)
print(json.dumps(rtts))
"""


class Net:
    """A set-up fabric of N nodes, each running an echo server on `ports[i]`."""

    def __init__(self, fab: Fabric) -> None:
        """Start one echo server per node."""
        self.fab = fab
        self.ports = [fab.free_port(i) for i in range(N)]
        self.servers = []
        for i in range(N):
            argv = fab.wrap_command(i, [sys.executable, "-c", ECHO, fab.node_host(i), str(self.ports[i])])
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            self.servers.append(proc)
        for proc in self.servers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        """Kill the echo servers."""
        for proc in self.servers:
            proc.kill()
            proc.wait()

    def links(self) -> dict[tuple[int, int], bool]:
        """For every ordered pair (src, dst), whether src gets an echo from dst (all checked at once)."""
        clients = {}
        for src in range(N):
            targets = {self.fab.peer_address(src, dst, self.ports[dst]): dst for dst in range(N) if dst != src}
            argv = self.fab.wrap_command(src, [sys.executable, "-c", CHECK, *targets])
            clients[src] = (subprocess.Popen(argv, stdout=subprocess.PIPE, text=True), targets)
        out = {}
        for src, (proc, targets) in clients.items():
            stdout, _ = proc.communicate(timeout=20)
            for target, result in json.loads(stdout).items():
                out[(src, targets[target])] = result == "ok"
        return out

    def runner_links(self) -> list[bool]:
        """Whether the runner (this process, root namespace) gets an echo from each node."""
        targets = [f"{self.fab.node_host(i)}:{self.ports[i]}" for i in range(N)]
        stdout = subprocess.run([sys.executable, "-c", CHECK, *targets], capture_output=True, text=True).stdout
        result = json.loads(stdout)
        return [result[t] == "ok" for t in targets]

    def rtts(self, src: int, dst: int, samples: int = 5) -> list[float]:
        """Round trips (ms) of 100-byte echoes from node src to node dst, on one connection."""
        host, port = self.fab.peer_address(src, dst, self.ports[dst]).rsplit(":", 1)
        argv = self.fab.wrap_command(src, [sys.executable, "-c", RTT, host, port, str(samples)])
        return json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout)

    def runner_rtts(self, dst: int, samples: int = 5) -> list[float]:
        """Round trips (ms) of 100-byte echoes from the runner to node dst."""
        argv = [sys.executable, "-c", RTT, self.fab.node_host(dst), str(self.ports[dst]), str(samples)]
        return json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout)


def all_pairs(value: bool = True) -> dict[tuple[int, int], bool]:
    """Every ordered node pair mapped to value."""
    return {(a, b): value for a in range(N) for b in range(N) if a != b}


@pytest.fixture(params=[pytest.param("netns", marks=pytest.mark.netns), "proxy"])
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    """A fabric of each kind, set up with N nodes running echo servers; torn down after."""
    fab = open_fabric(request.param, f"test-{request.node.name}")
    assert fab.kind == request.param
    fab.setup(N)
    try:
        network = Net(fab)
        try:
            yield network
        finally:
            network.stop()
    finally:
        fab.teardown()


def uoc_leftovers(tag: str) -> list[str]:
    """Namespaces and links whose name carries a netns fabric's tag."""
    namespaces = run(["ip", "netns", "list"]).split()
    links = [link["ifname"] for link in json.loads(run(["ip", "-j", "link", "show"]))]
    return [name for name in namespaces + links if tag in name]


def test_every_node_reaches_every_node_and_the_runner_reaches_all(net: Net) -> None:
    assert net.links() == all_pairs()
    assert net.runner_links() == [True] * N


def test_partition_blocks_exactly_the_cross_group_pairs_and_heal_restores_them(net: Net) -> None:
    net.fab.partition([[0], [1, 2]])
    assert net.links() == {(a, b): (a == 0) == (b == 0) for (a, b) in all_pairs()}
    assert net.runner_links() == [True] * N
    net.fab.heal()
    assert net.links() == all_pairs()

    net.fab.partition([[0, 1], [2]])
    assert net.links() == {(a, b): (a == 2) == (b == 2) for (a, b) in all_pairs()}
    net.fab.heal()
    assert net.links() == all_pairs()


def test_an_established_connection_carries_nothing_across_a_partition(net: Net) -> None:
    host, port = net.fab.peer_address(0, 1, net.ports[1]).rsplit(":", 1)
    script = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"a"); assert c.recv(1) == b"a"
print("connected", flush=True); sys.stdin.readline()
c.settimeout(1.0)
try:
    c.sendall(b"b"); print("echo" if c.recv(1) == b"b" else "closed")
except OSError as exc:
    print(type(exc).__name__)
"""
    proc = subprocess.Popen(
        net.fab.wrap_command(0, [sys.executable, "-c", script, host, port]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"
    net.fab.partition([[0], [1, 2]])
    time.sleep(0.1)
    stdout, _ = proc.communicate("\n", timeout=10)
    assert stdout.strip() != "echo"
    net.fab.heal()


def test_loss_one_blocks_the_node_and_loss_zero_passes(net: Net) -> None:
    net.fab.set_loss([1], 1.0)
    assert net.links() == {(a, b): 1 not in (a, b) for (a, b) in all_pairs()}
    assert net.runner_links() == [True] * N
    net.fab.set_loss([1], 0.0)
    assert net.links() == all_pairs()


def test_delay_raises_the_round_trip_between_nodes_but_not_from_the_runner(net: Net) -> None:
    before = net.rtts(0, 1)
    net.fab.set_delay([0], 200, 20)
    delayed = net.rtts(0, 1)
    from_runner = net.runner_rtts(0)
    net.fab.heal()
    after = net.rtts(0, 1)
    print(f"{net.fab.kind}: rtt ms before {before}, delayed 200±20 {delayed}, runner {from_runner}, after {after}")
    assert min(delayed) >= 100
    assert statistics.median(before) < 50 and statistics.median(after) < 50
    assert statistics.median(from_runner) < 50


@pytest.mark.netns
def test_ip_netns_exec_keeps_the_pid_and_the_node_address() -> None:
    with NetnsFabric("test-pid") as fab:
        fab.setup(1)
        script = "import os, socket, sys; socket.socket().bind((sys.argv[1], 0)); print(os.getpid())"
        proc = subprocess.Popen(
            fab.wrap_command(0, [sys.executable, "-c", script, fab.node_host(0)]), stdout=subprocess.PIPE, text=True
        )
        stdout, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert int(stdout) == proc.pid


@pytest.mark.netns
def test_teardown_leaves_no_namespace_bridge_veth_or_state_and_is_idempotent() -> None:
    fab = NetnsFabric("test-teardown")
    fab.setup(2)
    fab.set_delay([0], 10, 0)
    tag = fab.tag
    assert len(uoc_leftovers(tag)) == 5  # 2 namespaces, the bridge, 2 veths
    assert f"-A FORWARD -i uocb{tag} -o uocb{tag} -j ACCEPT" in run(["iptables", "-w", "-S", "FORWARD"])
    assert fab.state_path.exists()
    assert fab.describe().startswith(f"netns: 2 namespaces on bridge uocb{tag}, 10.213.")
    fab.teardown()
    assert uoc_leftovers(tag) == []
    assert not fab.state_path.exists()
    assert tag not in run(["iptables", "-w", "-S", "FORWARD"])
    fab.teardown()
    NetnsFabric("never-set-up").teardown()


@pytest.mark.netns
def test_a_failed_setup_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fab = NetnsFabric("test-partial")
    create_node = NetnsFabric.create_node

    def fail_at_second(self: NetnsFabric, i: int) -> None:
        """Create node 0, refuse node 1."""
        if i == 1:
            run(["ip", "link", "add", "x" * 16, "type", "dummy"])
        create_node(self, i)

    monkeypatch.setattr(NetnsFabric, "create_node", fail_at_second)
    with pytest.raises(DevnetError, match="ip link add x{16} type dummy failed"):
        fab.setup(2)
    assert fab.tag and uoc_leftovers(fab.tag) == []
    assert not fab.state_path.exists()
    fab.teardown()


@pytest.mark.netns
def test_concurrent_runs_get_their_own_names_and_networks() -> None:
    with NetnsFabric("same") as a, NetnsFabric("same") as b:
        a.setup(1)
        b.setup(1)
        assert a.tag != b.tag and a.bridge != b.bridge
        assert a.network is not None and b.network is not None and not a.network.overlaps(b.network)
        assert max(len(name) for name in (a.bridge, a.veth(0), b.bridge, b.veth(0))) <= 15


@pytest.mark.netns
def test_setup_removes_the_leftovers_of_a_dead_run() -> None:
    crashed = NetnsFabric("test-crashed")
    crashed.setup(2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = json.loads(crashed.state_path.read_text())
    crashed.state_path.write_text(json.dumps({**state, "pid": dead.pid}))
    with NetnsFabric("test-next") as fab:
        fab.setup(1)
        assert uoc_leftovers(crashed.tag) == []
        assert not crashed.state_path.exists()
        assert uoc_leftovers(fab.tag) != []
    crashed.teardown()


@pytest.mark.netns
def test_a_failing_command_raises_with_the_command_and_its_stderr() -> None:
    with pytest.raises(DevnetError, match="ip link del uocnosuchlink.*Cannot find device"):
        run(["ip", "link", "del", "uocnosuchlink"])


@pytest.mark.netns
def test_open_fabric_auto_picks_netns_here() -> None:
    lines: list[str] = []
    fab = open_fabric("auto", "test-auto", echo=lines.append)
    assert isinstance(fab, NetnsFabric) and lines == []
    assert isinstance(open_fabric("proxy", "test-proxy"), ProxyFabric)
    with pytest.raises(DevnetError, match="unknown fabric"):
        open_fabric("tunnel", "x")


def test_open_fabric_falls_back_loudly_when_namespaces_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fabric_module, "probe_netns", lambda: "ip netns add failed: Operation not permitted")
    lines: list[str] = []
    fab = open_fabric("auto", "test-fallback", echo=lines.append)
    assert isinstance(fab, ProxyFabric)
    assert len(lines) == 1 and lines[0].startswith("WARNING: network namespaces refused (ip netns add failed")
    assert "falling back to the TCP fault proxy" in lines[0]
    with pytest.raises(DevnetError, match="network namespaces refused: ip netns add failed"):
        open_fabric("netns", "test-fallback")


@pytest.mark.netns
def test_the_probe_really_makes_and_removes_a_namespace() -> None:
    assert os.getuid() == 0
    assert fabric_module.probe_netns() is None
    probe = f"uocp{os.getpid() % 100000}"
    assert [name for name in uoc_leftovers(probe) if name.startswith(probe)] == []


@pytest.mark.netns
def test_each_fault_logs_the_rules_it_loaded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="devnet.fabric_netns")
    with NetnsFabric("test-log") as fab:
        fab.setup(2)
        fab.partition([[0], [1]])
        fab.set_loss([0], 0.5)
        fab.set_delay([1], 10, 2)
        text = caplog.text
        assert f"ip netns exec {fab.namespace(0)} iptables-restore" in text
        assert f"-A INPUT -s {fab.node_host(1)}/32 -j DROP" in text
        assert "-m statistic --mode random --probability 0.500000 -j DROP" in text
        assert f"-A INPUT -s {fab.node_host(1)}/32 -j NFQUEUE --queue-num 1 --queue-bypass" in text

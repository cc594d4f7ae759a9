"""A chaos run: a devnet of real node processes under steady load while seeded faults hit it, then a verdict.

`uocd devnet chaos --validators 5 --seed 7 --duration 120` (and `bench/soak.py`, which is a run with no
faults) goes through these steps:

1. **Network.** `devnet.fabric.open_fabric` gives every node its own network namespace on one bridge
   (or, when namespaces are refused, says so loudly and puts a TCP fault relay between every pair of
   nodes). The homes are ordinary devnet homes whose listeners bind to the node's own address.
2. **Load**, in threads, for the whole run: each validator's worker votes a price through its own
   node's admin API (`POST /v1/admin/unit-of-compute-price-proposal`), now and then registers a model
   (`POST /v1/admin/models`) or votes on an open proposal (a signed `MsgVote` posted to
   `/v1/txs?wait=commit`); a reader reads `/v1/pricing` from every node in turn. Every reply that
   says "committed" is written down with its tx hash and height. An abuser sends about five bad
   inputs a second (`BAD_INPUTS`: malformed JSON, a 2 MiB body, a badly signed tx, a 20 kB header, a
   wrong admin token, junk gRPC consensus messages, raw garbage on the gRPC port); each must get a
   4xx, a gRPC rejection or a closed connection, never a 5xx or a 2xx.
3. **Faults**, one at a time, in an order and with targets and durations drawn from the seed: every
   round has each kind once — SIGKILL and restart; SIGSTOP, then SIGCONT (a pause); SIGKILL, a wiped
   data directory and a restart that must resync from peers; a partition into two groups; packet
   loss; delay with jitter. After each, the run measures the recovery: the time from the restart or
   the heal until every node has reached the height the network had then, plus one block.
4. **Verdict**, after the load stops and every fault is healed: every node reaches the same height
   and app hash; the stores hold the same block at every height; every transaction whose submission
   answered "committed" is in every store at that height, with that result; `PRAGMA
   integrity_check` passes on every store; and each epoch's price equals the weighted median that
   `chain.median` computes from the committed votes (the validator set is the genesis one: the load
   sends no bonds), as the in-process engine does.

A wiped validator keeps its keys but loses its sign state (it lives in the store). The run restarts
it only once the network has committed two blocks past the height at which it was killed, so it
cannot sign a second, different vote at a height it voted on before (see docs/design.md).

The summary (printed and in DIR/chaos.json): duration, faults by kind, transactions submitted,
committed and lost (must be 0), recovery times, the /v1/pricing reads, and each node's RSS over time.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from chain.crypto import PrivateKey
from chain.median import weighted_median
from chain.tx import MsgSubmitPriceProposal, MsgVote, decode_tx
from node.client import ApiError, Client, broadcast
from node.config import (
    ADMIN_TOKEN_FILE,
    DB_FILE,
    GENESIS_FILE,
    collect_genesis,
    compute_loopback_timeouts,
    init_home,
    load_home,
    update_config,
)

from .devnet import spawn_node, tail
from .errors import DevnetError
from .fabric import Fabric, open_fabric

FAULT_KINDS = ("kill", "pause", "wipe", "partition", "loss", "delay")
RESTART_KINDS = ("kill", "wipe")
RECOVERY_TIMEOUT_S = 90.0
SETTLE_TIMEOUT_S = 60.0
STATUS_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 20.0  # above the node's 10 s commit wait
RSS_INTERVAL_S = 2.0
READ_PAUSE_S = 0.05  # the reader's pace: about 20 reads a second, under the public API's rate limit
FAULT_GAP_S = (1.0, 3.0)
HOLD_S = (2.0, 5.0)  # how long a fault is held
PAUSE_HOLD_S = (5.0, 10.0)  # a long pause: the peers' calls to the node time out and back off
TAIL_RESERVE_S = 15.0  # no fault starts this close to the end of the run


@dataclass(frozen=True)
class ChaosConfig:
    """What a chaos run does: network size, seed, length, chain timing and the fabric to use."""

    validators: int = 4
    seed: int = 1
    duration_s: float = 120.0
    epoch_length: int = 5
    block_ms: int = 500
    fabric: str = "auto"
    faults: bool = True


@dataclass(frozen=True)
class Fault:
    """One fault: its kind, the nodes it hits (a partition's first group), how long it is held, and its size."""

    kind: str
    targets: tuple[int, ...]
    hold_s: float
    loss: float = 0.0
    delay_ms: int = 0
    jitter_ms: int = 0

    def describe(self) -> str:
        """One line: the kind, targets and size."""
        nodes = ",".join(f"n{i}" for i in self.targets)
        extra = {"loss": f" p={self.loss:.2f}", "delay": f" {self.delay_ms}±{self.jitter_ms} ms"}.get(self.kind, "")
        return f"{self.kind} {nodes}{extra} for {self.hold_s:.1f} s"


def compute_fault(rng: random.Random, kind: str, validators: int) -> Fault:
    """A fault of `kind`, seeded: one node for process faults, one or two for loss and delay, a minority cut off."""
    nodes = list(range(validators))
    hold = round(rng.uniform(*(PAUSE_HOLD_S if kind == "pause" else HOLD_S)), 1)
    if kind in ("kill", "pause", "wipe"):
        return Fault(kind, (rng.choice(nodes),), hold)
    if kind == "partition":
        rng.shuffle(nodes)
        return Fault(kind, tuple(sorted(nodes[: rng.randint(1, validators // 2)])), hold)
    targets = tuple(sorted(rng.sample(nodes, rng.randint(1, 2))))
    if kind == "loss":
        return Fault(kind, targets, hold, loss=round(rng.uniform(0.1, 0.4), 2))
    return Fault(kind, targets, hold, delay_ms=rng.randint(100, 300), jitter_ms=rng.randint(20, 80))


def compute_fault_plan(seed: int, validators: int, count: int) -> list[Fault]:
    """The run's faults in order: rounds of every kind once, in a seeded order, with seeded targets and sizes."""
    rng = random.Random(seed)
    plan: list[Fault] = []
    while len(plan) < count:
        kinds = list(FAULT_KINDS)
        rng.shuffle(kinds)
        plan.extend(compute_fault(rng, kind, validators) for kind in kinds)
    return plan[:count]


# =============================================================================================
# the network: homes and node processes
# =============================================================================================
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
    for i in range(config.validators):
        host, port = fabric.node_host(i), fabric.free_port(i)
        home = root / f"n{i}"
        init_home(
            home,
            home.name,
            chain_id="uoc-chaos",
            epoch_length=config.epoch_length,
            listen=f"{host}:{port}",
            api_public=f"{host}:{fabric.free_port(i)}",
            api_admin=f"{host}:{fabric.free_port(i)}",
        )
        update_config(home, timeouts=compute_loopback_timeouts(config.block_ms), status_interval_ms=200)
        grpc_ports.append(port)
        homes.append(home)
    collect_genesis(homes, set_peers=False)
    nodes = []
    for i, home in enumerate(homes):
        peers = tuple(fabric.peer_address(i, j, grpc_ports[j]) for j in range(len(homes)) if j != i)
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
    """Start the node's `uocd start` through the fabric (in its namespace), logging to HOME/node.log."""
    node.proc = spawn_node(node.home, lambda argv: fabric.wrap_command(node.index, argv))
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


# =============================================================================================
# the load
# =============================================================================================
@dataclass
class Ledger:
    """What the load did: counts by kind and outcome, and every transaction the network said it committed."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    committed: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    reads: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    bad_inputs: Counter[str] = field(default_factory=Counter)
    bad_answers: list[str] = field(default_factory=list)

    def record(self, kind: str, outcome: str, tx: dict[str, Any] | None = None) -> None:
        """Count one submission and its outcome; keep a committed transaction's hash, height and code."""
        with self.lock:
            self.submitted[kind] += 1
            self.outcomes[outcome] += 1
            if tx is not None and outcome == "committed":
                self.committed.append({"kind": kind, **tx})
            elif tx is not None:
                self.pending.append(tx)


def run_guarded(ledger: Ledger, target: Callable[..., None], *args: Any) -> None:
    """Run a load thread's body; an unexpected exception is written down (the verdict fails on it), not lost."""
    try:
        target(*args)
    except Exception as exc:  # noqa: BLE001 - any crash of the load is a finding
        with ledger.lock:
            ledger.crashes.append(f"{target.__name__}: {type(exc).__name__}: {exc}")


def run_validator_load(node: ChaosNode, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """Until `stop`: vote prices, and now and then register a model or vote on an open proposal, through `node`."""
    rng = random.Random(seed * 7919 + node.index)
    admin = Client(node.admin, token=node.token, timeout=REQUEST_TIMEOUT_S)
    public = Client(node.public, timeout=REQUEST_TIMEOUT_S)
    models = 0
    while not stop.is_set():
        kind = rng.choices(("price_vote", "register_model", "gov_vote"), weights=(6, 1, 2))[0]
        sent = time.time()
        try:
            if kind == "price_vote":
                reply = admin.post(
                    "/v1/admin/unit-of-compute-price-proposal", {"price": rng.randint(500, 1500), "denom": "ngonka"}
                )
            elif kind == "register_model":
                models += 1
                model = {"id": f"chaos-{node.name}-{models}", "units_of_compute_per_token": rng.randint(1, 50)}
                reply = admin.post("/v1/admin/models", model)
                if "proposal_id" in reply:  # committed: its height and result are in the node's tx index
                    reply = {**public.get(f"/v1/txs/{reply['tx_hash']}"), "status": "committed"}
            else:
                open_ = public.get("/v1/governance/proposals", status="voting_period")["proposals"]
                if not open_:
                    continue
                option = rng.choice(("yes", "yes", "no", "abstain", "no_with_veto"))
                reply = broadcast(public, node.key, [MsgVote(open_[-1]["id"], option)])
        except ApiError as exc:
            ledger.record(kind, f"error:{exc.code}")
            stop.wait(0.5)
            continue
        if "height" in reply and reply.get("status", "committed") == "committed":
            tx = {"tx_hash": reply["tx_hash"], "height": reply["height"], "code": reply.get("code", "ok"), "sent": sent}
            ledger.record(kind, "committed", tx)
        else:
            ledger.record(kind, "pending", {"tx_hash": reply["tx_hash"], "sent": sent, "node": node.name})
        stop.wait(rng.uniform(0.05, 0.3))


def run_reader_load(nodes: list[ChaosNode], ledger: Ledger, stop: threading.Event) -> None:
    """Until `stop`: GET /v1/pricing from each node in turn."""
    i = 0
    while not stop.is_set():
        node = nodes[i % len(nodes)]
        i += 1
        try:
            Client(node.public, timeout=STATUS_TIMEOUT_S).get("/v1/pricing")
            outcome = "ok"
        except ApiError:
            outcome = "failed"
        with ledger.lock:
            ledger.reads[outcome] += 1
        stop.wait(READ_PAUSE_S)


BAD_INPUTS = ("bad_json", "big_body", "bad_signature", "big_header", "wrong_token", "junk_grpc", "garbage_tcp")


def send_bad_input(kind: str, node: ChaosNode, rng: random.Random) -> str | None:
    """Send one bad input of `kind` to `node`; a line if the node answered it wrongly (a 5xx or a 2xx), else None.
    A node that does not answer at all (killed, paused, cut off) is not the bad input's fault: None."""
    if kind in ("junk_grpc", "garbage_tcp"):
        host, _, port = node.grpc.rpartition(":")
        if kind == "garbage_tcp":
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=2) as sock:
                sock.sendall(rng.randbytes(rng.randint(1, 4096)))
            return None
        with grpc.insecure_channel(node.grpc) as channel:
            call = channel.unary_unary("/uoc.v1.Gossip/SendConsensus")
            try:
                call(rng.randbytes(rng.randint(1, 512)), timeout=2)
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                if code == grpc.StatusCode.INTERNAL or code == grpc.StatusCode.UNKNOWN:
                    return f"junk_grpc to {node.name}: {code.name}"
            return None
    url = node.admin if kind == "wrong_token" else node.public
    host, _, port = url.removeprefix("http://").rpartition(":")
    method, path, body, headers = {
        "bad_json": ("POST", "/v1/txs", b'{"body": [1, 2', {}),
        "big_body": ("POST", "/v1/txs", b"x" * (2 << 20), {}),
        "bad_signature": ("POST", "/v1/txs", json.dumps({"body": {}, "signature": "AA=="}).encode(), {}),
        "big_header": ("GET", "/v1/status", None, {"X-Junk": "j" * 20_000}),
        "wrong_token": ("POST", "/v1/admin/unit-of-compute-price-proposal", b'{"price": 1, "denom": "ngonka"}', {}),
    }[kind]
    headers = {**headers, "Authorization": "Bearer not-the-token", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection(host, int(port), timeout=STATUS_TIMEOUT_S * 2)
    try:
        conn.request(method, path, body=body, headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return None if 400 <= status < 500 else f"{kind} to {node.name}: HTTP {status}"


def run_abuse_load(nodes: list[ChaosNode], ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """Until `stop`: about five bad inputs a second, each of a seeded kind, at a seeded node."""
    rng = random.Random(seed * 104729)
    while not stop.wait(0.2):
        kind, node = rng.choice(BAD_INPUTS), rng.choice(nodes)
        wrong = send_bad_input(kind, node, rng)
        with ledger.lock:
            ledger.bad_inputs[kind] += 1
            if wrong is not None:
                ledger.bad_answers.append(wrong)


def read_rss_kib(pid: int) -> int | None:
    """A process's resident set size in KiB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def run_rss_sampler(nodes: list[ChaosNode], samples: list[dict[str, Any]], stop: threading.Event, t0: float) -> None:
    """Until `stop`: every RSS_INTERVAL_S, append {t, node, rss_kib} for every running node."""
    while not stop.wait(RSS_INTERVAL_S):
        now = round(time.monotonic() - t0, 1)
        for node in nodes:
            pid = node.pid
            rss = read_rss_kib(pid) if pid is not None else None
            if rss is not None:
                samples.append({"t": now, "node": node.name, "rss_kib": rss})


# =============================================================================================
# faults
# =============================================================================================
@dataclass
class FaultRecord:
    """A fault as it ran: what, when, and how long the network took to recover."""

    fault: Fault
    started_s: float
    recovered_s: float | None = None
    kind_of_recovery: str = "heal"

    def to_json(self) -> dict[str, Any]:
        """The summary entry."""
        return {
            "kind": self.fault.kind,
            "targets": [f"n{i}" for i in self.fault.targets],
            "hold_s": self.fault.hold_s,
            "loss": self.fault.loss,
            "delay_ms": self.fault.delay_ms,
            "jitter_ms": self.fault.jitter_ms,
            "started_s": round(self.started_s, 1),
            "recovery": self.kind_of_recovery,
            "recovery_s": None if self.recovered_s is None else round(self.recovered_s, 2),
        }


def apply_fault(fault: Fault, nodes: list[ChaosNode], fabric: Fabric) -> None:
    """Start the fault."""
    targets = [nodes[i] for i in fault.targets]
    if fault.kind in RESTART_KINDS:
        for node in targets:
            kill_process(node)
    elif fault.kind == "pause":
        for node in targets:
            pause_process(node, True)
    elif fault.kind == "partition":
        rest = [n.index for n in nodes if n.index not in fault.targets]
        fabric.partition([list(fault.targets), rest])
    elif fault.kind == "loss":
        fabric.set_loss(list(fault.targets), fault.loss)
    elif fault.kind == "delay":
        fabric.set_delay(list(fault.targets), fault.delay_ms, fault.jitter_ms)
    else:
        raise DevnetError(f"unknown fault kind {fault.kind!r}")


def end_fault(fault: Fault, nodes: list[ChaosNode], fabric: Fabric, killed_at: int) -> None:
    """End the fault: restart (a wiped node after the network is 2 blocks past `killed_at`), continue, or heal."""
    targets = [nodes[i] for i in fault.targets]
    if fault.kind == "wipe":
        others = [n for n in nodes if n.index not in fault.targets]
        if wait_all_at(others, killed_at + 2, RECOVERY_TIMEOUT_S) is None:
            raise DevnetError(f"the network did not pass height {killed_at + 2} while {fault.describe()}")
        for node in targets:
            shutil.rmtree(node.home / Path(DB_FILE).parent)
    if fault.kind in RESTART_KINDS:
        for node in targets:
            start_process(node, fabric)
    elif fault.kind == "pause":
        for node in targets:
            pause_process(node, False)
    else:
        fabric.heal()


def run_fault(
    fault: Fault, nodes: list[ChaosNode], fabric: Fabric, t0: float, echo: Callable[[str], None]
) -> FaultRecord:
    """Apply a fault, hold it, end it and measure the recovery (to the network's height then, plus one block)."""
    record = FaultRecord(
        fault, time.monotonic() - t0, kind_of_recovery="restart" if fault.kind in RESTART_KINDS else "heal"
    )
    killed_at = get_network_height(nodes)
    apply_fault(fault, nodes, fabric)
    time.sleep(fault.hold_s)
    end_fault(fault, nodes, fabric, killed_at)
    ended = time.monotonic()
    target = get_network_height(nodes) + 1
    waited = wait_all_at(nodes, target, RECOVERY_TIMEOUT_S)
    record.recovered_s = None if waited is None else time.monotonic() - ended
    took = "NOT RECOVERED" if record.recovered_s is None else f"recovered in {record.recovered_s:.2f} s"
    echo(f"[{record.started_s:6.1f} s] {fault.describe()}: {took} (height {target})")
    return record


# =============================================================================================
# the verdict
# =============================================================================================
def settle(nodes: list[ChaosNode], timeout_s: float = SETTLE_TIMEOUT_S) -> tuple[int, str] | None:
    """Poll until every node reports one (height, app hash); that pair, or None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tips = [fetch_height(n) for n in nodes]
        if all(tips) and len(set(tips)) == 1:
            return tips[0]
        time.sleep(0.05)
    return None


def open_store(path: Path) -> sqlite3.Connection:
    """A plain connection to a stopped node's store."""
    return sqlite3.connect(path)


def check_integrity(conn: sqlite3.Connection) -> str:
    """`PRAGMA integrity_check`'s answer ("ok" when sound)."""
    return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check").fetchall())


def read_block_ids(conn: sqlite3.Connection) -> dict[int, str]:
    """Height → block id of every stored block."""
    return dict(conn.execute("SELECT height, block_id FROM blocks ORDER BY height").fetchall())


def compute_conflicts(block_ids: dict[str, dict[int, str]]) -> list[str]:
    """Every height at which two stores hold different blocks, as lines."""
    heights = sorted({h for ids in block_ids.values() for h in ids})
    conflicts = []
    for height in heights:
        seen = {name: ids[height] for name, ids in sorted(block_ids.items()) if height in ids}
        if len(set(seen.values())) > 1:
            conflicts.append(f"height {height}: " + ", ".join(f"{n}={b[:12]}" for n, b in seen.items()))
    return conflicts


def compute_lost(conn: sqlite3.Connection, committed: list[dict[str, Any]]) -> list[str]:
    """The committed transactions that are not in this store at their height with their result."""
    lost = []
    for tx in committed:
        row = conn.execute("SELECT height, code FROM txs WHERE hash = ?", (tx["tx_hash"].upper(),)).fetchone()
        if row is None or row[0] != tx["height"] or row[1] != tx["code"]:
            lost.append(f"{tx['kind']} {tx['tx_hash'][:16]} (answered height {tx['height']}, store has {row})")
    return lost


def compute_expected_prices(conn: sqlite3.Connection, genesis: dict[str, Any]) -> dict[int, int]:
    """Epoch → unit price recomputed from the committed price votes: each genesis validator's vote in force (or the
    current price if it never voted), weighted by its genesis stake, through `chain.median.weighted_median`."""
    params = genesis.get("params", {})
    length = params["epoch_length"]
    price = params["default_unit_of_compute_price"]
    powers = {v["address"]: int(v["stake"]) for v in genesis["validators"]}
    votes: dict[str, int] = {}
    ok = {(h, i) for h, i in conn.execute("SELECT height, idx FROM txs WHERE code = 'ok'").fetchall()}
    last = conn.execute("SELECT COALESCE(MAX(height), 0) FROM blocks").fetchone()[0]
    prices = {0: price}
    for height, block_text in conn.execute("SELECT height, block FROM blocks ORDER BY height").fetchall():
        for index, raw in enumerate(json.loads(block_text)["txs"]):
            if (height, index) in ok:
                tx = decode_tx(bytes.fromhex(raw))
                for msg in tx.messages:
                    if isinstance(msg, MsgSubmitPriceProposal) and tx.sender in powers:
                        votes[tx.sender] = msg.price_ngonka
        if height % length == 0 and height <= last:
            ballot = sorted((votes.get(a, price), p, a) for a, p in powers.items())
            median = weighted_median([(v, p) for v, p, _ in ballot])
            price = price if median is None else median
            prices[height // length] = price
    return prices


def read_history_prices(conn: sqlite3.Connection) -> dict[int, int]:
    """Epoch → price as the node's state records it."""
    rows = conn.execute("SELECT value FROM state WHERE space = 'hist'").fetchall()
    return {record["epoch"]: record["price"] for record in (json.loads(r[0]) for r in rows)}


def count_in_chain(conn: sqlite3.Connection, hashes: list[str]) -> int:
    """How many of the transaction hashes the store's tx index holds."""
    return sum(conn.execute("SELECT 1 FROM txs WHERE hash = ?", (h.upper(),)).fetchone() is not None for h in hashes)


def judge_stores(nodes: list[ChaosNode], committed: list[dict[str, Any]], pending: list[str]) -> dict[str, Any]:
    """The store checks of the verdict (nodes stopped): integrity, no conflicting blocks, nothing lost, prices."""
    genesis = json.loads((nodes[0].home / GENESIS_FILE).read_text())
    problems: list[str] = []
    pending_committed = 0
    block_ids: dict[str, dict[int, str]] = {}
    lost: set[str] = set()
    epochs_checked = 0
    for node in nodes:
        conn = open_store(node.home / DB_FILE)
        try:
            integrity = check_integrity(conn)
            if integrity != "ok":
                problems.append(f"{node.name}: integrity_check: {integrity}")
            block_ids[node.name] = read_block_ids(conn)
            for line in compute_lost(conn, committed):
                lost.add(line)
                problems.append(f"{node.name}: lost {line}")
            expected, recorded = compute_expected_prices(conn, genesis), read_history_prices(conn)
            for epoch in sorted(recorded):
                if expected.get(epoch) != recorded[epoch]:
                    problems.append(
                        f"{node.name}: epoch {epoch} price {recorded[epoch]}, votes give {expected.get(epoch)}"
                    )
            epochs_checked = max(epochs_checked, len(recorded))
            pending_committed = count_in_chain(conn, pending)
        finally:
            conn.close()
    conflicts = compute_conflicts(block_ids)
    problems.extend(f"conflicting blocks at {line}" for line in conflicts)
    return {
        "problems": problems,
        "lost": len(lost),
        "conflicting_heights": len(conflicts),
        "epochs_checked": epochs_checked,
        "pending_later_committed": pending_committed,
        "blocks_compared": min(len(ids) for ids in block_ids.values()) if block_ids else 0,
    }


# =============================================================================================
# the run
# =============================================================================================
def compute_recovery_stats(records: list[FaultRecord], kind: str) -> dict[str, Any]:
    """Count, median and max recovery seconds of the faults recovered by `kind` ("heal" or "restart")."""
    times = sorted(r.recovered_s for r in records if r.kind_of_recovery == kind and r.recovered_s is not None)
    if not times:
        return {"count": 0}
    return {"count": len(times), "median_s": round(times[len(times) // 2], 2), "max_s": round(times[-1], 2)}


def compute_rss_growth(samples: list[dict[str, Any]], duration_s: float) -> dict[str, dict[str, Any]]:
    """Per node: RSS (KiB) at the half-way mark and at the end (each the mean of a window), and the growth between."""
    window = max(10.0, duration_s / 20)
    half = duration_s / 2
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({s["node"] for s in samples}):
        mine = [s for s in samples if s["node"] == name]
        end = max(s["t"] for s in mine)
        mid = [s["rss_kib"] for s in mine if half - window <= s["t"] <= half]
        last = [s["rss_kib"] for s in mine if s["t"] >= end - window]
        if not mid or not last:
            continue
        a, b = sum(mid) / len(mid), sum(last) / len(last)
        out[name] = {"half_kib": round(a), "end_kib": round(b), "growth_pct": round(100 * (b - a) / a, 2)}
    return out


def run_chaos(root: Path, config: ChaosConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a chaos run in `root` (which must not exist or be empty) and return its summary (also in root/chaos.json)."""
    if not 4 <= config.validators <= 7:
        raise DevnetError(f"--validators must be 4 to 7, got {config.validators}")
    if config.duration_s < 30:
        raise DevnetError(f"--duration must be at least 30 seconds, got {config.duration_s:g}")
    root = root.resolve()
    if root.exists() and any(root.iterdir()):
        raise DevnetError(f"{root} exists and is not empty; pick another --dir")
    root.mkdir(parents=True, exist_ok=True)
    run_id = f"{os.getpid() % 100000}"
    with open_fabric(config.fabric, run_id, echo=echo) as fabric:
        fabric.setup(config.validators)
        nodes = create_chaos_homes(root, fabric, config)
        echo(fabric.describe())
        try:
            return run_on_network(root, config, nodes, fabric, echo)
        finally:
            for node in nodes:
                kill_process(node)


def run_on_network(
    root: Path, config: ChaosConfig, nodes: list[ChaosNode], fabric: Fabric, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Start the nodes, load them, inject the faults, heal, stop and judge."""
    for node in nodes:
        start_process(node, fabric)
    if wait_all_at(nodes, 1, 60.0) is None:
        raise DevnetError("the network did not commit its first block within 60 s; see the nodes' node.log")
    ledger, stop, rss = Ledger(), threading.Event(), []
    t0 = time.monotonic()
    threads = [
        threading.Thread(target=run_guarded, args=(ledger, run_validator_load, n, ledger, stop, config.seed))
        for n in nodes
    ]
    threads.append(threading.Thread(target=run_guarded, args=(ledger, run_reader_load, nodes, ledger, stop)))
    threads.append(
        threading.Thread(target=run_guarded, args=(ledger, run_abuse_load, nodes, ledger, stop, config.seed))
    )
    threads.append(threading.Thread(target=run_rss_sampler, args=(nodes, rss, stop, t0)))
    for t in threads:
        t.daemon = True
        t.start()
    echo(f"load running on {len(nodes)} validators for {config.duration_s:g} s (seed {config.seed})")
    records: list[FaultRecord] = []
    rng = random.Random(config.seed)
    plan = iter(compute_fault_plan(config.seed, config.validators, 10_000) if config.faults else [])
    try:
        for fault in plan:
            if time.monotonic() - t0 + fault.hold_s + TAIL_RESERVE_S > config.duration_s:
                break
            records.append(run_fault(fault, nodes, fabric, t0, echo))
            time.sleep(rng.uniform(*FAULT_GAP_S))
        time.sleep(max(0.0, config.duration_s - (time.monotonic() - t0)))
    finally:
        fabric.heal()
        for node in nodes:
            if node.stopped:
                pause_process(node, False)
        stop.set()
        for t in threads:
            t.join(REQUEST_TIMEOUT_S + 5)
    duration = time.monotonic() - t0
    echo(f"load stopped after {duration:.1f} s; waiting for every node to agree")
    tip = settle(nodes)
    for node in nodes:
        terminate_process(node)
    verdict = judge_stores(nodes, ledger.committed, [tx["tx_hash"] for tx in ledger.pending])
    problems = [f"load thread crashed: {line}" for line in ledger.crashes] + verdict.pop("problems")
    problems += [f"bad input answered wrongly: {line}" for line in ledger.bad_answers]
    if tip is None:
        problems.insert(0, f"the nodes did not reach one height and app hash within {SETTLE_TIMEOUT_S:g} s")
    problems.extend(
        f"{r.fault.describe()} did not recover within {RECOVERY_TIMEOUT_S:g} s"
        for r in records
        if r.recovered_s is None
    )
    summary = {
        "ok": not problems,
        "problems": problems,
        "fabric": fabric.kind,
        "seed": config.seed,
        "validators": config.validators,
        "duration_s": round(duration, 1),
        "final_height": tip[0] if tip else None,
        "final_app_hash": tip[1] if tip else None,
        "faults": dict(sorted(Counter(r.fault.kind for r in records).items())),
        "fault_log": [r.to_json() for r in records],
        "recovery_after_heal": compute_recovery_stats(records, "heal"),
        "recovery_after_restart": compute_recovery_stats(records, "restart"),
        "txs": {
            "submitted": sum(ledger.submitted.values()),
            "committed": len(ledger.committed),
            "lost": verdict.pop("lost"),
            "pending": len(ledger.pending),
            "pending_later_committed": verdict.pop("pending_later_committed"),
            "by_kind": dict(sorted(ledger.submitted.items())),
            "outcomes": dict(sorted(ledger.outcomes.items())),
        },
        "pricing_reads": dict(sorted(ledger.reads.items())),
        "bad_inputs": dict(sorted(ledger.bad_inputs.items())),
        "rss_growth": compute_rss_growth(rss, duration),
        **verdict,
    }
    (root / "chaos.json").write_text(
        json.dumps({**summary, "rss_samples": rss, "committed": ledger.committed, "pending": ledger.pending}, indent=2)
        + "\n"
    )
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The human summary of a run."""
    txs = summary["txs"]
    heal, restart = summary["recovery_after_heal"], summary["recovery_after_restart"]

    def recovery(stats: dict[str, Any]) -> str:
        return f"{stats['count']} (median {stats['median_s']} s, max {stats['max_s']} s)" if stats["count"] else "none"

    lines = [
        f"verdict: {'PASS' if summary['ok'] else 'FAIL'}  ({summary['fabric']} fabric, seed {summary['seed']}, "
        f"{summary['validators']} validators, {summary['duration_s']} s)",
        f"final height {summary['final_height']}, app hash {summary['final_app_hash']}",
        "faults: " + (", ".join(f"{k} {v}" for k, v in summary["faults"].items()) or "none"),
        f"recoveries after heal: {recovery(heal)}; after restart: {recovery(restart)}",
        f"transactions: {txs['submitted']} submitted, {txs['committed']} committed, {txs['lost']} lost "
        f"({', '.join(f'{k} {v}' for k, v in txs['outcomes'].items())}); "
        f"of the {txs['pending']} still pending at the commit wait's end, {txs['pending_later_committed']} "
        "were committed later",
        f"stores: {summary['blocks_compared']} blocks compared, {summary['conflicting_heights']} conflicting heights, "
        f"{summary['epochs_checked']} epoch prices recomputed",
        "pricing reads: " + ", ".join(f"{k} {v}" for k, v in summary["pricing_reads"].items()),
        "bad inputs (each answered 4xx, refused or dropped): "
        + (", ".join(f"{k} {v}" for k, v in summary["bad_inputs"].items()) or "none"),
        "RSS growth over the last half: "
        + (", ".join(f"{n} {g['growth_pct']}%" for n, g in summary["rss_growth"].items()) or "too short to tell"),
    ]
    lines.extend(f"PROBLEM: {p}" for p in summary["problems"])
    return "\n".join(lines)


__all__ = ["ChaosConfig", "FAULT_KINDS", "Fault", "compute_fault_plan", "format_summary", "run_chaos"]

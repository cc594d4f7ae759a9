"""The load of a chaos run, in threads until told to stop: validators voting prices, registering models and
voting on proposals; a reader of /v1/pricing; an abuser sending bad inputs; and an RSS sampler. `Ledger`
holds what they did."""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from chain.tx import MsgVote
from node.client import ApiError, Client, broadcast
from node.config import load_home
from node.tls import build_self_channel, load_identity

from .chaos_nodes import STATUS_TIMEOUT_S, ChaosNode

REQUEST_TIMEOUT_S = 20.0  # above the node's 10 s commit wait
RSS_INTERVAL_S = 2.0
READ_PAUSE_S = 0.05  # the reader's pace: about 20 reads a second, under the public API's rate limit


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
    chain_id = load_home(node.home).genesis["chain_id"]  # the run's own, never the one a node names
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
                newest = {"pagination.reverse": "true", "pagination.limit": 1}
                open_ = public.get("/v1/governance/proposals", status="voting_period", **newest)["proposals"]
                if not open_:
                    continue
                option = rng.choice(("yes", "yes", "no", "abstain", "no_with_veto"))
                reply = broadcast(public, node.key, [MsgVote(open_[0]["id"], option)], chain_id)
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
        credentials, options = build_self_channel(load_identity(node.home, load_home(node.home).node_key))
        with grpc.secure_channel(node.grpc, credentials, options=options) as channel:  # an authenticated peer
            call = channel.unary_unary("/uoc.v1.Gossip/SendConsensus")
            try:
                call(rng.randbytes(rng.randint(1, 512)), timeout=2)
            except grpc.RpcError as exc:
                code = exc.code()
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


STATUS_SAMPLE_S = 0.25
STATUS_SAMPLE_TIMEOUT_S = 5.0


def run_status_probe(urls: dict[str, str], out: str, stop: Any) -> None:
    """In a process of its own (so the runner's threads and GIL add nothing to what it measures), until `stop`
    (a multiprocessing Event): every STATUS_SAMPLE_S, time a GET /v1/status of each node in its own thread, and
    append `[unix time, node, seconds, height or null if it failed]` lines to the file `out`."""
    lock = threading.Lock()

    def probe(name: str, url: str) -> None:
        client = Client(url, timeout=STATUS_SAMPLE_TIMEOUT_S)
        with open(out, "a") as f:
            while not stop.wait(STATUS_SAMPLE_S):
                start, begun = time.time(), time.monotonic()
                try:
                    height: int | None = client.get("/v1/status")["height"]
                except ApiError:
                    height = None
                took = time.monotonic() - begun
                with lock:
                    f.write(json.dumps([round(start, 3), name, round(took, 4), height]) + "\n")
                    f.flush()

    threads = [threading.Thread(target=probe, args=item) for item in sorted(urls.items())]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

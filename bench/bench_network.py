"""A 4-validator network of real `uocd start` processes on loopback gRPC with a 1 s block interval.

    .venv/bin/python bench/bench_network.py [--seconds 20] [--rate 400] [--senders 400]

Two phases, each with fresh pre-signed MsgSend transactions from funded accounts (each account's
transactions always go to the same node, in sequence order, via `BroadcastTxs` batches of 50 spread
over the four nodes):

1. **latency**: a steady offered load of `--rate` tx/s for `--seconds`; prints p50 and p99 of the
   time from submission to commit (commit = when the benchmark sees the tx in a block streamed
   from node 0, polled every 50 ms). Target: p50 ≤ 2 block intervals.
2. **saturation**: as fast as the nodes admit for `--seconds`; prints committed tx/s over the
   window between the first and the last block that holds load. Target ≥ 1,000 tx/s.

Then the peak RSS (VmHWM) of each node process. The four nodes and this client share the machine.

Then the gossip payload bytes each node queued for its peers (its `cometbft_p2p_peer_send_bytes_total`,
summed over them: relayed txs and consensus messages, its own included) per committed transaction.

Then each node's transaction signature verifications per committed transaction (its
`uoc_tx_signature_verifications_total` over its `cometbft_consensus_txs_total`, read from its metrics
listener after the run: 1.00 when each distinct transaction is verified once per node).

The whole run is made twice, on two fresh networks: with gRPC over mutual TLS (as nodes always run) and
then in plaintext (`UOC_BENCH_PLAINTEXT_GRPC=1`, a switch for this comparison only). `--tls-only` skips
the plaintext run.

The last line (JSON) gives the TLS network's `tx_per_s` (committed, saturation), `p50_s`,
`verifications_per_tx_per_node` and `gossip_bytes_per_tx_per_node` (means over the four nodes),
`verify_bound_tx_per_s` and their ratio
`tx_per_s_to_bound`, and both runs' rates with the ratio TLS / plaintext. The bound: four validators
verify every transaction four times on this machine's cores, so verification alone allows
`cores × raw verify rate / 4` tx/s, the raw rate being the chain's own `chain.crypto.verify_signature`
on 3,000 distinct messages on one core per second of CPU time, measured in this run before each
network starts (the mean).

The CPU the nodes spend per committed transaction does not depend on what else the machine runs,
where the rates do: each node's CPU time (user + system, `/proc/PID/stat`) over the saturation phase,
divided by the transactions committed in it, is `cpu_us_per_tx_per_node` (the mean of four), and
`cpu_bound_tx_per_s = cores × 10^6 / (4 × cpu_us_per_tx_per_node)` is the rate four such nodes
would commit on this machine's cores with nothing else running. Beside it, `verify_us_per_tx` =
10^6 / raw verify rate: the part of that CPU that is the signature check.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chain.crypto import PrivateKey, verify_signature  # noqa: E402
from chain.tx import MsgSend, compute_tx_hash, sign_tx  # noqa: E402
from devnet.launch import spawn_node  # noqa: E402
from node import codec  # noqa: E402
from node.config import collect_genesis, init_home, load_home, update_config, write_json  # noqa: E402
from node.consensus import Timeouts  # noqa: E402
from node.node import PLAINTEXT_ENV  # noqa: E402
from node.pb import services_pb2 as spb  # noqa: E402
from node.pb import types_pb2 as pb  # noqa: E402
from node.tls import build_self_channel, load_identity  # noqa: E402

BATCH = 50
WINDOW = 6000  # saturation: at most this many submitted txs not yet committed (bounds the mempool)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_network(root: Path, validators: int, senders: list[PrivateKey], block_interval_ms: int) -> list[Path]:
    """Homes sharing a genesis that funds the senders."""
    homes = []
    for i in range(validators):
        home = root / f"node{i}"
        init_home(home, f"node{i}", chain_id="uoc-bench", key_name=f"bench-{i}", listen=f"127.0.0.1:{free_port()}")
        update_config(home, timeouts=Timeouts(commit_ms=block_interval_ms))
        homes.append(home)
    genesis = collect_genesis(homes)
    genesis["accounts"] += [{"address": k.address, "balance": 10**15} for k in senders]
    for home in homes:
        write_json(home / "genesis.json", genesis)
    return homes


def start(home: Path, profile: str | None, plaintext: bool) -> subprocess.Popen:
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    env = {**os.environ, PLAINTEXT_ENV: "1"} if plaintext else None
    return spawn_node(home, log_level="warning", log_format=None, prefix=prefix, env=env)


def open_channel(home: Path, plaintext: bool) -> grpc.Channel:
    """A channel to the node of `home`: plaintext, or mutual TLS as that node itself."""
    address = load_home(home).config.listen
    if plaintext:
        return grpc.insecure_channel(address)
    credentials, options = build_self_channel(load_identity(home, load_home(home).node_key))
    return grpc.secure_channel(address, credentials, options=options)


def unary(channel: grpc.Channel, path: str, response):
    return channel.unary_unary(path, request_serializer=None, response_deserializer=response.FromString)


class Watcher(threading.Thread):
    """Follows node 0's blocks and records when each tx hash is first seen committed."""

    def __init__(self, channel: grpc.Channel) -> None:
        super().__init__(daemon=True)
        self.channel = channel
        self.status = unary(self.channel, "/uoc.v1.Status/GetStatus", spb.StatusResponse)
        self.blocks = self.channel.unary_stream(
            "/uoc.v1.BlockSync/GetBlocks", request_serializer=None, response_deserializer=pb.BlockWithCommit.FromString
        )
        self.committed: dict[str, float] = {}
        self.block_times: list[tuple[float, int, int]] = []  # (seen at, height, txs)
        self.height = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                top = self.status(b"", timeout=5).height
                if top > self.height:
                    request = spb.BlockRange(from_height=self.height + 1, to_height=top).SerializeToString()
                    for item in self.blocks(request, timeout=30):
                        seen = time.monotonic()
                        block = codec.block_from_pb(item.block)
                        for raw in block.txs:
                            self.committed.setdefault(compute_tx_hash(raw), seen)
                        self.block_times.append((seen, block.height, len(block.txs)))
                        self.height = block.height
            except grpc.RpcError:
                pass
            time.sleep(0.05)


def presign(senders: list[PrivateKey], per_sender: int, start_seq: int, chain_id: str) -> list[list[bytes]]:
    """Each sender's transactions in sequence order."""
    to = PrivateKey.from_name("bench-sink").address
    msgs = [MsgSend(to=to, amount=1)]
    return [[sign_tx(k, chain_id, start_seq + s, msgs) for s in range(per_sender)] for k in senders]


def send_batch(stub, chunk: list[bytes], sent: dict[str, float]) -> None:
    """Send one BroadcastTxs batch, recording each tx's submission time by hash in `sent`."""
    now = time.monotonic()
    for raw in chunk:
        sent[compute_tx_hash(raw)] = now
    try:
        stub(spb.TxBatch(txs=chunk).SerializeToString(), timeout=10)
    except grpc.RpcError as exc:
        print(f"  submit failed: {exc.code().name}", file=sys.stderr)


def submit(
    stubs,
    per_sender: list[list[bytes]],
    rate: float | None,
    sent: dict[str, float],
    in_flight=None,
) -> None:
    """Send every sender's txs in sequence order to its node (sender i -> node i mod 4), one client
    thread per node in batches of BATCH; paced to `rate` tx/s in total, or (rate None) as fast as
    the nodes take them while `in_flight()` (submitted, not yet committed) is below WINDOW."""
    n_nodes = len(stubs)
    started = time.monotonic()

    def run(node: int) -> None:
        mine = per_sender[node::n_nodes]
        flat = [txs[r] for r in range(len(per_sender[0])) for txs in mine]
        count = 0
        for start_i in range(0, len(flat), BATCH):
            chunk = flat[start_i : start_i + BATCH]
            send_batch(stubs[node], chunk, sent)
            count += len(chunk)
            while in_flight is not None and in_flight() > WINDOW:
                time.sleep(0.01)
            if rate:
                delay = started + count / (rate / n_nodes) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure_raw_verify_rate(n: int = 3000) -> float:
    """Verifications per second of CPU time of distinct signed messages by the chain's library, one
    core (CPU time, as the nodes' cost per transaction is measured, so a busy machine moves neither)."""
    key = PrivateKey.from_name("bench")
    items = [(key.pubkey, key.sign(m), m) for m in (os.urandom(300) for _ in range(n))]
    started = time.process_time()
    assert all(verify_signature(*item) for item in items)
    return n / (time.process_time() - started)


def read_counter(address: str, name: str) -> float:
    """A counter's value from a node's metrics listener (`GET http://ADDRESS/metrics`), summed over its
    labels (a per-peer counter: the node's total)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values = [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]
    if not values:
        raise KeyError(f"{name} is not served by {address}")
    return sum(values)


def get_cpu_s(pid: int) -> float:
    """A process's CPU time so far, user + system (fields 14 and 15 of /proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=400, help="offered tx/s in the latency phase")
    parser.add_argument("--senders", type=int, default=400)
    parser.add_argument("--block-interval-ms", type=int, default=1000)
    parser.add_argument("--profile", metavar="FILE", help="run node 0 under cProfile, writing FILE")
    parser.add_argument("--tls-only", action="store_true", help="skip the plaintext run")
    args = parser.parse_args()

    senders = [PrivateKey.from_name(f"bench-sender-{i}") for i in range(args.senders)]
    chain_id = "uoc-bench"
    lat_rounds = max(1, int(args.rate * args.seconds / args.senders))
    print(f"signing {args.senders} x {lat_rounds} latency txs ...", flush=True)
    lat_txs = presign(senders, lat_rounds, 0, chain_id)
    sat_rounds = max(1, int(3000 * args.seconds / args.senders))
    print(f"signing {args.senders} x {sat_rounds} saturation txs ...", flush=True)
    sat_txs = presign(senders, sat_rounds, lat_rounds, chain_id)
    results = {}
    raw_rates = []
    for plaintext in (False,) if args.tls_only else (False, True):
        name = "plaintext" if plaintext else "mutual TLS"
        raw_rates.append(measure_raw_verify_rate())
        print(f"raw verification (chain.crypto, one core): {raw_rates[-1]:,.0f}/s", flush=True)
        print(f"== gRPC {name}: a fresh 4-node network", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            homes = make_network(Path(tmp), 4, senders, args.block_interval_ms)
            assert load_home(homes[0]).genesis["chain_id"] == chain_id
            results[name] = run(args, homes, lat_txs, sat_txs, plaintext)
    summary = {name: round(r["tx_per_s"]) for name, r in results.items()}
    if len(results) == 2:
        summary["ratio_tls_to_plaintext"] = round(
            results["mutual TLS"]["tx_per_s"] / results["plaintext"]["tx_per_s"], 2
        )
    tls = results["mutual TLS"]
    raw = statistics.mean(raw_rates)
    bound = (os.cpu_count() or 1) * raw / 4
    cpu_us = statistics.mean(tls["cpu_us_per_tx"])
    print(
        json.dumps(
            {
                "tx_per_s": round(tls["tx_per_s"]),
                "p50_s": round(tls["p50_s"], 2),
                "verify_bound_tx_per_s": round(bound),
                "tx_per_s_to_bound": round(tls["tx_per_s"] / bound, 2),
                "raw_verify_per_s": round(raw),
                "verifications_per_tx_per_node": round(statistics.mean(tls["verifications_per_tx"]), 3),
                "cpu_us_per_tx_per_node": round(cpu_us),
                "gossip_bytes_per_tx_per_node": round(statistics.mean(tls["gossip_bytes_per_tx"])),
                "cpu_bound_tx_per_s": round((os.cpu_count() or 1) * 1e6 / (4 * cpu_us)),
                "verify_us_per_tx": round(1e6 / raw),
                "saturation_tx_per_s": summary,
            }
        )
    )


def wait_for_commits(channel: grpc.Channel) -> None:
    """Wait until the node behind `channel` has committed height 2 (the network is up)."""
    status = unary(channel, "/uoc.v1.Status/GetStatus", spb.StatusResponse)
    while True:
        try:
            if status(b"", timeout=2).height >= 2:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)


def stop_network(channels: list[grpc.Channel], procs: list[subprocess.Popen]) -> None:
    """Close the channels, SIGTERM each node's process group and wait for them."""
    for channel in channels:
        channel.close()
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)


def run(args: argparse.Namespace, homes: list[Path], lat_txs, sat_txs, plaintext: bool) -> dict:
    """Both phases on a fresh network of `homes`; the figures."""
    procs = [start(h, args.profile if i == 0 else None, plaintext) for i, h in enumerate(homes)]
    channels = [open_channel(h, plaintext) for h in homes]
    stubs = [unary(c, "/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck) for c in channels]
    try:
        wait_for_commits(channels[0])
        watcher = Watcher(channels[0])
        watcher.start()

        sent: dict[str, float] = {}
        print(f"latency phase: {args.rate:.0f} tx/s offered for {args.seconds:.0f} s", flush=True)
        submit(stubs, lat_txs, args.rate, sent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(h in watcher.committed for h in sent):
            time.sleep(0.2)
        latencies = sorted(watcher.committed[h] - t for h, t in sent.items() if h in watcher.committed)
        missing = len(sent) - len(latencies)
        p50 = statistics.median(latencies)
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        print(f"  committed {len(latencies)} of {len(sent)} ({missing} missing)")
        print(f"  submission->commit p50 {p50:.2f} s, p99 {p99:.2f} s (block interval {args.block_interval_ms} ms)")

        sat_sent: dict[str, float] = {}
        first_height = watcher.height + 1
        print("saturation phase: as fast as the nodes admit", flush=True)
        t0 = time.monotonic()
        cpu0 = [get_cpu_s(p.pid) for p in procs]
        base = len(watcher.committed)
        submit(stubs, sat_txs, None, sat_sent, lambda: len(sat_sent) - (len(watcher.committed) - base))
        submit_s = time.monotonic() - t0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(h in watcher.committed for h in sat_sent):
            time.sleep(0.2)
        cpu = [get_cpu_s(p.pid) - c for p, c in zip(procs, cpu0)]
        done = [t for h, t in ((h, watcher.committed.get(h)) for h in sat_sent) if t is not None]
        blocks = [(t, h, n) for t, h, n in watcher.block_times if h >= first_height and n > 0]
        window = max(done) - t0
        admitted = len(sat_sent) / submit_s
        print(f"  submitted {len(sat_sent)} txs in {submit_s:.1f} s ({admitted:,.0f} tx/s, window {WINDOW})")
        print(
            f"  committed {len(done)} in {window:.1f} s from the first submission: "
            f"{len(done) / window:,.0f} tx/s over {len(blocks)} blocks "
            f"(max {max(n for _, _, n in blocks)} txs in a block)"
        )
        watcher.stop.set()
        rss = [get_rss_kb(p.pid) for p in procs]
        print(f"peak RSS per node: {', '.join(f'{r / 1024:.0f} MiB' for r in rss)}")
        metrics = [load_home(h).config.prometheus_listen_addr for h in homes]
        verified = [read_counter(a, "uoc_tx_signature_verifications_total") for a in metrics]
        committed = [read_counter(a, "cometbft_consensus_txs_total") for a in metrics]
        evicted = [read_counter(a, "uoc_verify_cache_evictions_total") for a in metrics]
        per_tx = [v / c for v, c in zip(verified, committed)]
        print(
            "signature verifications per node: "
            + ", ".join(f"{v:,.0f} for {c:,.0f} txs ({r:.3f}/tx)" for v, c, r in zip(verified, committed, per_tx))
            + f"; verify cache evictions {', '.join(f'{e:,.0f}' for e in evicted)}"
        )
        runs = [read_counter(a, "uoc_tx_rule_runs_total") for a in metrics]
        applied = [read_counter(a, "uoc_tx_records_applied_total") for a in metrics]
        print(
            "rule runs per node (admission, re-checks, blocks; records applied instead): "
            + ", ".join(f"{r / c:.2f}/tx ({a / c:.2f}/tx)" for r, a, c in zip(runs, applied, committed))
        )
        sent = [read_counter(a, "cometbft_p2p_peer_send_bytes_total") for a in metrics]
        print(
            "gossip bytes queued for peers per committed tx per node (both phases): "
            + ", ".join(f"{b / c:,.0f}" for b, c in zip(sent, committed))
        )
        cpu_us = [c * 1e6 / len(done) for c in cpu]
        print(f"CPU per committed tx per node: {', '.join(f'{c:,.0f} µs' for c in cpu_us)}")
        figures = {
            "cpu_us_per_tx": cpu_us,
            "p50_s": p50,
            "p99_s": p99,
            "tx_per_s": len(done) / window,
            "rss_kb": rss,
            "verifications_per_tx": per_tx,
            "gossip_bytes_per_tx": [b / c for b, c in zip(sent, committed)],
        }
        print(json.dumps(figures))
        return figures
    finally:
        stop_network(channels, procs)


if __name__ == "__main__":
    main()

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
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chain.crypto import PrivateKey  # noqa: E402
from chain.tx import MsgSend, compute_tx_hash, sign_tx  # noqa: E402
from node import codec  # noqa: E402
from node.config import collect_genesis, init_home, load_home, update_config, write_json  # noqa: E402
from node.consensus import Timeouts  # noqa: E402
from node.pb import services_pb2 as spb  # noqa: E402
from node.pb import types_pb2 as pb  # noqa: E402

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


def start(home: Path, profile: str | None = None) -> subprocess.Popen:
    log = open(home / "node.log", "ab")  # noqa: SIM115 - lives as long as the process
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    return subprocess.Popen(
        [sys.executable, *prefix, "-m", "uocd", "--log-level", "warning", "start", "--home", str(home)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )


def unary(channel: grpc.Channel, path: str, response):
    return channel.unary_unary(path, request_serializer=None, response_deserializer=response.FromString)


class Watcher(threading.Thread):
    """Follows node 0's blocks and records when each tx hash is first seen committed."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(address)
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
            now = time.monotonic()
            for raw in chunk:
                sent[compute_tx_hash(raw)] = now
            try:
                stubs[node](spb.TxBatch(txs=chunk).SerializeToString(), timeout=10)
            except grpc.RpcError as exc:
                print(f"  submit failed: {exc.code().name}", file=sys.stderr)
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
    args = parser.parse_args()

    senders = [PrivateKey.from_name(f"bench-sender-{i}") for i in range(args.senders)]
    with tempfile.TemporaryDirectory() as tmp:
        homes = make_network(Path(tmp), 4, senders, args.block_interval_ms)
        chain_id = load_home(homes[0]).genesis["chain_id"]
        addresses = [load_home(h).config.listen for h in homes]
        lat_rounds = max(1, int(args.rate * args.seconds / args.senders))
        print(f"signing {args.senders} x {lat_rounds} latency txs ...", flush=True)
        lat_txs = presign(senders, lat_rounds, 0, chain_id)
        sat_rounds = max(1, int(3000 * args.seconds / args.senders))
        print(f"signing {args.senders} x {sat_rounds} saturation txs ...", flush=True)
        sat_txs = presign(senders, sat_rounds, lat_rounds, chain_id)
        procs = [start(h, args.profile if i == 0 else None) for i, h in enumerate(homes)]
        channels = [grpc.insecure_channel(a) for a in addresses]
        stubs = [unary(c, "/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck) for c in channels]
        try:
            status = unary(channels[0], "/uoc.v1.Status/GetStatus", spb.StatusResponse)
            while True:
                try:
                    if status(b"", timeout=2).height >= 2:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
            watcher = Watcher(addresses[0])
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
            base = len(watcher.committed)
            submit(stubs, sat_txs, None, sat_sent, lambda: len(sat_sent) - (len(watcher.committed) - base))
            submit_s = time.monotonic() - t0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(h in watcher.committed for h in sat_sent):
                time.sleep(0.2)
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
            print(json.dumps({"p50_s": p50, "p99_s": p99, "tx_per_s": len(done) / window, "rss_kb": rss}))
        finally:
            for channel in channels:
                channel.close()
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()

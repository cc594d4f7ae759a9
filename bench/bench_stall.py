"""The longest event-loop stall an unauthenticated gRPC caller can cause (issue 14 item 3).

One validator node (of two: the other never runs, so the test holds a validator key) runs in this
process; a ticker task on its event loop records how late each 1 ms sleep wakes. Attackers run in
threads with blocking gRPC clients and payloads built beforehand, so their own work is not on the
node's loop. Each attack runs for a few seconds; the figure is the longest stall seen during it, and
the ratio is to the longest stall of the same node idle, measured first in the same run.

    .venv/bin/python bench/bench_stall.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path

import grpc

from chain.crypto import PrivateKey
from chain.tx import MsgSend, sign_tx
from node import codec
from node.blocks import Block, Commit, Header, compute_commit_hash, compute_txs_hash, sign_proposal, sign_vote
from node.config import (
    collect_genesis,
    compute_genesis_time_ms,
    compute_loopback_timeouts,
    find_free_port,
    init_home,
    load_home,
    update_config,
)
from node.ledger import open_ledger
from node.network import MAX_BATCH_BYTES, MAX_BATCH_TXS
from node.node import Node
from node.pb import services_pb2 as spb

MiB = 1024 * 1024


def make_homes(root: Path) -> list[Path]:
    """Two validator homes on one genesis; the node runs the first."""
    homes = []
    for i in range(2):
        home = root / f"n{i}"
        init_home(
            home,
            f"n{i}",
            chain_id="uoc-stall",
            key_name=f"stall-{i}",
            listen=f"127.0.0.1:{find_free_port('127.0.0.1')}",
        )
        update_config(home, timeouts=compute_loopback_timeouts(100), max_message_bytes=20 * MiB, peers=())
        homes.append(home)
    collect_genesis(homes)
    for home in homes:
        update_config(home, peers=())
    return homes


def build_big_blocks(home_path: Path, blocks: int, tx_bytes: int, txs: int) -> None:
    """Store `blocks` blocks of junk txs (they fail in the block; it applies) for GetBlocks to serve."""
    home = load_home(home_path)
    key, chain_id = home.validator_key, home.genesis["chain_id"]
    t0 = compute_genesis_time_ms(home.genesis)
    with open_ledger(home) as ledger:
        for height in range(1, blocks + 1):
            body = tuple(bytes([height, i % 256]) * (tx_bytes // 2) for i in range(txs))
            last = ledger.last
            header = Header(
                chain_id, height, t0 + height, last[0].id if last else "",
                compute_commit_hash(last[1] if last else None), compute_txs_hash(body), ledger.app.app_hash,
                ledger.get_validator_set(height).hash, key.address,
            )  # fmt: skip
            block = Block(header, body, last[1] if last else None)
            precommit = sign_vote(key, chain_id, "precommit", height, 0, block.id, t0 + height + 1)
            ledger.apply(block, Commit(height, 0, block.id, (precommit,)))


class Ticker:
    """Records how late 1 ms sleeps on the running loop wake (wall clock, which includes the time the OS
    gives other processes on this shared machine) and the CPU time the loop's thread spent meanwhile
    (the node's own work in one loop turn: the stall an attacker causes)."""

    def __init__(self) -> None:
        self.worst_wall = 0.0
        self.worst_cpu = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            at, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(0.001)
            self.worst_wall = max(self.worst_wall, loop.time() - at - 0.001)
            self.worst_cpu = max(self.worst_cpu, time.thread_time() - cpu)


def attack_worker(address: str, path: str, payloads: list[bytes], streaming: bool, seconds: float, out, go) -> None:
    """In a process of its own: call `path` with the payloads in turn, two threads, for `seconds` from `go`."""
    done = [0]
    out.put("ready")
    go.wait()
    deadline = time.monotonic() + seconds
    options = [
        ("grpc.max_send_message_length", 20 * MiB),
        ("grpc.max_receive_message_length", 20 * MiB),
        ("grpc.use_local_subchannel_pool", 1),
    ]

    def worker(offset: int) -> None:
        with grpc.insecure_channel(address, options=options) as ch:
            call = (ch.unary_stream if streaming else ch.unary_unary)(path)
            i = offset
            while time.monotonic() < deadline:
                try:
                    result = call(payloads[i % len(payloads)], timeout=30)
                    if streaming:
                        for _ in result:
                            pass
                except grpc.RpcError:
                    pass
                done[0] += 1
                i += 2

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(done[0])


class Attack:
    """`attack_worker` in a child process (its work is on neither this process's loop nor its GIL)."""

    def __init__(self, address: str, path: str, payloads: list[bytes], seconds: float, streaming: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.out, self.go = ctx.Queue(), ctx.Event()
        args = (address, path, payloads, streaming, seconds, self.out, self.go)
        self.child = ctx.Process(target=attack_worker, args=args)
        self.child.start()
        assert self.out.get() == "ready"  # imported and started: the spawn's own work is over

    def run(self) -> int:
        """Start the attack, wait for it to end; the calls made."""
        self.go.set()
        made = self.out.get()
        self.child.join()
        return int(made)


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        homes = make_homes(Path(tmp))
        build_big_blocks(homes[0], blocks=6, tx_bytes=60 * 1024, txs=272)  # about 16 MiB a block
        other = load_home(homes[1]).validator_key
        node = Node(load_home(homes[0]))
        await node.start()
        address = f"127.0.0.1:{node.port}"
        chain_id, height = node.chain_id, node.consensus.height
        stranger = PrivateKey.from_name("stranger")

        # payloads, built before any measurement
        big_txs = tuple(bytes([i % 256]) * (60 * 1024) for i in range(272))
        header = Header(chain_id, height, 1, "ab" * 32, compute_commit_hash(None), compute_txs_hash(big_txs),
                        "ab" * 32, "ab" * 32, stranger.address)  # fmt: skip
        big_proposal = codec.consensus_message_to_pb(
            sign_proposal(stranger, chain_id, height, 0, -1, Block(header, big_txs, None), 1)
        ).SerializeToString()
        future_votes = [
            codec.consensus_message_to_pb(sign_vote(stranger, chain_id, "prevote", height + 1, r, None, 1))
            .SerializeToString() for r in range(64)
        ]  # fmt: skip
        signed = [sign_tx(stranger, chain_id, 1000 + i, [MsgSend(to=other.address, amount=1)]) for i in range(2000)]
        signed_batch = spb.TxBatch(txs=signed[:MAX_BATCH_TXS]).SerializeToString()
        junk_batch = spb.TxBatch(
            txs=[bytes([i % 256]) * ((MAX_BATCH_BYTES - 64 * 1024) // 2000) for i in range(2000)]
        ).SerializeToString()
        blocks_request = spb.BlockRange(from_height=1, to_height=6).SerializeToString()
        validator_votes = [
            codec.consensus_message_to_pb(sign_vote(other, chain_id, "prevote", height, 0, f"{i:064x}", 1))
            .SerializeToString() for i in range(64)
        ]  # fmt: skip
        gossip, sync = "/uoc.v1.Gossip/", "/uoc.v1.BlockSync/"
        attacks: list[tuple[str, str, list[bytes], bool]] = [
            ("SendConsensus: 16 MiB proposal, non-validator", gossip + "SendConsensus", [big_proposal], False),
            ("SendConsensus: future-height votes, non-validator", gossip + "SendConsensus", future_votes, False),
            ("SendConsensus: conflicting votes, a validator", gossip + "SendConsensus", validator_votes, False),
            ("BroadcastTxs: 2,000 signed txs (wrong sequence)", gossip + "BroadcastTxs", [signed_batch], False),
            ("BroadcastTxs: 2,000 junk entries, 4 MiB", gossip + "BroadcastTxs", [junk_batch], False),
            ("GetBlocks: 16 MiB blocks", sync + "GetBlocks", [blocks_request], True),
        ]
        loop = asyncio.get_running_loop()
        try:
            idle = Ticker()
            stop = asyncio.Event()
            task = loop.create_task(idle.run(stop))
            await asyncio.sleep(seconds)
            stop.set()
            await task
            reference = max(idle.worst_cpu, 1e-4)
            print(f"{'attack':52} {'calls':>6} {'loop turn, CPU':>15} {'× idle':>7} {'late wake-up, wall':>19}")
            print(f"{'(idle node, reference)':52} {0:>6} {idle.worst_cpu * 1000:>12.1f} ms {1.0:>7.1f} "
                  f"{idle.worst_wall * 1000:>16.1f} ms")  # fmt: skip
            for name, path, payloads, streaming in attacks:
                attacker = await asyncio.to_thread(Attack, address, path, payloads, seconds, streaming)
                await asyncio.sleep(0.5)  # let the machine settle after the spawn
                ticker, stop = Ticker(), asyncio.Event()
                task = loop.create_task(ticker.run(stop))
                made = await asyncio.to_thread(attacker.run)
                stop.set()
                await task
                print(f"{name:52} {made:>6} {ticker.worst_cpu * 1000:>12.1f} ms {ticker.worst_cpu / reference:>7.1f} "
                      f"{ticker.worst_wall * 1000:>16.1f} ms")  # fmt: skip
            print(
                f"node committed {node.app.height} blocks meanwhile; gRPC rejections: {node.server.handlers.rejected}"
            )
        finally:
            await node.stop(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per attack (default 3)")
    asyncio.run(main(parser.parse_args().seconds))

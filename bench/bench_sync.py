"""Block sync: a fresh node catching up 1,000 blocks from a peer over loopback gRPC.

    .venv/bin/python bench/bench_sync.py [--blocks 1000] [--validators 4] [--txs 0]

Builds a chain of `--blocks` blocks in process (the validators' real keys sign every precommit, so
each commit carries `--validators` signatures to verify; `--txs` signed transfers per block), writes
it into a node home's store through the node's own apply path, serves it from a `uocd start`
process whose home has no validator key (so it serves, never proposes), then starts a fresh
non-validator `uocd start` process pointing at it and times how long it takes to reach the top
height (from process start, and from its first synced block). Target: ≥ 200 blocks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chain.crypto import PrivateKey  # noqa: E402
from chain.tx import MsgSend, sign_tx  # noqa: E402
from devnet.launch import spawn_node  # noqa: E402
from node.blocks import Block, Commit, Header, compute_commit_hash, compute_txs_hash, sign_vote  # noqa: E402
from node.config import (  # noqa: E402
    collect_genesis,
    compute_genesis_time_ms,
    compute_peer_address,
    init_home,
    load_home,
    update_config,
    write_json,
)
from node.ledger import open_ledger  # noqa: E402
from node.pb import services_pb2 as spb  # noqa: E402
from node.tls import build_self_channel, load_identity  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def build_chain(home: Path, keys: list[PrivateKey], blocks: int, txs_per_block: int, sender: PrivateKey) -> None:
    """Decide `blocks` blocks with every validator precommitting, applied through the node's `Ledger.apply`."""
    loaded = load_home(home)
    with open_ledger(loaded) as ledger:  # build only: open the store, apply blocks, no network
        chain_id = loaded.genesis["chain_id"]
        last: tuple[Block, Commit] | None = None
        t0 = compute_genesis_time_ms(loaded.genesis)
        t = t0 + 1  # the precommits of height h are at t + h·1000 (after the block's time)
        seq = 0
        to = PrivateKey.from_name("bench-sink").address
        for height in range(1, blocks + 1):
            vset = ledger.get_validator_set(height)
            txs = tuple(sign_tx(sender, chain_id, seq + i, [MsgSend(to=to, amount=1)]) for i in range(txs_per_block))
            seq += txs_per_block
            last_commit = last[1] if last else None
            header = Header(
                chain_id=chain_id,
                height=height,
                time_ms=t0 if height == 1 else t + (height - 1) * 1000,  # BFT time: the last commit's median
                last_block_id=last[0].id if last else "",
                last_commit_hash=compute_commit_hash(last_commit),
                txs_hash=compute_txs_hash(txs),
                app_hash=ledger.app.app_hash,
                validators_hash=vset.hash,
                proposer=vset.proposer(0),
            )
            block = Block(header, txs, last_commit)
            votes = sorted(
                (sign_vote(k, chain_id, "precommit", height, 0, block.id, t + height * 1000) for k in keys),
                key=lambda v: v.validator,
            )
            commit = Commit(height, 0, block.id, tuple(votes))
            ledger.apply(block, commit)
            last = (block, commit)


def start(home: Path) -> subprocess.Popen:
    return spawn_node(home)


def height_of(home: Path) -> int:
    """The node's height over gRPC (mutual TLS, as the node itself); -1 if it does not answer."""
    loaded = load_home(home)
    credentials, options = build_self_channel(load_identity(home, loaded.node_key))
    try:
        with grpc.secure_channel(loaded.config.listen, credentials, options=options) as channel:
            stub = channel.unary_unary(
                "/uoc.v1.Status/GetStatus", request_serializer=None, response_deserializer=spb.StatusResponse.FromString
            )
            return stub(b"", timeout=2).height
    except grpc.RpcError:
        return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--txs", type=int, default=0, help="signed transfers per block")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        homes = []
        for i in range(args.validators):
            home = root / f"v{i}"
            init_home(home, f"v{i}", chain_id="uoc-syncbench", key_name=f"syncbench-{i}")
            homes.append(home)
        genesis = collect_genesis(homes, set_peers=False)
        sender = PrivateKey.from_name("syncbench-sender")
        genesis["accounts"].append({"address": sender.address, "balance": 10**15})
        write_json(homes[0] / "genesis.json", genesis)
        keys = [load_home(h).validator_key for h in homes]
        print(f"building {args.blocks} blocks ({args.validators} precommits, {args.txs} txs each) ...", flush=True)
        t0 = time.monotonic()
        asyncio.run(build_chain(homes[0], keys, args.blocks, args.txs, sender))
        print(f"  built in {time.monotonic() - t0:.1f} s")
        (homes[0] / "validator_key.json").unlink()  # serve only: never propose
        server_addr, fresh_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        fresh = root / "fresh"
        init_home(fresh, "fresh", chain_id="uoc-syncbench", listen=fresh_addr)
        (fresh / "validator_key.json").unlink()
        shutil.copy(homes[0] / "genesis.json", fresh / "genesis.json")
        update_config(homes[0], listen=server_addr, peers=(compute_peer_address(load_home(fresh)),))
        update_config(fresh, peers=(compute_peer_address(load_home(homes[0])),), status_interval_ms=100)
        server = start(homes[0])
        procs = [server]
        try:
            while height_of(homes[0]) < args.blocks:
                time.sleep(0.1)
            t_start = time.monotonic()
            procs.append(start(fresh))
            first_seen = None
            while (h := height_of(fresh)) < args.blocks:
                if h > 0 and first_seen is None:
                    first_seen = (time.monotonic(), h)
                time.sleep(0.02)
            elapsed = time.monotonic() - t_start
            print(
                f"fresh node synced {args.blocks} blocks in {elapsed:.2f} s from process start: "
                f"{args.blocks / elapsed:,.0f} blocks/s"
            )
            if first_seen:
                t1, h1 = first_seen
                rate = (args.blocks - h1) / (time.monotonic() - t1)
                print(f"  from its first synced block (height {h1}): {rate:,.0f} blocks/s")
            print(json.dumps({"blocks": args.blocks, "seconds": elapsed, "blocks_per_s": args.blocks / elapsed}))
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()

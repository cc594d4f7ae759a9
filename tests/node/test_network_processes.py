"""Real node processes on loopback gRPC: 4 validators commit blocks with signed vote transactions and
agree on the app hash at every height; a SIGKILLed validator does not stop the others and catches up
after a restart; a fresh non-validator syncs from genesis; SIGTERM stops every node cleanly."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import grpc

from chain.tx import MsgSend, MsgSubmitPriceProposal, sign_tx
from node.config import load_home
from node.pb import services_pb2 as spb
from node.pb import types_pb2 as pb
from tests.node.netutil import NodeProcess, make_homes, self_channel, wait_until


def call(target: tuple[Path, str], path: str, request: bytes, response):
    """One unary call with a deadline to the node (home, gRPC address), as that node (mutual TLS)."""
    with self_channel(*target) as channel:
        stub = channel.unary_unary(path, request_serializer=None, response_deserializer=response.FromString)
        return stub(request, timeout=3)


def height_of(target: tuple[Path, str]) -> int:
    try:
        return call(target, "/uoc.v1.Status/GetStatus", b"", spb.StatusResponse).height
    except grpc.RpcError:
        return -1


def app_hashes(home: Path) -> dict[int, str]:
    """{h: app hash after h} read from a node's stored block headers (block h+1 carries it)."""
    with sqlite3.connect(f"file:{home / 'data/node.db'}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT height, block FROM blocks ORDER BY height").fetchall()
    return {h - 1: json.loads(b)["header"]["app_hash"] for h, b in rows}


def price_vote(home: Path, address: str) -> dict | None:
    with sqlite3.connect(f"file:{home / 'data/node.db'}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT value FROM state WHERE space = 'vote' AND key = ?", (address,)).fetchone()
    return json.loads(row[0]) if row else None


def assert_same_app_hashes(homes: list[Path]) -> int:
    """Every pair of nodes agrees at every height both have; return the common top height."""
    maps = [app_hashes(h) for h in homes]
    common = set.intersection(*(set(m) for m in maps))
    assert len(common) >= 3
    for h in sorted(common):
        assert len({m[h] for m in maps}) == 1, f"app hashes differ at height {h}"
    return max(common)


def test_four_validator_processes_commit_agree_survive_sigkill_and_sync_a_fresh_node(tmp_path):
    homes = make_homes(tmp_path, 5, validators=4)
    keys = [load_home(h).validator_key for h in homes[:4]]
    procs = [NodeProcess(h) for h in homes[:4]]
    fresh = None
    try:
        addresses = [(p.home, p.grpc) for p in procs]
        wait_until(lambda: min(height_of(a) for a in addresses) >= 3, "all four validators commit blocks")

        # signed price votes (and a transfer) submitted over gRPC to different nodes
        chain_id = load_home(homes[0]).genesis["chain_id"]
        for i, key in enumerate(keys):
            vote = sign_tx(key, chain_id, 0, [MsgSubmitPriceProposal.of(1000 + i)])
            ack = call(
                addresses[(i + 1) % 4], "/uoc.v1.Gossip/BroadcastTx", pb.Tx(raw=vote).SerializeToString(), spb.TxAck
            )
            assert ack.accepted
        send = sign_tx(keys[0], chain_id, 1, [MsgSend(to=keys[1].address, amount=7)])
        call(addresses[1], "/uoc.v1.Gossip/BroadcastTx", pb.Tx(raw=send).SerializeToString(), spb.TxAck)
        wait_until(
            lambda: all(price_vote(h, k.address) for h in homes[:4] for k in keys), "the votes are committed everywhere"
        )
        assert [price_vote(homes[3], k.address)["price_ngonka"] for k in keys] == [1000, 1001, 1002, 1003]

        # SIGKILL one validator: the other three keep committing
        assert procs[3].signal(signal.SIGKILL) == -signal.SIGKILL
        killed_at = max(height_of(a) for a in addresses[:3])
        wait_until(lambda: min(height_of(a) for a in addresses[:3]) >= killed_at + 3, "three validators go on")

        # restart it: it catches up and matches the app hash
        procs[3] = NodeProcess(homes[3])
        wait_until(lambda: height_of(addresses[3]) >= max(height_of(a) for a in addresses[:3]) - 1, "it catches up")
        top = height_of(addresses[3])
        wait_until(lambda: min(height_of(a) for a in addresses) >= top + 2, "all four commit together again")

        # a fresh non-validator node syncs from genesis
        fresh = NodeProcess(homes[4])
        wait_until(
            lambda: height_of((fresh.home, fresh.grpc)) >= min(height_of(a) for a in addresses), "the fresh node syncs"
        )
        time.sleep(0.3)
    finally:
        codes = [p.signal(signal.SIGTERM) for p in procs if p.popen.poll() is None]
        if fresh is not None and fresh.popen.poll() is None:
            codes.append(fresh.signal(signal.SIGTERM))
    assert codes == [0] * len(codes), "every node stops cleanly on SIGTERM"
    assert_same_app_hashes(homes)
    logs = [json.loads(line) for line in (homes[4] / "node.log").read_text().splitlines() if line.startswith("{")]
    assert any("block sync applied" in entry["message"] for entry in logs)

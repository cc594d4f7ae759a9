"""The relay's own-message re-sends, against a peer stand-in that records what it is given, and its tx batches
(unit tests)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from node import relay as relay_module
from node.network import MAX_BATCH_BYTES, MAX_BATCH_TXS
from node.pb import services_pb2 as spb
from node.relay import REGOSSIP_PROPOSAL_TICKS, Relay, compute_batch

pytestmark = pytest.mark.asyncio


class RecordingPeer:
    """Records each gossip payload handed to it (the PeerClient.send interface)."""

    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id
        self.sent: list[tuple[str, bytes]] = []

    def send(self, what: str, payload: bytes) -> None:
        self.sent.append((what, payload))


async def test_a_re_proposal_is_sent_after_its_proof_of_lock_and_both_are_re_sent_together(monkeypatch):
    monkeypatch.setattr(relay_module, "REGOSSIP_S", 0.001)
    peer = RecordingPeer()
    relay = Relay([peer])  # type: ignore[list-item]
    proof, proposal = [b"prevote-a", b"prevote-b", b"prevote-d"], b"proposal"
    relay.send_own(5, 2, "proposal", [*proof, proposal])
    relay.send_own(5, 2, "prevote", [b"own-prevote"])
    assert [p for _, p in peer.sent] == [*proof, proposal, b"own-prevote"]
    assert all(relay.is_seen(hashlib.sha256(p).digest()) for p in [*proof, proposal])
    peer.sent.clear()
    task = asyncio.get_running_loop().create_task(relay.run_regossip(lambda: (5, 2)))
    while sum(p == proposal for _, p in peer.sent) < 1:
        await asyncio.sleep(0.001)
    task.cancel()
    sent = [p for _, p in peer.sent]
    first = sent.index(proof[0])
    assert sent[first : first + 4] == [*proof, proposal]  # the proof travels with the proposal, just before it
    assert sent.count(b"own-prevote") >= REGOSSIP_PROPOSAL_TICKS - 1  # votes every tick, proposals every 4th


async def test_pending_evidence_is_re_sent_at_the_proposals_pace_until_it_leaves_the_pool(monkeypatch):
    """Regression: evidence was gossiped once, so a peer cut off at that moment never held it, and the
    offence went unpunished if the node that saw it was wiped before it proposed."""
    monkeypatch.setattr(relay_module, "REGOSSIP_S", 0.001)
    peer = RecordingPeer()
    relay = Relay([peer])  # type: ignore[list-item]
    pending = [b"evidence-1", b"evidence-2"]
    task = asyncio.get_running_loop().create_task(relay.run_regossip(lambda: (5, 0), lambda: list(pending)))
    while len(peer.sent) < 4:
        await asyncio.sleep(0.001)
    pending.clear()  # committed: it leaves the engine's pool
    sent = len(peer.sent)
    for _ in range(4 * REGOSSIP_PROPOSAL_TICKS):
        await asyncio.sleep(0.002)
    task.cancel()
    assert [p for _, p in peer.sent[:4]] == [b"evidence-1", b"evidence-2"] * 2
    assert len(peer.sent) == sent  # nothing once it left the pool


async def test_own_messages_of_rounds_before_the_last_two_and_of_past_heights_are_not_re_sent(monkeypatch):
    monkeypatch.setattr(relay_module, "REGOSSIP_S", 0.001)
    peer = RecordingPeer()
    relay = Relay([peer])  # type: ignore[list-item]
    relay.send_own(4, 9, "prevote", [b"old-height"])
    relay.send_own(5, 0, "prevote", [b"old-round"])
    relay.send_own(5, 2, "prevote", [b"last-round"])
    peer.sent.clear()
    task = asyncio.get_running_loop().create_task(relay.run_regossip(lambda: (5, 3)))
    while len(peer.sent) < 3:
        await asyncio.sleep(0.001)
    task.cancel()
    assert {p for _, p in peer.sent} == {b"last-round"}


MiB = 1024 * 1024


@pytest.mark.parametrize(
    "sizes, taken",
    [
        ([], 0),
        ([100] * 3, 3),
        ([100] * (MAX_BATCH_TXS + 5), MAX_BATCH_TXS),  # the entry cap
        ([MiB] * 5, 3),  # the byte cap: a fourth MiB would pass RELAY_BATCH_BYTES
        ([5 * MiB, 10], 1),  # one tx over the cap still goes alone (the receiver's message limit decides)
    ],
)
async def test_a_relayed_batch_stays_within_what_a_peer_takes_in_one_call(sizes, taken):
    """Regression: batches were cut by entries only, so 2,000 large txs made a call over the byte cap."""
    txs = [bytes(s) for s in sizes]
    batch = compute_batch(txs)
    assert len(batch) == taken and batch == txs[:taken]
    if taken > 1:
        assert len(spb.TxBatch(txs=batch).SerializeToString()) <= MAX_BATCH_BYTES


async def test_admitted_txs_are_relayed_to_every_peer_but_the_one_they_came_from(monkeypatch):
    monkeypatch.setattr(relay_module, "RELAY_INTERVAL_S", 0.001)
    a, b, unpinned = RecordingPeer("aa" * 20), RecordingPeer("bb" * 20), RecordingPeer(None)
    relay = Relay([a, b, unpinned])  # type: ignore[list-item]
    relay.queue_txs([b"from-a-1", b"from-a-2"], "aa" * 20)
    relay.queue_txs([b"from-a-client"])  # a client's (or this node's own): to every peer
    relay.queue_txs([b"from-b"], "bb" * 20)
    task = asyncio.create_task(relay.run_tx_relay())
    await asyncio.sleep(0.05)
    task.cancel()

    def relayed(peer: RecordingPeer) -> list[bytes]:
        return [
            tx for what, payload in peer.sent for tx in spb.TxBatch.FromString(payload).txs if what == "BroadcastTxs"
        ]

    assert relayed(a) == [b"from-a-client", b"from-b"]
    assert relayed(b) == [b"from-a-1", b"from-a-2", b"from-a-client"]
    assert relayed(unpinned) == [b"from-a-1", b"from-a-2", b"from-a-client", b"from-b"]


async def test_a_relayed_consensus_message_goes_to_every_peer_but_its_origin():
    a, b, unpinned = RecordingPeer("aa" * 20), RecordingPeer("bb" * 20), RecordingPeer(None)
    relay = Relay([a, b, unpinned])  # type: ignore[list-item]
    relay.relay_consensus(b"from-a", "aa" * 20)
    relay.relay_consensus(b"from-nobody")  # evidence this node saw itself: to every peer
    assert [p for _, p in a.sent] == [b"from-nobody"]
    assert [p for _, p in b.sent] == [b"from-a", b"from-nobody"]
    assert [p for _, p in unpinned.sent] == [b"from-a", b"from-nobody"]

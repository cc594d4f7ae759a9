"""Gossip out: consensus messages relayed once, this node's own messages re-sent, admitted
transactions relayed in batches.

A consensus message is relayed once, in its canonical form (the re-encoding of the decoded message:
unknown protobuf fields a peer padded it with are never forwarded), dedup by the sha256 of that
canonical form (the last `SEEN_MESSAGES` remembered), to every peer but the one it came from (which
holds it: sending it back cost both ends a proposal's whole block for nothing). Our own votes of the
current height are re-sent every `REGOSSIP_S` and our proposals every `REGOSSIP_PROPOSAL_TICKS`-th time:
a message dropped while a peer was unreachable would otherwise stall its round (peers drop duplicates by
hash). A re-proposal goes with its proof of lock (the prevotes of its valid round, signed by others),
sent and re-sent just before it: nobody re-sends an old round's votes, and a peer that missed them
cannot accept it. The evidence pending in the engine (double signs not yet committed) is re-sent at the
proposals' pace too: a peer that was down or cut off when it was first gossiped would otherwise never
hold it, and the offence would go unpunished if the node that saw it never proposes again (it is wiped,
or jailed). Admitted transactions are relayed in `BroadcastTxs` batches every `RELAY_INTERVAL_S`, as the
mempool stored them (canonical bytes only), to every peer but the one they came from (as CometBFT's
mempool does not send a tx back to a peer it got it from): that peer holds them, and would only refuse
them as known.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable

from .network import MAX_BATCH_BYTES, MAX_BATCH_TXS, PeerClient
from .pb import services_pb2 as spb

SEEN_MESSAGES = 20_000  # consensus message hashes remembered for relay-once
RELAY_INTERVAL_S = 0.05  # admitted txs are relayed to peers in batches this often
RELAY_BATCH = MAX_BATCH_TXS  # no more than a peer takes in one BroadcastTxs call
RELAY_BATCH_BYTES = MAX_BATCH_BYTES - 64 * 1024  # nor more bytes (with room for the message framing)
REGOSSIP_S = 0.5  # own votes of the current height are re-sent this often (lost messages)
REGOSSIP_PROPOSAL_TICKS = 4  # and own proposals and pending evidence every 4th time (they are bigger)


class Relay:
    """The node's gossip to its peers."""

    def __init__(self, peers: list[PeerClient]) -> None:
        self.peers = peers
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._own: dict[tuple[int, int, str], list[bytes]] = {}  # (height, round, kind) -> [proof…, our message]
        self._txs: list[tuple[bytes, str | None]] = []  # (raw, the node id of the peer it came from)

    # -- consensus messages -----------------------------------------------------------------
    def is_seen(self, digest: bytes) -> bool:
        """True if a consensus message with this sha256 was relayed or sent already."""
        return digest in self._seen

    def remember(self, digest: bytes) -> bool:
        """Mark a message hash seen; False if it was seen before."""
        if digest in self._seen:
            return False
        self._seen[digest] = None
        if len(self._seen) > SEEN_MESSAGES:
            self._seen.popitem(last=False)
        return True

    def relay_consensus(self, raw: bytes, origin: str | None = None) -> None:
        """Send a (verified) consensus message, re-encoded canonically by the caller, to every peer but
        `origin` (the node id of the peer that sent it; None: every peer)."""
        self.gossip("SendConsensus", raw, origin)

    def send_own(self, height: int, round: int, kind: str, raws: list[bytes]) -> None:
        """Send a message this node signed (last of `raws`, after the proof of lock a re-proposal carries),
        and keep them for re-sending while their height runs."""
        self._own[(height, round, kind)] = raws
        for raw in raws:
            self.remember(hashlib.sha256(raw).digest())
            self.gossip("SendConsensus", raw)

    # -- transactions -----------------------------------------------------------------------
    def queue_txs(self, raws: list[bytes], origin: str | None = None) -> None:
        """Queue admitted transactions for the next batches (the mempool's `on_admit`), for every peer
        but `origin` (the node id of the peer that sent them; None: a client or this node)."""
        self._txs.extend((raw, origin) for raw in raws)

    def gossip(self, what: str, payload: bytes, origin: str | None = None) -> None:
        """Queue one message for every peer but `origin` (a node id; None: every peer)."""
        for peer in self.peers:
            if origin is None or peer.node_id != origin:
                peer.send(what, payload)

    # -- tasks ------------------------------------------------------------------------------
    async def run_regossip(
        self, position: Callable[[], tuple[int, int]], evidence: Callable[[], list[bytes]] = list
    ) -> None:
        """Re-send our own votes (every tick) and proposals (every 4th) of the current height, latest
        two rounds, and the pending evidence (every 4th); `position()` is the engine's (height, round),
        `evidence()` the canonical messages of its pending evidence."""
        tick = 0
        while True:
            await asyncio.sleep(REGOSSIP_S)
            tick += 1
            height, round = position()
            for key in [k for k in self._own if k[0] < height]:
                del self._own[key]
            for (h, r, kind), raws in sorted(self._own.items()):
                if h == height and r >= round - 1 and (kind != "proposal" or tick % REGOSSIP_PROPOSAL_TICKS == 0):
                    for raw in raws:
                        self.gossip("SendConsensus", raw)
            if tick % REGOSSIP_PROPOSAL_TICKS == 0:
                for raw in evidence():
                    self.gossip("SendConsensus", raw)

    async def run_tx_relay(self) -> None:
        """Relay admitted transactions in batches to every peer but the one each came from."""
        while True:
            await asyncio.sleep(RELAY_INTERVAL_S)
            queued, self._txs = self._txs, []
            for peer in self.peers if queued else ():
                txs = [raw for raw, origin in queued if origin is None or origin != peer.node_id]
                while txs:
                    batch = compute_batch(txs)
                    del txs[: len(batch)]
                    peer.send("BroadcastTxs", spb.TxBatch(txs=batch).SerializeToString())


def compute_batch(txs: list[bytes]) -> list[bytes]:
    """The longest prefix of `txs` a peer takes in one BroadcastTxs call: at most RELAY_BATCH entries and
    RELAY_BATCH_BYTES of txs (at least one: a tx alone is within the call's byte cap)."""
    size = 0
    for i, tx in enumerate(txs[:RELAY_BATCH]):
        size += len(tx) + 8  # the entry's tag and length
        if size > RELAY_BATCH_BYTES and i:
            return txs[:i]
    return txs[:RELAY_BATCH]

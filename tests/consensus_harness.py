"""An in-process network of consensus engines on a virtual clock with a seeded, lossy transport.

    net = Network(["a", "b", "c", "d"], seed=7, drop=0.1, dup=0.1, byzantine={"d"})
    net.partition(["a", "b"], ["c", "d"], start_ms=0, end_ms=3000)
    net.run(until_height=5, max_ms=60_000)
    net.check_safety(); net.committed_height()

Each node runs a real `Consensus` engine over its own `chain.app.Application` on a `MemoryStore`.
Everything happens in a heap of events ordered by (virtual time, sequence number); randomness comes
only from `random.Random(seed)`, so a seed replays exactly. The transport delivers each message to
each peer after a random delay, and may drop it, duplicate it (reordering comes from the delays),
or drop it because a partition separates the two nodes until it heals. Gossip is modelled as
CONSENSUS.md says: a node relays each message its engine accepted once, re-sends all messages of its
current height every `resend_ms` (so a dropped message is eventually delivered, as the algorithm
assumes; `resend="own"` re-sends instead only what the real node's relay does: its own messages of
the last two rounds, a re-proposal with its proof of lock), and sends a lagging peer the block and
commit of the height it is stuck at (`Consensus.on_commit`, what block sync does for a real node). A
node that sees +2/3 precommits for a block it never received asks for it (FetchBlock) and gets it
from a peer.
A byzantine node runs an engine too, but sends conflicting votes (equivocation) and conflicting
proposals (another valid block: one transaction fewer, or one of its own) to different peers.
Honest engines keep the double signs they see in their pending-evidence pools, proposers put them in
their blocks, and every application punishes them (`genesis params` via `params=`).
Two more attacks, each by named nodes: `block_times` re-signs a node's own new proposals with a
header time of its choosing (far future, far past), and `tamper_relay` makes a node relay every
proposal with its transactions swapped (the header and signature kept).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from chain.app import Application
from chain.crypto import PrivateKey
from chain.errors import ChainError
from chain.store import MemoryStore
from chain.tx import MsgSend, sign_tx
from node.blocks import Block, Commit, Evidence, Proposal, Vote, compute_txs_hash, sign_proposal, sign_vote
from node.consensus import (
    Broadcast,
    Consensus,
    Decide,
    FetchBlock,
    Persist,
    RecordEvidence,
    ScheduleTimeout,
    SignState,
    Timeout,
    Timeouts,
    ValidatorSet,
)
from node.errors import InvalidMessage
from tests.helpers import CHAIN_ID, KEYS, make_genesis

FAST_TIMEOUTS = Timeouts(
    propose_ms=300,
    propose_delta_ms=100,
    prevote_ms=100,
    prevote_delta_ms=50,
    precommit_ms=100,
    precommit_delta_ms=50,
    commit_ms=200,
)
START_MS = 1_000_000


def get_key(name: str) -> PrivateKey:
    """The test key of a name: tests.helpers.KEYS for a..h, the same derivation for any other name."""
    return KEYS[name] if name in KEYS else PrivateKey.from_name(name, salt="uoc-tests")


def make_network_genesis(
    stakes: dict[str, int], balances: dict[str, int] | None = None, **params: Any
) -> dict[str, Any]:
    """tests.helpers.make_genesis, extended to key names beyond a..h (for large networks)."""
    if balances is None:
        balances = {name: 1000 for name in stakes}
    if set(stakes) | set(balances) <= set(KEYS):
        return make_genesis(stakes, balances, **params)
    return {
        "chain_id": CHAIN_ID,
        "params": {"min_gas_price": "0", **params},  # fee-free, as tests.helpers.make_genesis
        "accounts": [{"address": get_key(n).address, "balance": b} for n, b in balances.items()],
        "validators": [{"address": get_key(n).address, "stake": s} for n, s in stakes.items()],
    }


def get_app_powers(app: Application) -> list[tuple[str, int]]:
    """The validator set of the current epoch of the application, as (address, power)."""
    return [(v["address"], v["power"]) for v in app.query_all("validators")]


class MempoolHost:
    """The engine's host: a plain list of pending transactions and the application's process_proposal."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.mempool: list[bytes] = []

    def select_evidence(self, height: int, pending: tuple[Evidence, ...]) -> tuple[list[Evidence], list[Evidence]]:
        """The pending evidence the application accepts for the next block (within max_block_evidence),
        and what it refuses; evidence of `height` itself waits for a later block."""
        included: list[Evidence] = []
        invalid: list[Evidence] = []
        for evidence in pending:
            if evidence.height >= height:
                continue
            try:
                self.app.check_evidence(evidence.to_json())
            except ChainError:
                invalid.append(evidence)
                continue
            included.append(evidence)
        return included[: self.app.get_params().max_block_evidence], invalid

    def reap_txs(self, height: int, evidence: tuple = ()) -> list[bytes]:
        """The pending transactions that apply in order on top of the state after height−1 and `evidence`,
        within the params' block limits (less the evidence's bytes)."""
        params = self.app.get_params()
        reserved_bytes = sum(e.size for e in evidence)
        evidence_json = [e.to_json() for e in evidence]
        txs: list[bytes] = []
        for tx in self.mempool[: params.max_block_txs]:
            if sum(map(len, txs)) + len(tx) > params.max_block_bytes - reserved_bytes:
                break
            txs.append(tx)
        while txs:
            results = self.app.process_proposal(height, txs, evidence_json)
            if all(r.ok for r in results):
                break
            txs = [tx for tx, r in zip(txs, results) if r.ok]
        return txs

    def validate_block(self, block: Block) -> str | None:
        """None if the block's evidence is valid and every transaction applies, else the first rejection."""
        try:
            results = self.app.process_proposal(block.height, list(block.txs), block.get_evidence_json())
        except ChainError as exc:
            return f"the application refused the block: {exc}"
        for result in results:
            if not result.ok:
                return f"tx {result.hash[:12]} rejected: {result.code} {result.log}"
        return None


@dataclass
class SimNode:
    """One node of the network: its key, application, host, engine and what it decided."""

    name: str
    key: PrivateKey
    app: Application
    host: MempoolHost
    engine: Consensus
    byzantine: bool = False
    vset: ValidatorSet | None = None  # the set of the engine's current height
    last_vset: ValidatorSet | None = None
    decided: dict[int, Block] = field(default_factory=dict)
    commits: dict[int, Commit] = field(default_factory=dict)
    app_hashes: dict[int, str] = field(default_factory=dict)
    proposers: dict[int, str] = field(default_factory=dict)
    vsets: dict[int, ValidatorSet] = field(default_factory=dict)  # the set each height ran with
    gossip: dict[int, dict[bytes, Proposal | Vote]] = field(default_factory=dict)  # own + relayed, by height
    own: dict[tuple[int, int, str], list[Proposal | Vote]] = field(default_factory=dict)  # [proof…, own message]
    persisted: SignState | None = None
    evidence: list[Any] = field(default_factory=list)
    invalid: int = 0
    up: bool = True
    incarnation: int = 0


class Network:
    """N consensus engines on a virtual clock, connected by a seeded lossy transport."""

    def __init__(
        self,
        validators: list[str] | dict[str, int],
        *,
        seed: int = 0,
        observers: Iterable[str] = (),
        byzantine: Iterable[str] = (),
        delay_ms: tuple[int, int] = (5, 40),
        drop: float = 0.0,
        dup: float = 0.0,
        resend_ms: int | None = 100,
        resend: str = "all",
        relay: bool = True,
        timeouts: Timeouts = FAST_TIMEOUTS,
        balances: dict[str, int] | None = None,
        epoch_length: int = 1000,
        block_times: dict[str, int] | None = None,
        tamper_relay: Iterable[str] = (),
        params: dict[str, Any] | None = None,
    ) -> None:
        stakes = validators if isinstance(validators, dict) else {name: 10 for name in validators}
        names = list(stakes) + [n for n in observers if n not in stakes]
        self.genesis = make_network_genesis(
            stakes,
            balances if balances is not None else {n: 1000 for n in names},
            epoch_length=epoch_length,
            **(params or {}),
        )
        self.rng = random.Random(seed)
        self.delay_ms, self.drop, self.dup, self.resend_ms, self.relay = delay_ms, drop, dup, resend_ms, relay
        assert resend in ("all", "own")
        self.resend = resend
        self.timeouts = timeouts
        self.byzantine = set(byzantine)
        self.block_times = dict(block_times or {})  # name -> the header time its own new proposals carry
        self.tamper_relay = set(tamper_relay)  # nodes that relay proposals with swapped transactions
        self.now = START_MS
        self._events: list[tuple[int, int, str, tuple]] = []
        self._seq = 0
        self._partitions: list[tuple[int, int, list[set[str]]]] = []
        self.delivered = 0
        self._applied = 0  # blocks applied by all nodes so far
        self._twins: dict[str, str] = {}  # block id <-> the byzantine twin block's id (colluding byzantines share it)
        self.nodes: dict[str, SimNode] = {}
        for name in names:
            app = Application(MemoryStore())
            app.init_chain(self.genesis)
            host = MempoolHost(app)
            key = get_key(name)
            engine = Consensus(chain_id=CHAIN_ID, signer=key, host=host, timeouts=timeouts)
            self.nodes[name] = SimNode(name, key, app, host, engine, byzantine=name in self.byzantine)
        for node in self.nodes.values():
            node.vset = ValidatorSet.from_powers(get_app_powers(node.app))
            self._push(self.now, "start", (node.name, node.incarnation, 1, None, "", 0))
            if resend_ms:
                self._push(self.now + resend_ms, "tick", (node.name,))

    # -- scenario controls ----------------------------------------------------------------------
    @property
    def honest(self) -> list[SimNode]:
        """The nodes that follow the protocol."""
        return [n for n in self.nodes.values() if not n.byzantine]

    def partition(self, *groups: Iterable[str], start_ms: int, end_ms: int) -> None:
        """Drop every message between different groups from start_ms (relative) until it heals at end_ms."""
        self._partitions.append((START_MS + start_ms, START_MS + end_ms, [set(g) for g in groups]))

    def submit(self, tx: bytes, *, at_ms: int = 0, to: Iterable[str] | None = None) -> None:
        """Put a transaction in the mempools of `to` (default: every node) at at_ms (relative)."""
        for name in to if to is not None else self.nodes:
            self._push(START_MS + at_ms, "submit", (name, tx))

    def crash(self, name: str, *, at_ms: int, restart_ms: int) -> None:
        """Stop a node at at_ms and restart it at restart_ms (relative) from its app store and persisted sign state."""
        self._push(START_MS + at_ms, "crash", (name,))
        self._push(START_MS + restart_ms, "restart", (name,))

    # -- the event loop -----------------------------------------------------------------------
    def _push(self, at: int, kind: str, args: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, kind, args))

    def run(self, *, until_height: int | None = None, max_ms: int = 120_000, max_events: int = 2_000_000) -> None:
        """Process events until every honest node committed `until_height`, or max_ms of virtual time passed."""
        deadline = START_MS + max_ms
        applied = -1
        for _ in range(max_events):
            if until_height is not None and applied != self._applied:
                applied = self._applied
                if self.committed_height() >= until_height:
                    return
            if not self._events or self._events[0][0] > deadline:
                self.now = max(self.now, min(deadline, self._events[0][0] if self._events else deadline))
                return
            at, _, kind, args = heapq.heappop(self._events)
            self.now = at
            getattr(self, "_on_" + kind)(*args)
        raise AssertionError(f"more than {max_events} events")

    def _on_start(
        self, name: str, incarnation: int, height: int, commit: Commit | None, last_block_id: str, last_time: int
    ) -> None:
        node = self.nodes[name]
        if not node.up or incarnation != node.incarnation:
            return
        assert node.vset is not None
        node.vsets[height] = node.vset
        actions = node.engine.start_height(
            height=height,
            validator_set=node.vset,
            last_commit=commit,
            last_block_id=last_block_id,
            last_time_ms=last_time,
            app_hash=node.app.app_hash,
            now_ms=self.now,
            restored=node.persisted if node.engine.height == 0 else None,
            last_validator_set=node.last_vset,
        )
        self._execute(node, actions)

    def _on_deliver(self, name: str, msg: Proposal | Vote) -> None:
        node = self.nodes[name]
        if not node.up:
            return
        self.delivered += 1
        try:
            actions = node.engine.on_message(msg, self.now)
        except InvalidMessage:
            node.invalid += 1
            return
        if self.relay and msg.height >= node.engine.height:
            seen = node.gossip.setdefault(msg.height, {})
            if msg.signature not in seen:
                seen[msg.signature] = msg
                self._send(node, msg, relay=True)
        self._execute(node, actions)

    def _on_timeout(self, name: str, incarnation: int, timeout: Timeout) -> None:
        node = self.nodes[name]
        if node.up and incarnation == node.incarnation:
            self._execute(node, node.engine.on_timeout(timeout, self.now))

    def _on_fetch(self, name: str, incarnation: int, height: int, block_id: str, tries: int) -> None:
        node = self.nodes[name]
        if not node.up or incarnation != node.incarnation or node.engine.height != height:
            return
        for peer in self._sorted_peers(name):
            if not self._is_reachable(peer.name, name):
                continue
            block = peer.decided.get(height)
            if block is None or block.id != block_id:
                block = peer.engine.get_known_block(block_id) if peer.engine.height == height else None
            if block is not None and block.id == block_id:
                self._execute(node, node.engine.on_block(block, self.now))
                return
        if tries < 50:
            self._push(self.now + 100, "fetch", (name, incarnation, height, block_id, tries + 1))

    def _on_commit(self, name: str, incarnation: int, block: Block, commit: Commit) -> None:
        """A peer's block and commit for our height (catch-up)."""
        node = self.nodes[name]
        if node.up and incarnation == node.incarnation:
            self._execute(node, node.engine.on_commit(block, commit, self.now))

    def _on_submit(self, name: str, tx: bytes) -> None:
        node = self.nodes[name]
        if tx not in node.host.mempool:
            node.host.mempool.append(tx)

    def _on_tick(self, name: str) -> None:
        """Gossip: re-send our messages of this height; send a lagging peer the commit of its height."""
        node = self.nodes[name]
        assert self.resend_ms
        self._push(self.now + self.resend_ms, "tick", (name,))
        if not node.up:
            return
        for msg in self._resends(node):
            self._send(node, msg, relay=msg.pubkey != node.key.pubkey)
        for peer in self._sorted_peers(name):
            height = peer.engine.height
            if height in node.commits and peer.engine.decided is None and peer.up:
                if self._is_reachable(name, peer.name) and self.rng.random() >= self.drop:
                    args = (peer.name, peer.incarnation, node.decided[height], node.commits[height])
                    self._push(self.now + self.rng.randint(*self.delay_ms), "commit", args)

    def _resends(self, node: SimNode) -> list[Proposal | Vote]:
        """What a node re-sends each tick: every message of its height, or (`resend="own"`, as the real relay)
        its own messages of its last two rounds, a re-proposal after its proof of lock."""
        engine = node.engine
        if self.resend == "all":
            return list(node.gossip.get(engine.height, {}).values())
        return [
            msg
            for (height, round, _), msgs in sorted(node.own.items())
            if height == engine.height and round >= engine.round - 1
            for msg in msgs
        ]

    def _on_crash(self, name: str) -> None:
        node = self.nodes[name]
        node.up = False
        node.incarnation += 1

    def _on_restart(self, name: str) -> None:
        """A new engine over the same application store, restored from the persisted sign state."""
        node = self.nodes[name]
        node.up = True
        node.engine = Consensus(chain_id=CHAIN_ID, signer=node.key, host=node.host, timeouts=self.timeouts)
        height = node.app.height + 1
        last = node.decided.get(height - 1)
        commit = node.commits.get(height - 1)
        args = (name, node.incarnation, height, commit, last.id if last else "", last.header.time_ms if last else 0)
        self._on_start(*args)

    # -- actions ------------------------------------------------------------------------------
    def _execute(self, node: SimNode, actions: list) -> None:
        """Run a node's actions in order, like a real host."""
        for action in actions:
            if isinstance(action, Persist):
                node.persisted = action.sign_state
            elif isinstance(action, Broadcast):
                assert node.persisted is not None and _is_persisted(node.persisted, action.message)
                msg = self._retime(node, action.message)
                for vote in action.proof:  # a re-proposal's proof of lock goes first
                    node.gossip.setdefault(vote.height, {})[vote.signature] = vote
                    self._send(node, vote, relay=True)
                node.gossip.setdefault(msg.height, {})[msg.signature] = msg
                node.own[(msg.height, msg.round, getattr(msg, "type", "proposal"))] = [*action.proof, msg]
                self._send(node, msg)
            elif isinstance(action, ScheduleTimeout):
                self._push(self.now + action.delay_ms, "timeout", (node.name, node.incarnation, action.timeout))
            elif isinstance(action, Decide):
                self._apply(node, action.block, action.commit)
            elif isinstance(action, RecordEvidence):
                node.evidence.append(action.evidence)
            elif isinstance(action, FetchBlock):
                self._push(self.now + 20, "fetch", (node.name, node.incarnation, action.height, action.block_id, 0))
            else:
                raise AssertionError(f"unknown action {action!r}")

    def _apply(self, node: SimNode, block: Block, commit: Commit) -> None:
        """Apply a decided block with finalize_block + commit, then start the next height after commit_ms."""
        height = block.height
        assert height == node.app.height + 1, (node.name, height, node.app.height)
        node.app.finalize_block(height, list(block.txs), block.get_evidence_json())
        node.app.commit()
        self._applied += 1
        node.decided[height] = block
        node.commits[height] = commit
        node.app_hashes[height] = node.app.app_hash
        node.proposers[height] = block.header.proposer
        committed = set(block.txs)
        node.host.mempool = [tx for tx in node.host.mempool if tx not in committed]
        node.engine.remove_evidence(block.evidence, min_height=height - node.app.get_params().max_evidence_age_blocks)
        node.gossip.pop(height - 1, None)
        assert node.vset is not None
        node.last_vset = node.vset
        node.vset = node.vset.next_height(get_app_powers(node.app), commit.round)
        args = (node.name, node.incarnation, height + 1, commit, block.id, block.header.time_ms)
        self._push(self.now + self.timeouts.commit_ms, "start", args)

    # -- transport ----------------------------------------------------------------------------
    def _sorted_peers(self, name: str) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.name != name]

    def _is_reachable(self, src: str, dst: str) -> bool:
        """False while a partition separates src from dst."""
        for start, end, groups in self._partitions:
            if start <= self.now < end:
                gs = [i for i, g in enumerate(groups) if src in g]
                gd = [i for i, g in enumerate(groups) if dst in g]
                if gs != gd:
                    return False
        return True

    def _retime(self, node: SimNode, msg: Proposal | Vote) -> Proposal | Vote:
        """A `block_times` node's own new proposal, re-signed with the header time it chose."""
        time_ms = self.block_times.get(node.name)
        if time_ms is None or not isinstance(msg, Proposal) or msg.pol_round != -1:
            return msg
        block = replace(msg.block, header=replace(msg.block.header, time_ms=time_ms))
        return sign_proposal(node.key, CHAIN_ID, msg.height, msg.round, msg.pol_round, block, msg.timestamp_ms)

    def _send(self, node: SimNode, msg: Proposal | Vote, relay: bool = False) -> None:
        """Broadcast a message to every peer; a byzantine node sends half of them a conflicting one, a
        `tamper_relay` node relays proposals with other transactions."""
        if relay and node.name in self.tamper_relay and isinstance(msg, Proposal):
            block = msg.block
            msg = replace(msg, block=replace(block, txs=block.txs[:-1] if block.txs else (b"poison",)))
        twin = self._conflicting(node, msg) if node.byzantine and not relay else msg
        for i, peer in enumerate(self.nodes.values()):
            if peer.name != node.name:
                self._transmit(node.name, peer.name, twin if i % 2 else msg)

    def _transmit(self, src: str, dst: str, msg: Proposal | Vote) -> None:
        """One message on one link: dropped by a partition or at random, else delivered (maybe twice) after a delay."""
        if not self._is_reachable(src, dst) or self.rng.random() < self.drop:
            return
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            self._push(self.now + self.rng.randint(*self.delay_ms), "deliver", (dst, msg))

    def _conflicting(self, node: SimNode, msg: Proposal | Vote) -> Proposal | Vote:
        """A byzantine twin of our message: another block for a proposal; for a vote, the twin block (if we
        made one), nil or a fake id."""
        if isinstance(msg, Proposal):
            block = msg.block
            txs = block.txs[:-1] if block.txs else (self._own_tx(node),)
            twin = Block(replace(block.header, txs_hash=compute_txs_hash(txs)), txs, block.last_commit, block.evidence)
            self._twins[block.id], self._twins[twin.id] = twin.id, block.id
            return sign_proposal(node.key, CHAIN_ID, msg.height, msg.round, msg.pol_round, twin, msg.timestamp_ms)
        if msg.block_id is None:
            other = hashlib.sha256(f"fake/{msg.height}/{msg.round}".encode()).hexdigest()
        else:
            other = self._twins.get(msg.block_id) or self.rng.choice([None, _fake_id(msg.block_id, node)])
        return sign_vote(node.key, CHAIN_ID, msg.type, msg.height, msg.round, other, msg.timestamp_ms)

    def _own_tx(self, node: SimNode) -> bytes:
        """A valid transaction of the byzantine node (1 ngonka to a sink at its next sequence): the
        body of a conflicting block when the honest one has none."""
        sequence = node.app.query(f"account/{node.key.address}")["sequence"]
        return sign_tx(node.key, CHAIN_ID, sequence, [MsgSend(to=get_key("sink").address, amount=1)], fee=0)

    # -- observations -------------------------------------------------------------------------
    def committed_height(self) -> int:
        """The lowest height every honest node has applied."""
        return min(n.app.height for n in self.honest)

    def check_safety(self) -> int:
        """Assert no two honest nodes decided different blocks (or app hashes) at one height; return heights checked."""
        heights = sorted({h for n in self.honest for h in n.decided})
        for h in heights:
            ids = {n.decided[h].id for n in self.honest if h in n.decided}
            assert len(ids) == 1, f"height {h}: honest nodes decided different blocks {sorted(ids)}"
            hashes = {n.app_hashes[h] for n in self.honest if h in n.app_hashes}
            assert len(hashes) == 1, f"height {h}: honest nodes have different app hashes"
        return len(heights)


def _fake_id(block_id: str, node: SimNode) -> str:
    """A block id no block has, for a byzantine vote."""
    return hashlib.sha256(f"twin/{block_id}/{node.name}".encode()).hexdigest()


def _is_persisted(state: SignState, msg: Proposal | Vote) -> bool:
    """The host contract: our message's (h, r, step, block) is in the sign state persisted before it is broadcast."""
    step = msg.type if isinstance(msg, Vote) else "propose"
    block_id = msg.block_id if isinstance(msg, Vote) else msg.block.id
    record = state.get_signed(step)
    return record is not None and (record.height, record.round, record.block_id) == (msg.height, msg.round, block_id)


__all__ = ["FAST_TIMEOUTS", "MempoolHost", "Network", "SimNode", "get_key", "make_network_genesis"]

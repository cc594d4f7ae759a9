"""The node's composition root: `open_node` builds every part in order and stops them in reverse.

    async with open_node(home) as node:   # a NodeCore, every part built and running
        ...
    # or, for the command line, tests and benches:
    node = Node(home); await node.start(); ...; await node.stop()

Start-up, on one `AsyncExitStack` (shutdown is its exact reverse):

    home lock → store and app (genesis, unapplied blocks: `node.ledger`) → peer clients →
    mempool, consensus engine, block sync (`node.sync`), gossip (`node.relay`) and commit waiters
    (`node.waiters`) → gRPC server → HTTP API → the relay, sync and regossip tasks → consensus

The engine (`node.consensus.Consensus`) is sans-IO: every input (a peer's message, a timeout, a
fetched block) runs on the event loop and its actions are executed at once, in order. `Persist`
writes the sign state durably to its own file beside the validator key (`node.sign_state_file`)
before the next action, so a vote is on disk before it is broadcast; when that file is missing at
start the engine signs nothing for `double_sign_check_height` heights. `RecordEvidence` (a double
sign the engine saw) is stored and gossiped once; a peer's evidence is checked (the validator in the
set of its height, age, not committed, signatures) before it enters the engine's pending pool and
is relayed; a proposer puts pending evidence in its block and the chain punishes it.
`Decide` applies the block (`Ledger.apply`: the state changes, the block, its commit,
its tx results and the next validator set in one store transaction); the next height starts
`block_interval_ms` later. Every applied block (by consensus or by sync) then updates the mempool and
the commit waiters (the futures of `wait_for_commit` and the commit listeners: the HTTP API's
pricing cache and metrics). A block that cannot be stored (`StoreError`: disk full, I/O error) stops
consensus at once (`NodeCore.fail`: no further action runs, so nothing more is signed) and `run_node`
stops the node and raises it. The HTTP API (`node.api`) signs the operator's own transactions with
`submit_own` (sequence = committed + own pending in the mempool).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import grpc

from chain.app import Application, BlockResult, TxResult
from chain.errors import ChainError, StoreError
from chain.gas import compute_adjusted_gas, compute_gas_price, compute_min_fee, describe_gas_price
from chain.params import Params
from chain.rules import is_evidence_too_old
from chain.tx import Msg, compute_tx_hash, sign_tx

from . import codec, tls
from .api import ApiServer, check_api_config
from .blocks import Block, Commit, Evidence, compute_block_summary
from .config import Home, compute_genesis_time_ms
from .consensus import (
    Action,
    Broadcast,
    Consensus,
    Decide,
    FetchBlock,
    Persist,
    RecordEvidence,
    ScheduleTimeout,
    SignState,
    Timeout,
    ValidatorSet,
)
from .errors import ConsensusError, InvalidMessage, MempoolError, NodeError, SyncError
from .feeder import FEEDER_FILE, PriceFeeder
from .heap import settled_heap
from .ledger import Ledger, open_ledger
from .mempool import Mempool
from .metrics import NodeMetrics
from .network import Handlers, NodeApi, PeerClient, Server, ServerLimits
from .pb import services_pb2 as spb
from .pb import types_pb2 as pb
from .relay import Relay
from .settings import NodeConfig
from .sign_state_file import load_sign_state, save_sign_state
from .store import SqliteStore
from .sync import BlockSync
from .waiters import CommitWaiters, TxOutcome

log = logging.getLogger(__name__)

HEIGHT_SLACK_BEHIND = 1  # a message for h-1 is a late vote: ignored, not an error
HEIGHT_SLACK_AHEAD = 2  # the engine buffers messages up to h+2
# Benchmarks only (bench/bench_network.py compares): "1" runs gRPC in plaintext, without identities.
PLAINTEXT_ENV = "UOC_BENCH_PLAINTEXT_GRPC"
RECENT_BLOCKS = 10  # the latest applied blocks kept in memory (summaries) for the dashboard
STOPPED_BEFORE_SIGNING = (  # what a storage fault's one line says after the fault (`NodeCore.fail`)
    "the node stopped before signing anything further: fix the disk (free space) and restart it, it catches up "
    "from its peers"
)


def format_time_ms(ms: int) -> str:
    """A time in ms since the epoch as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    """Wall-clock time in ms (the engine gets time only from here)."""
    return time.time_ns() // 1_000_000


class NodeCore:
    """A node with every part built: the ledger, mempool, gossip, commit waiters and peers it is
    given, and the parts that call back into it (consensus engine, block sync, gRPC server, HTTP API),
    which it builds. `open_node` starts and stops them; this class runs the engine's actions and
    answers the gRPC handlers (`network.NodeApi`) and the HTTP API.

    Seams for `devnet.adversary` (the chaos suite's byzantine node, which subclasses this class and is
    passed to `open_node(home, make_core=…)`): `_execute` runs the engine's actions, `receive_consensus`
    takes a peer's message, and `grpc_handlers` builds the gRPC handlers. The node itself has no attack code."""

    grpc_handlers: Callable[[NodeApi], Handlers] = Handlers

    def __init__(
        self,
        home: Home,
        ledger: Ledger,
        *,
        peers: list[PeerClient],
        mempool: Mempool,
        relay: Relay,
        waiters: CommitWaiters,
        server_credentials: grpc.ServerCredentials | None,
    ) -> None:
        config = self.config = home.config
        self.home = home
        self.genesis = home.genesis
        self.chain_id: str = home.genesis["chain_id"]
        self.signer = home.validator_key
        self.node_id = tls.compute_node_id(home.node_key.pubkey)
        self.ledger = ledger
        self.store: SqliteStore = ledger.store
        self.app: Application = ledger.app
        self.peers = peers
        self.mempool = mempool
        self.relay = relay
        self.waiters = waiters
        self.recent_blocks: deque[dict[str, Any]] = deque(maxlen=RECENT_BLOCKS)  # the dashboard's latest blocks
        self._restored: SignState | None = load_sign_state(home.sign_state_path) if self.signer else None
        watch = config.double_sign_check_height if self.signer is not None and self._restored is None else 0
        if watch:
            log.warning(
                "%s is missing: this validator signs nothing until %d heights are decided without it",
                home.sign_state_path,
                watch,
            )
        self.consensus = Consensus(
            chain_id=self.chain_id,
            signer=self.signer,
            host=self,
            timeouts=config.timeouts,
            double_sign_check_height=watch,
        )
        self.sync = BlockSync(
            ledger,
            peers,
            status_interval_s=config.status_interval_ms / 1000,
            apply=self.apply_synced_block,
            genesis_time_ms=compute_genesis_time_ms(self.genesis),
            block_wait_s=config.rpc_timeout_ms / 1000,
        )
        self.server = Server(
            self,
            config.listen,
            max_message_bytes=config.max_message_bytes,
            limits=ServerLimits(
                max_concurrent_streams=config.grpc_max_concurrent_streams,
                max_connection_idle_ms=config.grpc_max_connection_idle_ms,
                max_connections=config.grpc_max_connections,
                handshake_timeout_ms=config.grpc_handshake_timeout_ms,
            ),
            handlers=self.grpc_handlers,
            credentials=server_credentials,
        )
        self.metrics = NodeMetrics()
        self.metrics.add_live(self.read_live_metrics)
        self.api = ApiServer(self)
        self.grace_s = 1.0  # what in-flight requests get at shutdown (`Node.stop(grace_s)`)
        self.running = False
        self._timers: set[asyncio.TimerHandle] = set()
        self._fetches: set[asyncio.Task] = set()
        self._next_height_timer: asyncio.TimerHandle | None = None
        self._own_pending: dict[str, int] = {}  # hash -> sequence of txs this node signed, until committed
        self.feeder = PriceFeeder(self, self.signer.address, home.path / FEEDER_FILE) if self.signer else None
        if self.feeder is not None:
            waiters.add_listener(self.feeder.on_block)
        self._own_kinds: dict[str, str] = {}  # hash -> message kinds of the same txs (for their log line)
        self.failed: StoreError | ConsensusError | None = None  # consensus stopped for good (see `fail`)
        self.failed_event = asyncio.Event()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def syncing(self) -> bool:
        return self.sync.syncing

    @property
    def reachable_peers(self) -> int:
        return self.sync.reachable_peers

    # =========================================================================================
    # running
    # =========================================================================================
    def begin(self) -> None:
        """Start consensus at the next height."""
        self.metrics.on_pricing(self.query("pricing"))
        self.running = True
        self.start_next_height()

    async def halt(self) -> None:
        """Stop consensus: no more inputs, timers or block fetches."""
        self._stop_consensus()
        await cancel_tasks(self._fetches)

    def _stop_consensus(self) -> None:
        """No more inputs to the engine and no more of its actions: its timers are cancelled."""
        self.running = False
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._next_height_timer is not None:
            self._next_height_timer.cancel()

    def fail(self, error: StoreError | ConsensusError) -> None:
        """Stop consensus at once, so nothing further is signed or applied, and let `run_node` stop the node
        with `error` (the one line of `uocd start`): a decided block or the sign state could not be stored,
        or applying a block left the chain without a valid validator set. The height stays undecided in the
        store."""
        self._stop_consensus()
        self.failed = error
        self.failed_event.set()

    def position(self) -> tuple[int, int]:
        """The engine's (height, round) (for regossip; consensus runs while block sync does too)."""
        return (self.consensus.height, self.consensus.round)

    def encode_pending_evidence(self) -> list[bytes]:
        """The engine's pending evidence as canonical consensus messages (for regossip)."""
        return [codec.consensus_message_to_pb(e).SerializeToString() for e in self.consensus.evidence]

    # =========================================================================================
    # the engine's host
    # =========================================================================================
    def select_evidence(self, height: int, pending: tuple[Evidence, ...]) -> tuple[list[Evidence], list[Evidence]]:
        """Of the engine's pending evidence: what a block at `height` includes (valid, within the params'
        max_block_evidence and max_block_bytes) and what can never be committed (dropped). Evidence of
        `height` itself waits for the next block."""
        params = self.app.get_params()
        included: list[Evidence] = []
        invalid: list[Evidence] = []
        size = 0
        for evidence in pending:
            if evidence.height >= height:
                continue
            try:
                self.check_evidence(evidence, verify_signatures=False)  # verified when it entered the pool
            except InvalidMessage as exc:
                log.info("dropping pending evidence %s: %s", evidence.key, exc)
                invalid.append(evidence)
                continue
            if len(included) < params.max_block_evidence and size + evidence.size <= params.max_block_bytes:
                included.append(evidence)
                size += evidence.size
        return included, invalid

    def reap_txs(self, height: int, evidence: tuple[Evidence, ...] = ()) -> list[bytes]:
        """Transactions for a new block that carries `evidence`: the mempool's best within min(config,
        params) block limits (the params' bytes less the evidence's), without those that would fail in
        that order after the evidence (`Application.prepare_proposal`)."""
        params = self.app.get_params()
        reaped = self.mempool.reap(
            min(self.config.block_max_txs, params.max_block_txs),
            min(self.config.block_max_bytes, params.max_block_bytes - sum(e.size for e in evidence)),
        )
        return self.app.prepare_proposal(height, reaped, [e.to_json() for e in evidence]) if reaped else reaped

    def check_evidence(self, evidence: Evidence, *, verify_signatures: bool = True) -> None:
        """InvalidMessage unless the evidence can be committed in a coming block: both votes signed by its
        validator (when `verify_signatures`), its validator in the validator set of its height, and the
        application accepts it (age, not committed before, a validator with tokens). Cheapest checks first:
        the age and the signatures before the set, which costs up to VALIDATOR_SET_CHECKPOINT steps of
        priorities for an old height (anyone can replay the old evidence GetEvidence serves, or forge some)."""
        height = self.app.height + 1
        if evidence.height > height:
            raise InvalidMessage(f"evidence {evidence.key} is from height {evidence.height}, beyond ours ({height})")
        age = self.get_params().max_evidence_age_blocks  # the application's rule, checked before the set too
        if is_evidence_too_old(age, max(height, evidence.height + 1), evidence.height):
            raise InvalidMessage(f"evidence {evidence.key} is older than {age} blocks at height {height}")
        if verify_signatures and not evidence.is_signed(self.chain_id):
            raise InvalidMessage(f"evidence {evidence.key}: a vote is not signed by its validator")
        try:
            vset = self.get_validator_set(evidence.height)
        except SyncError:
            raise InvalidMessage(f"evidence {evidence.key}: no validator set is known for its height") from None
        if evidence.validator not in vset:
            raise InvalidMessage(f"evidence {evidence.key}: not a validator at height {evidence.height}")
        try:
            self.app.check_evidence(
                evidence.to_json(), height=max(height, evidence.height + 1), verify_signatures=False
            )
        except ChainError as exc:
            raise InvalidMessage(f"evidence {evidence.key}: {exc}") from None

    def validate_block(self, block: Block) -> str | None:
        """None if the block's evidence is valid (each validator in the set of its height; the chain
        checks the rest) and every transaction applies in order on the state after h−1."""
        for evidence in block.evidence:
            try:
                vset = self.get_validator_set(evidence.height)
            except SyncError:
                return f"evidence {evidence.key}: no validator set is known for its height"
            if evidence.validator not in vset:
                return f"evidence {evidence.key}: not a validator at height {evidence.height}"
        try:
            results = self.app.process_proposal(block.height, list(block.txs), block.get_evidence_json())
        except ChainError as exc:
            return str(exc)
        for i, result in enumerate(results):
            if not result.ok:
                return f"tx {i} ({result.hash}) is invalid: {result.code}: {result.log}"
        return None

    def get_validator_set(self, height: int) -> ValidatorSet:
        """The validator set of `height` (from the store, cached)."""
        return self.ledger.get_validator_set(height)

    def start_next_height(self) -> None:
        """Start consensus at the height after the committed one (no-op if it is already running there)."""
        self._next_height_timer = None
        if not self.running:
            return
        height = self.app.height + 1
        if self.consensus.height == height and self.consensus.decided is None:
            return
        last = self.ledger.last
        last_block, last_commit = last if last is not None else (None, None)
        actions = self.consensus.start_height(
            height=height,
            validator_set=self.get_validator_set(height),
            last_commit=last_commit,
            last_block_id=last_block.id if last_block else "",
            last_time_ms=last_block.header.time_ms if last_block else compute_genesis_time_ms(self.genesis),
            app_hash=self.app.app_hash,
            now_ms=now_ms(),
            restored=self._restored,
            last_validator_set=self.get_validator_set(height - 1) if height > 1 else None,
        )
        self._restored = None
        self._execute(actions)

    def _execute(self, actions: list[Action]) -> None:
        """Run the engine's actions in order (none once consensus stopped: `fail` during a `Decide`)."""
        for action in actions:
            if not self.running:
                return
            if isinstance(action, Persist):
                try:
                    save_sign_state(self.home.sign_state_path, action.sign_state)  # durable before the next action
                except OSError as exc:  # nothing after it may be sent: a vote must never outrun its record
                    self.fail(
                        StoreError(
                            f"the sign state could not be saved to {self.home.sign_state_path} ({exc}); the node "
                            "stopped before sending what it was about to sign: fix the cause and restart it"
                        )
                    )
                    return
            elif isinstance(action, Broadcast):
                msg = action.message
                raws = [codec.consensus_message_to_pb(m).SerializeToString() for m in (*action.proof, msg)]
                self.relay.send_own(msg.height, msg.round, getattr(msg, "type", "proposal"), raws)
            elif isinstance(action, ScheduleTimeout):
                self._schedule_timeout(action.timeout, action.delay_ms)
            elif isinstance(action, Decide):
                self._on_decide(action.block, action.commit)
            elif isinstance(action, RecordEvidence):
                if not self._record_evidence(action.evidence):
                    return  # not stored: the node is stopped, and the engine's next actions with it
            elif isinstance(action, FetchBlock):
                task = asyncio.get_running_loop().create_task(self._fetch_block(action.height, action.block_id))
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)

    def _schedule_timeout(self, timeout: Timeout, delay_ms: int) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            # Never dropped while the node runs (block sync included): a lost timeout can leave the
            # engine waiting forever at its step. The engine itself ignores a stale one.
            self._timers.discard(handle)
            if self.running:
                self._execute(self.consensus.on_timeout(timeout, now_ms()))

        handle = loop.call_later(delay_ms / 1000, fire)
        self._timers.add(handle)

    def _on_decide(self, block: Block, commit: Commit) -> None:
        """Apply a decided block (unless block sync applied it already), then start the next height
        after the block interval: always, or the engine would wait at a decided height."""
        if block.height == self.app.height + 1:
            self.apply_block(block, commit)
        self._schedule_next_height(self.config.timeouts.commit_ms / 1000)

    def _schedule_next_height(self, delay_s: float) -> None:
        """Run `start_next_height` in `delay_s` (or sooner, if it is already due sooner)."""
        loop = asyncio.get_running_loop()
        timer = self._next_height_timer
        if timer is not None and not timer.cancelled() and timer.when() <= loop.time() + delay_s:
            return
        if timer is not None:
            timer.cancel()
        self._next_height_timer = loop.call_later(delay_s, self.start_next_height)

    def apply_synced_block(self, block: Block, commit: Commit) -> None:
        """Apply a block fetched by block sync, and move the engine past it at the next loop turn: consensus
        keeps running during sync, and a node that catches up must vote at the network's height at once
        (not after another block interval: lagging nodes would make every round wait)."""
        self.apply_block(block, commit)
        if self.consensus.height <= block.height:
            self._schedule_next_height(0.0)

    def apply_block(self, block: Block, commit: Commit) -> None:
        """Apply a decided block (one store transaction), then re-check the mempool and resolve the
        commit waiters and listeners. A block that cannot be stored, or after which the chain has no valid
        validator set (every validator jailed or unbonded: no later block can be decided, and CometBFT
        halts the same way), stops the node (`fail`)."""
        if self.failed is not None:
            return
        try:
            result = self.ledger.apply(block, commit)
        except StoreError as exc:
            self.fail(StoreError(f"{exc}; {STOPPED_BEFORE_SIGNING}"))
            return
        except ConsensusError as exc:  # the ledger's: no valid validator set after this block
            self.fail(exc)
            return
        min_height = block.height + 1 - self.app.get_params().max_evidence_age_blocks
        self.consensus.remove_evidence(block.evidence, min_height=min_height)
        self.consensus.learn_validator_set(block.height + 1, self.get_validator_set(block.height + 1))
        self.mempool.update(r.hash for r in result.tx_results if r.ok)  # a failed tx used no sequence
        self.recent_blocks.append(compute_block_summary(block, commit))
        self.waiters.on_block(block.height, result.tx_results, lambda: result.epoch)
        vset = self.get_validator_set(block.height)
        self.metrics.on_block(
            height=block.height,
            round=commit.round,
            time_ms=block.header.time_ms,
            txs=len(block.txs),
            size=block.size,
            powers=vset.powers,
            signers=(v.validator for v in commit.precommits),
            byzantine=(e.validator for e in block.evidence),
        )
        self._log_block(block, commit, result)

    def _log_block(self, block: Block, commit: Commit, result: BlockResult) -> None:
        """The info lines of a committed block: the block, this node's own txs in it, and the epoch it ended."""
        log.info(
            "committed block",
            extra={
                "height": block.height,
                "round": commit.round,
                "txs": len(block.txs),
                "block_time": format_time_ms(block.header.time_ms),
                "proposer": block.header.proposer,
                "app_hash": self.app.app_hash[:16],
            },
        )
        for r in result.tx_results:
            kind = self._own_kinds.pop(r.hash, None)
            if kind is not None:
                fields = {"height": block.height, "kind": kind, "tx_hash": r.hash, "result": r.code}
                log.info("own tx committed", extra={**fields, **({"reason": r.log} if r.log else {})})
        if result.epoch_ended:
            summary = self.get_epoch_summary(result.epoch)
            log.info("epoch ended", extra={"height": block.height, **summary})
            self.metrics.on_epoch(summary)
            self.metrics.on_pricing(self.query("pricing"))

    def read_live_metrics(self) -> list[tuple[str, str, str, list[tuple[dict[str, str], float]]]]:
        """The series read at scrape time (`node.metrics.LiveCollector`)."""
        return [
            (
                "cometbft_blocksync_syncing",
                "gauge",
                "Whether the node is catching up by block sync.",
                [({}, self.syncing)],
            ),
            ("cometbft_p2p_peers", "gauge", "Peers that answered the last status poll.", [({}, self.reachable_peers)]),
            (
                "cometbft_p2p_peer_send_bytes",
                "counter",
                "Gossip payload bytes queued for each peer.",
                [({"peer_id": p.node_id}, p.sent_bytes) for p in self.peers],
            ),
            (
                "cometbft_p2p_peer_receive_bytes",
                "counter",
                "Gossip payload bytes taken from peers.",
                [({}, self.server.handlers.received_bytes)],
            ),
            ("cometbft_mempool_size", "gauge", "Transactions in the mempool.", [({}, len(self.mempool))]),
            (
                "cometbft_mempool_size_bytes",
                "gauge",
                "Bytes of the mempool's transactions.",
                [({}, self.mempool.total_bytes)],
            ),
            (
                "cometbft_mempool_failed_txs",
                "counter",
                "Transactions refused by the mempool because they failed their checks.",
                [({}, self.mempool.failed)],
            ),
            (
                "cometbft_consensus_round",
                "gauge",
                "Consensus round at the current height.",
                [({}, self.consensus.round)],
            ),
            (
                "uoc_tx_signature_verifications",
                "counter",
                "Transaction signatures this node verified: each distinct tx once, unless the verify cache evicted it.",
                [({}, self.ledger.signature_verifications)],
            ),
            (
                "uoc_verify_cache_evictions",
                "counter",
                "Verified transactions dropped from the byte-bounded verify cache (a copy of one is verified again).",
                [({}, self.app.verify_cache.evicted)],
            ),
            (
                "uoc_tx_rule_runs",
                "counter",
                "Transactions whose rules this node ran (admission, re-checks, blocks), not applied from a record.",
                [({}, self.app.executions)],
            ),
            (
                "uoc_tx_records_applied",
                "counter",
                "Transactions applied from their admission's record (blocks, re-checks) without running their rules.",
                [({}, self.app.reused)],
            ),
        ]

    def get_epoch_summary(self, epoch: int) -> dict[str, Any]:
        """The epoch's record as log fields: price, voters, participation (voters over the validator count),
        and this validator's vote in force and its distance from the price (both ngonka)."""
        record = self.query(f"epoch/{epoch}")
        counted = record["voters"] + record["non_voters"]
        summary: dict[str, Any] = {
            "epoch": epoch,
            "price": record["price"],
            "voters": record["voters"],
            "non_voters": record["non_voters"],
            "participation": f"{record['voters'] / counted:.2f}" if counted else "0.00",
        }
        if self.signer is not None:
            vote = self.get_own_vote()
            summary["own_vote"] = vote
            summary["own_vote_distance"] = None if vote is None else vote - record["price"]
        return summary

    def get_own_vote(self) -> int | None:
        """This validator's price vote in force, in ngonka (None if it never voted)."""
        assert self.signer is not None
        try:
            return int(self.query(f"price_vote/{self.signer.address}")["price_ngonka"])
        except (ChainError, KeyError, TypeError, ValueError):  # never voted (or a vote of another shape)
            return None

    def redial_unpinned(self, pins: tls.PeerPins) -> None:
        """Dial now the peers whose certificate is not pinned yet (one of them may be knocking: the server
        accepts it only once this node has verified it), backed off or not."""
        for peer in self.peers:
            if pins.get(peer.node_id) is None:
                peer.retry_at = 0.0
        self.sync.wake()

    def _store_evidence(self, evidence: Evidence) -> bool | None:
        """Store a double sign: whether it was new, or None if it could not be stored, which stops the node
        (`fail`): a disk this full fails the next block's write too, and the engine's next actions (its votes,
        its timeouts) must not be lost silently."""
        try:
            return self.store.add_evidence(evidence.key, evidence.height, evidence.to_json())
        except StoreError as exc:
            self.fail(StoreError(f"{exc}; {STOPPED_BEFORE_SIGNING}"))
            return None

    def _record_evidence(self, evidence: Evidence) -> bool:
        """Store a double sign the engine saw and gossip it once (its votes were verified by the engine);
        False if it could not be stored (the node is stopped)."""
        new = self._store_evidence(evidence)
        if new is None:
            return False
        if new:
            log.warning("evidence recorded: double sign %s", evidence.key)
        canonical = codec.consensus_message_to_pb(evidence).SerializeToString()
        if self.relay.remember(hashlib.sha256(canonical).digest()):
            self.relay.relay_consensus(canonical)
        return True

    def receive_evidence(self, evidence: Evidence, canonical: bytes, digest: bytes, origin: str | None = None) -> bool:
        """A peer's evidence: checked (`check_evidence`, signatures last), then added to the engine's
        pending pool, stored and relayed once (not back to `origin`, the peer that sent it); InvalidMessage
        on bad input. Returns whether it was new.
        Evidence that cannot be stored stops the node (`_store_evidence`), as a double sign the engine saw does."""
        self.check_evidence(evidence)
        self.relay.remember(digest)
        if not self.consensus.add_evidence(evidence):
            return False
        if self._store_evidence(evidence) is None:
            return False
        self.relay.relay_consensus(canonical, origin)
        return True

    async def _fetch_block(self, height: int, block_id: str) -> None:
        """Ask peers for a block that +2/3 precommitted but we never received."""
        for peer in sorted(self.peers, key=lambda p: p.is_penalized() or p.is_backed_off()):
            try:
                block = codec.block_from_pb(await peer.get_block(height, block_id))
            except (grpc.aio.AioRpcError, InvalidMessage):
                continue
            if block.id == block_id and self.running:
                self._execute(self.consensus.on_block(block, now_ms()))
                return
        log.info("no peer had block %s at height %d", block_id[:12], height)

    def check_synced_block(self, block: Block, commit: Commit) -> None:
        """SyncError unless `block` is our next block, decided by +2/3 of its height's validators."""
        self.sync.check_block(block, commit)

    # =========================================================================================
    # gossip in and reads (network.NodeApi, for the gRPC handlers)
    # =========================================================================================
    def submit_txs(self, raws: list[bytes], origin: str | None = None) -> list[str | MempoolError]:
        """Admit transactions to the mempool (admitted ones are relayed, not back to the peer `origin`)."""
        return self.mempool.add_batch(raws, origin=origin)

    def receive_consensus(self, raw: bytes, origin: str | None = None) -> bool:
        """A peer's consensus message: verified by the engine (signature, membership, height and round),
        then relayed once in its canonical form, to every peer but `origin` (the node id of the peer that
        sent it); InvalidMessage on bad input. Returns whether it was new.

        What is relayed, and what dedup keys on, is the re-encoding of the decoded message, never the
        peer's bytes: unknown protobuf fields (padding) are dropped, and a padded copy and the honest
        copy are one message. The raw digest is only a pre-filter (honest peers send canonical bytes).
        The height window and the signer's membership are read from the parsed protobuf first
        (`check_sender`), so a message no validator could have sent costs no decoding, hashing or
        signature check, however large it is; a past height's message that the engine would only ignore
        after decoding and verifying it (a proposal, a vote of h−1 that is no double sign's twin) is
        ignored at once (`is_unused_late_message`). Returns (the
        Ack's `relayed`, which the byzantine runs use to tell what an equivocator delivered) whether it
        was relayed, or was evidence: a message of a later height is only buffered (a node that syncs past
        that height never runs it), one of an earlier height counts only as evidence."""
        if self.relay.is_seen(hashlib.sha256(raw).digest()) or not self.running:
            return False
        parsed = codec.parse_pb(pb.ConsensusMessage, raw)
        if self.is_unused_late_message(parsed):
            return False  # the engine would ignore it after decoding and verifying it: neither is done
        self.check_sender(parsed)
        msg = codec.consensus_message_from_pb(parsed)
        canonical = codec.consensus_message_to_pb(msg).SerializeToString()
        digest = hashlib.sha256(canonical).digest()
        if self.relay.is_seen(digest):
            return False
        if isinstance(msg, Evidence):
            return self.receive_evidence(msg, canonical, digest, origin)
        self.consensus.check_message(msg)  # shape and signature before the message is used at any height
        height = self.consensus.height
        actions = self.consensus.on_message(msg, now_ms(), checked=True)
        self.relay.remember(digest)
        if msg.height == height:
            self.relay.relay_consensus(canonical, origin)  # verified at our height: relay once, canonical
        elif msg.height > height + 1:
            self.sync.wake()
        self._execute(actions)
        return msg.height == height or bool(actions)  # relayed, or evidence (see the docstring)

    def is_unused_late_message(self, parsed: pb.ConsensusMessage) -> bool:
        """True for a message of a past height that the engine would only ignore: a proposal, or a vote of
        h−1 that conflicts with none the engine holds from h−1 (only such a twin is evidence). Read from the
        protobuf fields, so a stranger's late message costs no decoding or signature check."""
        kind, ours = parsed.WhichOneof("message"), self.consensus.height
        if kind == "proposal":
            return parsed.proposal.height < ours
        if kind != "vote" or parsed.vote.height != ours - 1:
            return False
        vote = parsed.vote
        block_id = vote.block_id if vote.HasField("block_id") else None
        return not self.consensus.is_late_vote_evidence(vote.validator, vote.round, vote.type, block_id)

    def check_sender(self, parsed: pb.ConsensusMessage) -> None:
        """InvalidMessage unless a proposal's or vote's height is within h−1..h+2 and, from height h on, its
        signer is a validator of a set this node knows for that height (cheap: read from the protobuf
        fields). Other kinds of message, and an empty one, are left to the decoder."""
        kind = parsed.WhichOneof("message")
        if kind not in ("proposal", "vote"):
            return
        height, ours = (parsed.proposal if kind == "proposal" else parsed.vote).height, self.consensus.height
        signer = parsed.proposal.proposer if kind == "proposal" else parsed.vote.validator
        if height > ours + HEIGHT_SLACK_AHEAD:
            raise InvalidMessage(f"message for height {height} is implausible: this node is at height {ours}")
        if height < ours - HEIGHT_SLACK_BEHIND:
            raise InvalidMessage(f"message for height {height} is stale: this node is at height {ours}")
        if height >= ours and not self.consensus.is_known_validator(height, signer):
            shown = repr(signer) if len(signer) <= 80 else repr(signer[:80]) + "…"
            raise InvalidMessage(f"{shown} is not a validator at height {height} as far as this node knows")

    def get_status(self) -> spb.StatusResponse:
        """This node's Status (the epoch and price as the chain's `status` query answers them)."""
        chain = self.app.query("status")
        return spb.StatusResponse(
            chain_id=self.chain_id,
            height=self.app.height,
            app_hash=self.app.app_hash,
            latest_block_id=self.ledger.last_block_id,
            node_id=self.node_id,
            moniker=self.config.moniker,
            catching_up=self.sync.syncing,
            evidence_count=self.store.count_evidence(),
            round=self.consensus.round,
            mempool_size=len(self.mempool),
            validator_address=self.signer.address if self.signer else "",
            peers=self.sync.reachable_peers,
            configured_peers=len(self.peers),
            epoch=chain["epoch"],
            unit_of_compute_price=chain["unit_of_compute_price"],
        )

    def iterate_blocks_pb(self, first: int, last: int) -> Iterator[pb.BlockWithCommit]:
        """Stored blocks first..last with their commits, as protobuf, read and converted one at a time
        (the caller may yield to the event loop between them)."""
        for height in range(first, last + 1):
            row = self.store.get_block_row(height)
            if row is None:
                return
            yield codec.block_with_commit_to_pb(Block.from_json(row[1]), Commit.from_json(row[2]))

    def get_block_pb(self, height: int, block_id: str) -> pb.Block | None:
        """A stored block (if `block_id` is given, only that one)."""
        row = self.store.get_block_row(height)
        if row is not None and (not block_id or row[0] == block_id):
            return codec.block_to_pb(Block.from_json(row[1]))
        if block_id and self.consensus.height == height:
            block = self.consensus.get_known_block(block_id)  # proposed at this height, not yet committed here
            return None if block is None else codec.block_to_pb(block)
        return None

    def get_evidence(self, from_height: int = 0, limit: int | None = None) -> list[Evidence]:
        """The double signs this node recorded, from `from_height` up (the first `limit` of them)."""
        return [Evidence.from_json(e) for e in self.store.get_evidence(from_height, limit)]

    def get_evidence_pb(self, from_height: int, limit: int) -> list[pb.Evidence]:
        return [codec.evidence_to_pb(e) for e in self.get_evidence(from_height, limit)]

    # =========================================================================================
    # for the HTTP API
    # =========================================================================================
    def query(self, path: str, **params: Any) -> Any:
        """The application's committed state (see chain.app QUERIES)."""
        return self.app.query(path, **params)

    def add_commit_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(height)` after each applied block (consensus or sync)."""
        self.waiters.add_listener(listener)

    async def wait_for_commit(self, tx_hash: str, timeout_s: float) -> TxOutcome | None:
        """The outcome of a tx once it is committed (or dropped); None after `timeout_s`. Call it in the same
        event-loop step as the submission (before any await), or check `get_tx_outcome` first."""
        return await self.waiters.wait(tx_hash, timeout_s)

    def get_tx_outcome(self, tx_hash: str) -> TxOutcome | None:
        """The indexed outcome of a committed tx, or None."""
        row = self.store.get_tx_row(tx_hash)
        return None if row is None else TxOutcome(tx_hash, row[0], row[1], row[2], row[3])

    def get_tx_raw(self, tx_hash: str) -> bytes | None:
        """The bytes of a committed tx, from the tx index (no block is read)."""
        return self.store.get_tx_bytes(tx_hash)

    def get_sender_txs(
        self, sender: str, start: str | None, limit: int, reverse: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of `sender`'s committed txs in block order (newest first with `reverse`) from position
        `start` (a `compute_tx_position` text, or any text: a position among them), and the position the next
        page starts at (None: this was the last); read from the sender index, at most `limit` + 1 rows."""
        rows = self.store.get_sender_tx_rows(sender, start, limit + 1, reverse)
        docs = [
            {"tx_hash": h, "height": height, "index": idx, "code": code, "log": log, "tx": json.loads(raw)}
            for _, h, height, idx, code, log, raw in rows[:limit]
        ]
        return docs, rows[limit][0] if len(rows) > limit else None

    def get_block_time_ms(self, height: int) -> int | None:
        """The header time of a committed block, or None if this node does not hold it."""
        row = self.store.get_block_row(height)
        return None if row is None else int(row[1]["header"]["time_ms"])

    def get_block_doc(self, height: int) -> dict[str, Any] | None:
        """A stored block as the API shows it (height, id, block, commit), or None (not stored, or pruned)."""
        row = self.store.get_block_row(height)
        return None if row is None else {"height": height, "block_id": row[0], "block": row[1], "commit": row[2]}

    def get_next_sequence(self, address: str) -> int:
        """The sequence of `address`'s next tx: committed, or one past this node's own pending txs."""
        committed = self.query(f"account/{address}")["sequence"]
        for tx_hash in [h for h in self._own_pending if h not in self.mempool]:
            del self._own_pending[tx_hash]  # committed or dropped
            self._own_kinds.pop(tx_hash, None)
        pending = [s for s in self._own_pending.values() if s >= committed]
        return max(pending) + 1 if pending else committed

    def is_pending(self, tx_hash: str) -> bool:
        """True if a transaction is in this node's mempool."""
        return tx_hash in self.mempool

    def get_params(self) -> Params:
        """The chain params of the committed state."""
        return self.app.get_params()

    def simulate_tx(self, raw: bytes) -> TxResult:
        """The gas `raw` would use on top of the mempool's txs (`Application.simulate`), or why it fails."""
        return self.app.simulate(raw)

    def get_gas_price(self) -> Fraction:
        """The least fee per gas this node admits: the chain's min_gas_price or its own, the larger."""
        chain = compute_gas_price(self.app.get_params().min_gas_price)
        own = self.mempool.min_gas_price
        return chain if own is None else max(chain, own)

    def sign_own(self, sequence: int, msgs: list[Msg]) -> bytes:
        """Sign `msgs` with the validator key, with the simulated gas (× 1.2) as the gas limit and the
        least fee this node admits for it (gaiad's `--gas auto`)."""
        assert self.signer is not None
        price = self.get_gas_price()
        probe = sign_tx(self.signer, self.chain_id, sequence, msgs, gas_price=describe_gas_price(price))
        simulated = self.app.simulate(probe)  # with a fee, so that paying it is metered too
        gas_limit = compute_adjusted_gas(simulated.gas_used) if simulated.ok else None  # else: fails below
        fee = None if gas_limit is None else compute_min_fee(gas_limit, price)
        return sign_tx(
            self.signer,
            self.chain_id,
            sequence,
            msgs,
            gas_limit=gas_limit,
            fee=fee,
            gas_price=describe_gas_price(price),
        )

    def submit_own(self, msgs: list[Msg]) -> str:
        """Sign `msgs` with the validator key at the next sequence and admit them to the mempool (which
        relays); the tx hash, or the MempoolError refusing it. NodeError if this node has no validator key."""
        if self.signer is None:
            raise NodeError("this node has no validator key to sign with")
        sequence = self.get_next_sequence(self.signer.address)
        raw = self.sign_own(sequence, msgs)
        tx_hash = self.mempool.add(raw, own=True)
        self._own_pending[tx_hash] = sequence
        self._own_kinds[tx_hash] = ",".join(m.TYPE for m in msgs)
        assert tx_hash == compute_tx_hash(raw)
        return tx_hash


# =============================================================================================
# the composition root
# =============================================================================================
async def cancel_tasks(tasks: set[asyncio.Task] | list[asyncio.Task]) -> None:
    """Cancel tasks and wait for them; a task's failure must not block shutdown."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@asynccontextmanager
async def open_node(home: Home, *, make_core: Callable[..., NodeCore] = NodeCore) -> AsyncIterator[NodeCore]:
    """Build and start a node's parts in order (see the module docstring); on exit, stop them in the
    exact reverse order. The API's config is checked before anything is opened. `make_core` builds the
    NodeCore from its parts (`devnet.adversary` passes a subclass)."""
    config = home.config
    check_api_config(config, home.admin_token)
    async with AsyncExitStack() as stack:
        ledger = stack.enter_context(open_ledger(home))
        identity = tls.load_or_create_identity(home.path, home.node_key)  # after the home lock
        pins = tls.PeerPins(identity, frozenset(tls.parse_peer_address(a)[0] for a in config.peers))
        credentials: grpc.ServerCredentials | None = tls.build_server_credentials(pins)
        if os.environ.get(PLAINTEXT_ENV) == "1":
            log.warning("%s=1: gRPC runs in PLAINTEXT, peers unauthenticated (a benchmark switch)", PLAINTEXT_ENV)
            credentials = None
        peers = [
            PeerClient(
                a,
                identity=identity if credentials is not None else None,
                pins=pins,
                rpc_timeout_s=config.rpc_timeout_ms / 1000,
                max_message_bytes=config.max_message_bytes,
            )
            for a in config.peers
        ]
        for peer in peers:
            stack.push_async_callback(peer.close)
        waiters = CommitWaiters()
        relay = Relay(peers)
        mempool = Mempool(
            ledger.app,
            max_txs=config.mempool_max_txs,
            max_bytes=config.mempool_max_bytes,
            max_txs_per_sender=config.mempool_max_txs_per_sender,
            max_bytes_per_sender=config.mempool_max_bytes_per_sender,
            min_gas_price=compute_gas_price(config.min_gas_price) if config.min_gas_price else None,
            on_admit=relay.queue_txs,
            on_drop=waiters.on_drop,
        )
        node = make_core(
            home, ledger, peers=peers, mempool=mempool, relay=relay, waiters=waiters, server_credentials=credentials
        )
        loop = asyncio.get_running_loop()
        pins.on_unpinned = lambda: loop.call_soon_threadsafe(node.redial_unpinned, pins)

        stack.push_async_callback(lambda: node.server.stop(node.grace_s))  # also after a failed start
        await node.server.start()
        stack.push_async_callback(lambda: node.api.stop(node.grace_s))  # stops the listeners that did start
        await node.api.start()
        stack.callback(waiters.release)  # waiting API requests answer "pending" before the API stops
        tasks = [
            loop.create_task(relay.run_tx_relay(), name="relay"),
            loop.create_task(node.sync.run(), name="sync"),
            loop.create_task(relay.run_regossip(node.position, node.encode_pending_evidence), name="regossip"),
        ]
        stack.push_async_callback(cancel_tasks, tasks)
        node.begin()
        stack.push_async_callback(node.halt)
        log.info(
            "node %s (%s) started at height %d on port %d with %d peers%s",
            config.moniker,
            node.node_id,
            node.app.height,
            node.port,
            len(peers),
            f", validator {node.signer.address}" if node.signer else ", not a validator",
        )
        yield node
    log.info("node %s stopped", config.moniker)


class Node:
    """A node's lifecycle handle for `uocd start`, tests and benches: `start()` enters `open_node` and
    `stop()` leaves it. While running, the `NodeCore`'s parts and methods read through the handle;
    before `start()` and after `stop()` its parts (`store`, `app`, `mempool`, …) read None."""

    PARTS = frozenset({"ledger", "store", "app", "mempool", "consensus", "sync", "relay", "waiters", "server", "api"})

    def __init__(self, home: Home) -> None:
        self.home = home
        self.core: NodeCore | None = None
        self._stack: AsyncExitStack | None = None

    async def start(self) -> None:
        """Build and start every part (`open_node`); on failure, what was started is stopped."""
        if self._stack is not None:
            raise NodeError("the node is already running")
        stack = AsyncExitStack()
        self.core = await stack.enter_async_context(open_node(self.home))
        self._stack = stack

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop every part in reverse order (in-flight requests get `grace_s`); no-op if not running."""
        stack, core = self._stack, self.core
        self._stack = self.core = None
        if stack is not None and core is not None:
            core.grace_s = grace_s
            await stack.aclose()

    def __getattr__(self, name: str) -> Any:
        core = self.__dict__.get("core")
        if core is not None:
            return getattr(core, name)
        if name in Node.PARTS:
            return None
        raise AttributeError(f"{name!r}: the node is not running")


RESERVED_FILES = 64  # descriptors besides the listeners' connections: the stores, the logs, the peers' channels


def raise_open_files_limit(config: NodeConfig) -> None:
    """Raise this process's soft limit of open files to its hard limit, as Go's runtime does for CometBFT
    (the usual soft limit, 1,024, is below what the listeners may hold), and warn if even the hard limit
    is below their connection limits: past it, anyone who can reach a port could take the descriptors the
    node needs to save its sign state."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # a system may cap it below an unlimited hard limit
            log.info("open files limit left at %d: raising it to the hard limit failed (%s)", soft, exc)
            hard = soft
        else:
            log.info(
                "open files limit raised from %d to %s", soft, "unlimited" if hard == resource.RLIM_INFINITY else hard
            )
    listeners = 3 if config.prometheus_listen_addr else 2  # [api] public and admin, and the metrics listener
    needed = config.grpc_max_connections + listeners * config.api_max_connections + RESERVED_FILES
    if hard != resource.RLIM_INFINITY and hard < needed:
        log.warning(
            "the open files limit is %d, below the %d the node may need ([grpc] max_connections %d + %d HTTP "
            "listeners × [api] max_connections %d + %d for the node itself): raise it (ulimit -n) or lower those "
            "settings",
            hard,
            needed,
            config.grpc_max_connections,
            listeners,
            config.api_max_connections,
            RESERVED_FILES,
        )


async def run_node(home: Home, stop: asyncio.Event | None = None) -> None:
    """Run a node until `stop` is set (or SIGINT/SIGTERM), then stop it gracefully; StoreError after a
    clean stop if a block or the sign state could not be stored."""
    import signal

    raise_open_files_limit(home.config)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with open_node(home) as node:
        with settled_heap():  # its imports and ledger, alive as long as it is, out of the collector's scans
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(node.failed_event.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            await cancel_tasks(waits)
    if node.failed is not None:
        raise node.failed


__all__ = ["Node", "NodeCore", "NodeError", "TxOutcome", "open_node", "run_node"]

"""The `Node`: store, application, mempool, consensus engine, gRPC server, peers and their tasks.

    node = Node(load_home(home))
    await node.start()      # store+app (recover) → mempool → engine → gRPC server → HTTP API → peers → tasks
    ...
    await node.stop()       # tasks → peers → HTTP API → gRPC server (graceful) → store, in reverse

The engine (`node.consensus.Consensus`) is sans-IO: every input (a peer's message, a timeout, a
fetched block) runs on the event loop and its actions are executed at once, in order. `Persist`
writes the sign state durably (synchronous=FULL) before the next action, so a vote is on disk before
it is broadcast. `Decide` applies the block: `finalize_block`, then the block, its commit and the
validator set of the next height are staged on the store and `app.commit()` writes them with the
state changes in one transaction; the next height starts `block_interval_ms` later.

Block sync: peers' `Status` is polled; when a peer is more than one block ahead (or one block ahead
while this node makes no progress), blocks are fetched with `GetBlocks`, each commit is verified
with `verify_commit` against the validator set of its height (known: blocks apply in order), and
the blocks are applied and persisted one by one; consensus restarts at the new height.

Every applied block (by consensus or by sync) writes its per-tx results to the tx index in the
block's store transaction, then resolves the futures of `wait_for_commit` and calls the commit
listeners (the HTTP API's pricing cache and metrics). The HTTP API (`node.api`) signs the operator's
own transactions with `submit_own` (sequence = committed + own pending in the mempool).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from chain.app import Application
from chain.errors import ChainError
from chain.rules import get_validator_set
from chain.store import State
from chain.tx import Msg, compute_tx_hash, sign_tx

from . import codec
from .blocks import Block, Commit, Evidence, compute_commit_hash, compute_txs_hash
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
    verify_commit,
)
from .errors import ConfigError, InvalidCommit, InvalidMessage, MempoolError, NodeError, SyncError
from .mempool import Mempool
from .network import PeerClient, Server
from .pb import services_pb2 as spb
from .pb import types_pb2 as pb
from .store import SqliteStore

log = logging.getLogger(__name__)

SEEN_MESSAGES = 20_000  # consensus message hashes remembered for relay-once
RELAY_INTERVAL_S = 0.02  # admitted txs are relayed to peers in batches this often
RELAY_BATCH = 2000
SYNC_BATCH = 500
REGOSSIP_S = 0.5  # own votes of the current height are re-sent this often (lost messages)
REGOSSIP_PROPOSAL_TICKS = 4  # and own proposals every 4th time (they carry the block)
STALL_POLLS = 4  # polls one block behind without progress before syncing that block
HEIGHT_SLACK_BEHIND = 1  # a message for h-1 is a late vote: ignored, not an error
HEIGHT_SLACK_AHEAD = 2  # the engine buffers messages up to h+2


@dataclass(frozen=True)
class TxOutcome:
    """What became of a transaction: committed at `height` (index, code, log, the epoch it ran in), or
    dropped from the mempool (height None) with the code and log of the re-check that refused it."""

    tx_hash: str
    height: int | None
    index: int
    code: str
    log: str
    epoch: int | None = None

    @property
    def committed(self) -> bool:
        return self.height is not None


def now_ms() -> int:
    """Wall-clock time in ms (the engine gets time only from here)."""
    return time.time_ns() // 1_000_000


class Node:
    """One uoc node: it owns its store, app, mempool, consensus engine, gRPC server and peers."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.config = home.config
        self.genesis = home.genesis
        self.chain_id: str = home.genesis["chain_id"]
        self.signer = home.validator_key
        self.node_id = home.node_key.address
        self.store: SqliteStore | None = None
        self.app: Application | None = None
        self.mempool: Mempool | None = None
        self.consensus: Consensus | None = None
        self.server: Server | None = None
        self.peers: list[PeerClient] = []
        self.port = 0
        self.syncing = False
        self.reachable_peers = 0
        self._tasks: list[asyncio.Task] = []
        self._fetches: set[asyncio.Task] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._relay_buffer: list[bytes] = []
        self._own: dict[tuple[int, int, str], bytes] = {}  # (height, round, kind) -> our signed message
        self._sets: dict[int, ValidatorSet] = {}
        self._last: tuple[Block, Commit] | None = None
        self._restored: SignState | None = None
        self._sync_wake = asyncio.Event()
        self._running = False
        self._lock = None
        self._next_height_timer: asyncio.TimerHandle | None = None
        self.api: Any = None  # node.api.ApiServer while running
        self._waiters: dict[str, list[asyncio.Future[TxOutcome | None]]] = {}
        self._commit_listeners: list[Callable[[int], None]] = []
        self._own_pending: dict[str, int] = {}  # hash -> sequence of txs this node signed, until committed

    # =========================================================================================
    # lifecycle
    # =========================================================================================
    async def start(self) -> None:
        """Start in order: store and app (recovering unapplied blocks), mempool, engine, gRPC server,
        HTTP API (public and admin listeners), peer clients, then the relay, status/sync and consensus tasks."""
        from .api import ApiServer, check_api_config

        check_api_config(self.config, self.home.admin_token)
        self._open_store()
        assert self.app is not None
        self.mempool = Mempool(
            self.app,
            max_txs=self.config.mempool_max_txs,
            max_bytes=self.config.mempool_max_bytes,
            on_admit=self._relay_buffer.extend,
            on_drop=self._on_mempool_drop,
        )
        self.consensus = Consensus(chain_id=self.chain_id, signer=self.signer, host=self, timeouts=self.config.timeouts)
        self.server = Server(
            self,
            self.config.listen,
            max_message_bytes=self.config.max_message_bytes,
            max_concurrent_streams=self.config.grpc_max_concurrent_streams,
            max_connection_idle_ms=self.config.grpc_max_connection_idle_ms,
        )
        self.port = await self.server.start()
        self.api = ApiServer(self)
        await self.api.start()
        timeout_s = self.config.rpc_timeout_ms / 1000
        self.peers = [
            PeerClient(a, rpc_timeout_s=timeout_s, max_message_bytes=self.config.max_message_bytes)
            for a in self.config.peers
        ]
        self._running = True
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._relay_loop(), name="relay"),
            loop.create_task(self._sync_loop(), name="sync"),
            loop.create_task(self._regossip_loop(), name="regossip"),
        ]
        self._start_next_height()
        log.info(
            "node %s (%s) started at height %d on port %d with %d peers%s",
            self.config.moniker,
            self.node_id,
            self.app.height,
            self.port,
            len(self.peers),
            f", validator {self.signer.address}" if self.signer else ", not a validator",
        )

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop in reverse order: tasks and timers, peers, HTTP API, gRPC server (graceful), store."""
        self._running = False
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        if self._next_height_timer is not None:
            self._next_height_timer.cancel()
        tasks = [*self._tasks, *self._fetches]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - a task's failure must not block shutdown
                pass
        self._tasks = []
        for peer in self.peers:
            await peer.close()
        for futures in self._waiters.values():  # waiting API requests answer "pending"
            for future in futures:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()
        if self.api is not None:
            await self.api.stop(grace_s)
            self.api = None
        if self.server is not None:
            await self.server.stop(grace_s)
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
        log.info("node %s stopped", self.config.moniker)

    def _lock_home(self) -> None:
        """Hold an exclusive lock on HOME/data/LOCK while running: one process per home."""
        import fcntl

        self.home.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.home.db_path.parent / "LOCK", "w")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise NodeError(f"{self.home.path} is in use by another uocd process") from None

    def _open_store(self) -> None:
        """Open the store and app; init genesis on an empty store; apply decided-but-unapplied blocks."""
        self._lock_home()
        store = self.store = SqliteStore(self.home.db_path)
        app = self.app = Application(store)
        if app.height < 0:
            store.stage_validator_set(1, lambda: ValidatorSet.from_powers(get_validator_set(State(store, 0))).to_json())
            app.init_chain(self.genesis)
        elif app.query("status")["chain_id"] != self.chain_id:
            raise ConfigError(
                f"{self.home.db_path} holds chain {app.query('status')['chain_id']!r}, not {self.chain_id!r}"
            )
        for height in store.get_unapplied_heights():
            block_id, block_json, commit_json = store.get_block_row(height)
            log.info("applying stored block %d (decided before a restart)", height)
            self._apply_block(Block.from_json(block_json), Commit.from_json(commit_json))
        saved = store.get_sign_state()
        self._restored = SignState.from_json(saved) if saved is not None else None
        if app.height > 0:
            _, block_json, commit_json = store.get_block_row(app.height)
            self._last = (Block.from_json(block_json), Commit.from_json(commit_json))

    # =========================================================================================
    # the engine's host
    # =========================================================================================
    def reap_txs(self, height: int) -> list[bytes]:
        """Transactions for a new block: the head of the mempool within the block limits."""
        assert self.mempool is not None
        return self.mempool.reap(self.config.block_max_txs, self.config.block_max_bytes)

    def validate_block(self, block: Block) -> str | None:
        """None if every transaction of the block applies in order on the state after h−1."""
        assert self.app is not None
        try:
            results = self.app.process_proposal(block.height, list(block.txs))
        except ChainError as exc:
            return str(exc)
        for i, result in enumerate(results):
            if not result.ok:
                return f"tx {i} ({result.hash}) is invalid: {result.code}: {result.log}"
        return None

    def get_validator_set(self, height: int) -> ValidatorSet:
        """The validator set of `height` (from the store, cached)."""
        vset = self._sets.get(height)
        if vset is None:
            assert self.store is not None
            doc = self.store.get_validator_set(height)
            if doc is None:
                raise SyncError(f"no validator set is known for height {height}")
            vset = self._sets[height] = ValidatorSet.from_json(doc)
            if len(self._sets) > 16:
                self._sets.pop(min(self._sets))
        return vset

    def _start_next_height(self) -> None:
        """Start consensus at the height after the committed one (no-op if it is already running there)."""
        assert self.app is not None and self.consensus is not None
        self._next_height_timer = None
        if not self._running:
            return
        height = self.app.height + 1
        if self.consensus.height == height and self.consensus.decided is None:
            return
        last_block, last_commit = self._last if self._last is not None else (None, None)
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
        """Run the engine's actions in order."""
        for action in actions:
            if isinstance(action, Persist):
                assert self.store is not None
                self.store.save_sign_state(action.sign_state.to_json())  # durable before the next action
            elif isinstance(action, Broadcast):
                msg = action.message
                raw = codec.consensus_message_to_pb(msg).SerializeToString()
                self._remember(hashlib.sha256(raw).digest())
                self._own[(msg.height, msg.round, getattr(msg, "type", "proposal"))] = raw
                self._gossip("SendConsensus", raw)
            elif isinstance(action, ScheduleTimeout):
                self._schedule_timeout(action.timeout, action.delay_ms)
            elif isinstance(action, Decide):
                self._on_decide(action.block, action.commit)
            elif isinstance(action, RecordEvidence):
                self._record_evidence(action.evidence)
            elif isinstance(action, FetchBlock):
                task = asyncio.get_running_loop().create_task(self._fetch_block(action.height, action.block_id))
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)

    def _schedule_timeout(self, timeout: Timeout, delay_ms: int) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            if self._running and self.consensus is not None and not self.syncing:
                self._execute(self.consensus.on_timeout(timeout, now_ms()))

        handle = loop.call_later(delay_ms / 1000, fire)
        self._timers.add(handle)

    def _on_decide(self, block: Block, commit: Commit) -> None:
        """Apply a decided block, then start the next height after the block interval."""
        assert self.app is not None
        if block.height != self.app.height + 1:
            return  # block sync applied it already
        self._apply_block(block, commit)
        delay = self.config.timeouts.commit_ms / 1000
        self._next_height_timer = asyncio.get_running_loop().call_later(delay, self._start_next_height)

    def _apply_block(self, block: Block, commit: Commit) -> None:
        """finalize_block + commit, with the block, its commit and the next validator set in the same
        store transaction; then re-check the mempool."""
        assert self.app is not None and self.store is not None
        height = block.height
        store, vset = self.store, self.get_validator_set(height)
        result = self.app.finalize_block(height, list(block.txs))
        store.stage_block(height, block.id, block.to_json(), commit.to_json())
        store.stage_tx_results(height, [(r.hash, r.code, r.log) for r in result.tx_results])
        store.stage_validator_set(
            height + 1, lambda: vset.next_height(get_validator_set(State(store, height)), commit.round).to_json()
        )
        try:
            self.app.commit()
        except Exception:
            store.discard_staged()
            raise
        self._last = (block, commit)
        if self.mempool is not None:
            self.mempool.update(r.hash for r in result.tx_results)
        self._after_block(height, result)
        log.info("committed height %d (%d txs) app hash %s", height, len(block.txs), self.app.app_hash[:16])

    def _after_block(self, height: int, result: Any) -> None:
        """Resolve the commit futures of the block's transactions and call the commit listeners."""
        assert self.app is not None
        for r in result.tx_results:
            self._own_pending.pop(r.hash, None)
        if any(r.hash in self._waiters for r in result.tx_results):
            epoch = self.app.query("status")["epoch"] - (1 if result.epoch_ended else 0)
            for index, r in enumerate(result.tx_results):
                self._resolve(TxOutcome(r.hash, height, index, r.code, r.log, epoch))
        for listener in self._commit_listeners:
            try:
                listener(height)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the chain
                log.exception("commit listener failed at height %d", height)

    def _on_mempool_drop(self, tx_hash: str, code: str, reason: str) -> None:
        """A pooled tx no longer applies after a commit: its waiters learn why."""
        self._own_pending.pop(tx_hash, None)
        self._resolve(TxOutcome(tx_hash, None, -1, code, reason))

    def _resolve(self, outcome: TxOutcome) -> None:
        for future in self._waiters.pop(outcome.tx_hash, ()):
            if not future.done():
                future.set_result(outcome)

    def add_commit_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(height)` after each applied block (consensus or sync)."""
        self._commit_listeners.append(listener)

    async def wait_for_commit(self, tx_hash: str, timeout_s: float) -> TxOutcome | None:
        """The outcome of a tx once it is committed (or dropped); None after `timeout_s`. Call it in the same
        event-loop step as the submission (before any await), or check `get_tx_outcome` first."""
        future: asyncio.Future[TxOutcome | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_hash, []).append(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            return None
        finally:
            futures = self._waiters.get(tx_hash)
            if futures is not None and future in futures:
                futures.remove(future)
                if not futures:
                    del self._waiters[tx_hash]

    def get_tx_outcome(self, tx_hash: str) -> TxOutcome | None:
        """The indexed outcome of a committed tx, or None."""
        assert self.store is not None
        row = self.store.get_tx_row(tx_hash)
        return None if row is None else TxOutcome(tx_hash, row[0], row[1], row[2], row[3])

    def get_tx_raw(self, height: int, index: int) -> bytes | None:
        """The raw bytes of the `index`-th tx of the stored block at `height`."""
        assert self.store is not None
        row = self.store.get_block_row(height)
        if row is None:
            return None
        txs = row[1].get("txs", [])
        return bytes.fromhex(txs[index]) if 0 <= index < len(txs) else None

    def get_next_sequence(self, address: str) -> int:
        """The sequence of `address`'s next tx: committed, or one past this node's own pending txs."""
        assert self.mempool is not None
        committed = self.query(f"account/{address}")["sequence"]
        for tx_hash in [h for h in self._own_pending if h not in self.mempool]:
            del self._own_pending[tx_hash]
        pending = [s for s in self._own_pending.values() if s >= committed]
        return max(pending) + 1 if pending else committed

    def submit_own(self, msgs: list[Msg]) -> str:
        """Sign `msgs` with the validator key at the next sequence and admit them to the mempool (which
        relays); the tx hash, or the MempoolError refusing it. NodeError if this node has no validator key."""
        if self.signer is None:
            raise NodeError("this node has no validator key to sign with")
        assert self.mempool is not None
        sequence = self.get_next_sequence(self.signer.address)
        raw = sign_tx(self.signer, self.chain_id, sequence, msgs)
        tx_hash = self.mempool.add(raw)
        self._own_pending[tx_hash] = sequence
        assert tx_hash == compute_tx_hash(raw)
        return tx_hash

    def _record_evidence(self, evidence: Evidence) -> None:
        assert self.store is not None
        if self.store.add_evidence(evidence.key, evidence.vote_a.height, evidence.to_json()):
            log.warning("evidence recorded: double sign %s", evidence.key)

    async def _fetch_block(self, height: int, block_id: str) -> None:
        """Ask peers for a block that +2/3 precommitted but we never received."""
        for peer in self.peers:
            try:
                block = codec.block_from_pb(await peer.get_block(height, block_id))
            except (grpc.aio.AioRpcError, InvalidMessage):
                continue
            if block.id == block_id and self.consensus is not None and self._running:
                self._execute(self.consensus.on_block(block, now_ms()))
                return
        log.info("no peer had block %s at height %d", block_id[:12], height)

    # =========================================================================================
    # gossip in (NodeApi for the gRPC handlers)
    # =========================================================================================
    def _remember(self, digest: bytes) -> bool:
        """Mark a message hash seen; False if it was seen before."""
        if digest in self._seen:
            return False
        self._seen[digest] = None
        if len(self._seen) > SEEN_MESSAGES:
            self._seen.popitem(last=False)
        return True

    def submit_txs(self, raws: list[bytes]) -> list[str | MempoolError]:
        """Admit transactions to the mempool (admitted ones are relayed)."""
        assert self.mempool is not None
        return self.mempool.add_batch(raws)

    def receive_consensus(self, raw: bytes) -> bool:
        """A peer's consensus message: verified by the engine (signature, membership, height and round),
        then relayed once; InvalidMessage on bad input. Returns whether it was new."""
        assert self.consensus is not None
        digest = hashlib.sha256(raw).digest()
        if digest in self._seen or not self._running:
            return False
        msg = codec.consensus_message_from_pb(codec.parse_pb(pb.ConsensusMessage, raw))
        height = self.consensus.height
        if msg.height > height + HEIGHT_SLACK_AHEAD:
            self._sync_wake.set()
            raise InvalidMessage(f"message for height {msg.height} is implausible: this node is at height {height}")
        if msg.height < height - HEIGHT_SLACK_BEHIND:
            raise InvalidMessage(f"message for height {msg.height} is stale: this node is at height {height}")
        if self.syncing:
            return False
        actions = self.consensus.on_message(msg, now_ms())
        self._remember(digest)
        if msg.height == height:
            self._gossip("SendConsensus", raw)  # verified at our height: relay once
        elif msg.height > height + 1:
            self._sync_wake.set()
        self._execute(actions)
        return True

    def _gossip(self, what: str, payload: bytes) -> None:
        for peer in self.peers:
            peer.send(what, payload)

    async def _regossip_loop(self) -> None:
        """Re-send our own votes (every tick) and proposals (every 4th) of the current height, latest two
        rounds: a message lost while a peer was unreachable would otherwise stall its round (peers drop
        duplicates by hash)."""
        tick = 0
        while True:
            await asyncio.sleep(REGOSSIP_S)
            tick += 1
            if self.consensus is None or self.syncing:
                continue
            height, round = self.consensus.height, self.consensus.round
            for key in [k for k in self._own if k[0] < height]:
                del self._own[key]
            for (h, r, kind), raw in sorted(self._own.items()):
                if h == height and r >= round - 1 and (kind != "proposal" or tick % REGOSSIP_PROPOSAL_TICKS == 0):
                    self._gossip("SendConsensus", raw)

    async def _relay_loop(self) -> None:
        """Relay admitted transactions to every peer in batches."""
        while True:
            await asyncio.sleep(RELAY_INTERVAL_S)
            while self._relay_buffer:
                batch, self._relay_buffer[:RELAY_BATCH] = self._relay_buffer[:RELAY_BATCH], []
                self._gossip("BroadcastTxs", spb.TxBatch(txs=batch).SerializeToString())

    # -- reads for the gRPC handlers -------------------------------------------------------------
    def get_status(self) -> spb.StatusResponse:
        """This node's Status."""
        assert self.app is not None and self.store is not None and self.consensus is not None
        return spb.StatusResponse(
            chain_id=self.chain_id,
            height=self.app.height,
            app_hash=self.app.app_hash,
            latest_block_id=self._last[0].id if self._last else "",
            node_id=self.node_id,
            moniker=self.config.moniker,
            catching_up=self.syncing,
            evidence_count=self.store.count_evidence(),
            round=self.consensus.round,
            mempool_size=len(self.mempool) if self.mempool is not None else 0,
            validator_address=self.signer.address if self.signer else "",
            peers=self.reachable_peers,
            configured_peers=len(self.peers),
        )

    def get_blocks_pb(self, first: int, last: int) -> list[pb.BlockWithCommit]:
        """Stored blocks first..last with their commits, as protobuf."""
        assert self.store is not None
        return [
            codec.block_with_commit_to_pb(Block.from_json(json.loads(b)), Commit.from_json(json.loads(c)))
            for _, b, c in self.store.iterate_block_rows(first, last)
        ]

    def get_block_pb(self, height: int, block_id: str) -> pb.Block | None:
        """A stored block (if `block_id` is given, only that one)."""
        assert self.store is not None
        row = self.store.get_block_row(height)
        if row is not None and (not block_id or row[0] == block_id):
            return codec.block_to_pb(Block.from_json(row[1]))
        if block_id and self.consensus is not None and self.consensus.height == height:
            block = self.consensus.get_known_block(block_id)  # proposed at this height, not yet committed here
            return None if block is None else codec.block_to_pb(block)
        return None

    def get_evidence(self, from_height: int = 0) -> list[Evidence]:
        """The double signs this node recorded, from `from_height` up."""
        assert self.store is not None
        return [Evidence.from_json(e) for e in self.store.get_evidence(from_height)]

    def get_evidence_pb(self, from_height: int) -> list[pb.Evidence]:
        return [codec.evidence_to_pb(e) for e in self.get_evidence(from_height)]

    # =========================================================================================
    # block sync
    # =========================================================================================
    async def _poll_peers(self) -> list[PeerClient]:
        """Refresh every reachable peer's status; return the peers that answered."""
        peers = [p for p in self.peers if not p.is_backed_off()]
        results = await asyncio.gather(*(p.get_status() for p in peers), return_exceptions=True)
        answered = []
        for peer, result in zip(peers, results):
            if isinstance(result, spb.StatusResponse) and result.chain_id == self.chain_id:
                answered.append(peer)
        self.reachable_peers = len(answered)  # backed-off peers count as unreachable
        return answered

    async def _sync_loop(self) -> None:
        """Poll peers' status; sync from the best peer when behind."""
        assert self.app is not None
        stalled, last_height = 0, self.app.height
        interval = self.config.status_interval_ms / 1000
        while True:
            try:
                await asyncio.wait_for(self._sync_wake.wait(), interval)
            except TimeoutError:
                pass
            self._sync_wake.clear()
            answered = await self._poll_peers()
            if not answered:
                continue
            best = max(answered, key=lambda p: p.status.height)
            behind = best.status.height - self.app.height
            stalled = stalled + 1 if self.app.height == last_height and behind >= 1 else 0
            last_height = self.app.height
            if behind > 1 or (behind == 1 and stalled >= STALL_POLLS):
                try:
                    await self.sync_from(answered)
                except (SyncError, grpc.aio.AioRpcError) as exc:
                    log.warning("block sync stopped: %s", exc)
                stalled = 0

    async def sync_from(self, peers: list[PeerClient]) -> int:
        """Fetch, verify and apply blocks from the peers (best first) until none is ahead of us; then
        restart consensus at the next height. Returns the number of blocks applied."""
        assert self.app is not None
        applied = 0
        self.syncing = True
        try:
            while peers:
                ranked = sorted(peers, key=lambda p: -p.status.height)
                target = ranked[0].status.height
                if target <= self.app.height:
                    break
                first, last = self.app.height + 1, min(target, self.app.height + SYNC_BATCH)
                got = 0
                for peer in ranked:
                    if peer.status.height < first:
                        break
                    try:
                        got = await self._sync_range(peer, first, last)
                    except (grpc.aio.AioRpcError, SyncError) as exc:
                        log.info("sync from %s failed: %s", peer.address, exc)
                        continue
                    if got:
                        break
                if not got:
                    raise SyncError(f"no peer served blocks {first}..{last}")
                applied += got
                peers = await self._poll_peers()
        finally:
            self.syncing = False
            if applied:
                log.info("block sync applied %d blocks; now at height %d", applied, self.app.height)
                self._start_next_height()
        return applied

    async def _sync_range(self, peer: PeerClient, first: int, last: int) -> int:
        """Apply the verified blocks first..last streamed by `peer`; return how many were applied."""
        assert self.app is not None
        applied = 0
        async for item in peer.get_blocks(first, last):
            try:
                block, commit = codec.block_with_commit_from_pb(item)
            except InvalidMessage as exc:
                raise SyncError(f"peer {peer.address} sent a malformed block: {exc}") from None
            if block.height <= self.app.height:
                continue  # consensus applied it meanwhile
            self.check_synced_block(block, commit)
            self._apply_block(block, commit)
            applied += 1
            if applied % 20 == 0:
                await asyncio.sleep(0)  # let gRPC handlers run
        return applied

    def check_synced_block(self, block: Block, commit: Commit) -> None:
        """SyncError unless `block` is the next block of our chain and `commit` decides it with +2/3 of
        the validator set of its height."""
        assert self.app is not None
        height = self.app.height + 1
        hd = block.header
        last_id = self._last[0].id if self._last else ""
        if hd.height != height or hd.chain_id != self.chain_id:
            raise SyncError(f"expected block {height} of {self.chain_id}, got {hd.height} of {hd.chain_id}")
        if hd.last_block_id != last_id:
            raise SyncError(f"block {height} does not follow our block {height - 1}")
        if hd.app_hash != self.app.app_hash:
            raise SyncError(
                f"block {height} claims app hash {hd.app_hash}, ours after {height - 1} is {self.app.app_hash}"
            )
        if hd.txs_hash != compute_txs_hash(block.txs) or hd.last_commit_hash != compute_commit_hash(block.last_commit):
            raise SyncError(f"block {height}: the header does not match its transactions or last commit")
        vset = self.get_validator_set(height)
        if hd.validators_hash != vset.hash:
            raise SyncError(f"block {height}: validators hash is not the set's of this height")
        try:
            verify_commit(self.chain_id, commit, vset)
        except InvalidCommit as exc:
            raise SyncError(f"block {height}: {exc}") from None

    # =========================================================================================
    # queries
    # =========================================================================================
    def query(self, path: str, **params: Any) -> Any:
        """The application's committed state (see chain.app QUERIES)."""
        assert self.app is not None
        return self.app.query(path, **params)


async def run_node(home: Home, stop: asyncio.Event | None = None) -> None:
    """Run a node until `stop` is set (or SIGINT/SIGTERM), then stop it gracefully."""
    import signal

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    node = Node(home)
    try:
        await node.start()
    except BaseException:
        await node.stop(0)
        raise
    try:
        await stop.wait()
    finally:
        await node.stop()


__all__ = ["Node", "NodeError", "run_node"]

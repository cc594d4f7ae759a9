"""gRPC on `grpc.aio`: the node's server (Gossip, BlockSync, Status, health, reflection) and its peer clients.

Server handlers take the raw request bytes and parse them themselves, so malformed protobuf is an
`INVALID_ARGUMENT` with a clear message (not an opaque deserialization error). Every rejection is
logged and answered with a status; the node keeps running:

| input | status |
|---|---|
| malformed protobuf, bad shape, bad signature, non-validator, wrong height/round | `INVALID_ARGUMENT` |
| tx that fails `check_tx` (replayed: `wrong_sequence`) | `INVALID_ARGUMENT` (`code: reason`) |
| tx already in the mempool | `ALREADY_EXISTS` |
| mempool full | `RESOURCE_EXHAUSTED` |
| message over `max_message_bytes` | `RESOURCE_EXHAUSTED` (gRPC itself) |
| `BroadcastTxs` call over `MAX_BATCH_TXS` entries or `MAX_BATCH_BYTES` bytes | `RESOURCE_EXHAUSTED` (none admitted) |
| a call over its peer's budget (`PeerBudgets`: items and bytes per second) | `RESOURCE_EXHAUSTED` (no work done) |
| `GetBlock`/`GetEvidence`: height below 1 (0 for evidence), block id not "" or a hex sha256 | `INVALID_ARGUMENT` |
| a read request (`GetStatus` included) that is not its protobuf message | `INVALID_ARGUMENT` |

Every call is charged to its peer (`compute_peer_key`) before any work: gossip (`SendConsensus`,
`BroadcastTx[s]`: one item per message or tx entry, the request's bytes) and serving (`GetBlocks`,
`GetBlock`, `GetStatus`, `GetEvidence`: one item per call, the answer's bytes) have separate token
buckets. Serving is bounded too: `GetBlocks` streams at most MAX_BLOCKS_PER_REQUEST blocks and about
MAX_BLOCKS_BYTES_PER_REQUEST bytes, converting one block at a time with a yield to the event loop in
between; `GetEvidence` answers a page of MAX_EVIDENCE_PER_REQUEST; `BroadcastTxs` admits its entries
ADMIT_CHUNK_TXS per loop turn.

Abuse limits: the server and every client cap messages both ways at `grpc.max_message_bytes`; the server
allows `grpc.max_concurrent_streams` calls per connection, closes connections idle for
`grpc.max_connection_idle_ms`, holds at most `grpc.max_connections` connections (authenticated or not:
gRPC closes the ones past it as they arrive) and closes one whose TLS handshake has not finished after
`grpc.handshake_timeout_ms` (`ServerLimits`). Rejections are logged at INFO at most once per second per method (the
rest at DEBUG, with a count in the next INFO line), so a flood of junk costs parsing, not log volume.

Transport: mutual TLS with certificates bound to node keys, peers dialed as NODE_ID@HOST:PORT (`node.tls`
and docs/network.md). A peer client opens its channel lazily: it takes the peer's certificate, checks its
binding to the node id it dials, and pins it; a peer that presents another node's certificate, a forged
binding or no TLS is refused (UNAUTHENTICATED, logged at WARNING) and backed off like an unreachable one.
After a failure the next attempt takes the certificate again (a peer may have made a new TLS key).

Peer clients put a deadline on EVERY call. Outgoing gossip goes through two lanes per peer, each
bounded in messages (PEER_QUEUE_LIMIT) and bytes (PEER_LANE_BYTES):
consensus messages, with up to PEER_CONSENSUS_IN_FLIGHT calls in flight (the engine takes them in any
order, and one call per round trip would stall consensus on a slow link), and transaction batches,
one call at a time so that a sender's sequences arrive in order. A failing peer is backed off
exponentially (messages for it are dropped while it is backed off: consensus repeats what matters by
rounds, and a peer that fell behind syncs). Separately, block sync penalizes a peer that stalls, lies
about its height or serves an invalid block (`PeerClient.penalize`): backed off as a sync source, then
dropped as one for PEER_BAN_S.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from . import tls
from .blocks import is_block_id
from .codec import parse_pb
from .errors import (
    InvalidMessage,
    MempoolError,
    MempoolFull,
    NodeError,
    PeerIdentityError,
    RequestTooLarge,
    TxAlreadyKnown,
)
from .pb import services_pb2 as spb
from .pb import types_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_RPC_TIMEOUT_S = 2.0
REJECT_LOG_INTERVAL_S = 1.0
MAX_STATUS_TEXT = 512  # characters of a status message (and its log line): a peer's text may be echoed in it
MAX_BLOCKS_PER_REQUEST = 500  # blocks of one GetBlocks call
MAX_OPEN_BLOCK_STREAMS = 4  # GetBlocks streams one peer may hold open at once (block sync uses one)
MAX_BLOCKS_BYTES_PER_REQUEST = 32 * 1024 * 1024  # a GetBlocks stream ends after the block that passes this
MAX_EVIDENCE_PER_REQUEST = 100  # evidence of one GetEvidence answer (the caller pages by height)
MAX_BATCH_TXS = 2000  # entries of one BroadcastTxs call: each costs check_tx on the event loop
MAX_BATCH_BYTES = 4 * 1024 * 1024  # bytes of one BroadcastTxs call, checked before it is parsed
ADMIT_CHUNK_TXS = 20  # a BroadcastTxs call's entries are admitted this many per event-loop turn
MAX_TRACKED_PEERS = 1024  # per-peer budgets kept; a new peer evicts the least recently seen one
PEER_QUEUE_LIMIT = 10_000
PEER_LANE_BYTES = 64 * 1024 * 1024  # bytes waiting in one outgoing lane of one peer
PEER_MAX_STRIKES = 3  # sync faults (stall, lie, invalid block) before a peer is dropped as a sync source
PEER_BAN_S = 15.0  # how long a dropped peer is left alone as a sync source (it may be the only one ahead)
PEER_CONSENSUS_IN_FLIGHT = 16  # consensus calls in flight per peer: one at a time caps a link at 1/RTT messages
BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 5.0
SERVICE_NAMES = ("uoc.v1.Gossip", "uoc.v1.BlockSync", "uoc.v1.Status")


class NodeApi(Protocol):
    """What the gRPC handlers need from the node (all called on the event loop)."""

    def submit_txs(self, raws: list[bytes], origin: str | None = None) -> list[str | MempoolError]: ...

    def receive_consensus(self, raw: bytes, origin: str | None = None) -> bool: ...

    def get_status(self) -> spb.StatusResponse: ...

    def iterate_blocks_pb(self, first: int, last: int) -> Iterator[pb.BlockWithCommit]: ...

    def get_block_pb(self, height: int, block_id: str) -> pb.Block | None: ...

    def get_evidence_pb(self, from_height: int, limit: int) -> list[pb.Evidence]: ...


def compute_grpc_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Channel and server options: message size limits and reconnect backoff."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


@dataclass(frozen=True)
class ServerLimits:
    """The server's connection limits ([grpc] in config.toml): calls per connection, idle and handshake
    timeouts, and open connections in total (gRPC closes the ones past it as they arrive, before TLS)."""

    max_concurrent_streams: int = 100
    max_connection_idle_ms: int = 300_000
    max_connections: int = 256
    handshake_timeout_ms: int = 10_000


def compute_server_options(max_message_bytes: int, limits: ServerLimits) -> list[tuple[str, Any]]:
    """The server's options: the shared ones plus its connection limits."""
    return [
        *compute_grpc_options(max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
        ("grpc.max_connection_idle_ms", limits.max_connection_idle_ms),
        ("grpc.max_allowed_incoming_connections", limits.max_connections),
        ("grpc.server_handshake_timeout_ms", limits.handshake_timeout_ms),
    ]


def compute_status_code(exc: Exception) -> grpc.StatusCode:
    """The gRPC status answering a rejected request."""
    if isinstance(exc, TxAlreadyKnown):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(exc, (MempoolFull, RequestTooLarge)):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return grpc.StatusCode.INVALID_ARGUMENT


def compute_error_text(exc: Exception) -> str:
    """The status message: the mempool rule's code and the reason, cut at MAX_STATUS_TEXT characters (gRPC
    carries it percent-encoded in a trailer, and a client drops a call whose trailers pass 16 KiB)."""
    text = f"{exc.code}: {exc}" if isinstance(exc, MempoolError) else str(exc)
    return text if len(text) <= MAX_STATUS_TEXT else text[: MAX_STATUS_TEXT - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Per-peer budgets
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeerLimits:
    """Token-bucket rates and sizes of one peer's budget (one for gossip, one for serving).

    An item is one consensus message, one transaction entry or one read call; bytes are the request's
    (gossip) or the answer's (serving). A burst must hold a call of `max_message_bytes`."""

    items_per_s: float = 5000.0
    items_burst: int = 10_000
    bytes_per_s: float = 32 * 1024 * 1024
    bytes_burst: int = 64 * 1024 * 1024


class TokenBucket:
    """`burst` tokens refilled at `rate_per_s` on the monotonic clock."""

    __slots__ = ("rate_per_s", "burst", "tokens", "at")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s, self.burst = rate_per_s, burst
        self.tokens, self.at = float(burst), now

    def refill(self, now: float) -> float:
        """The tokens now."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate_per_s)
        self.at = now
        return self.tokens


class PeerBudget:
    """One peer's items and bytes buckets for one kind of call."""

    __slots__ = ("items", "bytes")

    def __init__(self, limits: PeerLimits, now: float) -> None:
        self.items = TokenBucket(limits.items_per_s, limits.items_burst, now)
        self.bytes = TokenBucket(limits.bytes_per_s, limits.bytes_burst, now)

    def take(self, items: int, nbytes: int, now: float) -> bool:
        """Spend `items` and `nbytes` if both buckets hold them; else spend nothing and return False."""
        if self.items.refill(now) < items or self.bytes.refill(now) < nbytes:
            return False
        self.items.tokens -= items
        self.bytes.tokens -= nbytes
        return True

    def take_bytes_after(self, nbytes: int, now: float) -> bool:
        """Spend `nbytes` of an answer already built if any byte token is left (the bucket may go below
        zero by one answer, which the next calls pay back); False if none was left."""
        if self.bytes.refill(now) <= 0:
            return False
        self.bytes.tokens -= nbytes
        return True


def compute_peer_key(context: grpc.aio.ServicerContext) -> str:
    """Whom a call's budget is charged to: the caller's node id (mutual TLS: one budget per node, however
    many connections it opens), or the transport peer (`ipv4:HOST:PORT`) on a plaintext server."""
    node_id = tls.get_peer_node_id(context)
    return f"node:{node_id}" if node_id else str(context.peer())


class PeerBudgets:
    """Budgets per (peer, kind), at most MAX_TRACKED_PEERS peers (least recently seen evicted)."""

    def __init__(self, limits: PeerLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or PeerLimits()
        self.clock = clock
        self._budgets: OrderedDict[tuple[str, str], PeerBudget] = OrderedDict()

    def get(self, peer: str, kind: str) -> tuple[PeerBudget, float]:
        """The budget of `peer` for `kind` ("gossip" or "serve") and the time now."""
        now = self.clock()
        key = (peer, kind)
        budget = self._budgets.get(key)
        if budget is None:
            while len(self._budgets) >= 2 * MAX_TRACKED_PEERS:
                self._budgets.popitem(last=False)
            budget = self._budgets[key] = PeerBudget(self.limits, now)
        self._budgets.move_to_end(key)
        return budget, now

    def take(self, peer: str, kind: str, items: int, nbytes: int) -> bool:
        """Spend from `peer`'s `kind` budget; False (nothing spent) if it is short."""
        budget, now = self.get(peer, kind)
        return budget.take(items, nbytes, now)

    def take_bytes_after(self, peer: str, kind: str, nbytes: int) -> bool:
        """Charge an answer's bytes (see PeerBudget.take_bytes_after)."""
        budget, now = self.get(peer, kind)
        return budget.take_bytes_after(nbytes, now)


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------
class Handlers:
    """The Gossip, BlockSync and Status handlers over a NodeApi, each call charged to its peer's budget."""

    def __init__(self, node: NodeApi, limits: PeerLimits | None = None) -> None:
        self.node = node
        self.budgets = PeerBudgets(limits)
        self.open_block_streams: dict[str, int] = {}  # peer -> its GetBlocks streams being served
        self.rejected: dict[str, int] = {}  # method -> rejected calls
        self.received_bytes = 0  # gossip payload bytes taken from peers (charged to their budgets)
        self._logged_at: dict[str, float] = {}  # method -> when its last INFO line was logged
        self._unlogged: dict[str, int] = {}  # method -> rejections since then

    async def _reject(self, context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
        code = compute_status_code(exc)
        self.rejected[method] = self.rejected.get(method, 0) + 1
        self._log_rejection(method, context.peer(), code, exc)
        await context.abort(code, compute_error_text(exc))

    async def _charge(self, context: grpc.aio.ServicerContext, method: str, kind: str, items: int, nbytes: int) -> None:
        """Spend `items` and `nbytes` of the caller's `kind` budget, or abort with RESOURCE_EXHAUSTED."""
        self.received_bytes += nbytes
        if not self.budgets.take(compute_peer_key(context), kind, items, nbytes):
            exc = RequestTooLarge(f"over this peer's {kind} budget ({items} items, {nbytes} bytes): slow down")
            await self._reject(context, method, exc)
            raise AssertionError("_reject aborts the call")

    def _log_rejection(self, method: str, peer: str, code: grpc.StatusCode, exc: Exception) -> None:
        """INFO at most once per REJECT_LOG_INTERVAL_S per method (with the count since), DEBUG otherwise."""
        now = time.monotonic()
        quiet = isinstance(exc, TxAlreadyKnown) or now - self._logged_at.get(method, -1e9) < REJECT_LOG_INTERVAL_S
        if quiet:
            self._unlogged[method] = self._unlogged.get(method, 0) + 1
            log.debug("%s from %s rejected (%s): %s", method, peer, code.name, compute_error_text(exc))
            return
        self._logged_at[method] = now
        since = self._unlogged.pop(method, 0)
        more = f" (and {since} more since the last such line)" if since else ""
        log.info("%s from %s rejected (%s): %s%s", method, peer, code.name, compute_error_text(exc), more)

    async def broadcast_tx(self, request: bytes, context: grpc.aio.ServicerContext) -> spb.TxAck:
        await self._charge(context, "BroadcastTx", "gossip", 1, len(request))
        result: str | Exception
        try:
            tx = parse_pb(pb.Tx, request)
            result = self.node.submit_txs([bytes(tx.raw)])[0]
        except InvalidMessage as exc:
            result = exc
        if isinstance(result, Exception):
            await self._reject(context, "BroadcastTx", result)
            raise AssertionError("_reject aborts the call")
        return spb.TxAck(hash=result, accepted=True)

    async def broadcast_txs(self, request: bytes, context: grpc.aio.ServicerContext) -> spb.TxBatchAck:
        try:
            if len(request) > MAX_BATCH_BYTES:
                raise RequestTooLarge(
                    f"a BroadcastTxs call carries at most {MAX_BATCH_BYTES} bytes, got {len(request)}"
                )
        except RequestTooLarge as exc:
            await self._reject(context, "BroadcastTxs", exc)
        await self._charge(context, "BroadcastTxs", "gossip", 0, len(request))
        try:
            batch = parse_pb(spb.TxBatch, request)
            if len(batch.txs) > MAX_BATCH_TXS:
                raise RequestTooLarge(f"a BroadcastTxs call carries at most {MAX_BATCH_TXS} txs, got {len(batch.txs)}")
        except (InvalidMessage, RequestTooLarge) as exc:
            await self._reject(context, "BroadcastTxs", exc)
        await self._charge(context, "BroadcastTxs", "gossip", len(batch.txs), 0)
        raws = [bytes(t) for t in batch.txs]
        origin = tls.get_peer_node_id(context)  # a peer's relay: what it sent us is not sent back to it
        unique = list(dict.fromkeys(raws))  # a repeated entry is checked once, as the mempool does in one batch
        outcome: dict[bytes, str | MempoolError] = {}
        for i in range(0, len(unique), ADMIT_CHUNK_TXS):
            if i:
                await asyncio.sleep(0)  # a chunk's signature checks at a time, then the loop's other work
            chunk = unique[i : i + ADMIT_CHUNK_TXS]
            outcome.update(zip(chunk, self.node.submit_txs(chunk, origin)))
        results: list[str | MempoolError] = []
        for raw in raws:
            repeated = raw not in outcome
            results.append(
                TxAlreadyKnown("this transaction is already in the batch", tx_hash="") if repeated else outcome.pop(raw)
            )
        acks, errors = [], []
        for result in results:
            if isinstance(result, Exception):
                acks.append(spb.TxAck(hash=result.tx_hash, accepted=False))
                errors.append("" if isinstance(result, TxAlreadyKnown) else compute_error_text(result))
            else:
                acks.append(spb.TxAck(hash=result, accepted=True))
                errors.append("")
        return spb.TxBatchAck(acks=acks, errors=errors)

    async def send_consensus(self, request: bytes, context: grpc.aio.ServicerContext) -> spb.Ack:
        await self._charge(context, "SendConsensus", "gossip", 1, len(request))
        try:
            relayed = self.node.receive_consensus(request, tls.get_peer_node_id(context))
        except InvalidMessage as exc:
            await self._reject(context, "SendConsensus", exc)
        return spb.Ack(relayed=relayed)

    async def get_blocks(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.BlockWithCommit]:
        """Stream stored blocks, at most MAX_BLOCKS_PER_REQUEST and about MAX_BLOCKS_BYTES_PER_REQUEST, one
        converted at a time with a yield to the event loop between blocks; the caller's serve budget pays
        the bytes (the stream ends when it runs dry; RESOURCE_EXHAUSTED if it was dry at the start). A peer
        holds at most MAX_OPEN_BLOCK_STREAMS streams at once (RESOURCE_EXHAUSTED beyond): each one it does
        not read keeps a block and gRPC's window of it in memory."""
        await self._charge(context, "GetBlocks", "serve", 1, 0)
        try:
            span = parse_pb(spb.BlockRange, request)
            if span.from_height < 1 or span.to_height < span.from_height:
                raise InvalidMessage(f"bad block range {span.from_height}..{span.to_height}")
        except InvalidMessage as exc:
            await self._reject(context, "GetBlocks", exc)
        last = min(span.to_height, span.from_height + MAX_BLOCKS_PER_REQUEST - 1)
        peer, sent = compute_peer_key(context), 0
        if self.open_block_streams.get(peer, 0) >= MAX_OPEN_BLOCK_STREAMS:
            busy = RequestTooLarge(f"this peer has {MAX_OPEN_BLOCK_STREAMS} block streams open: read or cancel one")
            await self._reject(context, "GetBlocks", busy)
        self.open_block_streams[peer] = self.open_block_streams.get(peer, 0) + 1
        try:
            for row in self.node.iterate_blocks_pb(span.from_height, last):
                size = row.ByteSize()
                if not self.budgets.take_bytes_after(peer, "serve", size):
                    if not sent:
                        dry = RequestTooLarge("over this peer's serve budget: slow down")
                        await self._reject(context, "GetBlocks", dry)
                    return
                yield row  # waits while the caller does not read: a stream it never reads stays open
                sent += size
                if sent >= MAX_BLOCKS_BYTES_PER_REQUEST:
                    return
                await asyncio.sleep(0)  # one block's conversion at a time, then the loop's other work
        finally:
            self.open_block_streams[peer] -= 1
            if not self.open_block_streams[peer]:
                del self.open_block_streams[peer]

    async def get_block(self, request: bytes, context: grpc.aio.ServicerContext) -> pb.Block:
        await self._charge(context, "GetBlock", "serve", 1, 0)
        try:
            req = parse_pb(spb.GetBlockRequest, request)
            if req.height < 1 or not (req.block_id == "" or is_block_id(req.block_id)):
                raise InvalidMessage(
                    f"bad block request: height {req.height} (must be ≥ 1), block id {req.block_id[:70]!r}"
                    " (must be empty or 64 lowercase hex characters)"
                )
        except InvalidMessage as exc:
            await self._reject(context, "GetBlock", exc)
        block = self.node.get_block_pb(req.height, req.block_id)
        if block is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no block {req.block_id or ''} at height {req.height}")
            raise AssertionError("context.abort raises")
        self.budgets.take_bytes_after(compute_peer_key(context), "serve", block.ByteSize())
        return block

    async def get_status(self, request: bytes, context: grpc.aio.ServicerContext) -> spb.StatusResponse:
        await self._charge(context, "GetStatus", "serve", 1, 0)
        try:
            parse_pb(spb.StatusRequest, request)
        except InvalidMessage as exc:
            await self._reject(context, "GetStatus", exc)
        return self.node.get_status()

    async def get_evidence(self, request: bytes, context: grpc.aio.ServicerContext) -> spb.EvidenceList:
        """At most MAX_EVIDENCE_PER_REQUEST pieces from `from_height` up (by height): the caller pages on."""
        await self._charge(context, "GetEvidence", "serve", 1, 0)
        try:
            req = parse_pb(spb.EvidenceRequest, request)
            if req.from_height < 0:
                raise InvalidMessage(f"bad evidence request: from_height {req.from_height}")
        except InvalidMessage as exc:
            await self._reject(context, "GetEvidence", exc)
        answer = spb.EvidenceList(evidence=self.node.get_evidence_pb(req.from_height, MAX_EVIDENCE_PER_REQUEST))
        self.budgets.take_bytes_after(compute_peer_key(context), "serve", answer.ByteSize())
        return answer


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()


def _unary(behavior: Callable[..., Awaitable[Any]]) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(behavior, response_serializer=_serialize)


def build_generic_handlers(handlers: Handlers) -> list[grpc.GenericRpcHandler]:
    """The three uoc services with raw-bytes request handlers."""
    stream = grpc.unary_stream_rpc_method_handler(
        handlers.get_blocks, response_serializer=lambda m: m.SerializeToString()
    )
    return [
        grpc.method_handlers_generic_handler(
            "uoc.v1.Gossip",
            {
                "BroadcastTx": _unary(handlers.broadcast_tx),
                "BroadcastTxs": _unary(handlers.broadcast_txs),
                "SendConsensus": _unary(handlers.send_consensus),
            },
        ),
        grpc.method_handlers_generic_handler(
            "uoc.v1.BlockSync", {"GetBlocks": stream, "GetBlock": _unary(handlers.get_block)}
        ),
        grpc.method_handlers_generic_handler(
            "uoc.v1.Status", {"GetStatus": _unary(handlers.get_status), "GetEvidence": _unary(handlers.get_evidence)}
        ),
    ]


class Server:
    """The node's grpc.aio server with the uoc services, health and reflection."""

    def __init__(
        self,
        node: NodeApi,
        listen: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        limits: ServerLimits = ServerLimits(),
        handlers: Callable[[NodeApi], Handlers] = Handlers,
        credentials: grpc.ServerCredentials | None,
    ) -> None:
        self.listen = listen
        self.credentials = credentials  # None: plaintext (benchmarks only, see node.node.PLAINTEXT_ENV)
        self.server = grpc.aio.server(options=compute_server_options(max_message_bytes, limits))
        self.handlers = handlers(node)  # a test double or devnet.adversary may serve other handlers
        self.server.add_generic_rpc_handlers(build_generic_handlers(self.handlers))
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        self.port = 0

    async def start(self) -> int:
        """Bind and start serving; return the bound port."""
        try:
            if self.credentials is None:
                self.port = self.server.add_insecure_port(self.listen)
            else:
                self.port = self.server.add_secure_port(self.listen, self.credentials)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise NodeError(f"cannot listen on {self.listen} (is another process using it?)")
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        tls_text = "mutual TLS" if self.credentials is not None else "PLAINTEXT"
        log.info("gRPC listening on %s (port %d, %s)", self.listen, self.port, tls_text)
        return self.port

    async def stop(self, grace_s: float = 1.0) -> None:
        """Graceful shutdown: report NOT_SERVING, refuse new calls, let running calls end within `grace_s`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


# ---------------------------------------------------------------------------------------------
# Peer clients
# ---------------------------------------------------------------------------------------------
PEER_METHODS: dict[str, tuple[str, Any]] = {  # PeerClient.call's names: (path, response type)
    "SendConsensus": ("/uoc.v1.Gossip/SendConsensus", spb.Ack),
    "BroadcastTxs": ("/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck),
    "BroadcastTx": ("/uoc.v1.Gossip/BroadcastTx", spb.TxAck),
    "GetStatus": ("/uoc.v1.Status/GetStatus", spb.StatusResponse),
    "GetEvidence": ("/uoc.v1.Status/GetEvidence", spb.EvidenceList),
    "GetBlock": ("/uoc.v1.BlockSync/GetBlock", pb.Block),
}


def compute_backoff_s(failures: int) -> float:
    """Seconds to leave a peer alone after `failures` consecutive failures (exponential, capped)."""
    return 0.0 if failures <= 0 else min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(failures - 1, 16))


def compute_connect_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """The error a call raises when the channel could not be opened (callers handle it as any failed call)."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class PeerClient:
    """One peer (NODE_ID@HOST:PORT): a channel pinned to its certificate, a deadline on every call, a bounded
    gossip queue and backoff. `identity` None is plaintext (benchmarks only); `pins` gets the verified certificate."""

    def __init__(
        self,
        address: str,
        *,
        identity: tls.TlsIdentity | None,
        pins: tls.PeerPins | None = None,
        rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.address = address
        self.node_id, self.host_port = tls.parse_peer_address(address)
        self.identity = identity
        self.pins = pins
        self.rpc_timeout_s = rpc_timeout_s
        self._options = compute_grpc_options(max_message_bytes)
        self.channel: grpc.aio.Channel | None = None
        self._pinned: bytes | None = None  # the peer certificate (PEM) the channel trusts
        self._recheck = False  # take the peer's certificate again before the next call (after a failure)
        self._connecting = asyncio.Lock()
        self._methods: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}  # of the current channel
        self.sent_bytes = 0  # gossip payload bytes queued for this peer
        self._queues: dict[str, asyncio.Queue[tuple[str, bytes]]] = {}  # lane -> gossip waiting to be sent
        self._queued_bytes: dict[str, int] = {}  # lane -> payload bytes waiting in it
        self._senders: list[asyncio.Task] = []
        self._in_flight: set[asyncio.Task] = set()
        self.failures = 0
        self.retry_at = 0.0
        self.dropped = 0
        self.status: spb.StatusResponse | None = None
        self.strikes = 0  # sync faults since it last served a verified block
        self.penalized_until = 0.0

    # -- state ------------------------------------------------------------------------------
    def is_backed_off(self) -> bool:
        """True while the peer is left alone after failures."""
        return time.monotonic() < self.retry_at

    def is_penalized(self) -> bool:
        """True while the peer is not used as a sync source (it stalled, lied or served an invalid block)."""
        return time.monotonic() < self.penalized_until

    def penalize(self, reason: str) -> None:
        """A sync fault: back the peer off as a sync source (exponentially), and drop it as one for
        PEER_BAN_S at the PEER_MAX_STRIKES-th fault. Gossip to it goes on (votes cost it nothing to lie about)."""
        self.strikes += 1
        if self.strikes >= PEER_MAX_STRIKES:
            self.penalized_until = time.monotonic() + PEER_BAN_S
            self.strikes = 0
            log.warning("peer %s dropped as a sync source for %.0f s: %s", self.address, PEER_BAN_S, reason)
            return
        wait = compute_backoff_s(self.strikes + 3)  # 0.8 s, 1.6 s, …
        self.penalized_until = time.monotonic() + wait
        log.warning(
            "peer %s backed off as a sync source for %.1f s (fault %d of %d): %s",
            self.address,
            wait,
            self.strikes,
            PEER_MAX_STRIKES,
            reason,
        )

    def credit(self) -> None:
        """The peer served a verified block: forget its faults."""
        self.strikes = 0

    def _on_success(self) -> None:
        if self.failures:
            log.info("peer %s is reachable again", self.address)
        self.failures, self.retry_at = 0, 0.0

    def _on_failure(self, what: str, exc: grpc.aio.AioRpcError) -> None:
        self.failures += 1
        self.retry_at = time.monotonic() + compute_backoff_s(self.failures)
        self._recheck = True
        level = logging.INFO if self.failures == 1 else logging.DEBUG
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            level = logging.WARNING if self.failures == 1 else logging.INFO
        log.log(
            level,
            "peer %s: %s failed (%s: %s), retry in %.1fs",
            self.address,
            what,
            exc.code().name,
            exc.details(),
            self.retry_at - time.monotonic(),
        )

    # -- the channel: pinned to the peer's verified certificate ------------------------------
    async def _ensure_channel(self, what: str) -> grpc.aio.Channel:
        """The channel to the peer, opened (or re-pinned after a failure) first; a failed handshake or a
        certificate not bound to the node id raises AioRpcError (UNAVAILABLE or UNAUTHENTICATED) and backs off."""
        if self.channel is not None and not self._recheck:
            return self.channel
        async with self._connecting:
            if self.channel is not None and not self._recheck:
                return self.channel
            if self.identity is None:
                self._recheck = False
                if self.channel is None:
                    self.channel = grpc.aio.insecure_channel(self.host_port, options=self._options)
                return self.channel
            try:
                der = await tls.fetch_peer_certificate(self.host_port, self.identity, self.rpc_timeout_s)
                tls.verify_certificate(der, self.node_id)
            except PeerIdentityError as exc:
                error = compute_connect_error(grpc.StatusCode.UNAUTHENTICATED, f"TLS identity refused: {exc}")
                self._on_failure(what, error)
                raise error from None
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                text = str(exc) or type(exc).__name__
                error = compute_connect_error(grpc.StatusCode.UNAVAILABLE, f"TLS handshake failed: {text}")
                self._on_failure(what, error)
                raise error from None
            pem = tls.load_certificate(der).public_bytes(serialization.Encoding.PEM)
            self._recheck = False
            if self.pins is not None:
                self.pins.pin(self.node_id, pem)
            if self.channel is not None and pem == self._pinned:
                return self.channel
            if self.channel is not None:
                log.info("peer %s presents a new certificate (bound to its node key): re-pinned", self.address)
                await self.channel.close()
            self._pinned, self._methods = pem, {}
            options = [*self._options, *tls.compute_channel_options(self.node_id)]
            credentials = tls.build_channel_credentials(self.identity, pem)
            self.channel = grpc.aio.secure_channel(self.host_port, credentials, options=options)
            return self.channel

    # -- calls with deadlines ---------------------------------------------------------------
    async def call(self, what: str, request: bytes, timeout_s: float | None = None) -> Any:
        """One unary call with a deadline; failures count towards backoff and are re-raised."""
        channel = await self._ensure_channel(what)
        method = self._methods.get(what)
        if method is None:
            path, response_type = PEER_METHODS[what]
            method = channel.unary_unary(path, request_serializer=None, response_deserializer=response_type.FromString)
            self._methods[what] = method
        try:
            response = await method(request, timeout=timeout_s or self.rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self._on_failure(what, exc)
            raise
        self._on_success()
        return response

    async def get_status(self) -> spb.StatusResponse:
        """The peer's status (also kept as `self.status`)."""
        self.status = await self.call("GetStatus", spb.StatusRequest().SerializeToString())
        return self.status

    async def get_block(self, height: int, block_id: str = "") -> pb.Block:
        """One stored block of the peer."""
        return await self.call("GetBlock", spb.GetBlockRequest(height=height, block_id=block_id).SerializeToString())

    async def get_blocks(
        self, first: int, last: int, timeout_s: float = 30.0
    ) -> AsyncGenerator[pb.BlockWithCommit, None]:
        """Stream blocks first..last with their commits (the deadline covers the whole stream)."""
        request = spb.BlockRange(from_height=first, to_height=last).SerializeToString()
        channel = await self._ensure_channel("GetBlocks")
        stream = channel.unary_stream(
            "/uoc.v1.BlockSync/GetBlocks", request_serializer=None, response_deserializer=pb.BlockWithCommit.FromString
        )
        call = stream(request, timeout=timeout_s)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self._on_failure("GetBlocks", exc)
            raise
        finally:
            call.cancel()  # the caller stopped reading (a stalling peer): end the call now, not at its deadline
        self._on_success()

    # -- gossip queues ----------------------------------------------------------------------
    def send(self, what: str, payload: bytes) -> None:
        """Queue a gossip message in its lane; dropped when the peer is backed off or the lane is full
        (PEER_QUEUE_LIMIT messages or PEER_LANE_BYTES bytes)."""
        lane = "consensus" if what == "SendConsensus" else "txs"
        queue = self._queues.get(lane)
        if queue is None:
            queue = self._queues[lane] = asyncio.Queue(PEER_QUEUE_LIMIT)
            self._queued_bytes[lane] = 0
            loop = asyncio.get_running_loop()
            window = PEER_CONSENSUS_IN_FLIGHT if lane == "consensus" else 1
            task = loop.create_task(self._send_loop(lane, queue, window), name=f"peer {self.address} {lane}")
            self._senders.append(task)
        if self.is_backed_off() or queue.full() or self._queued_bytes[lane] + len(payload) > PEER_LANE_BYTES:
            self.dropped += 1
            return
        self._queued_bytes[lane] += len(payload)
        self.sent_bytes += len(payload)
        queue.put_nowait((what, payload))

    def get_queued_bytes(self, lane: str) -> int:
        """Payload bytes waiting in a lane ("consensus" or "txs")."""
        return self._queued_bytes.get(lane, 0)

    async def _send_loop(self, lane: str, queue: asyncio.Queue[tuple[str, bytes]], window: int) -> None:
        """Send a lane's messages in order with up to `window` calls in flight (1: each waits for the last)."""
        slots = asyncio.Semaphore(window)

        def on_sent(done: asyncio.Task[None]) -> None:
            self._in_flight.discard(done)
            slots.release()

        while True:
            what, payload = await queue.get()
            self._queued_bytes[lane] -= len(payload)
            if self.is_backed_off():
                self.dropped += 1
            elif window == 1:
                await self._send_one(what, payload)
            else:
                await slots.acquire()
                task = asyncio.get_running_loop().create_task(self._send_one(what, payload))
                self._in_flight.add(task)
                task.add_done_callback(on_sent)

    async def _send_one(self, what: str, payload: bytes) -> None:
        """One gossip call; a refusal is logged at debug level (unreachable peers are backed off by `call`)."""
        try:
            await self.call(what, payload)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                log.debug("peer %s refused %s: %s %s", self.address, what, exc.code().name, exc.details())

    async def close(self) -> None:
        """Stop the senders and the calls in flight, and close the channel."""
        tasks = [*self._senders, *self._in_flight]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.channel is not None:
            await self.channel.close()

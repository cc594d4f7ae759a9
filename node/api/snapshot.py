"""What the live dashboard shows (the snapshot of the committed state) and the hub that pushes it to the open
event streams after each commit (`DashboardHub`); the page and its routes are in `dashboard`.

The snapshot is computed at most once per committed block, from bounded queries of the committed state
(the last `HISTORY_EPOCHS` epoch records, read once per epoch; the first `MAX_VALIDATORS` validators,
`MAX_MODELS` models, `MAX_PROPOSALS` open proposals) and the node's summaries of its latest blocks; it is computed only
when a page, a snapshot or a stream asks for it (a node nobody watches does no dashboard work). After
each commit the hub encodes one SSE frame and hands the same bytes to every open stream: O(1) work per
commit per stream. Each stream has a queue of `STREAM_QUEUE` frames; a client that falls further behind
is dropped (its connection aborted; its EventSource reconnects and gets the current snapshot). Streams
are capped in total and per client ([api] max_event_streams, max_event_streams_per_client).

Every integer that may exceed 2^53 (prices, votes, stakes) is a decimal string in the snapshot, so the
page shows it exactly. The price's `confidence` and `status` are null until the chain reports them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..errors import ApiRequestError
from .limits import compute_client_key
from .openapi import INT, STR, Schema, obj
from .ports import ApiNode

log = logging.getLogger("node.api")

HISTORY_EPOCHS = 120  # epoch records the price chart shows
MAX_VALIDATORS = 100  # validators listed (the first by address)
MAX_MODELS = 100  # active models listed
MAX_PROPOSALS = 20  # open proposals listed (deposit period, then voting period, each by id)
STREAM_QUEUE = 4  # frames a stream may have waiting before its client is dropped as too slow


# =============================================================================================
# the snapshot
# =============================================================================================
def text(value: int | None) -> str | None:
    """An integer as its decimal string (exact in JavaScript), None as None."""
    return None if value is None else str(value)


def compute_price_view(pricing: dict[str, Any]) -> dict[str, Any]:
    """The price panel: the unit-of-compute price in force, its epoch, and its `confidence` and `status` when the
    chain reports them (null until then: the page shows them as soon as `/v1/pricing` carries them)."""
    return {
        "unit_of_compute_price": text(pricing["unit_of_compute_price"]),
        "denom": pricing["denom"],
        "epoch": pricing["epoch"],
        "confidence": pricing.get("confidence_str", pricing.get("confidence")),  # exact: a decimal string
        "status": pricing.get("status"),
    }


def compute_history_view(node: ApiNode) -> list[dict[str, Any]]:
    """The last HISTORY_EPOCHS epoch records, oldest first: price, voters and the votes' range."""
    page = node.query("history", **{"pagination.limit": HISTORY_EPOCHS, "pagination.reverse": True})
    return [
        {
            "epoch": r["epoch"],
            "price": text(r["price"]),
            "voters": r["voters"],
            "non_voters": r["non_voters"],
            "min_vote": text(r["min_vote"]),
            "max_vote": text(r["max_vote"]),
        }
        for r in reversed(page["epochs"])
    ]


def compute_validators_view(node: ApiNode) -> list[dict[str, Any]]:
    """The first MAX_VALIDATORS validators by address: power, stake, jail, vote in force and its distance from the
    price (basis points)."""
    page = node.query("validators", **{"pagination.limit": MAX_VALIDATORS})
    return [
        {
            "address": v["address"],
            "power": v["power"],
            "stake": text(v["stake"]),
            "jailed": v["jailed"],
            "last_vote": text(v["last_vote"]),
            "last_vote_epoch": v["last_vote_epoch"],
            "vote_distance_bps": v["vote_distance_bps"],
        }
        for v in page["validators"]
    ]


def compute_models_view(node: ApiNode) -> list[dict[str, Any]]:
    """The first MAX_MODELS active models: units of compute per token and price per token."""
    page = node.query("models", **{"pagination.limit": MAX_MODELS})
    return [
        {
            "id": m["id"],
            "units_of_compute_per_token": text(m["units_of_compute_per_token"]),
            "price_per_token": m["price_per_token_str"],
        }
        for m in page["models"]
    ]


def describe_content(content: dict[str, Any]) -> str:
    """A proposal's content in one short line: its fields as name=value (at most 120 characters)."""
    fields = sorted((k, v) for k, v in content.items() if k != "@type")
    line = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}" for k, v in fields)
    return line if len(line) <= 120 else line[:119] + "\u2026"


def compute_proposals_view(node: ApiNode) -> list[dict[str, Any]]:
    """At most MAX_PROPOSALS open proposals (in their deposit period, then their voting period) with the deposit
    held and, once voting, the live tally."""
    found: list[dict[str, Any]] = []
    for status in ("deposit_period", "voting_period"):
        limit = MAX_PROPOSALS - len(found)
        if limit > 0:
            found += node.query("proposals", status=status, **{"pagination.limit": limit})["proposals"]
    views = []
    for p in found:
        tally = node.query("proposal", id=p["id"])["tally"] if p["status"] == "voting_period" else None
        views.append(
            {
                "id": p["id"],
                "kind": p["content"].get("@type", ""),
                "summary": describe_content(p["content"]),
                "status": p["status"],
                "total_deposit": text(p["total_deposit"]),
                "voting_end_height": p["voting_end_height"],
                "tally": None if tally is None else {k: text(v) for k, v in tally.items()},
            }
        )
    return views


def compute_snapshot(node: ApiNode, moniker: str, histories: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """What the dashboard shows of the committed state now (bounded: see the module's limits). The price history
    changes only when an epoch ends: `histories` keeps it for the current epoch (and is emptied at the next)."""
    status = node.query("status")
    epoch = status["epoch"]
    if epoch not in histories:
        histories.clear()
        histories[epoch] = compute_history_view(node)
    return {
        "chain_id": status["chain_id"],
        "moniker": moniker,
        "height": status["height"],
        "epoch": epoch,
        "price": compute_price_view(node.query("pricing")),
        "history": histories[epoch],
        "validators": compute_validators_view(node),
        "models": compute_models_view(node),
        "proposals": compute_proposals_view(node),
        "blocks": list(reversed(node.recent_blocks)),
    }


NULLABLE_STR: Schema = {"type": "string", "nullable": True}
NULLABLE_INT: Schema = {"type": "integer", "nullable": True}
SNAPSHOT_SCHEMA = obj(
    {
        "chain_id": STR,
        "moniker": STR,
        "height": INT,
        "epoch": INT,
        "price": obj(
            {
                "unit_of_compute_price": STR,
                "denom": STR,
                "epoch": INT,
                "confidence": {"nullable": True},
                "status": NULLABLE_STR,
            }
        ),
        "history": {
            "type": "array",
            "items": obj(
                {
                    "epoch": INT,
                    "price": STR,
                    "voters": INT,
                    "non_voters": INT,
                    "min_vote": NULLABLE_STR,
                    "max_vote": NULLABLE_STR,
                }
            ),
        },
        "validators": {
            "type": "array",
            "items": obj(
                {
                    "address": STR,
                    "power": INT,
                    "stake": STR,
                    "jailed": {"type": "boolean"},
                    "last_vote": NULLABLE_STR,
                    "last_vote_epoch": NULLABLE_INT,
                    "vote_distance_bps": NULLABLE_INT,
                }
            ),
        },
        "models": {
            "type": "array",
            "items": obj({"id": STR, "units_of_compute_per_token": STR, "price_per_token": STR}),
        },
        "proposals": {
            "type": "array",
            "items": obj(
                {
                    "id": INT,
                    "kind": STR,
                    "summary": STR,
                    "status": STR,
                    "total_deposit": STR,
                    "voting_end_height": NULLABLE_INT,
                    "tally": {"type": "object", "nullable": True, "additionalProperties": STR},
                }
            ),
        },
        "blocks": {
            "type": "array",
            "items": obj(
                {
                    "height": INT,
                    "block_id": STR,
                    "time_ms": INT,
                    "proposer": STR,
                    "txs": INT,
                    "evidence": INT,
                    "round": INT,
                    "signatures": INT,
                }
            ),
        },
    }
)


# =============================================================================================
# the streams
# =============================================================================================
class Stream:
    """One open event stream: its frames waiting to be written (at most STREAM_QUEUE) and its connection."""

    def __init__(self, client: str, transport: asyncio.Transport | None) -> None:
        self.client = client
        self.transport = transport
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(STREAM_QUEUE)
        self.dropped = False

    def offer(self, frame: bytes) -> bool:
        """Queue `frame`; False (and the connection aborted) if the client is STREAM_QUEUE frames behind."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped = True
            if self.transport is not None:
                self.transport.abort()
            return False
        return True

    def close(self) -> None:
        """End the stream (the node stops): after the frames already queued, or at once if it is full."""
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            if self.transport is not None:
                self.transport.abort()


class DashboardHub:
    """The snapshot of the committed block (computed once, when first asked for) and the open streams it is pushed
    to after each commit (`on_commit`, a commit listener)."""

    def __init__(self, node: ApiNode, *, max_streams: int, max_per_client: int, ipv6_prefix: int = 64) -> None:
        self.node = node
        self.max_streams = max_streams
        self.max_per_client = max_per_client
        self.ipv6_prefix = ipv6_prefix
        self.streams: set[Stream] = set()
        self.per_client: dict[str, int] = {}
        self.height = -1  # the block `body` and `frame` are of
        self.body = b""  # the snapshot's JSON
        self.frame = b""  # the snapshot as an SSE frame
        self.histories: dict[int, list[dict[str, Any]]] = {}  # the current epoch -> its price history view
        self.scheduled = False
        self.published = 0  # frames handed to streams
        self.dropped = 0  # streams dropped as too slow
        self.refused = 0  # streams refused over a cap
        self.busy_s = 0.0  # wall time spent pushing: snapshots computed for a push, frames queued and written

    # -- the snapshot ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Compute the snapshot and its frame if the committed block moved on since."""
        app = self.node.app
        height = app.height if app is not None else -1
        if height == self.height and self.body:
            return
        snapshot = compute_snapshot(self.node, self.node.config.moniker, self.histories)
        self.body = json.dumps(snapshot, separators=(",", ":")).encode()
        self.frame = b"id: %d\nevent: snapshot\ndata: %s\n\n" % (height, self.body)
        self.height = height

    def get_body(self) -> bytes:
        """The snapshot's JSON at the committed block."""
        self.refresh()
        return self.body

    # -- commits -------------------------------------------------------------------------------
    def on_commit(self, height: int) -> None:
        """A block was applied: push the new snapshot to the open streams at the next loop turn (blocks applied in
        one turn, during sync, make one push)."""
        if self.streams and not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.publish)

    def publish(self) -> None:
        """Hand the current frame to every open stream; drop those too far behind."""
        self.scheduled = False
        if not self.streams:
            return
        started = time.perf_counter()
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - a dashboard bug must not stop the node; the streams wait for the next
            log.exception("computing the dashboard snapshot failed")
            return
        for stream in list(self.streams):
            if stream.offer(self.frame):
                self.published += 1
            else:
                self.dropped += 1
                self.remove(stream)
        self.busy_s += time.perf_counter() - started

    # -- streams -------------------------------------------------------------------------------
    def add(self, ip: str, transport: asyncio.Transport | None) -> Stream:
        """A new stream of client `ip`; 503 too_many_streams over a cap."""
        client = compute_client_key(ip, self.ipv6_prefix)
        if len(self.streams) >= self.max_streams or self.per_client.get(client, 0) >= self.max_per_client:
            self.refused += 1
            scope = "in total" if len(self.streams) >= self.max_streams else "for this client"
            cap = self.max_streams if scope == "in total" else self.max_per_client
            raise ApiRequestError(
                503, "too_many_streams", f"{cap} dashboard event streams are open {scope}; retry later"
            )
        stream = Stream(client, transport)
        self.streams.add(stream)
        self.per_client[client] = self.per_client.get(client, 0) + 1
        return stream

    def remove(self, stream: Stream) -> None:
        """Forget a stream (closed, or dropped)."""
        if stream in self.streams:
            self.streams.discard(stream)
            left = self.per_client.get(stream.client, 0) - 1
            if left > 0:
                self.per_client[stream.client] = left
            else:
                self.per_client.pop(stream.client, None)

    def close_all(self) -> None:
        """End every stream (the node stops)."""
        for stream in list(self.streams):
            stream.close()

    def read_metrics(self) -> list[tuple[str, str, str, list[tuple[dict[str, str], float]]]]:
        """The streams' gauges and counters, read at scrape time."""
        return [
            ("uoc_dashboard_streams_open", "gauge", "Open dashboard event streams.", [({}, len(self.streams))]),
            ("uoc_dashboard_frames", "counter", "Snapshot frames handed to event streams.", [({}, self.published)]),
            (
                "uoc_dashboard_push_seconds",
                "counter",
                "Time spent pushing to the event streams: snapshots computed for a push, frames queued and written.",
                [({}, self.busy_s)],
            ),
            (
                "uoc_dashboard_streams_dropped",
                "counter",
                "Dashboard event streams dropped: their client was too far behind.",
                [({}, self.dropped)],
            ),
            (
                "uoc_dashboard_streams_refused",
                "counter",
                "Dashboard event streams refused (503) over [api] max_event_streams(_per_client).",
                [({}, self.refused)],
            ),
        ]


__all__ = [
    "HISTORY_EPOCHS",
    "MAX_MODELS",
    "MAX_PROPOSALS",
    "MAX_VALIDATORS",
    "SNAPSHOT_SCHEMA",
    "STREAM_QUEUE",
    "DashboardHub",
    "Stream",
    "compute_price_view",
    "compute_snapshot",
]

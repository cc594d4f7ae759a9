"""What the API's handlers share (`ApiState`, one typed `web.AppKey` per application), and the route
table each application was built from (for `GET /openapi.json`)."""

from __future__ import annotations

from aiohttp import web

from ..config import NodeConfig
from .limits import ConnectionGate, RateLimiter
from .openapi import RouteTable
from .ports import ApiNode
from .snapshot import DashboardHub

LISTENERS = ("public", "admin", "metrics")  # [api] public, [api] admin, [instrumentation] prometheus_listen_addr
COMMIT_TIMEOUT_S = 10.0  # a POST that waits for its commit answers 202 after this long


class ApiState:
    """What the handlers share: the node, the metrics, the answers prepared for the committed block,
    the admin token."""

    def __init__(self, node: ApiNode, token: str | None, commit_timeout_s: float = COMMIT_TIMEOUT_S) -> None:
        self.node = node
        self.token = token
        self.commit_timeout_s = commit_timeout_s
        self.metrics = node.metrics
        self.prepared: dict[str, bytes] = {}  # route path -> its answer at pricing_height
        self.pricing_height = -1  # the block the prepared answers are of
        config = node.config
        self.read_timeout_s = config.api_request_read_timeout_ms / 1000
        self.limiter = make_rate_limiter(config)
        self.rate_limit_loopback = config.api_rate_limit_loopback
        self.gates = {
            listener: ConnectionGate(
                listener, total=config.api_max_connections, per_client=config.api_max_connections_per_client
            )
            for listener in LISTENERS
        }
        self.dashboard = DashboardHub(
            node,
            max_streams=config.api_max_event_streams,
            max_per_client=config.api_max_event_streams_per_client,
            ipv6_prefix=config.api_rate_limit_ipv6_prefix,
        )
        self.metrics.add_live(self.read_limit_metrics)
        self.metrics.add_live(self.dashboard.read_metrics)

    def read_limit_metrics(self) -> list[tuple[str, str, str, list[tuple[dict[str, str], float]]]]:
        """The abuse-limit counters, read at scrape time: rate-limited requests, open, accepted and refused
        connections per listener, and the gRPC calls rejected per method."""
        gates = sorted(self.gates.items())
        server = self.node.server
        rejected = sorted(server.handlers.rejected.items()) if server is not None else []
        return [
            (
                "uoc_http_rate_limited",
                "counter",
                "Public API requests answered 429 by the per-client rate limit.",
                [({}, self.limiter.refused if self.limiter else 0)],
            ),
            (
                "uoc_http_connections_open",
                "gauge",
                "Open HTTP connections by listener.",
                [({"listener": name}, gate.open_total) for name, gate in gates],
            ),
            (
                "uoc_http_connections_accepted",
                "counter",
                "HTTP connections accepted by listener.",
                [({"listener": name}, gate.accepted) for name, gate in gates],
            ),
            (
                "uoc_http_connections_refused",
                "counter",
                "HTTP connections refused (503, closed) by listener: over the total or per-client cap.",
                [({"listener": name}, gate.refused) for name, gate in gates],
            ),
            (
                "uoc_grpc_rejected",
                "counter",
                "gRPC calls rejected (malformed, invalid, refused) by method.",
                [({"method": method}, count) for method, count in rejected],
            ),
        ]

    def refresh_pricing(self, height: int | None = None) -> None:
        """Forget the answers prepared for an older block (a commit listener, named for its hot route:
        `GET /v1/pricing` and the other routes without arguments are answered from bytes prepared
        once per committed block)."""
        app = self.node.app
        self.prepared = {}
        self.pricing_height = height if height is not None else app.height if app is not None else -1

    def get_prepared(self, path: str) -> bytes | None:
        """The answer of route `path` prepared for the committed block, if any."""
        app = self.node.app
        if app is not None and self.pricing_height != app.height:
            self.refresh_pricing(app.height)  # a block applied before the listener registered (startup)
        return self.prepared.get(path)

    def set_prepared(self, path: str, body: bytes) -> bytes:
        """Keep the answer of route `path` for the committed block; `body`."""
        self.prepared[path] = body
        return body


STATE = web.AppKey("uoc_api_state", ApiState)
TABLE_KEY = web.AppKey("uoc_api_routes", RouteTable)  # every listener's routes: what /openapi.json describes
LISTENER_KEY = web.AppKey("uoc_api_listener", str)  # the listener an application serves


def make_rate_limiter(config: NodeConfig) -> RateLimiter | None:
    """The public listener's per-client rate limiter, IPv6 clients by network (None when [api] rate_limit_per_s = 0)."""
    if config.api_rate_limit_per_s == 0:
        return None
    return RateLimiter(
        config.api_rate_limit_per_s, config.api_rate_limit_burst, ipv6_prefix=config.api_rate_limit_ipv6_prefix
    )


def get_state(request: web.Request) -> ApiState:
    return request.app[STATE]


def get_table(request: web.Request) -> RouteTable:
    return request.app[TABLE_KEY]


__all__ = [
    "COMMIT_TIMEOUT_S",
    "LISTENERS",
    "LISTENER_KEY",
    "STATE",
    "TABLE_KEY",
    "ApiState",
    "get_state",
    "get_table",
    "make_rate_limiter",
]

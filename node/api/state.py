"""What the API's handlers share (`ApiState`, one typed `web.AppKey` per application), and the route
table each application was built from (for `GET /openapi.json`)."""

from __future__ import annotations

import json

from aiohttp import web

from ..config import NodeConfig
from .limits import ConnectionGate, RateLimiter
from .metrics import Metrics
from .openapi import RouteTable
from .ports import ApiNode

COMMIT_TIMEOUT_S = 10.0  # a POST that waits for its commit answers 202 after this long


class ApiState:
    """What the handlers share: the node, the metrics, the prepared pricing body, the admin token."""

    def __init__(self, node: ApiNode, token: str | None, commit_timeout_s: float = COMMIT_TIMEOUT_S) -> None:
        self.node = node
        self.token = token
        self.commit_timeout_s = commit_timeout_s
        self.metrics = Metrics()
        self.pricing_body = b""
        self.pricing_height = -1
        config = node.config
        self.read_timeout_s = config.api_request_read_timeout_ms / 1000
        self.limiter = make_rate_limiter(config)
        self.rate_limit_loopback = config.api_rate_limit_loopback
        self.gates = {
            listener: ConnectionGate(
                listener, total=config.api_max_connections, per_client=config.api_max_connections_per_client
            )
            for listener in ("public", "admin")
        }

    def refresh_pricing(self, height: int | None = None) -> None:
        """Prepare the `GET /v1/pricing` body from the committed state (once per block)."""
        node = self.node
        status = node.query("status")
        models = [
            {
                "id": m["id"],
                "units_of_compute_per_token": m["units_of_compute_per_token"],
                "price_per_token": m["price_per_token"],
            }
            for m in sorted(node.query("models"), key=lambda m: m["id"])
        ]
        body = {
            "unit_of_compute_price": status["unit_of_compute_price"],
            "denom": "ngonka",
            "epoch": status["epoch"],
            "models": models,
        }
        self.pricing_body = json.dumps(body, separators=(",", ":")).encode()
        self.pricing_height = status["height"]


STATE = web.AppKey("uoc_api_state", ApiState)
TABLE_KEY = web.AppKey("uoc_api_routes", RouteTable)  # every listener's routes: what /openapi.json describes


def make_rate_limiter(config: NodeConfig) -> RateLimiter | None:
    """The public listener's per-client rate limiter (None when [api] rate_limit_per_s = 0)."""
    if config.api_rate_limit_per_s == 0:
        return None
    return RateLimiter(config.api_rate_limit_per_s, config.api_rate_limit_burst)


def get_state(request: web.Request) -> ApiState:
    return request.app[STATE]


def get_table(request: web.Request) -> RouteTable:
    return request.app[TABLE_KEY]


__all__ = ["COMMIT_TIMEOUT_S", "STATE", "TABLE_KEY", "ApiState", "get_state", "get_table", "make_rate_limiter"]

"""The node's HTTP API: a public, an admin and a metrics aiohttp listener inside the node process.

    api = ApiServer(node)       # the node builds it after the gRPC server (node: any `ApiNode`)
    await api.start()           # binds [api] public and admin, and [instrumentation] prometheus_listen_addr
    await api.stop(grace_s)     # the node stops it before stopping the gRPC server

One route table (`server.compute_route_table()`) builds every listener's application and its own OpenAPI
document (`GET /openapi.json`, `openapi`), so a document always lists exactly its listener's routes. The public read
routes are derived from chain's query declarations (`chain.catalog.get_routes()`: arguments parsed by
their declared kinds, responses in their declared shapes) and the body of `POST /v1/txs` from its message
declarations; `/v1/status`, the tx and block routes, `/openapi.json`, `/docs` (Swagger UI), `/metrics` and the admin
routes are written next to their handlers in `public` and `admin`. Every response links its document
(`Link: </openapi.json>; rel="service-desc"`) and is JSON (Prometheus text for `GET /metrics`, from
`node.metrics`; the Swagger UI's files); every error is
`{"error": {"code", "message"}}` with a 4xx for a bad request (`middleware` turns aiohttp's 404/405/413
into that shape) and a 500 only for a real internal error, which is logged. The admin listener requires
`Authorization: Bearer <HOME/admin_token>` (compared in constant time); its POSTs sign with the node's
validator key, submit to the mempool (which relays) and wait for the commit (bounded: 202 with the tx
hash on timeout; 422 with the chain's code on a rejection). Read routes without arguments (such as
`GET /v1/pricing`) serve bytes prepared once per committed block (`state`).

The public listener also serves the live dashboard (`dashboard`: `GET /`, its snapshot `GET /v1/dashboard` and
its Server-Sent Events `GET /v1/dashboard/events`, pushed after each commit by `snapshot.DashboardHub`).

Abuse limits ([api] in config.toml, `limits`): both listeners cap open connections in total and per
client IP, header sizes and counts, and the time a request may take to arrive; the public listener also
rate-limits each client IP (a token bucket: 429 with Retry-After, X-RateLimit-* on every answer).

The API reaches the node only through `ports.ApiNode`; it never imports `node.node`.
"""

from __future__ import annotations

from .http import is_loopback, split_host_port
from .openapi import Route, RouteTable, compute_openapi_document
from .ports import ApiNode
from .server import (
    ADMIN_MAX_BODY,
    PUBLIC_MAX_BODY,
    ROUTE_TABLE,
    ROUTES,
    ApiServer,
    build_app,
    build_openapi,
    check_api_config,
)
from .state import COMMIT_TIMEOUT_S, ApiState, make_rate_limiter

__all__ = [
    "ADMIN_MAX_BODY",
    "COMMIT_TIMEOUT_S",
    "PUBLIC_MAX_BODY",
    "ROUTES",
    "ROUTE_TABLE",
    "ApiNode",
    "ApiServer",
    "ApiState",
    "Route",
    "RouteTable",
    "build_app",
    "build_openapi",
    "check_api_config",
    "compute_openapi_document",
    "is_loopback",
    "make_rate_limiter",
    "split_host_port",
]

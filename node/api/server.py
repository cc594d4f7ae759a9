"""The node's two HTTP listeners: the route table they serve (derived at construction, so it holds the
read routes of every query the chain declares), their aiohttp applications, and the server that binds
and stops them."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from chain.tx import MAX_TX_BYTES

from ..config import NodeConfig
from ..errors import ConfigError, NodeError
from .admin import ADMIN_ROUTES
from .http import split_host_port
from .limits import LimitedSite
from .middleware import compute_middlewares
from .openapi import RouteTable, Schema, compute_openapi_document
from .ports import ApiNode
from .public import compute_public_routes
from .state import COMMIT_TIMEOUT_S, LISTENER_KEY, STATE, TABLE_KEY, ApiState
from .usage import ADMIN_USAGE_ROUTES

log = logging.getLogger("node.api")

ADMIN_MAX_BODY = 16 * 1024
PUBLIC_MAX_BODY = MAX_TX_BYTES + 4096  # a signed tx (the chain's own limit) plus JSON slack
SHUTDOWN_GRACE_S = 1.0  # in-flight requests get this long when the node stops


def compute_route_table() -> RouteTable:
    """What a node serves and documents: the public routes (with the chain's read routes derived from
    its query declarations as they are now), then the admin routes."""
    return RouteTable((*compute_public_routes(), *ADMIN_ROUTES, *ADMIN_USAGE_ROUTES))


ROUTE_TABLE = compute_route_table()  # the table of the chain as imported (for tests and tools)
ROUTES = ROUTE_TABLE.routes


def check_api_config(config: NodeConfig, admin_token: str | None) -> None:
    """ConfigError unless there is an admin token: the admin API requires it on every address, loopback too
    (any web page the operator opens can reach a loopback port)."""
    if not admin_token:
        raise ConfigError(
            f"HOME/admin_token is missing or empty; the admin API ([api] admin = {config.api_admin!r}) always "
            "requires a token: write one, e.g. `python -c 'import secrets; print(secrets.token_hex(32))' > "
            "HOME/admin_token` (uocd init writes one)"
        )


def build_openapi(table: RouteTable | None = None, listener: str | None = "public") -> Schema:
    """The OpenAPI 3 document of a listener's routes (None: every listener's; by default of the table derived
    now)."""
    return compute_openapi_document(table or compute_route_table(), listener)


def build_app(state: ApiState, listener: str, table: RouteTable | None = None) -> web.Application:
    """The aiohttp application of one listener, from the route table (by default the one derived now)."""
    table = table or compute_route_table()
    app = web.Application(
        middlewares=compute_middlewares(listener),
        client_max_size=ADMIN_MAX_BODY if listener == "admin" else PUBLIC_MAX_BODY,
    )
    app[STATE] = state
    app[TABLE_KEY] = table
    app[LISTENER_KEY] = listener
    if listener == "public":
        app.on_shutdown.append(lambda _: close_streams(state))
    for route in table.for_listener(listener):
        if route.method == "GET":  # and HEAD: the same answer without its body (RFC 9110 §9.3.2)
            app.router.add_get(route.path, route.handler, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, route.handler)
    return app


async def close_streams(state: ApiState) -> None:
    """End the dashboard's event streams (the listener shuts down; open streams would hold it for its grace)."""
    state.dashboard.close_all()


def compute_handler_limits(config: NodeConfig) -> dict[str, Any]:
    """aiohttp's per-connection settings from [api]: header limits, and the request read timeout as the
    keep-alive timeout (aiohttp closes a connection whose next request head has not arrived that long after
    it opened or after its previous response) and as the lingering time (how long the unread rest of a
    refused body is drained before the connection closes)."""
    return {
        "max_line_size": config.api_max_header_bytes,
        "max_field_size": config.api_max_header_bytes,
        "max_headers": config.api_max_headers,
        "keepalive_timeout": config.api_request_read_timeout_ms / 1000,
        "lingering_time": config.api_request_read_timeout_ms / 1000,
    }


class ApiServer:
    """The public and admin listeners of a node."""

    def __init__(
        self, node: ApiNode, *, commit_timeout_s: float = COMMIT_TIMEOUT_S, table: RouteTable | None = None
    ) -> None:
        self.node = node
        self.table = table or compute_route_table()
        self.state = ApiState(node, node.home.admin_token, commit_timeout_s)
        self.runners: list[web.AppRunner] = []
        self.addresses: dict[str, str] = {}

    async def start(self) -> None:
        """Bind the public then the admin listener; NodeError (one line) if an address is taken."""
        check_api_config(self.node.config, self.state.token)
        self.state.refresh_pricing()
        self.node.add_commit_listener(self.state.refresh_pricing)
        self.node.add_commit_listener(self.state.dashboard.on_commit)
        config = self.node.config
        listeners = [("public", config.api_public), ("admin", config.api_admin)]
        if config.prometheus_listen_addr:
            listeners.append(("metrics", config.prometheus_listen_addr))
        for listener, address in listeners:
            runner = web.AppRunner(
                build_app(self.state, listener, self.table),
                access_log=None,
                handle_signals=False,
                shutdown_timeout=SHUTDOWN_GRACE_S,
                **compute_handler_limits(config),
            )
            await runner.setup()
            self.runners.append(runner)
            host, port = split_host_port(address)
            site = LimitedSite(runner, host, port, gate=self.state.gates[listener], reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                what = "metrics" if listener == "metrics" else f"the {listener} API"
                raise NodeError(f"cannot listen for {what} on {address}: {exc.strerror or exc}") from None
            self.addresses[listener] = address
            log.info("%s API listening on http://%s", listener, address)

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop the listeners in reverse order (in-flight requests get `grace_s`)."""
        for runner in reversed(self.runners):
            try:
                await runner.shutdown()
                await runner.cleanup()
            except Exception:  # noqa: BLE001 - shutdown goes on
                log.exception("stopping an API listener failed")
        self.runners = []


__all__ = [
    "ADMIN_MAX_BODY",
    "PUBLIC_MAX_BODY",
    "ROUTES",
    "ROUTE_TABLE",
    "SHUTDOWN_GRACE_S",
    "ApiServer",
    "build_app",
    "build_openapi",
    "check_api_config",
    "compute_handler_limits",
    "compute_route_table",
]

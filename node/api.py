"""The node's HTTP API: a public and an admin aiohttp listener inside the node process.

    api = ApiServer(node)       # Node.start() does this after the gRPC server
    await api.start()           # binds config [api] public and admin
    await api.stop(grace_s)     # Node.stop() does this before stopping the gRPC server

One route table (`ROUTES`) builds both applications and the OpenAPI document (`GET /openapi.json`),
so the document always lists exactly the served routes. Every response is JSON (Prometheus text for
`GET /metrics`); every error is `{"error": {"code", "message"}}` with a 4xx for a bad request (a
middleware turns aiohttp's 404/405/413 into that shape) and a 500 only for a real internal error,
which is logged. The admin listener requires `Authorization: Bearer <HOME/admin_token>` (compared in
constant time); its POSTs sign with the node's validator key, submit to the mempool (which relays)
and wait for the commit (bounded: 202 with the tx hash on timeout; 422 with the chain's code on a
rejection). `GET /v1/pricing` serves bytes prepared once per committed block.

Abuse limits ([api] in config.toml, `node/limits.py`): both listeners cap open connections in total and
per client IP, header sizes and counts, and the time a request may take to arrive; the public listener
also rate-limits each client IP (a token bucket: 429 with Retry-After, X-RateLimit-* on every answer).
"""

from __future__ import annotations

import asyncio
import bisect
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chain.crypto import is_valid_address
from chain.errors import ChainError, InvalidTx, MoneyError
from chain.money import DENOMS, to_ngonka
from chain.tx import MAX_TX_BYTES, MsgSubmitPriceProposal, MsgSubmitProposal, RegisterModel, parse_model_id, parse_units

from .config import NodeConfig
from .errors import ApiRequestError, ConfigError, MempoolError, MempoolFull, NodeError, TxAlreadyKnown
from .limits import ConnectionGate, LimitedSite, RateLimiter

if TYPE_CHECKING:
    from .node import Node, TxOutcome

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 10.0  # a POST that waits for its commit answers 202 after this long
ADMIN_MAX_BODY = 16 * 1024
SHUTDOWN_GRACE_S = 1.0  # in-flight requests get this long when the node stops
PUBLIC_MAX_BODY = MAX_TX_BYTES + 4096  # a signed tx (the chain's own limit) plus JSON slack
MAX_INT64 = 2**63 - 1
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JSON_TYPE = "application/json"
LOOPBACK_HOSTS = ("localhost",)


# =============================================================================================
# configuration
# =============================================================================================
def split_host_port(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" (IPv6 hosts may be bracketed)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True for a loopback host name or address."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_config(config: NodeConfig, admin_token: str | None) -> None:
    """ConfigError unless the admin listener is on loopback or protected by an admin token."""
    host, _ = split_host_port(config.api_admin)
    if not admin_token and not is_loopback(host):
        raise ConfigError(
            f"[api] admin = {config.api_admin!r} is not a loopback address and HOME/admin_token is missing or empty; "
            "bind the admin API to 127.0.0.1 or write a token"
        )


# =============================================================================================
# errors and JSON
# =============================================================================================
def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON response (integers only: SPEC §1)."""
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status, content_type=JSON_TYPE)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The one error shape: {"error": {"code", "message"}}."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return web.Response(body=body, status=status, content_type=JSON_TYPE, headers=headers)


def bad_request(code: str, message: str) -> ApiRequestError:
    return ApiRequestError(400, code, message)


def chain_error_to_api(exc: ChainError) -> ApiRequestError:
    """A query's ChainError as a 404 (not found) or 400 (bad query)."""
    return ApiRequestError(404 if exc.code in ("not_found", "unknown_proposal") else 400, exc.code, str(exc))


def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed in JSON bodies")


async def read_body(request: web.Request) -> bytes:
    """The request body; 415 if it is declared as something other than JSON, 413 (via aiohttp) if too large,
    408 if it has not fully arrived within the request read timeout."""
    declared = request.headers.get("Content-Type")
    if declared is not None and request.content_type != JSON_TYPE and not request.content_type.endswith("+json"):
        raise ApiRequestError(415, "unsupported_media_type", f"the body must be {JSON_TYPE}, got {declared!r}")
    timeout_s = get_state(request).read_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise ApiRequestError(408, "request_timeout", f"the body did not arrive within {timeout_s:g} s") from None


def parse_json_object(data: bytes) -> dict[str, Any]:
    """A JSON object from a request body; 400 for anything else (floats stay floats: fields reject them)."""
    if not data.strip():
        raise bad_request("invalid_json", "the body is empty; it must be a JSON object")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad_request("invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise bad_request("invalid_json", f"the body must be a JSON object, got {type(doc).__name__}")
    return doc


def require_fields(doc: dict[str, Any], fields: tuple[str, ...]) -> None:
    """400 if a field is missing or an unknown field is present."""
    missing = [f for f in fields if f not in doc]
    if missing:
        raise bad_request(
            "missing_field", f"the body needs field(s) {', '.join(missing)} (fields: {', '.join(fields)})"
        )
    extra = sorted(k for k in doc if k not in fields)
    if extra:
        shown = ", ".join(repr(k)[:40] for k in extra[:5])
        raise bad_request("unknown_field", f"unknown field(s) {shown}; the body takes only {', '.join(fields)}")


def get_int_param(request: web.Request, name: str, *, minimum: int = 0, default: int | None = None) -> int | None:
    """An optional integer query parameter in minimum..2^63-1; 400 otherwise."""
    text = request.query.get(name)
    return default if text is None else parse_int_text(text, name, minimum)


def get_int_path(request: web.Request, name: str, *, minimum: int = 0) -> int:
    """An integer path segment in minimum..2^63-1; 400 otherwise."""
    return parse_int_text(request.match_info[name], name, minimum)


def parse_int_text(text: str, name: str, minimum: int) -> int:
    """Decimal digits naming an integer in minimum..2^63-1 (at most 19 digits, so never a huge
    conversion); 400 otherwise."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not minimum <= int(text) <= MAX_INT64:
        raise bad_request("invalid_parameter", f"{name} must be an integer from {minimum} to 2^63-1, got {text[:40]!r}")
    return int(text)


# =============================================================================================
# metrics
# =============================================================================================
@dataclass
class Histogram:
    """Cumulative-at-export latency histogram of one (route, method)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0


class Metrics:
    """Request counts and latencies per route, plus the node gauges, in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its duration."""
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get((route, method))
        if hist is None:
            hist = self.latency[(route, method)] = Histogram()
        hist.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        hist.total += seconds

    def render(self, node: Node, state: ApiState | None = None) -> str:
        """The exposition text: node gauges, request counters, latency histograms, abuse-limit counters."""
        assert node.app is not None
        status = node.query("status")
        gauges = (
            ("uoc_height", "Height of the last committed block.", node.app.height),
            ("uoc_epoch", "Index of the current epoch.", status["epoch"]),
            (
                "uoc_unit_of_compute_price_ngonka",
                "Unit-of-compute price of the current epoch.",
                status["unit_of_compute_price"],
            ),
            ("uoc_mempool_txs", "Transactions waiting in the mempool.", len(node.mempool or ())),
            ("uoc_peers", "Peers that answered the last status poll.", node.reachable_peers),
            (
                "uoc_consensus_round",
                "Consensus round at the current height.",
                node.consensus.round if node.consensus else 0,
            ),
        )
        lines: list[str] = []
        for name, help_text, value in gauges:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        lines += [
            "# HELP uoc_http_requests_total HTTP requests by route, method and status.",
            "# TYPE uoc_http_requests_total counter",
        ]
        for (route, method, code), count in sorted(self.requests.items()):
            lines.append(
                f'uoc_http_requests_total{{route="{escape_label(route)}",method="{method}",status="{code}"}} {count}'
            )
        lines += [
            "# HELP uoc_http_request_duration_seconds HTTP request latency by route and method.",
            "# TYPE uoc_http_request_duration_seconds histogram",
        ]
        for (route, method), hist in sorted(self.latency.items()):
            labels = f'route="{escape_label(route)}",method="{method}"'
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), hist.counts):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'uoc_http_request_duration_seconds_bucket{{{labels},le="{le}"}} {cumulative}')
            lines.append(f"uoc_http_request_duration_seconds_sum{{{labels}}} {hist.total:.6f}")
            lines.append(f"uoc_http_request_duration_seconds_count{{{labels}}} {cumulative}")
        if state is not None:
            lines += render_limit_metrics(state)
        return "\n".join(lines) + "\n"


def render_limit_metrics(state: ApiState) -> list[str]:
    """The abuse-limit counters: rate-limited requests, and open and refused connections per listener."""
    limiter = state.limiter
    lines = [
        "# HELP uoc_http_rate_limited_total Public API requests answered 429 by the per-client rate limit.",
        "# TYPE uoc_http_rate_limited_total counter",
        f"uoc_http_rate_limited_total {limiter.refused if limiter else 0}",
    ]
    gates = sorted(state.gates.items())
    for name, kind, help_text, attr in (
        ("uoc_http_connections_open", "gauge", "Open HTTP connections by listener.", "open_total"),
        ("uoc_http_connections_accepted_total", "counter", "HTTP connections accepted by listener.", "accepted"),
        (
            "uoc_http_connections_refused_total",
            "counter",
            "HTTP connections refused (503, closed) by listener: over the total or per-client cap.",
            "refused",
        ),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{listener="{listener}"}} {getattr(gate, attr)}' for listener, gate in gates]
    server = state.node.server
    rejected = sorted(server.handlers.rejected.items()) if server is not None else []
    lines += [
        "# HELP uoc_grpc_rejected_total gRPC calls rejected (malformed, invalid, refused) by method.",
        "# TYPE uoc_grpc_rejected_total counter",
        *(f'uoc_grpc_rejected_total{{method="{method}"}} {count}' for method, count in rejected),
    ]
    return lines


def escape_label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# =============================================================================================
# state
# =============================================================================================
class ApiState:
    """What the handlers share: the node, the metrics, the prepared pricing body, the admin token."""

    def __init__(self, node: Node, token: str | None, commit_timeout_s: float = COMMIT_TIMEOUT_S) -> None:
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


def make_rate_limiter(config: NodeConfig) -> RateLimiter | None:
    """The public listener's per-client rate limiter (None when [api] rate_limit_per_s = 0)."""
    if config.api_rate_limit_per_s == 0:
        return None
    return RateLimiter(config.api_rate_limit_per_s, config.api_rate_limit_burst)


def get_state(request: web.Request) -> ApiState:
    return request.app[STATE]


# =============================================================================================
# middlewares
# =============================================================================================
def route_label(request: web.Request) -> str:
    """The route template of a request ("unmatched" for an unknown path: bounded label values)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def errors_and_metrics(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """JSON errors for everything (404/405/413 included), 500 only for internal errors; count and time it."""
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except ApiRequestError as exc:
        response = error_response(exc.status, exc.code, str(exc))
        if exc.status == 408:
            response.force_close()  # the rest of the body may still be on its way: do not wait for it
    except web.HTTPException as exc:
        response = http_exception_response(request, exc)
    except Exception:  # noqa: BLE001 - the one catch-all: log and answer 500
        log.exception("internal error serving %s %s", request.method, request.path)
        response = error_response(500, "internal", "internal error; see the node log")
    get_state(request).metrics.observe(
        route_label(request), request.method, response.status, time.perf_counter() - started
    )
    return response


def http_exception_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own HTTP errors as the API's JSON errors."""
    if isinstance(exc, web.HTTPNotFound):
        return error_response(
            404, "not_found", f"no route {request.method} {request.path[:200]}; see GET /openapi.json"
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error_response(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path[:200]}; allowed: {allowed}",
            headers={"Allow": allowed},
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app._client_max_size  # noqa: SLF001 - the configured limit, for the message
        return error_response(413, "body_too_large", f"the request body is over the limit of {limit} bytes")
    if exc.status >= 400:
        code = exc.reason.lower().replace(" ", "_") if exc.reason else "http_error"
        return error_response(exc.status, code, exc.text or exc.reason or "HTTP error")
    raise exc


@web.middleware
async def rate_limit(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The public listener's per-client-IP token bucket: 429 with Retry-After over it, X-RateLimit-* always."""
    state = get_state(request)
    client = request.remote or ""
    if state.limiter is None or (not state.rate_limit_loopback and is_loopback(client)):
        return await handler(request)
    verdict = state.limiter.take(client)
    if not verdict.allowed:
        message = f"over the rate limit of {state.limiter.rate_per_s:g} requests/s (burst {state.limiter.burst})"
        message += f"; retry in {verdict.retry_after_s} s"
        return error_response(429, "rate_limited", message, headers=verdict.headers())
    response = await handler(request)
    response.headers.update(verdict.headers())
    return response


def make_auth_middleware() -> Callable[..., Awaitable[web.StreamResponse]]:
    """Bearer-token auth for the admin listener (constant-time comparison)."""

    @web.middleware
    async def require_token(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        token = get_state(request).token
        if token is not None:
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                what = "is missing" if not given else "is wrong"
                raise ApiRequestError(
                    401, "unauthorized", f"the Authorization: Bearer <HOME/admin_token> header {what}"
                )
        return await handler(request)

    return require_token


# =============================================================================================
# public handlers
# =============================================================================================
def query(request: web.Request, path: str, **params: Any) -> Any:
    """A committed-state query; ChainError as 404/400."""
    try:
        return get_state(request).node.query(path, **params)
    except ChainError as exc:
        raise chain_error_to_api(exc) from None


async def get_status(request: web.Request) -> web.Response:
    node = get_state(request).node
    status = query(request, "status")
    return json_response(
        {
            "chain_id": status["chain_id"],
            "moniker": node.config.moniker,
            "height": status["height"],
            "app_hash": status["app_hash"],
            "epoch": status["epoch"],
            "unit_of_compute_price": status["unit_of_compute_price"],
            "catching_up": node.syncing,
            "peers": node.reachable_peers,
            "validator_address": node.signer.address if node.signer else "",
        }
    )


async def get_pricing(request: web.Request) -> web.Response:
    state = get_state(request)
    if state.node.app is not None and state.pricing_height != state.node.app.height:
        state.refresh_pricing()  # a block applied before the listener registered (startup)
    return web.Response(body=state.pricing_body, content_type=JSON_TYPE)


async def get_pricing_history(request: web.Request) -> web.Response:
    from_epoch = get_int_param(request, "from_epoch", default=0)
    to_epoch = get_int_param(request, "to_epoch")
    return json_response({"epochs": query(request, "history", from_epoch=from_epoch, to_epoch=to_epoch)})


async def get_params(request: web.Request) -> web.Response:
    return json_response(query(request, "params"))


async def get_epoch_current(request: web.Request) -> web.Response:
    return json_response(query(request, "epoch/current"))


async def get_epoch(request: web.Request) -> web.Response:
    return json_response(query(request, f"epoch/{get_int_path(request, 'n')}"))


async def get_models(request: web.Request) -> web.Response:
    status = query(request, "status")
    registry = query(request, "registry")
    return json_response(
        {
            "epoch": status["epoch"],
            "models": query(request, "models"),
            "registry_version": registry["version"],
            "registered": registry["models"],
        }
    )


async def get_validators(request: web.Request) -> web.Response:
    validators = [
        {"address": v["address"], "power": v["power"], "stake": v["stake"], "pending_stake": v["pending_stake"]}
        for v in query(request, "validators")
    ]
    return json_response({"validators": validators})


async def get_account(request: web.Request) -> web.Response:
    address = request.match_info["address"]
    if not is_valid_address(address):
        raise bad_request("invalid_address", f"address must be a bech32 'uoc1…' address, got {address[:80]!r}")
    account = query(request, f"account/{address}")
    return json_response({k: account[k] for k in ("address", "balance", "sequence", "pubkey")})


async def get_proposals(request: web.Request) -> web.Response:
    status = request.query.get("status")
    return json_response({"proposals": query(request, "proposals", status=status)})


async def get_proposal(request: web.Request) -> web.Response:
    return json_response(query(request, f"proposal/{get_int_path(request, 'id', minimum=1)}"))


def mempool_error_to_api(exc: MempoolError) -> ApiRequestError:
    """A mempool refusal: 400 for a malformed tx, 429 when full, 422 for a rule the chain enforces."""
    if isinstance(exc, MempoolFull):
        return ApiRequestError(429, exc.code, str(exc))
    if exc.code in ("malformed", "tx_too_large"):
        return ApiRequestError(400, exc.code, str(exc))
    return ApiRequestError(422, exc.code, str(exc))


def outcome_error(outcome: TxOutcome) -> ApiRequestError:
    """A committed-with-failure or dropped tx as a 422 with the chain's code."""
    where = f"committed at height {outcome.height}" if outcome.committed else "dropped from the mempool"
    return ApiRequestError(422, outcome.code, f"transaction {outcome.tx_hash} {where}: {outcome.log or outcome.code}")


async def post_tx(request: web.Request) -> web.Response:
    state = get_state(request)
    wait = request.query.get("wait")
    if wait not in (None, "commit"):
        raise bad_request("invalid_parameter", f"wait must be 'commit' or absent, got {wait[:40]!r}")
    raw = await read_body(request)
    parse_json_object(raw)
    try:
        tx_hash = state.node.submit_txs([raw])[0]
    except NodeError as exc:
        raise ApiRequestError(503, "unavailable", str(exc)) from None
    if isinstance(tx_hash, TxAlreadyKnown) and tx_hash.tx_hash:
        tx_hash = tx_hash.tx_hash  # already pending: idempotent
    elif isinstance(tx_hash, MempoolError):
        raise mempool_error_to_api(tx_hash)
    if wait is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    outcome = await state.node.wait_for_commit(tx_hash, state.commit_timeout_s)
    if outcome is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    if not outcome.committed:
        raise outcome_error(outcome)
    return json_response(
        {"tx_hash": tx_hash, "status": "committed", "height": outcome.height, "code": outcome.code, "log": outcome.log}
    )


async def get_tx(request: web.Request) -> web.Response:
    node = get_state(request).node
    tx_hash = request.match_info["hash"]
    if len(tx_hash) != 64 or not all(c in "0123456789abcdefABCDEF" for c in tx_hash):
        raise bad_request("invalid_hash", f"hash must be 64 hex characters, got {tx_hash[:80]!r}")
    outcome = node.get_tx_outcome(tx_hash.upper())
    raw = node.get_tx_raw(outcome.height, outcome.index) if outcome is not None and outcome.height is not None else None
    if outcome is None or raw is None:
        raise ApiRequestError(404, "not_found", f"no committed transaction has hash {tx_hash.upper()}")
    return json_response(
        {
            "tx_hash": outcome.tx_hash,
            "height": outcome.height,
            "index": outcome.index,
            "code": outcome.code,
            "log": outcome.log,
            "tx": json.loads(raw),
        }
    )


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(build_openapi())


async def get_metrics(request: web.Request) -> web.Response:
    state = get_state(request)
    return web.Response(
        text=state.metrics.render(state.node, state),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Prometheus-Format": "0.0.4"},
    )


# =============================================================================================
# admin handlers
# =============================================================================================
def get_operator(request: web.Request) -> Node:
    """The node, which must hold a validator key (the operator's)."""
    node = get_state(request).node
    if node.signer is None:
        raise ApiRequestError(404, "no_validator_key", "this node has no validator key (HOME/validator_key.json)")
    return node


async def submit_and_wait(request: web.Request, msgs: list[Any]) -> tuple[str, TxOutcome | None]:
    """Sign with the operator key, submit (relayed) and wait for the commit; 422 on a rejection."""
    state = get_state(request)
    node = get_operator(request)
    try:
        tx_hash = node.submit_own(msgs)
    except MempoolError as exc:
        raise mempool_error_to_api(exc) from None
    outcome = await node.wait_for_commit(tx_hash, state.commit_timeout_s)
    if outcome is not None and (not outcome.committed or outcome.code != "ok"):
        raise outcome_error(outcome)
    return tx_hash, outcome


async def post_price_proposal(request: web.Request) -> web.Response:
    get_operator(request)
    doc = parse_json_object(await read_body(request))
    require_fields(doc, ("price", "denom"))
    try:
        price_ngonka = to_ngonka(doc["price"], doc["denom"], field="price")
    except MoneyError as exc:
        raise bad_request(exc.code, str(exc)) from None
    msg = MsgSubmitPriceProposal(doc["price"], doc["denom"], price_ngonka)
    tx_hash, outcome = await submit_and_wait(request, [msg])
    if outcome is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    assert outcome.epoch is not None
    return json_response(
        {
            "tx_hash": tx_hash,
            "height": outcome.height,
            "price": msg.price,
            "denom": msg.denom,
            "price_ngonka": price_ngonka,
            "effective_epoch": outcome.epoch + 1,  # counted at the end of the epoch it was committed in
        }
    )


async def get_price_proposal(request: web.Request) -> web.Response:
    node = get_operator(request)
    assert node.signer is not None
    try:
        vote = node.query(f"price_vote/{node.signer.address}")
    except ChainError:
        raise ApiRequestError(404, "never_voted", f"the operator {node.signer.address} never voted a price") from None
    return json_response(
        {
            "price": vote["price"],
            "denom": vote["denom"],
            "price_ngonka": vote["price_ngonka"],
            "proposed_at_height": vote["height"],
            "proposed_at_epoch": vote["epoch"],
        }
    )


def find_own_proposal(node: Node, height: int, model_id: str) -> dict[str, Any]:
    """The operator's proposal for `model_id` submitted at `height`: among the open ones (it starts voting at
    once, its deposit being min_deposit), else among all (a voting period over since)."""
    assert node.signer is not None
    for status in ("voting_period", None):
        mine = [
            p
            for p in node.query("proposals", status=status)
            if (p["proposer"], p["submit_height"], p["content"].get("id")) == (node.signer.address, height, model_id)
        ]
        if mine:
            return mine[-1]
    raise ApiRequestError(500, "internal", f"the proposal committed at height {height} is not in the state")


async def post_model(request: web.Request) -> web.Response:
    node = get_operator(request)
    assert node.signer is not None
    doc = parse_json_object(await read_body(request))
    require_fields(doc, ("id", "units_of_compute_per_token"))
    try:
        model_id = parse_model_id(doc["id"], "id")
        units = parse_units(doc["units_of_compute_per_token"], "units_of_compute_per_token")
    except InvalidTx as exc:
        raise bad_request(exc.code, str(exc)) from None
    deposit = node.query("params")["min_deposit"]
    msg = MsgSubmitProposal(RegisterModel(model_id, units), deposit)
    tx_hash, outcome = await submit_and_wait(request, [msg])
    if outcome is None:
        return json_response({"tx_hash": tx_hash, "status": "pending"}, status=202)
    proposal = find_own_proposal(node, outcome.height, model_id)
    return json_response(
        {
            "proposal_id": proposal["id"],
            "tx_hash": tx_hash,
            "deposit": {"amount": deposit, "denom": "ngonka"},  # a money object (SPEC §1)
            "voting_end_height": proposal["voting_end_height"],
        }
    )


# =============================================================================================
# the route table and the OpenAPI document
# =============================================================================================
def obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """An object schema whose listed properties are all required."""
    return {"type": "object", "required": list(required), "properties": {**required, **optional}}


INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
ANY_OBJ = {"type": "object"}
COIN = obj({"amount": INT, "denom": STR})  # a money object (SPEC §1)
ERROR = obj({"error": obj({"code": STR, "message": STR})})
PENDING = obj({"tx_hash": STR, "status": {"type": "string", "enum": ["pending"]}})
MODEL_PRICE = obj({"id": STR, "units_of_compute_per_token": INT, "price_per_token": INT})
INT_PARAM = {"type": "integer", "minimum": 0, "maximum": MAX_INT64}
RATE_LIMIT_HEADERS = ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def param(name: str, where: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema}


@dataclass(frozen=True)
class Route:
    """One served route and its OpenAPI description."""

    listener: str  # "public" or "admin"
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    responses: dict[int, dict[str, Any]]
    params: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None
    media: str = JSON_TYPE


ROUTES: tuple[Route, ...] = (
    Route(
        "public",
        "GET",
        "/v1/status",
        get_status,
        "Node and chain status",
        {
            200: obj(
                {
                    "chain_id": STR,
                    "moniker": STR,
                    "height": INT,
                    "app_hash": STR,
                    "epoch": INT,
                    "unit_of_compute_price": INT,
                    "catching_up": BOOL,
                    "peers": INT,
                    "validator_address": STR,
                }
            )
        },
    ),
    Route(
        "public",
        "GET",
        "/v1/pricing",
        get_pricing,
        "Unit-of-compute price and active models' price per token",
        {
            200: obj(
                {
                    "unit_of_compute_price": INT,
                    "denom": {"type": "string", "enum": ["ngonka"]},
                    "epoch": INT,
                    "models": {"type": "array", "items": MODEL_PRICE},
                }
            )
        },
    ),
    Route(
        "public",
        "GET",
        "/v1/pricing/history",
        get_pricing_history,
        "Epoch records (SPEC §3)",
        {200: obj({"epochs": {"type": "array", "items": ANY_OBJ}})},
        (param("from_epoch", "query", INT_PARAM), param("to_epoch", "query", INT_PARAM)),
    ),
    Route("public", "GET", "/v1/epochs/current", get_epoch_current, "The current epoch", {200: ANY_OBJ}),
    Route(
        "public",
        "GET",
        "/v1/params",
        get_params,
        "The chain params: epochs, the default price and governance (min_deposit, periods, thresholds)",
        {200: obj({"epoch_length": INT, "min_deposit": INT, "voting_period": INT, "max_deposit_period": INT})},
    ),
    Route(
        "public",
        "GET",
        "/v1/epochs/{n}",
        get_epoch,
        "The record of epoch n",
        {200: ANY_OBJ},
        (param("n", "path", INT_PARAM),),
    ),
    Route(
        "public",
        "GET",
        "/v1/models",
        get_models,
        "Active models (with price per token) and the registry",
        {
            200: obj(
                {
                    "epoch": INT,
                    "models": {"type": "array", "items": MODEL_PRICE},
                    "registry_version": INT,
                    "registered": {"type": "array", "items": ANY_OBJ},
                }
            )
        },
    ),
    Route(
        "public",
        "GET",
        "/v1/validators",
        get_validators,
        "The current epoch's validators",
        {
            200: obj(
                {
                    "validators": {
                        "type": "array",
                        "items": obj({"address": STR, "power": INT, "stake": INT, "pending_stake": INT}),
                    }
                }
            )
        },
    ),
    Route(
        "public",
        "GET",
        "/v1/accounts/{address}",
        get_account,
        "An account (balance, sequence, pubkey)",
        {200: obj({"address": STR, "balance": INT, "sequence": INT, "pubkey": {"type": "string", "nullable": True}})},
        (param("address", "path", STR),),
    ),
    Route(
        "public",
        "GET",
        "/v1/governance/proposals",
        get_proposals,
        "Governance proposals",
        {200: obj({"proposals": {"type": "array", "items": ANY_OBJ}})},
        (
            param(
                "status",
                "query",
                {
                    "type": "string",
                    "enum": ["deposit_period", "voting_period", "passed", "rejected", "failed", "dropped"],
                },
            ),
        ),
    ),
    Route(
        "public",
        "GET",
        "/v1/governance/proposals/{id}",
        get_proposal,
        "A proposal with tally, deposits, votes",
        {
            200: obj(
                {
                    "id": INT,
                    "status": STR,
                    "tally": {"nullable": True},
                    "deposits": {"type": "array"},
                    "votes": {"type": "array"},
                }
            )
        },
        (param("id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_INT64}),),
    ),
    Route(
        "public",
        "POST",
        "/v1/txs",
        post_tx,
        "Submit a signed transaction (the JSON that sign_tx returns)",
        {
            200: obj(
                {
                    "tx_hash": STR,
                    "status": {"type": "string", "enum": ["committed"]},
                    "height": INT,
                    "code": STR,
                    "log": STR,
                }
            ),
            202: PENDING,
        },
        (param("wait", "query", {"type": "string", "enum": ["commit"]}),),
        obj({"body": ANY_OBJ, "pubkey": STR, "signature": STR}),
    ),
    Route(
        "public",
        "GET",
        "/v1/txs/{hash}",
        get_tx,
        "A committed transaction and its result",
        {200: obj({"tx_hash": STR, "height": INT, "index": INT, "code": STR, "log": STR, "tx": ANY_OBJ})},
        (param("hash", "path", {"type": "string", "pattern": "^[0-9A-Fa-f]{64}$"}),),
    ),
    Route("public", "GET", "/openapi.json", get_openapi, "This document", {200: ANY_OBJ}),
    Route("public", "GET", "/metrics", get_metrics, "Prometheus metrics", {200: STR}, media="text/plain"),
    Route(
        "admin",
        "POST",
        "/v1/admin/unit-of-compute-price-proposal",
        post_price_proposal,
        "Set or update this operator's unit-of-compute price vote (signed with the validator key)",
        {
            200: obj(
                {"tx_hash": STR, "height": INT, "price": INT, "denom": STR, "price_ngonka": INT, "effective_epoch": INT}
            ),
            202: PENDING,
        },
        body=obj(
            {
                "price": {"type": "integer", "minimum": 1, "maximum": MAX_INT64},
                "denom": {"type": "string", "enum": sorted(DENOMS)},
            }
        ),
    ),
    Route(
        "admin",
        "GET",
        "/v1/admin/unit-of-compute-price-proposal",
        get_price_proposal,
        "This operator's current price vote",
        {
            200: obj(
                {"price": INT, "denom": STR, "price_ngonka": INT, "proposed_at_height": INT, "proposed_at_epoch": INT}
            )
        },
    ),
    Route(
        "admin",
        "POST",
        "/v1/admin/models",
        post_model,
        "Propose a model (a RegisterModel governance proposal with min_deposit)",
        {
            200: obj({"proposal_id": INT, "tx_hash": STR, "deposit": COIN, "voting_end_height": INT}),
            202: PENDING,
        },
        body=obj(
            {
                "id": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_./:-]+$"},
                "units_of_compute_per_token": {"type": "integer", "minimum": 1, "maximum": MAX_INT64},
            }
        ),
    ),
)


def describe_operation(route: Route) -> dict[str, Any]:
    """The OpenAPI operation of a route."""
    responses: dict[str, Any] = {
        str(status): {
            "description": "success" if status == 200 else "accepted, not yet committed",
            "content": {route.media: {"schema": schema}},
        }
        for status, schema in route.responses.items()
    }
    if route.listener == "public":
        responses["429"] = {
            "description": "over the per-client rate limit ([api] rate_limit_per_s); retry after Retry-After seconds",
            "headers": {name: {"schema": INT} for name in RATE_LIMIT_HEADERS},
            "content": {JSON_TYPE: {"schema": ERROR}},
        }
    responses["default"] = {"description": "error", "content": {JSON_TYPE: {"schema": ERROR}}}
    operation: dict[str, Any] = {
        "operationId": route.method.lower() + "_" + "".join(c if c.isalnum() else "_" for c in route.path.strip("/")),
        "summary": route.summary,
        "tags": [route.listener],
        "responses": responses,
    }
    if route.params:
        operation["parameters"] = list(route.params)
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON_TYPE: {"schema": route.body}}}
    if route.listener == "admin":
        operation["security"] = [{"adminToken": []}]
        operation["description"] = "Admin listener ([api] admin); needs Authorization: Bearer <HOME/admin_token>."
    return operation


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3 document of every served route (public and admin listeners)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = describe_operation(route)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "uoc node API",
            "version": "1",
            "description": "Public listener ([api] public) and admin listener ([api] admin, tag 'admin').",
        },
        "paths": paths,
        "components": {"securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}}},
    }


def build_app(state: ApiState, listener: str) -> web.Application:
    """The aiohttp application of one listener, from the route table."""
    middlewares: list[Any] = [errors_and_metrics]
    if listener == "public":
        middlewares.insert(0, rate_limit)  # outermost: a refused request costs no handler work
    if listener == "admin":
        middlewares.append(make_auth_middleware())
    app = web.Application(
        middlewares=middlewares, client_max_size=ADMIN_MAX_BODY if listener == "admin" else PUBLIC_MAX_BODY
    )
    app[STATE] = state
    for route in ROUTES:
        if route.listener == listener:
            app.router.add_route(route.method, route.path, route.handler)
    return app


# =============================================================================================
# the server
# =============================================================================================
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

    def __init__(self, node: Node, *, commit_timeout_s: float = COMMIT_TIMEOUT_S) -> None:
        self.node = node
        self.state = ApiState(node, node.home.admin_token, commit_timeout_s)
        self.runners: list[web.AppRunner] = []
        self.addresses: dict[str, str] = {}

    async def start(self) -> None:
        """Bind the public then the admin listener; NodeError (one line) if an address is taken."""
        check_api_config(self.node.config, self.state.token)
        self.state.refresh_pricing()
        self.node.add_commit_listener(self.state.refresh_pricing)
        config = self.node.config
        for listener, address in (("public", config.api_public), ("admin", config.api_admin)):
            runner = web.AppRunner(
                build_app(self.state, listener),
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
                raise NodeError(f"cannot listen for the {listener} API on {address}: {exc.strerror or exc}") from None
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


__all__ = ["ApiServer", "ROUTES", "Route", "build_app", "build_openapi", "check_api_config"]

"""The API's middlewares: every failure as the one JSON error shape (and every request counted and timed),
the public listener's per-client rate limit, the admin listener's bearer token (always required, also on
loopback) and, on both, `Content-Type: application/json` on every request with a body (a browser's
cross-site form or `no-cors` request cannot send that type without a CORS preflight, which the node never
grants)."""

from __future__ import annotations

import hmac
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..errors import ApiRequestError
from .http import error_response, is_json_declared, is_loopback
from .openapi import JSON_TYPE, Handler
from .state import LISTENER_KEY, get_state, get_table

log = logging.getLogger("node.api")


def route_label(request: web.Request) -> str:
    """The route template of a request ("unmatched" for an unknown path: bounded label values)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


SERVICE_DESC = '</openapi.json>; rel="service-desc"'
SERVICE_DOC = '</docs>; rel="service-doc"'  # the Swagger UI, on the public listener


@web.middleware
async def service_links(request: web.Request, handler: Handler) -> web.StreamResponse:
    """RFC 8631 `Link` to this listener's OpenAPI document (and on the public one the Swagger UI) on every
    response."""
    response = await handler(request)
    public = request.app[LISTENER_KEY] == "public"
    response.headers["Link"] = f"{SERVICE_DESC}, {SERVICE_DOC}" if public else SERVICE_DESC
    return response


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
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
    streamed = response.content_type == "text/event-stream"  # open for as long as its client stays: not timed
    seconds = None if streamed else time.perf_counter() - started
    get_state(request).metrics.observe_request(
        request.app[LISTENER_KEY], route_label(request), request.method, response.status, seconds
    )
    return response


def compute_allowed_methods(request: web.Request, matched: set[str]) -> list[str]:
    """The methods of the documented path the request names literally (`/v1/txs/simulate`: POST, not the GET
    of `/v1/txs/{hash}` that aiohttp also matched), else those aiohttp matched."""
    listener = request.app[LISTENER_KEY]
    literal = {r.method for r in get_table(request).for_listener(listener) if r.path == request.path}
    return sorted(literal or matched)


def http_exception_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own HTTP errors as the API's JSON errors."""
    if isinstance(exc, web.HTTPNotFound):
        return error_response(
            404, "not_found", f"no route {request.method} {request.path[:200]}; see GET /openapi.json"
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(compute_allowed_methods(request, exc.allowed_methods))
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
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
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


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The admin listener's bearer-token auth, on every request from any address (constant-time comparison;
    a node without a token refuses every admin request: it does not start without one)."""
    token = get_state(request).token
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if not token or scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        what = "is missing" if not given else "is wrong"
        raise ApiRequestError(401, "unauthorized", f"the Authorization: Bearer <HOME/admin_token> header {what}")
    return await handler(request)


@web.middleware
async def require_json_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """415 for a POST with a body that does not declare `Content-Type: application/json` (POST is the only
    method of this API that takes a body; another method goes on to its route, or to 405)."""
    if request.method == "POST" and request.body_exists and not is_json_declared(request):
        declared = request.headers.get("Content-Type")
        got = "no Content-Type" if declared is None else f"Content-Type {declared[:80]!r}"
        raise ApiRequestError(
            415, "unsupported_media_type", f"a request body must be sent as Content-Type: {JSON_TYPE}, got {got}"
        )
    return await handler(request)


@web.middleware
async def refuse_repeated_parameters(request: web.Request, handler: Handler) -> web.StreamResponse:
    """400 for a query string that gives one parameter twice: every parameter of this API takes one value,
    and taking the first (or the last) would answer a question the client did not ask."""
    names = request.query
    if len(names) > 1 and len(set(names)) != len(names):
        repeated = next(name for name in names if len(names.getall(name)) > 1)
        raise ApiRequestError(
            400,
            "invalid_parameter",
            f"the query parameter {repeated[:40]!r} is given more than once; it takes one value",
        )
    return await handler(request)


def compute_middlewares(listener: str) -> list[Middleware]:
    """The middlewares of a listener, outermost first: the service links, the rate limit (public: a refused
    request costs no handler work), errors and metrics, the token (admin), the body's Content-Type, one
    value per query parameter."""
    middlewares: list[Middleware] = [errors_and_metrics]
    if listener == "public":
        middlewares.insert(0, rate_limit)
    if listener == "admin":
        middlewares.append(require_token)
    middlewares.extend((require_json_body, refuse_repeated_parameters))
    return [service_links, *middlewares]


__all__ = [
    "compute_middlewares",
    "errors_and_metrics",
    "http_exception_response",
    "rate_limit",
    "refuse_repeated_parameters",
    "require_json_body",
    "require_token",
    "service_links",
    "route_label",
]

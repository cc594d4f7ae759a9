"""The API's HTTP plumbing: listener addresses, JSON responses, the one error shape, reading a
request's body (400 naming the field and the rule) and asking the node's committed-state query."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

from aiohttp import web

from chain.encoding import describe_json_error
from chain.errors import ChainError

from ..errors import ApiRequestError, MempoolError, MempoolFull
from ..outcomes import TxOutcome
from .openapi import JSON_TYPE
from .state import get_state

LOOPBACK_HOSTS = ("localhost",)


# =============================================================================================
# addresses
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


# =============================================================================================
# responses and errors
# =============================================================================================
def encode_json(body: Any) -> bytes:
    """The compact JSON bytes of a response body (integers only: SPEC §1)."""
    return json.dumps(body, separators=(",", ":")).encode()


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON response (integers only: SPEC §1)."""
    return web.Response(body=encode_json(body), status=status, content_type=JSON_TYPE)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The one error shape: {"error": {"code", "message"}}."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return web.Response(body=body, status=status, content_type=JSON_TYPE, headers=headers)


def bad_request(code: str, message: str) -> ApiRequestError:
    return ApiRequestError(400, code, message)


def chain_error_to_api(exc: ChainError) -> ApiRequestError:
    """A query's ChainError as a 404 (not found) or 400 (bad query)."""
    return ApiRequestError(404 if exc.code in ("not_found", "unknown_proposal") else 400, exc.code, str(exc))


MALFORMED_CODES = frozenset({"malformed", "tx_too_large", "non_canonical"})
# not signed by whom it must be, or signed by one who may not do it
UNAUTHORIZED_CODES = frozenset(
    {
        "bad_signature",
        "pubkey_mismatch",
        "bad_requester_signature",
        "not_receipt_provider",
        "not_provider",
        "not_validator",
    }
)
CONFLICT_CODES = frozenset({"wrong_sequence", "too_many_open_proposals"})  # right in another state of the account


def compute_tx_error_status(code: str) -> int:
    """The HTTP status of a transaction the node refuses with the chain's `code`: 400 malformed, 403 not
    signed by its sender (or a receipt by its requester), or by one the rule does not allow (a settlement by
    another provider, a vote by a non-validator: Cosmos's ErrUnauthorized), 409 a wrong sequence
    or too many open proposals (the account's state, which changes), 422 any other rule."""
    if code in MALFORMED_CODES:
        return 400
    if code in UNAUTHORIZED_CODES:
        return 403
    return 409 if code in CONFLICT_CODES else 422


def mempool_error_to_api(exc: MempoolError) -> ApiRequestError:
    """A mempool refusal: 429 when full, else as `compute_tx_error_status` says."""
    if isinstance(exc, MempoolFull):
        return ApiRequestError(429, exc.code, str(exc))
    return ApiRequestError(compute_tx_error_status(exc.code), exc.code, str(exc))


def outcome_error(outcome: TxOutcome) -> ApiRequestError:
    """A committed-with-failure or dropped tx as a 422 with the chain's code."""
    where = f"committed at height {outcome.height}" if outcome.committed else "dropped from the mempool"
    return ApiRequestError(422, outcome.code, f"transaction {outcome.tx_hash} {where}: {outcome.log or outcome.code}")


# =============================================================================================
# requests
# =============================================================================================
def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed in JSON bodies")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"the key {key[:40]!r} appears twice in one object")
        doc[key] = value
    return doc


def is_json_declared(request: web.Request) -> bool:
    """True if the request declares a JSON body (`Content-Type: application/json`, or a `+json` type)."""
    if "Content-Type" not in request.headers:
        return False
    return request.content_type == JSON_TYPE or request.content_type.endswith("+json")


async def read_body(request: web.Request) -> bytes:
    """The request body (its Content-Type checked by the middleware); 413 (via aiohttp) if too large, 408 if
    it has not fully arrived within the request read timeout, 400 if its Content-Encoding (gzip, deflate)
    does not decode, or decodes to nothing from a body that was not empty (a truncated stream)."""
    timeout_s = get_state(request).read_timeout_s
    encoding = request.headers.get("Content-Encoding", "")
    try:
        async with asyncio.timeout(timeout_s):
            data = await request.read()
    except TimeoutError:
        raise ApiRequestError(408, "request_timeout", f"the body did not arrive within {timeout_s:g} s") from None
    except web.RequestPayloadError:
        request.content.feed_eof()  # nothing more of it is read: the server would log the error again draining it
        raise bad_request(
            "invalid_body", f"the body does not decode as its Content-Encoding {encoding[:20]!r}"
        ) from None
    if not data and encoding and request.content_length:
        raise bad_request("invalid_body", f"the body decodes to nothing as its Content-Encoding {encoding[:20]!r}")
    return data


def parse_json_object(data: bytes) -> dict[str, Any]:
    """A JSON object from a request body; 400 for anything else, a key twice in one object included (floats
    stay floats: fields reject them)."""
    if not data.strip():
        raise bad_request("invalid_json", "the body is empty; it must be a JSON object")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad_request("invalid_json", f"the body is not valid JSON: {describe_json_error(exc)}") from None
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


def query(request: web.Request, path: str, **params: Any) -> Any:
    """A committed-state query; ChainError as 404/400."""
    try:
        return get_state(request).node.query(path, **params)
    except ChainError as exc:
        raise chain_error_to_api(exc) from None


__all__ = [
    "bad_request",
    "compute_tx_error_status",
    "chain_error_to_api",
    "encode_json",
    "error_response",
    "is_json_declared",
    "is_loopback",
    "json_response",
    "mempool_error_to_api",
    "outcome_error",
    "parse_json_object",
    "query",
    "read_body",
    "require_fields",
    "split_host_port",
]

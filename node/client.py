"""A small HTTP client of the node API (standard library only), for the CLI, the devnet and the
network engine. Every request has a timeout; every failure is an `ApiError` with one clear line."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .errors import NodeError

DEFAULT_NODE = "http://127.0.0.1:26650"
DEFAULT_TIMEOUT = 10.0
COMMIT_TIMEOUT = 30.0  # a `?wait=commit` post waits for the next blocks
MAX_RATE_LIMIT_RETRIES = 3  # a request answered 429 with Retry-After is sent again at most this many times
MAX_RETRY_AFTER_S = 30  # and never after waiting longer than this
DEFAULT_PROBE_PRICE = "0.01"  # the fee of a `--gas auto` probe (any fee > 0: paying it is simulated too)


class ApiError(NodeError):
    """A failed API request: `status` is the HTTP status (0 if the node was not reached), `code`
    the API's error code."""

    def __init__(self, message: str, *, status: int = 0, code: str = "unreachable") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def normalize_url(url: str) -> str:
    """`host:port` or a URL, as a base URL without a trailing slash; ApiError(code="invalid_url") for a text
    that is not an http(s) URL of a host (with no whitespace or control character in it)."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it (a ValueError for a port out of range or not a number)
    except ValueError as exc:
        raise ApiError(f"{url[:200]!r} is not a node URL: {exc}", code="invalid_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not url.isprintable() or " " in url:
        raise ApiError(f"{url[:200]!r} is not a node URL (http://HOST:PORT)", code="invalid_url")
    return url.rstrip("/")


class Client:
    """The node's HTTP API at `base` (public or admin listener); `token` for the admin one."""

    def __init__(self, base: str = DEFAULT_NODE, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.base = normalize_url(base)
        self.token = token
        self.timeout = timeout

    def get(self, path: str, **params: Any) -> Any:
        """GET `path` (query parameters that are None are left out); the JSON body."""
        return self.request("GET", path, params=params)[1]

    def get_all(self, path: str, field: str, **params: Any) -> list[Any]:
        """Every item of the list `field` of a paginated route, its pages followed by `next_key`."""
        items: list[Any] = []
        while True:
            page = self.get(path, **params)
            items += page[field]
            if page["pagination"]["next_key"] is None:
                return items
            params = {**params, "pagination.key": page["pagination"]["next_key"]}

    def post(self, path: str, body: bytes | dict[str, Any], *, timeout: float | None = None, **params: Any) -> Any:
        """POST a JSON body (a dict, or bytes sent as they are); the JSON body of the reply."""
        return self.request("POST", path, body=body, params=params, timeout=timeout)[1]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        """One request: (HTTP status, decoded JSON body); ApiError on a 4xx/5xx or no answer."""
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            try:
                with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                    return resp.status, decode_body(resp.read(), url)
            except urllib.error.HTTPError as exc:
                wait = compute_retry_after(exc)
                if wait is None or attempt == MAX_RATE_LIMIT_RETRIES:
                    raise api_error(exc, url) from None
                exc.close()
                time.sleep(wait)  # the node refused it before doing anything (429): the same request again
            except urllib.error.URLError as exc:
                reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
                raise ApiError(f"cannot reach the node at {self.base}: {reason} (is it running? see --node)") from None
            except TimeoutError:
                raise ApiError(
                    f"the node at {self.base} did not answer {method} {path} within {timeout or self.timeout:g} s"
                ) from None
            except (ConnectionError, OSError) as exc:
                raise ApiError(f"cannot reach the node at {self.base}: {exc}") from None
        raise AssertionError("the loop returns or raises")


def compute_retry_after(exc: urllib.error.HTTPError) -> float | None:
    """How long to wait before sending a request answered 429 again: its Retry-After seconds, at most
    MAX_RETRY_AFTER_S; None for another status or a 429 without a usable Retry-After."""
    header = exc.headers.get("Retry-After") if exc.code == 429 and exc.headers is not None else None
    if header is None or not header.strip().isdigit():
        return None
    return float(min(int(header.strip()), MAX_RETRY_AFTER_S))


def check_chain_id(client: Client, chain_id: str) -> None:
    """NodeError naming both chain ids unless the node serves `chain_id` (a signer never takes the chain id
    from the node it sends to: a node of another chain could make it sign a replayable transaction)."""
    served = client.get("/v1/status")["chain_id"]
    if served != chain_id:
        raise NodeError(
            f"the node at {client.base} serves chain {str(served)[:80]!r}, not {chain_id!r}; nothing was signed or sent"
        )


@dataclass(frozen=True)
class GasChoice:
    """How a client sets gas and fee (gaiad's flags): `gas` "auto" (simulate, × `adjustment`) or a
    limit; `fees` in ngonka, or None for `gas_prices` (ngonka per gas, a decimal string; None: the
    node's least) × the limit, rounded up."""

    gas: int | str = "auto"
    fees: int | None = None
    gas_prices: str | None = None
    adjustment: Fraction = Fraction(6, 5)


def sign_with_gas(
    client: Client, key: Any, chain_id: str, sequence: int, messages: list[Any], choice: GasChoice
) -> bytes:
    """Sign `messages` with the gas limit and fee `choice` asks for (simulating on the node for "auto")."""
    from chain.gas import compute_adjusted_gas, compute_gas_price, compute_min_fee
    from chain.tx import sign_tx

    price = None if choice.gas_prices is None else compute_gas_price(choice.gas_prices)
    if choice.gas == "auto":
        probe = sign_tx(key, chain_id, sequence, messages, gas_price=choice.gas_prices or DEFAULT_PROBE_PRICE)
        simulated = client.post("/v1/txs/simulate", probe)
        gas_limit = compute_adjusted_gas(simulated["gas_used"], choice.adjustment)
        price = compute_gas_price(simulated["min_gas_price"]) if price is None else price
    else:
        gas_limit = int(choice.gas)
        if price is None and choice.fees is None:
            price = compute_gas_price(client.get("/v1/params")["min_gas_price"])
    fee = choice.fees if choice.fees is not None else compute_min_fee(gas_limit, price or Fraction(0))
    return sign_tx(key, chain_id, sequence, messages, gas_limit=gas_limit, fee=fee)


def broadcast(
    client: Client,
    key: Any,
    messages: list[Any],
    chain_id: str,
    *,
    sequence: int | None = None,
    wait: bool = True,
    gas: GasChoice | None = None,
) -> dict[str, Any]:
    """Sign `messages` with `key` for `chain_id` (NodeError if the node serves another chain) at `sequence`
    (default: the account's next, from the node), with the gas and fee of `gas` (by default: simulated gas
    × 1.2 at the node's least price), and post the tx, waiting for its commit unless `wait` is False; the
    node's reply."""
    check_chain_id(client, chain_id)
    if sequence is None:
        try:
            sequence = client.get(f"/v1/accounts/{key.address}")["sequence"]
        except ApiError as exc:
            if exc.status != 404:
                raise
            sequence = 0  # an account the chain has never seen
    raw = sign_with_gas(client, key, chain_id, sequence, messages, gas or GasChoice())
    params = {"wait": "commit"} if wait else {}
    return client.post("/v1/txs", raw, timeout=COMMIT_TIMEOUT if wait else None, **params)


def decode_body(raw: bytes, url: str) -> Any:
    """A reply's JSON body (None if empty)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise ApiError(f"{url} answered with a body that is not JSON", code="bad_reply") from None


def api_error(exc: urllib.error.HTTPError, url: str) -> ApiError:
    """The ApiError of an HTTP error reply, with the API's code and message when it sent them."""
    try:
        doc = json.loads(exc.read() or b"null")
        error = doc["error"]
        code, message = str(error["code"]), str(error["message"])
    except (json.JSONDecodeError, KeyError, TypeError, OSError):
        code, message = f"http_{exc.code}", f"{exc.code} {exc.reason} from {url}"
    return ApiError(f"{message} ({code})", status=exc.code, code=code)


__all__ = [
    "ApiError",
    "COMMIT_TIMEOUT",
    "Client",
    "DEFAULT_NODE",
    "GasChoice",
    "broadcast",
    "check_chain_id",
    "normalize_url",
    "sign_with_gas",
]

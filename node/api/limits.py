"""The HTTP API's abuse limits: a per-client token bucket, connection caps, and header/read limits.

    limiter = RateLimiter(rate_per_s=100, burst=200)       # the public listener's per-client requests
    verdict = limiter.take("203.0.113.7")                   # Verdict(allowed, remaining, retry_after_s, reset_s)

A client is an IPv4 address, or the IPv6 network of `ipv6_prefix` bits (default /64) its address is in:
one host usually holds a whole /64, and a bucket per address would let it fill the bounded table alone.
    gate = ConnectionGate("public", total=512, per_client=128)
    site = LimitedSite(runner, host, port, gate=gate)       # a TCPSite whose accepted connections pass the gate

A connection over either cap is answered with a 503 JSON error and closed at once, without reaching
aiohttp. Accepted connections are aiohttp `RequestHandler`s with the configured header limits
(`max_line_size`, `max_field_size`, `max_headers`) and a `keepalive_timeout` equal to the request
read timeout: aiohttp closes a connection whose next request has not fully arrived that long after
the connection opened or the previous response (a slow-loris client dribbling header bytes included).
Malformed or oversized request heads are answered with the API's JSON error shape (431 for a header
over the limit, 400 otherwise) and logged at DEBUG only: junk from the network is not worth a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

log = logging.getLogger(__name__)

MAX_TRACKED_CLIENTS = 10_000  # rate-limit buckets kept at most (the least recently seen go first)
REFUSED_BODY = json.dumps(
    {"error": {"code": "too_many_connections", "message": "the server has too many open connections; retry later"}}
).encode()
REFUSED_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(REFUSED_BODY)).encode() + b"\r\n\r\n" + REFUSED_BODY
)


# =============================================================================================
# rate limit
# =============================================================================================
@dataclass(frozen=True)
class Verdict:
    """A rate-limit decision and the numbers for the X-RateLimit-* and Retry-After headers."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int  # 0 when allowed
    reset_s: int  # whole seconds until the bucket is full again

    def headers(self) -> dict[str, str]:
        """The X-RateLimit-* headers (and Retry-After when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


def compute_client_key(ip: str, ipv6_prefix: int) -> str:
    """The rate-limit bucket of a client IP: an IPv4 address itself (an IPv4-mapped IPv6 one as IPv4), an IPv6
    address its network of `ipv6_prefix` bits ("2001:db8:1:2::/64"), anything else (a Unix socket's "") as is."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))


class RateLimiter:
    """Token buckets per client (`burst` tokens, refilled at `rate_per_s`), on the monotonic clock; a client is
    an IPv4 address or an IPv6 network of `ipv6_prefix` bits (compute_client_key).

    At most `max_clients` buckets are kept: a new client evicts the least recently seen one (the most idle
    client, whose bucket has usually refilled already, so forgetting it changes nothing)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_clients: int = MAX_TRACKED_CLIENTS,
        ipv6_prefix: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.ipv6_prefix = ipv6_prefix
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self.refused = 0

    def take(self, ip: str) -> Verdict:
        """Spend one token of the bucket of client `ip` (its IPv6 network) if it has one."""
        key = compute_client_key(ip, self.ipv6_prefix)
        now = self.clock()
        tokens = self._tokens(key, now)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        else:
            self.refused += 1
        self.buckets[key] = (tokens, now)
        self.buckets.move_to_end(key)
        retry_after = 0 if allowed else max(1, math.ceil((1.0 - tokens) / self.rate_per_s))
        reset = math.ceil((self.burst - tokens) / self.rate_per_s)
        return Verdict(allowed, self.burst, int(tokens), retry_after, reset)

    def _tokens(self, key: str, now: float) -> float:
        """The tokens `key` has now (a full bucket for a new client, after making room for it)."""
        entry = self.buckets.get(key)
        if entry is None:
            while len(self.buckets) >= self.max_clients:
                self.buckets.popitem(last=False)
            return float(self.burst)
        tokens, at = entry
        return min(float(self.burst), tokens + (now - at) * self.rate_per_s)


# =============================================================================================
# connection caps
# =============================================================================================
class ConnectionGate:
    """Open connections of one listener, capped in total and per client IP."""

    def __init__(self, listener: str, *, total: int, per_client: int) -> None:
        self.listener = listener
        self.total = total
        self.per_client = per_client
        self.open: dict[str, int] = {}
        self.open_total = 0
        self.refused = 0
        self.accepted = 0

    def admit(self, client: str) -> bool:
        """Count a new connection of `client`; False (and counted as refused) if a cap is reached."""
        count = self.open.get(client, 0)
        if self.open_total >= self.total or count >= self.per_client:
            self.refused += 1
            return False
        self.open[client] = count + 1
        self.open_total += 1
        self.accepted += 1
        return True

    def release(self, client: str) -> None:
        """Forget one closed connection of `client`."""
        count = self.open.get(client, 0) - 1
        if count > 0:
            self.open[client] = count
        else:
            self.open.pop(client, None)
        self.open_total -= 1


class RefusedConnection(asyncio.Protocol):
    """A connection over a cap: a 503 JSON answer, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(REFUSED_RESPONSE)
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass


def classify_bad_request(exc: BaseException | None) -> tuple[int, str]:
    """(status, code) answering a request head aiohttp could not parse."""
    if isinstance(exc, LineTooLong) or (isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message):
        return 431, "header_too_large"
    return 400, "bad_request"


class GatedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, releasing its slot in the gate when the connection closes (and telling
    `on_lost`: aiohttp does not cancel a handler whose client left, and an event stream waits for its next
    frame)."""

    def __init__(self, manager: web.Server, *, gate: ConnectionGate, client: str, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._client = client
        self._released = False
        self.on_lost: list[Callable[[], None]] = []  # called when the connection closes (an event stream ends)

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            super().connection_lost(exc)
            for callback in self.on_lost:
                callback()
        finally:
            if not self._released:
                self._released = True
                self._gate.release(self._client)

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """Unparseable request heads as the API's JSON error (431/400), logged at DEBUG; the rest as aiohttp does."""
        if status != 400:
            return super().handle_error(request, status, exc, message)
        status, code = classify_bad_request(exc)
        log.debug("bad request head from %s: %s", request.remote, exc)
        text = (exc.message if isinstance(exc, BadHttpMessage) else message) or "bad request"
        body = json.dumps({"error": {"code": code, "message": str(text)[:200]}}).encode()
        response = web.Response(status=status, body=body, content_type="application/json")
        response.force_close()
        return response


def peer_ip(transport: asyncio.BaseTransport) -> str:
    """The client IP of a transport ("" if unknown, e.g. a Unix socket)."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else ""


class GatedProtocol(asyncio.Protocol):
    """Decides at connection time: an aiohttp handler if the gate admits the client, else RefusedConnection."""

    def __init__(self, server: web.Server, gate: ConnectionGate) -> None:
        self._server = server
        self._gate = gate
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = peer_ip(transport)
        if self._gate.admit(client):
            self._inner = GatedRequestHandler(
                self._server,
                gate=self._gate,
                client=client,
                loop=asyncio.get_running_loop(),
                **self._server._kwargs,  # noqa: SLF001 - the AppRunner's handler settings (limits, timeouts)
            )
        else:
            self._inner = RefusedConnection()
        transport.set_protocol(self._inner)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:  # only before set_protocol took effect
        assert self._inner is not None
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._inner.connection_lost(exc)


class LimitedSite(web.TCPSite):
    """A TCPSite whose accepted connections pass a ConnectionGate."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.gate = gate

    async def start(self) -> None:
        """Listen like TCPSite, with the gate in front of aiohttp's protocol factory."""
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: GatedProtocol(server, self.gate),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )


__all__ = ["ConnectionGate", "LimitedSite", "RateLimiter", "Verdict", "classify_bad_request", "compute_client_key"]

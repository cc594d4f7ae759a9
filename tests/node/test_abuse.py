"""The node's abuse defences against real `uocd start` processes on loopback: body and header limits on
both listeners, the public listener's per-client rate limit (429, Retry-After, X-RateLimit-*), the
connection caps, the request read timeout against slow-loris clients, and junk on the gRPC port.
Clients bind to different loopback addresses (127.0.0.x) to be different client IPs."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import socket
import sys
import time
from pathlib import Path

import aiohttp
import grpc
import pytest

from chain.crypto import PrivateKey
from chain.tx import MsgSend, sign_tx
from node import codec
from node.api import PUBLIC_MAX_BODY, build_openapi, make_rate_limiter
from node.api.limits import ConnectionGate, RateLimiter, compute_client_key
from node.blocks import sign_vote
from node.config import NodeConfig, parse_config, render_config
from node.errors import ConfigError
from node.pb import services_pb2 as spb
from tests.node.netutil import NodeProcess, aio_self_channel, make_homes, read_metric, wait_until

TIMEOUT = 10


# =============================================================================================
# helpers
# =============================================================================================
class NodeProc(NodeProcess):
    """A one-validator `uocd start` child process, started once it has committed a block."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        wait_until(lambda: self.height() >= 1, "the node commits a block")

    def height(self, source: str = "127.0.0.250") -> int:
        """The committed height from /v1/status (-1 if it does not answer)."""
        try:
            status, _, body = request(self.public, "/v1/status", source=source)
        except OSError:
            return -1
        return json.loads(body)["height"] if status == 200 else -1


def request(
    address: str,
    path: str,
    *,
    source: str = "127.0.0.1",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One HTTP request on a new connection from the client address `source`: (status, headers, body)."""
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def error_code(body: bytes) -> str:
    """The code of a JSON error body (asserting the shape)."""
    doc = json.loads(body)
    assert set(doc["error"]) == {"code", "message"} and doc["error"]["message"]
    return doc["error"]["code"]


def metric(node: NodeProc, name: str) -> int:
    """A metric's value (summed over its labels) from the node's metrics listener."""
    return int(read_metric(node.metrics, name))


def connect(address: str, source: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT, source_address=(source, 0))
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (AssertionError if it does not in time)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server did not close the connection within {timeout} s") from None
    return data


def is_open(sock: socket.socket) -> bool:
    """True if the server has neither sent anything nor closed the connection."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
    return False


# =============================================================================================
# fixtures: two node processes with small limits
# =============================================================================================
@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A node with a small public rate limit (1/s, burst 5, loopback clients included), 10 connections per
    listener (6 per client), 1 KiB headers, at most 20 headers."""
    (home,) = make_homes(
        tmp_path_factory.mktemp("guarded"),
        1,
        api_rate_limit_per_s=1,
        api_rate_limit_burst=5,
        api_rate_limit_loopback=True,
        api_max_connections=10,
        api_max_connections_per_client=6,
        api_request_read_timeout_ms=6000,
        api_max_header_bytes=1024,
        api_max_headers=20,
    )
    node = NodeProc(home)
    yield node
    assert node.stop() == 0


@pytest.fixture(scope="module")
def loris(tmp_path_factory):
    """A node without a rate limit, 100 connections per listener (20 per client), a 1 s request read
    timeout and a 256 KiB gRPC message limit."""
    (home,) = make_homes(
        tmp_path_factory.mktemp("loris"),
        1,
        api_rate_limit_per_s=0,
        api_max_connections=100,
        api_max_connections_per_client=20,
        api_request_read_timeout_ms=1000,
        max_message_bytes=256 * 1024,
        block_max_bytes=64 * 1024,
    )
    node = NodeProc(home)
    yield node
    assert node.stop() == 0


# =============================================================================================
# body and header limits
# =============================================================================================
def test_a_too_large_body_is_a_json_413_on_both_listeners(guarded):
    status, _, body = request(
        guarded.public,
        "/v1/txs",
        source="127.0.0.10",
        method="POST",
        body=b"{" + b" " * (PUBLIC_MAX_BODY + 10) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert status == 413 and error_code(body) == "body_too_large"
    status, _, body = request(
        guarded.admin,
        "/v1/admin/models",
        method="POST",
        body=b"{" + b" " * 100_000 + b"}",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {guarded.token}"},
    )
    assert status == 413 and error_code(body) == "body_too_large"
    assert guarded.height(source="127.0.0.10") >= 1


@pytest.mark.parametrize("listener", ["public", "admin"])
def test_too_large_or_too_many_headers_are_a_json_431_and_the_server_still_serves(guarded, listener):
    address = getattr(guarded, listener)
    for headers in ({"X-Big": "a" * 2000}, {f"X-H{i}": "v" for i in range(40)}):
        status, _, body = request(address, "/v1/status", source="127.0.0.11", headers=headers)
        assert status == 431 and error_code(body) == "header_too_large"
    status, _, body = request(address, "/" + "p" * 3000, source="127.0.0.11")
    assert status == 431 and error_code(body) == "header_too_large"
    with connect(address, "127.0.0.11") as sock:  # not HTTP at all
        sock.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        answer = read_until_closed(sock, TIMEOUT)
        assert re.match(rb"HTTP/1\.[01] 400 ", answer) and error_code(answer.partition(b"\r\n\r\n")[2]) == "bad_request"
    path = "/v1/status" if listener == "public" else "/v1/admin/unit-of-compute-price-proposal"
    status, _, _ = request(address, path, source="127.0.0.12", headers={"Authorization": f"Bearer {guarded.token}"})
    assert status in (200, 404)  # 404: this operator never voted a price


# =============================================================================================
# rate limit
# =============================================================================================
def test_rate_limit_answers_429_with_retry_after_then_serves_again_and_spares_other_clients(guarded):
    before = metric(guarded, "uoc_http_rate_limited_total")
    remaining: list[int] = []
    refused = None
    for _ in range(30):
        status, headers, body = request(guarded.public, "/v1/pricing", source="127.0.0.20")
        assert headers["X-RateLimit-Limit"] == "5"
        assert int(headers["X-RateLimit-Reset"]) >= 0
        if status == 429:
            refused = (headers, body)
            break
        assert status == 200
        remaining.append(int(headers["X-RateLimit-Remaining"]))
    assert refused is not None, "30 quick requests at 1/s with a burst of 5 were never refused"
    headers, body = refused
    assert error_code(body) == "rate_limited"
    retry_after = int(headers["Retry-After"])
    assert retry_after >= 1 and headers["X-RateLimit-Remaining"] == "0"
    assert remaining[0] == 4 and remaining == sorted(remaining, reverse=True) and remaining[-1] < remaining[0]

    status, headers, _ = request(guarded.public, "/v1/pricing", source="127.0.0.21")  # another client IP
    assert status == 200 and headers["X-RateLimit-Remaining"] == "4"
    for _ in range(8):  # the admin listener is not rate limited
        status, headers, _ = request(
            guarded.admin,
            "/v1/admin/unit-of-compute-price-proposal",
            source="127.0.0.20",
            headers={"Authorization": f"Bearer {guarded.token}"},
        )
        assert status in (200, 404) and "X-RateLimit-Limit" not in headers

    time.sleep(retry_after + 0.2)
    status, _, _ = request(guarded.public, "/v1/pricing", source="127.0.0.20")
    assert status == 200
    assert metric(guarded, "uoc_http_rate_limited_total") >= before + 1


def test_openapi_documents_the_429_of_public_routes():
    pricing = build_openapi()["paths"]["/v1/pricing"]["get"]["responses"]["429"]
    assert set(pricing["headers"]) == {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
    assert "429" not in build_openapi(listener="admin")["paths"]["/v1/admin/models"]["post"]["responses"]


@pytest.mark.parametrize(
    ("ip", "prefix", "key"),
    [
        ("203.0.113.7", 64, "203.0.113.7"),  # IPv4: one bucket per address
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", 64, "2001:db8:1:2::/64"),  # the same /64: the same bucket
        ("2001:db8:1:3::1", 64, "2001:db8:1:3::/64"),  # the next /64: another
        ("2001:db8:1:2:ffff::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2::1", 128, "2001:db8:1:2::1/128"),  # 128: one bucket per address
        ("::ffff:198.51.100.9", 64, "198.51.100.9"),  # IPv4-mapped: the IPv4 address
        ("", 64, ""),  # a Unix socket: no address
    ],
)
def test_rate_limit_buckets_are_ipv4_addresses_and_ipv6_networks(ip, prefix, key):
    assert compute_client_key(ip, prefix) == key


def test_one_ipv6_64_shares_one_bucket_and_cannot_evict_other_clients():
    limiter = RateLimiter(1, 3, max_clients=10, clock=lambda: 0.0)
    assert limiter.take("2001:db8::1").allowed and limiter.take("203.0.113.1").allowed
    verdicts = [limiter.take(f"2001:db8::{i:x}") for i in range(2, 1002)]  # 1000 addresses of one /64
    assert [v.allowed for v in verdicts[:2]] == [True, True] and not any(v.allowed for v in verdicts[2:])
    assert set(limiter.buckets) == {"2001:db8::/64", "203.0.113.1"}
    assert limiter.take("2001:db8:0:1::1").allowed  # the neighbouring /64 is another client
    assert RateLimiter(1, 1, ipv6_prefix=128).take("2001:db8::1").allowed
    exact = RateLimiter(1, 1, ipv6_prefix=128, clock=lambda: 0.0)
    assert exact.take("2001:db8::1").allowed and exact.take("2001:db8::2").allowed


def test_rate_limiter_memory_is_bounded_and_evicts_the_least_recently_seen_client():
    now = [0.0]
    limiter = RateLimiter(1, 2, max_clients=100, clock=lambda: now[0])
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
        assert len(limiter.buckets) <= 100
    assert limiter.take("busy").allowed and limiter.take("busy").allowed  # a new client has a full bucket
    refused = limiter.take("busy")
    assert not refused.allowed and refused.retry_after_s == 1 and refused.remaining == 0 and refused.reset_s == 2
    for i in range(50):  # newer clients push out the idle ones, not the one still being limited
        now[0] += 0.01
        limiter.take(f"new-{i}")
        assert not limiter.take("busy").allowed
    assert len(limiter.buckets) == 100 and "10.0.0.0" not in limiter.buckets and limiter.refused == 51
    now[0] += 10
    verdict = limiter.take("busy")
    assert verdict.allowed and verdict.remaining == 1 and verdict.reset_s == 1


# =============================================================================================
# connection caps and the read timeout
# =============================================================================================
def test_connections_over_the_caps_are_refused_with_503_and_new_clients_are_served_once_they_close(guarded):
    refused_before = metric(guarded, "uoc_http_connections_refused_total")
    admitted = [connect(guarded.public, "127.0.0.30") for _ in range(6)]
    extras = [connect(guarded.public, "127.0.0.30") for _ in range(3)]  # over the per-client cap (6)
    for sock in extras:
        assert read_until_closed(sock, TIMEOUT).startswith(b"HTTP/1.1 503")
    others = [connect(guarded.public, f"127.0.0.{31 + i % 2}") for i in range(5)]  # 11: over the listener's cap (10)
    time.sleep(1.5)  # a refused connection is answered at once; an admitted one waits for its request
    refused = [sock for sock in others if not is_open(sock)]
    assert refused, "no connection was refused over the listener's cap"
    for sock in refused:
        answer = read_until_closed(sock, TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 503")
        assert error_code(answer.partition(b"\r\n\r\n")[2]) == "too_many_connections"
    assert all(is_open(sock) for sock in admitted)
    for sock in [*admitted, *extras, *others]:
        sock.close()
    wait_until(lambda: guarded.height(source="127.0.0.33") >= 1, "a new client is served", timeout=TIMEOUT)
    assert metric(guarded, "uoc_http_connections_refused_total") >= refused_before + 4


def test_idle_connections_and_slow_heads_are_closed_and_a_slow_body_is_408_after_the_read_timeout(loris):
    with (
        connect(loris.public, "127.0.0.40") as idle,
        connect(loris.public, "127.0.0.40") as partial,
        connect(loris.public, "127.0.0.40") as slow_body,
    ):
        partial.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        slow_body.sendall(
            b"POST /v1/txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        assert read_until_closed(idle, TIMEOUT) == b""
        assert read_until_closed(partial, TIMEOUT) == b""
        answer = read_until_closed(slow_body, TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 408") and error_code(answer.partition(b"\r\n\r\n")[2]) == "request_timeout"


@pytest.mark.asyncio
async def test_slow_loris_clients_do_not_starve_normal_clients_and_the_node_keeps_committing(loris):
    stats = {"refused": 0, "timed_out": 0, "connections": 0}
    stop = asyncio.Event()
    host, _, port = loris.public.rpartition(":")

    async def dribble_once() -> str:
        """One connection sending a request head a byte every 0.2 s: how the server ended it."""
        reader, writer = await asyncio.open_connection(host, int(port), local_addr=("127.0.0.1", 0))
        stats["connections"] += 1
        try:
            writer.write(b"GET /v1/pricing HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(100), 0.2)
                except TimeoutError:
                    writer.write(b"z")
                    continue
                return "refused" if data.startswith(b"HTTP/1.1 503") else "timed_out"
            return "stopped"
        except OSError:
            return "timed_out"
        finally:
            writer.close()

    async def dribbler() -> None:
        while not stop.is_set():
            try:
                ended = await dribble_once()
            except OSError:
                ended = "unconnected"
            stats[ended] = stats.get(ended, 0) + 1
            await asyncio.sleep(0.3)

    attackers = [asyncio.create_task(dribbler()) for _ in range(200)]
    statuses: list[int] = []
    first_height = loris.height()
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                async with http.get(f"http://{loris.public}/v1/pricing") as response:
                    statuses.append(response.status)
                    await response.read()
                await asyncio.sleep(0.1)
            async with http.get(f"http://{loris.public}/v1/status") as response:
                last_height = (await response.json())["height"]
    finally:
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)
    assert statuses and set(statuses) == {200}, statuses
    assert stats["connections"] >= 200 and stats["refused"] > 0 and stats["timed_out"] > 0, stats
    assert last_height >= first_height + 2, (first_height, last_height)


# =============================================================================================
# junk on the gRPC port
# =============================================================================================
OPEN_FILES = 512  # the hard limit of open files the node process below starts with
LIMIT_OPEN_FILES = (  # run argv[2:] with a soft and hard limit of argv[1] open files
    "import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


@pytest.fixture
def few_files(tmp_path):
    """A one-validator node limited to OPEN_FILES open files, holding at most 64 gRPC connections, each
    given 1 s to finish its TLS handshake."""
    (home,) = make_homes(tmp_path, 1, api_max_connections=64, grpc_max_connections=64, grpc_handshake_timeout_ms=1000)
    node = NodeProcess(home, lambda argv: [sys.executable, "-c", LIMIT_OPEN_FILES, str(OPEN_FILES), *argv])
    wait_until(lambda: read_metric(node.metrics, "cometbft_consensus_height") >= 2, "two blocks", ignore=(OSError,))
    yield node
    assert node.stop() == 0


def test_a_thousand_idle_connections_to_the_grpc_port_cannot_take_the_nodes_files_and_halt_it(few_files):
    """Regression: anyone who can reach the gRPC port (no TLS needed) held one file descriptor per idle TCP
    connection, with no limit and for gRPC's default 120 s handshake timeout. At the usual 1,024 open files,
    a thousand of them left a validator unable to write its sign state before its next vote: the timeout
    callback raised EMFILE, the engine stopped for good, and a two-validator chain halted even after the
    connections closed."""
    node = few_files
    host, port = node.grpc.rsplit(":", 1)
    held = []
    for _ in range(1000):
        try:
            held.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError:  # the listen backlog may refuse a burst; what was accepted is what counts
            pass
    try:
        fds = len(os.listdir(f"/proc/{node.popen.pid}/fd"))
        assert fds < 64 + 64 + 40, f"the node holds {fds} files with {len(held)} connections open"
        first = read_metric(node.metrics, "cometbft_consensus_height")
        wait_until(lambda: read_metric(node.metrics, "cometbft_consensus_height") >= first + 3, "it keeps committing")
        # the ones past the cap were closed as they arrived, the others once their 1 s handshake timeout ran out
        wait_until(
            lambda: not any(is_open(sock) for sock in held), "the server closed every idle connection", timeout=10
        )
    finally:
        for sock in held:
            sock.close()
    assert node.popen.poll() is None


def junk_messages(node: NodeProc, count: int) -> list[tuple[str, bytes]]:
    """(method, payload) junk: random bytes, wrong-chain-id votes, implausible votes, garbage txs and
    batches, and one in fifty an oversized batch."""
    rng = random.Random(7)
    key = node.key
    stranger = PrivateKey.from_name("abuser")
    messages: list[tuple[str, bytes]] = []
    for i in range(count):
        kind = 5 if i % 50 == 49 else i % 5
        if kind == 0:
            messages.append(("SendConsensus", rng.randbytes(rng.randint(1, 300))))
        elif kind == 1:
            vote = sign_vote(key, "not-" + node.chain_id, "prevote", 5, 0, "ab" * 32, i)
            messages.append(("SendConsensus", codec.consensus_message_to_pb(vote).SerializeToString()))
        elif kind == 2:
            vote = sign_vote(stranger, node.chain_id, "precommit", 10**9, 10**6, None, i)
            messages.append(("SendConsensus", codec.consensus_message_to_pb(vote).SerializeToString()))
        elif kind == 3:
            messages.append(("BroadcastTx", rng.randbytes(rng.randint(1, 300))))
        elif kind == 4:
            tx = sign_tx(stranger, "wrong-chain", i, [MsgSend(to=key.address, amount=1)])
            messages.append(("BroadcastTxs", spb.TxBatch(txs=[tx, rng.randbytes(50)]).SerializeToString()))
        else:
            messages.append(("BroadcastTxs", spb.TxBatch(txs=[b"x" * 1024] * 300).SerializeToString()))  # > 256 KiB
    return messages


async def send_raw(address: str, data: bytes) -> str:
    """Send raw bytes to a TCP port: "closed" if the server then hangs up within 5 s, else "open"."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        async with asyncio.timeout(5):
            while await reader.read(4096):
                pass
        return "closed"
    except TimeoutError:
        return "open"
    except OSError:
        return "closed"
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_thousands_of_junk_grpc_messages_and_raw_garbage_do_not_stop_the_node(loris):
    first_height = loris.height()
    messages = junk_messages(loris, 3000)
    messages.sort(key=lambda m: len(m[1]) > 100_000)  # oversized last: on one HTTP/2 connection they hold up
    # the calls behind them (flow control), which slows only this client, not the node
    codes: dict[str, int] = {}
    async with aio_self_channel(loris.home, loris.grpc) as channel:  # an authenticated peer sending junk
        calls = {
            name: channel.unary_unary(f"/uoc.v1.Gossip/{name}", request_serializer=None, response_deserializer=None)
            for name in ("SendConsensus", "BroadcastTx", "BroadcastTxs")
        }

        async def send(name: str, payload: bytes) -> None:
            try:
                await calls[name](payload, timeout=TIMEOUT)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            codes[code] = codes.get(code, 0) + 1

        # Half the server's max_concurrent_streams (100) at a time. With exactly 100, one CI run on a loaded
        # machine saw 2 of 3,000 calls UNAVAILABLE, and the node logged nothing: most likely a stream of the
        # last batch not yet closed server-side when the next one opened, refused (REFUSED_STREAM, which
        # gRPC reports as UNAVAILABLE). Not reproduced; the limit is the server's, not the node's health.
        for start in range(0, len(messages), 50):
            await asyncio.gather(*(send(name, payload) for name, payload in messages[start : start + 50]))
    assert codes.get("INVALID_ARGUMENT", 0) >= 1500 and codes.get("RESOURCE_EXHAUSTED", 0) == 60, codes
    assert "UNAVAILABLE" not in codes and "DEADLINE_EXCEEDED" not in codes and "UNKNOWN" not in codes, codes

    assert loris.height() > first_height, "the node stopped committing during the junk"

    garbage = (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0" * 50)
    ended = await asyncio.gather(*(send_raw(loris.grpc, garbage[i % 3]) for i in range(60)))
    assert ended.count("closed") >= 40, ended  # the server hangs up on garbage (it may wait for a real preface)

    wait_until(lambda: loris.height() >= first_height + 3, "the node keeps committing after the junk", timeout=20)
    status, _, body = request(loris.public, "/v1/status", source="127.0.0.50")
    assert status == 200 and json.loads(body)["chain_id"] == loris.chain_id
    assert metric(loris, "uoc_grpc_rejected_total") >= 1000
    assert loris.popen.poll() is None


# =============================================================================================
# config
# =============================================================================================
VALID = [
    ("api", "max_connections", 64, "api_max_connections"),
    ("api", "max_connections_per_client", 8, "api_max_connections_per_client"),
    ("api", "request_read_timeout_ms", 2500, "api_request_read_timeout_ms"),
    ("api", "max_header_bytes", 4096, "api_max_header_bytes"),
    ("api", "max_headers", 32, "api_max_headers"),
    ("api", "rate_limit_per_s", 0, "api_rate_limit_per_s"),
    ("api", "rate_limit_per_s", 7, "api_rate_limit_per_s"),
    ("api", "rate_limit_burst", 9, "api_rate_limit_burst"),
    ("api", "rate_limit_loopback", True, "api_rate_limit_loopback"),
    ("api", "rate_limit_ipv6_prefix", 48, "api_rate_limit_ipv6_prefix"),
    ("api", "rate_limit_ipv6_prefix", 128, "api_rate_limit_ipv6_prefix"),
    ("grpc", "max_concurrent_streams", 16, "grpc_max_concurrent_streams"),
    ("grpc", "max_connection_idle_ms", 60_000, "grpc_max_connection_idle_ms"),
    ("grpc", "max_connections", 32, "grpc_max_connections"),
    ("grpc", "handshake_timeout_ms", 2000, "grpc_handshake_timeout_ms"),
    ("storage", "validator_set_retention", 2, "validator_set_retention"),
]
INVALID = [
    ("api", "max_connections", -1, "api.max_connections must be a positive integer"),
    ("api", "max_connections", 0, "api.max_connections must be a positive integer"),
    ("api", "max_connections_per_client", '"8"', "api.max_connections_per_client must be a positive integer"),
    ("api", "request_read_timeout_ms", 1.5, "api.request_read_timeout_ms must be a positive integer"),
    ("api", "max_header_bytes", 100, "api.max_header_bytes must be an integer of at least 256"),
    ("api", "max_headers", "true", "api.max_headers must be a positive integer"),
    ("api", "rate_limit_per_s", -5, "api.rate_limit_per_s must be an integer of at least 0"),
    ("api", "rate_limit_burst", 0, "api.rate_limit_burst must be a positive integer"),
    ("api", "rate_limit_loopback", 1, "api.rate_limit_loopback must be true or false"),
    ("api", "rate_limit_ipv6_prefix", 0, "api.rate_limit_ipv6_prefix must be a positive integer"),
    ("api", "rate_limit_ipv6_prefix", 129, "api.rate_limit_ipv6_prefix must be 1..128, got 129"),
    ("grpc", "max_concurrent_streams", -2, "grpc.max_concurrent_streams must be a positive integer"),
    ("grpc", "max_connection_idle_ms", '"soon"', "grpc.max_connection_idle_ms must be a positive integer"),
    ("grpc", "max_connections", 0, "grpc.max_connections must be a positive integer"),
    ("grpc", "handshake_timeout_ms", -1, "grpc.handshake_timeout_ms must be a positive integer"),
    ("storage", "validator_set_retention", 1, "storage.validator_set_retention must be an integer of at least 2"),
]


def with_value(section: str, key: str, value: object) -> str:
    """The default config.toml with `section.key = value` (a TOML literal)."""
    literal = ("true" if value else "false") if isinstance(value, bool) else str(value)
    text = render_config(NodeConfig(moniker="m"))
    text, count = re.subn(rf"(?m)^(\[{section}\](?:\n(?!\[).*)*?\n){key} = .*$", rf"\g<1>{key} = {literal}", text)
    assert count == 1, f"{section}.{key} is not rendered"
    return text


@pytest.mark.parametrize(("section", "key", "value", "field"), VALID, ids=[f"{v[0]}.{v[1]}={v[2]}" for v in VALID])
def test_abuse_limit_fields_parse_and_render(section, key, value, field):
    config = parse_config(with_value(section, key, value))
    assert getattr(config, field) == value
    assert parse_config(render_config(config)) == config


@pytest.mark.parametrize(
    ("section", "key", "value", "message"), INVALID, ids=[f"{v[0]}.{v[1]}={v[2]}" for v in INVALID]
)
def test_an_invalid_abuse_limit_is_a_config_error_naming_the_key(section, key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(with_value(section, key, value))


def test_defaults_suit_a_devnet_and_zero_disables_the_rate_limit():
    config = parse_config(render_config(NodeConfig(moniker="m")))
    assert config.api_max_connections >= 256 and config.api_max_connections_per_client >= 64
    assert 1000 <= config.api_request_read_timeout_ms <= 30_000
    assert config.api_rate_limit_per_s > 0 and not config.api_rate_limit_loopback
    assert config.api_rate_limit_ipv6_prefix == 64 and make_rate_limiter(config).ipv6_prefix == 64
    assert make_rate_limiter(parse_config(with_value("api", "rate_limit_per_s", 0))) is None
    gate = ConnectionGate("public", total=2, per_client=1)
    assert gate.admit("a") and not gate.admit("a") and gate.admit("b") and not gate.admit("c")
    gate.release("a")
    assert gate.admit("c") and gate.open_total == 2 and gate.refused == 2


@pytest.mark.parametrize(
    ("soft", "hard", "raised_to", "warned"),
    [
        (1024, 524288, 524288, False),  # systemd's usual limits: raised, enough
        (1024, 1024, None, True),  # nothing to raise, and below what the listeners may hold
        (4096, 4096, None, False),  # already enough
    ],
)
def test_the_node_raises_its_open_files_limit_and_warns_when_it_cannot_hold_its_connections(
    monkeypatch, caplog, soft, hard, raised_to, warned
):
    import resource

    from node.node import raise_open_files_limit

    limits = {resource.RLIMIT_NOFILE: (soft, hard)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits[which])
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: limits.__setitem__(which, value))
    caplog.set_level("INFO", logger="node.node")
    raise_open_files_limit(NodeConfig(moniker="m", api_max_connections=512, grpc_max_connections=256))
    assert limits[resource.RLIMIT_NOFILE] == ((raised_to, raised_to) if raised_to else (soft, hard))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert bool(warnings) is warned
    if warned:
        assert "below the 1856 the node may need" in warnings[0] and "ulimit -n" in warnings[0]  # 256 + 3 × 512 + 64


def test_a_hard_limit_the_system_will_not_grant_leaves_the_soft_limit_and_warns_against_it(monkeypatch, caplog):
    import resource

    from node.node import raise_open_files_limit

    def refuse(which, value):
        raise ValueError("current limit exceeds maximum limit")

    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    caplog.set_level("INFO", logger="node.node")
    raise_open_files_limit(NodeConfig(moniker="m"))
    messages = [r.getMessage() for r in caplog.records]
    assert "open files limit left at 256" in messages[0] and "the open files limit is 256" in messages[1]

"""The live dashboard (`GET /`, `GET /v1/dashboard`, `GET /v1/dashboard/events`).

Unit tests of the hub that pushes the snapshot to the event streams (with a stand-in node: one snapshot per
commit whatever the number of streams, bounded queues, slow clients dropped, stream caps); then a real
devnet of `uocd start` processes (a validator and a full node, 5-block epochs): a headless Chromium loads the
page, shows the committed price, and shows the new price after an epoch without a reload; the stream outlives
the rate limit and counts against the per-client stream cap."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import requests

from node.api import build_openapi
from node.api.dashboard import CSP, EVENTS
from node.api.snapshot import STREAM_QUEUE, DashboardHub
from node.errors import ApiRequestError
from tests.node.browser import REQUIRE_BROWSER, open_browser
from tests.node.netutil import NodeProcess, make_homes, read_metric, read_metrics, wait_until, with_config

RETRYABLE = (requests.RequestException,)
DASHBOARD_PATHS = ("/", "/v1/dashboard", "/v1/dashboard/events")
EPOCH_LENGTH = 5
TIMEOUT = 10


# =============================================================================================
# the hub, with a stand-in node
# =============================================================================================
class StandInNode:
    """What the hub reads of a node: a height, a moniker, queries (counted) and recent block summaries."""

    def __init__(self) -> None:
        self.app = SimpleNamespace(height=1)
        self.config = SimpleNamespace(moniker="stand-in")
        self.recent_blocks = [{"height": 1}]
        self.queries = 0
        self.asked: list[str] = []
        self.epoch = 0

    def query(self, path: str, **params: Any) -> Any:
        self.queries += 1
        self.asked.append(path)
        answers: dict[str, Any] = {
            "status": {"chain_id": "c", "height": self.app.height, "epoch": self.epoch},
            "pricing": {"unit_of_compute_price": 2**62, "denom": "ngonka", "epoch": 0},
            "history": {"epochs": []},
            "validators": {"validators": []},
            "models": {"models": []},
            "proposals": {"proposals": []},
        }
        return answers[path]


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def make_hub(max_streams: int = 100, max_per_client: int = 50) -> tuple[StandInNode, DashboardHub]:
    node = StandInNode()
    return node, DashboardHub(node, max_streams=max_streams, max_per_client=max_per_client)  # type: ignore[arg-type]


async def commit(node: StandInNode, hub: DashboardHub) -> None:
    """Apply a block and let the hub's push run."""
    node.app.height += 1
    hub.on_commit(node.app.height)
    await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_one_snapshot_is_computed_per_commit_and_the_same_frame_goes_to_every_stream():
    node, hub = make_hub()
    streams = [hub.add(f"10.0.0.{i}", FakeTransport()) for i in range(20)]  # type: ignore[arg-type]
    await commit(node, hub)
    frames = [s.queue.get_nowait() for s in streams]
    assert len({id(f) for f in frames}) == 1, "one bytes object shared by every stream"
    assert frames[0].startswith(b"id: 2\nevent: snapshot\ndata: {")
    await commit(node, hub)
    assert node.asked.count("status") == node.asked.count("validators") == 2, "one snapshot per commit, not per stream"


@pytest.mark.asyncio
async def test_the_price_history_is_read_once_per_epoch():
    node, hub = make_hub()
    hub.add("10.0.0.1", FakeTransport())  # type: ignore[arg-type]
    for epoch in (0, 0, 0, 1, 1):
        node.epoch = epoch
        await commit(node, hub)
    assert node.asked.count("history") == 2 and node.asked.count("validators") == 5


@pytest.mark.asyncio
async def test_blocks_applied_in_one_loop_turn_make_one_push():
    node, hub = make_hub()
    stream = hub.add("10.0.0.1", FakeTransport())  # type: ignore[arg-type]
    for _ in range(3):
        node.app.height += 1
        hub.on_commit(node.app.height)
    await asyncio.sleep(0)
    assert stream.queue.qsize() == 1 and stream.queue.get_nowait().startswith(b"id: 4\n")


@pytest.mark.asyncio
async def test_a_node_nobody_watches_computes_no_snapshot():
    node, hub = make_hub()
    await commit(node, hub)
    assert node.queries == 0


@pytest.mark.asyncio
async def test_prices_are_exact_decimal_strings_and_confidence_and_status_are_null_until_the_chain_has_them():
    node, hub = make_hub()
    snapshot = json.loads(hub.get_body())
    assert snapshot["price"] == {
        "unit_of_compute_price": str(2**62),
        "denom": "ngonka",
        "epoch": 0,
        "confidence": None,
        "status": None,
    }


class MarketStandInNode(StandInNode):
    """A stand-in whose /v1/pricing carries the market fields of issue 19, confidence past 2^53."""

    def query(self, path: str, **params: Any) -> Any:
        answer = super().query(path, **params)
        if path == "pricing":
            confidence = 2**60 + 1
            return {**answer, "confidence": None, "confidence_str": str(confidence), "status": "capped"}
        return answer


@pytest.mark.asyncio
async def test_the_price_panel_shows_the_chains_confidence_exactly_and_its_status():
    hub = DashboardHub(MarketStandInNode(), max_streams=100, max_per_client=50)  # type: ignore[arg-type]
    price = json.loads(hub.get_body())["price"]
    assert (price["confidence"], price["status"]) == (str(2**60 + 1), "capped")


@pytest.mark.asyncio
async def test_a_stream_further_behind_than_its_queue_is_dropped_and_its_connection_aborted():
    node, hub = make_hub()
    slow_transport, fast_transport = FakeTransport(), FakeTransport()
    slow = hub.add("10.0.0.1", slow_transport)  # type: ignore[arg-type]
    fast = hub.add("10.0.0.2", fast_transport)  # type: ignore[arg-type]
    for _ in range(STREAM_QUEUE):
        await commit(node, hub)
        fast.queue.get_nowait()
    assert slow.queue.full() and not slow_transport.aborted
    await commit(node, hub)
    assert slow.dropped and slow_transport.aborted and slow not in hub.streams
    assert fast in hub.streams and not fast_transport.aborted and hub.dropped == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("max_streams", "max_per_client", "clients", "refused_message"),
    [
        (3, 2, ["10.0.0.1", "10.0.0.1", "10.0.0.1"], "2 dashboard event streams are open for this client"),
        (3, 2, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], "3 dashboard event streams are open in total"),
        (9, 1, ["2001:db8::1", "2001:db8::2"], "1 dashboard event streams are open for this client"),  # one /64
    ],
)
@pytest.mark.asyncio
async def test_streams_over_a_cap_are_refused_with_a_503(max_streams, max_per_client, clients, refused_message):
    _, hub = make_hub(max_streams, max_per_client)
    for client in clients[:-1]:
        hub.add(client, FakeTransport())  # type: ignore[arg-type]
    with pytest.raises(ApiRequestError) as refused:
        hub.add(clients[-1], FakeTransport())  # type: ignore[arg-type]
    assert refused.value.status == 503 and refused.value.code == "too_many_streams"
    assert refused_message in str(refused.value) and hub.refused == 1


@pytest.mark.asyncio
async def test_a_closed_stream_frees_its_slot_and_close_all_ends_every_stream():
    _, hub = make_hub(2, 2)
    first = hub.add("10.0.0.1", FakeTransport())  # type: ignore[arg-type]
    hub.remove(first)
    hub.remove(first)  # twice is harmless
    streams = [hub.add("10.0.0.1", FakeTransport()) for _ in range(2)]  # type: ignore[arg-type]
    hub.close_all()
    assert [s.queue.get_nowait() for s in streams] == [None, None]


def test_the_page_the_snapshot_and_the_event_stream_are_in_the_public_openapi_document():
    paths = build_openapi()["paths"]
    media = {path: list(paths[path]["get"]["responses"]["200"]["content"]) for path in DASHBOARD_PATHS}
    assert media == {"/": ["text/html"], "/v1/dashboard": ["application/json"], EVENTS.path: ["text/event-stream"]}
    assert paths["/"]["get"]["operationId"] == "get_root" and "429" in paths[EVENTS.path]["get"]["responses"]
    assert "connect-src 'self'" in CSP and "default-src 'none'" in CSP


def test_without_a_browser_its_test_is_skipped_with_what_to_install_or_fails_where_required(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv(REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        open_browser()
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match="UOC_REQUIRE_BROWSER=1 but the browser cannot run"):
        open_browser()


# =============================================================================================
# a real devnet
# =============================================================================================
class Node(NodeProcess):
    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.url = f"http://{self.public}"

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    """A validator (node 0) and a full node (node 1) on 5-block epochs; node 1 rate-limits loopback clients
    (1 request/s, burst 4) and allows 2 event streams per client."""
    homes = make_homes(tmp_path_factory.mktemp("dashnet"), 2, validators=1)
    for home in homes:
        genesis = json.loads((home / "genesis.json").read_text())
        genesis["params"] = {**genesis.get("params", {}), "epoch_length": EPOCH_LENGTH}
        (home / "genesis.json").write_text(json.dumps(genesis, indent=2))
    with_config(
        homes[1],
        api_rate_limit_per_s=1,
        api_rate_limit_burst=4,
        api_rate_limit_loopback=True,
        api_max_event_streams_per_client=2,
    )
    nodes = [Node(h) for h in homes]
    try:
        wait_until(
            lambda: all(n.get("/v1/status").json()["height"] >= 2 for n in nodes[:1]),
            "node 0 commits",
            ignore=RETRYABLE,
        )
        yield nodes
    finally:
        codes = [n.stop() for n in nodes]
    assert codes == [0, 0], "both nodes stop cleanly on SIGTERM, with event streams open or not"


def vote_price(node: Node, price: int) -> int:
    """The validator votes `price` ngonka; the epoch it is in force from."""
    response = requests.post(
        f"http://{node.admin}/v1/admin/unit-of-compute-price-proposal",
        json={"price": price, "denom": "ngonka"},
        headers={"Authorization": f"Bearer {node.token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["effective_epoch"]


def test_the_browser_shows_the_committed_price_and_the_new_one_after_an_epoch_without_a_reload(devnet):
    validator = devnet[0]
    committed = validator.get("/v1/pricing").json()["unit_of_compute_price"]
    browser = open_browser()
    try:
        browser.get(validator.url + "/")
        price = browser.find_element("id", "price")
        assert price.text == f"{committed:,}"
        wait_until(lambda: browser.find_element("id", "live").text.endswith("live"), "the event stream is open")
        browser.execute_script("window.notReloaded = true;")
        shown_height = int(browser.find_element("id", "height").text.replace(",", ""))
        wait_until(
            lambda: int(browser.find_element("id", "height").text.replace(",", "")) > shown_height,
            "the page shows a newer block",
        )
        new_price = committed + 4321
        effective = vote_price(validator, new_price)
        wait_until(lambda: validator.get("/v1/pricing").json()["epoch"] >= effective, "the vote's epoch starts")
        wait_until(lambda: price.text == f"{new_price:,}", "the page shows the new price", timeout=15)
        assert browser.execute_script("return window.notReloaded === true;"), "no reload"
        # read in one script: each snapshot replaces the rows, so a row element found earlier may be stale
        shown = browser.execute_script(
            "const rows = (id) => [...document.querySelectorAll(`#${id} tr`)].map((r) => r.innerText);"
            "return [rows('validators'), rows('blocks'), document.querySelectorAll('#chart svg path').length];"
        )
        validators, blocks, paths = shown
        assert len(validators) == 1 and f"{new_price:,}" in validators[0] and "0.00 %" in validators[0]
        assert paths == 1, "the price chart is drawn"
        assert blocks and blocks[0].split()[0].replace(",", "").isdigit()
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
        assert errors == [], "no script error and no Content-Security-Policy violation"
    finally:
        browser.quit()


def test_the_snapshot_matches_the_chain_on_a_full_node(devnet):
    full = devnet[1]
    wait_until(lambda: full.get("/v1/status").status_code == 200, "node 1 answers", ignore=RETRYABLE)
    wait_until(lambda: full.get("/v1/status").json()["height"] >= 3, "node 1 syncs", ignore=RETRYABLE)
    snapshot = full.get("/v1/dashboard").json()
    pricing = full.get("/v1/pricing").json()
    assert snapshot["height"] >= 3 and snapshot["price"]["epoch"] <= pricing["epoch"]
    if snapshot["price"]["epoch"] == pricing["epoch"]:  # no epoch ended between the two requests
        assert snapshot["price"]["unit_of_compute_price"] == str(pricing["unit_of_compute_price"])
    assert [v["address"] for v in snapshot["validators"]] == [devnet[0].key.address]
    assert snapshot["blocks"] and snapshot["blocks"][0]["height"] >= snapshot["blocks"][-1]["height"]


async def read_events(session: aiohttp.ClientSession, url: str, count: int, opened: asyncio.Event) -> list[int]:
    """The ids (heights) of the first `count` snapshot events of a stream (`opened` is set at the first)."""
    ids = []
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
        async for line in response.content:
            if line.startswith(b"id: "):
                ids.append(int(line[4:]))
                opened.set()
                if len(ids) == count:
                    return ids
    return ids


@pytest.mark.asyncio
async def test_a_stream_is_not_cut_by_the_rate_limit_and_counts_against_the_per_client_stream_cap(devnet):
    full = devnet[1]
    url = full.url + "/v1/dashboard/events"
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))  # a client with a full bucket of its own
    async with aiohttp.ClientSession(connector=connector) as session:
        opened = [asyncio.Event(), asyncio.Event()]
        first = asyncio.create_task(read_events(session, url, 20, opened[0]))
        second = asyncio.create_task(read_events(session, url, 20, opened[1]))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), TIMEOUT)
        async with session.get(url) as third:
            assert third.status == 503
            assert (await third.json())["error"]["code"] == "too_many_streams"
        assert await second
        limited = 0
        for _ in range(10):  # spend the bucket: the open stream goes on
            async with session.get(full.url + "/v1/status") as answer:
                limited += answer.status == 429
        assert limited > 0, "the client is over its rate limit"
        ids = await first
    assert len(ids) == 20 and ids == sorted(ids) and ids[-1] > ids[0]
    metrics = full.metrics
    assert read_metric(metrics, "uoc_dashboard_streams_refused_total") >= 1
    assert read_metric(metrics, "uoc_dashboard_frames_total") >= 10

    def count(name: str, *labels: tuple[str, str]) -> float:
        samples = read_metrics(metrics).get(name, {})
        return sum(v for key, v in samples.items() if set(labels) <= set(key))

    events = ("route", "/v1/dashboard/events")
    # a stream is counted once its handler learns the client left (at the next frame), but never timed:
    # the latency histogram of the route holds the refused request only
    wait_until(lambda: count("uoc_http_requests_total", events, ("status", "200")) >= 2, "the closed streams counted")
    refused = count("uoc_http_requests_total", events, ("status", "503"))
    assert refused >= 1 and count("uoc_http_request_duration_seconds_count", events) == refused
    assert count("uoc_http_request_duration_seconds_count", ("route", "/v1/status")) >= 1  # requests are timed

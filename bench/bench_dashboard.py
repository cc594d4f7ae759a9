"""The live dashboard's cost: bench_network's saturation throughput with 20 dashboards open against none, and
the page's first paint on the loaded network.

    .venv/bin/python bench/bench_dashboard.py [--seconds 20] [--dashboards 20] [--rounds 2] [--screenshot FILE]

One fresh 4-validator network of `uocd start` processes (bench_network's: mutual TLS, 1 s blocks, 10-block
epochs), with the same load as bench_network's saturation phase (pre-signed MsgSend transactions sent with
`BroadcastTxs` in batches of 50 to every node, at most 6,000 in flight) in alternating phases of
`--seconds` each: no dashboard, then `--dashboards` Server-Sent-Event streams open on node 0
(`GET /v1/dashboard/events`, read by one aiohttp client in a process of its own), `--rounds` times. Each phase's
throughput is its committed transactions over the time from its first submission to its last commit
(a fresh set of 400 senders per phase, so a phase never waits on another's sequences). Meanwhile each
validator votes a price every epoch through its admin API (same in every phase), so the snapshot
changes at each epoch as on a live chain.

Because this machine is shared and its speed swings by more than the 5% asked for, the bench also
reports what the streams cost the node itself, which contention hardly changes: node 0's CPU time
(user + system, from /proc) per committed transaction in each phase, against the mean of nodes 1-3
(which serve no stream: the control); and node 0's own account of the time it spent on the streams
(`uoc_dashboard_push_seconds_total`: snapshots computed for a push, frames queued and written) over its
CPU time in each dashboard phase.

Then one more loaded phase with the dashboards open, in which a headless Chromium (selenium, Debian's
chromium and chromium-driver) opens node 0's page `--paints` times: first contentful paint and the time
until the price is on the page, from the navigation's start (the browser's Performance API).
`--screenshot FILE` saves the page at the end (after a model proposal has passed and another is open).

The last line (JSON): throughput without and with the dashboards (each phase) and the ratio of their
sums, node 0's CPU per transaction without and with and its ratio (and the control's), the events each
stream received, and the first paints (median and max, ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_network import (  # noqa: E402
    BATCH,
    WINDOW,
    Watcher,
    get_cpu_s,
    open_channel,
    presign,
    read_counter,
    send_batch,
    start,
    stop_network,
    unary,
    wait_for_commits,
)

from chain.crypto import PrivateKey  # noqa: E402
from chain.tx import MsgVote, sign_tx  # noqa: E402
from node.client import ApiError, Client  # noqa: E402
from node.config import collect_genesis, init_home, load_home, update_config, write_json  # noqa: E402
from node.consensus import Timeouts  # noqa: E402
from node.pb import services_pb2 as spb  # noqa: E402

SENDERS = 400
EPOCH_LENGTH = 10
RATE_CAP = 1500  # tx/s a phase presigns for (more than this machine commits)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_network(root: Path, senders: list[PrivateKey], block_interval_ms: int) -> list[Path]:
    """bench_network's homes, with 10-block epochs and 15-block voting periods."""
    homes = []
    for i in range(4):
        home = root / f"node{i}"
        init_home(home, f"node{i}", chain_id="uoc-bench", key_name=f"bench-{i}", listen=f"127.0.0.1:{free_port()}")
        update_config(
            home,
            timeouts=Timeouts(commit_ms=block_interval_ms),
            api_public=f"127.0.0.1:{free_port()}",
            api_admin=f"127.0.0.1:{free_port()}",
            prometheus_listen_addr=f"127.0.0.1:{free_port()}",
        )
        homes.append(home)
    genesis = collect_genesis(homes)
    genesis["params"] = {**genesis.get("params", {}), "epoch_length": EPOCH_LENGTH, "voting_period": 15}
    genesis["accounts"] += [{"address": k.address, "balance": 10**15} for k in senders]
    for home in homes:
        write_json(home / "genesis.json", genesis)
    return homes


class Api:
    """A node's public and admin URLs, its admin token and validator key."""

    def __init__(self, home: Path) -> None:
        loaded = load_home(home)
        self.public = Client(loaded.config.api_public)
        self.admin = Client(loaded.config.api_admin, token=loaded.admin_token)
        self.key = loaded.validator_key
        self.chain_id = loaded.genesis["chain_id"]

    def vote_price(self, price: int) -> None:
        self.admin.post("/v1/admin/unit-of-compute-price-proposal", {"price": price, "denom": "ngonka"}, timeout=30)

    def propose_model(self, model: str, units: int) -> int:
        answer = self.admin.post("/v1/admin/models", {"id": model, "units_of_compute_per_token": units}, timeout=30)
        return int(answer["proposal_id"])

    def vote_yes(self, proposal_id: int) -> None:
        sequence = self.public.get(f"/v1/accounts/{self.key.address}")["sequence"]
        raw = sign_tx(self.key, self.chain_id, sequence, [MsgVote(proposal_id, "yes")])
        self.public.post("/v1/txs", raw, timeout=30, wait="commit")


class PriceVoters(threading.Thread):
    """Each validator votes a price near a drifting trend once an epoch (through its admin API)."""

    def __init__(self, apis: list[Api], lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.apis = apis
        self.lock = lock
        self.stop = threading.Event()

    def run(self) -> None:
        rng = random.Random(7)
        trend = 100.0
        while not self.stop.is_set():
            trend *= 1 + rng.uniform(-0.06, 0.08)
            with self.lock:
                for api in self.apis:
                    try:
                        api.vote_price(max(1, round(trend * rng.uniform(0.95, 1.05))))
                    except ApiError:
                        pass
            self.stop.wait(EPOCH_LENGTH * 0.9)


class Dashboards:
    """`count` event streams on one node, read by one asyncio client in a process of its own (in this process it
    would take the GIL from the load generator's threads and lower the throughput by itself); the events each
    received."""

    def __init__(self, url: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.events = context.Array("i", count)
        self.opened = context.Event()
        self.process = context.Process(target=read_streams, args=(url, count, self.events, self.opened), daemon=True)
        self.process.start()

    def close(self) -> list[int]:
        """Stop reading (the connections close); the events each stream received."""
        self.process.terminate()
        self.process.join(timeout=10)
        return list(self.events)


def read_streams(url: str, count: int, events, opened) -> None:
    """Read `count` event streams of `url` until terminated, counting each one's snapshot events."""

    async def read(session: aiohttp.ClientSession, i: int) -> None:
        async with session.get(url) as response:
            assert response.status == 200, await response.text()
            async for line in response.content:
                if line.startswith(b"event: snapshot"):
                    events[i] += 1
                    if all(events[:]):
                        opened.set()

    async def main() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            await asyncio.gather(*(read(session, i) for i in range(count)))

    asyncio.run(main())


def saturate(stubs, txs: list[list[bytes]], seconds: float, watcher: Watcher) -> tuple[float, int]:
    """Send `txs` (a fresh sender set) as fast as the nodes admit for `seconds`; committed tx/s from the first
    submission to the last commit, and how many were committed."""
    sent: dict[str, float] = {}
    base = len(watcher.committed)
    started = time.monotonic()
    deadline = started + seconds

    def run(node: int) -> None:
        mine = txs[node :: len(stubs)]
        flat = [row[r] for r in range(len(txs[0])) for row in mine]
        for start_i in range(0, len(flat), BATCH):
            if time.monotonic() > deadline:
                return
            send_batch(stubs[node], flat[start_i : start_i + BATCH], sent)
            while len(sent) - (len(watcher.committed) - base) > WINDOW and time.monotonic() < deadline:
                time.sleep(0.01)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stubs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until = time.monotonic() + 60
    while time.monotonic() < wait_until and not all(h in watcher.committed for h in list(sent)):
        time.sleep(0.2)
    done = [watcher.committed[h] for h in list(sent) if h in watcher.committed]
    return (len(done) / (max(done) - started) if done else 0.0), len(done)


def measure_first_paints(url: str, count: int, screenshot: str | None) -> list[tuple[float, float]]:
    """(first contentful paint, price on the page) in ms from the navigation's start, `count` page loads."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""  # Debian's; selenium must not fetch one
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1250"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    browser.set_script_timeout(10)
    paints = []
    try:
        for _ in range(count + 1):  # the first load starts the browser's renderer: reported apart
            browser.get("about:blank")
            browser.get(url)
            paint = browser.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "const n = performance.getEntriesByType('navigation')[0];"
                "new PerformanceObserver((list) => {"
                "  const p = list.getEntriesByName('first-contentful-paint')[0];"
                "  if (p) done([p.startTime, n.domContentLoadedEventEnd]);"
                "}).observe({type: 'paint', buffered: true});"
            )
            paints.append((float(paint[0]), float(paint[1])))
        if screenshot:
            time.sleep(3)  # a few live updates
            browser.save_screenshot(screenshot)
    finally:
        browser.quit()
    return paints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="seconds of load per phase")
    parser.add_argument("--dashboards", type=int, default=20, help="event streams open in a dashboard phase")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of phases (none, then dashboards)")
    parser.add_argument("--paints", type=int, default=5, help="page loads timed in the last phase")
    parser.add_argument("--block-interval-ms", type=int, default=1000)
    parser.add_argument("--screenshot", metavar="FILE", help="save the page (PNG) at the end")
    args = parser.parse_args()

    phases = ["none", "dashboards"] * args.rounds + ["paint"]
    rounds = max(1, int(RATE_CAP * args.seconds / SENDERS))
    senders = [[PrivateKey.from_name(f"dash-sender-{p}-{i}") for i in range(SENDERS)] for p in range(len(phases))]
    print(f"signing {len(phases)} phases x {SENDERS} senders x {rounds} txs ...", flush=True)
    signed = [presign(group, rounds, 0, "uoc-bench") for group in senders]
    with tempfile.TemporaryDirectory() as tmp:
        homes = make_network(Path(tmp), [k for group in senders for k in group], args.block_interval_ms)
        procs = [start(h, None, False) for h in homes]
        channels = [open_channel(h, False) for h in homes]
        stubs = [unary(c, "/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck) for c in channels]
        apis = [Api(h) for h in homes]
        voters = None
        try:
            wait_for_commits(channels[0])
            watcher = Watcher(channels[0])
            watcher.start()
            first = apis[0].propose_model("llama-3.1-8b", 40)
            for api in apis:
                api.vote_yes(first)
            lock = threading.Lock()
            voters = PriceVoters(apis, lock)
            voters.start()
            events_url = apis[0].public.base + "/v1/dashboard/events"
            rates: dict[str, list[float]] = {"none": [], "dashboards": []}
            cpu_ms: dict[str, list[float]] = {"none": [], "dashboards": []}  # node 0's CPU ms per committed tx
            cpu_ms_others: dict[str, list[float]] = {"none": [], "dashboards": []}  # the mean of nodes 1-3
            push_share: list[float] = []  # node 0's time pushing to the streams over its CPU time, per phase
            metrics0 = load_home(homes[0]).config.prometheus_listen_addr
            events: list[int] = []
            paints: list[tuple[float, float]] = []
            for index, phase in enumerate(phases):
                dashboards = None
                if phase != "none":
                    dashboards = Dashboards(events_url, args.dashboards)
                    assert dashboards.opened.wait(30), "the event streams opened"
                if phase == "paint":
                    loader = threading.Thread(target=saturate, args=(stubs, signed[index], args.seconds, watcher))
                    loader.start()
                    time.sleep(2)
                    with lock:  # an open proposal with a partial tally for the screenshot
                        second = apis[1].propose_model("qwen-2.5-72b", 300)
                        apis[1].vote_yes(second)
                        apis[2].vote_yes(second)
                    paints = measure_first_paints(apis[0].public.base + "/", args.paints, args.screenshot)
                    loader.join()
                else:
                    cpu_before = [get_cpu_s(p.pid) for p in procs]
                    push_before = read_counter(metrics0, "uoc_dashboard_push_seconds_total")
                    rate, committed = saturate(stubs, signed[index], args.seconds, watcher)
                    cpu = [get_cpu_s(p.pid) - b for p, b in zip(procs, cpu_before)]
                    push_s = read_counter(metrics0, "uoc_dashboard_push_seconds_total") - push_before
                    if phase == "dashboards":
                        push_share.append(push_s / cpu[0])
                    rates[phase].append(rate)
                    cpu_ms[phase].append(1000 * cpu[0] / committed)
                    cpu_ms_others[phase].append(1000 * sum(cpu[1:]) / 3 / committed)
                    print(
                        f"phase {index + 1} ({phase}): {rate:,.0f} tx/s committed ({committed:,} txs); node 0 CPU "
                        f"{cpu_ms[phase][-1]:.3f} ms per tx, nodes 1-3 {cpu_ms_others[phase][-1]:.3f} ms per tx; "
                        f"node 0 pushing to the streams {push_s * 1000:.1f} ms",
                        flush=True,
                    )
                if dashboards is not None:
                    received = dashboards.close()
                    if phase == "dashboards":
                        events += received
            watcher.stop.set()
        finally:
            if voters is not None:
                voters.stop.set()
            stop_network(channels, procs)
    none, dash = sum(rates["none"]), sum(rates["dashboards"])
    cold, paints = paints[0], paints[1:]
    fcp = sorted(p[0] for p in paints)
    ready = sorted(p[1] for p in paints)
    print(f"throughput without dashboards: {', '.join(f'{r:,.0f}' for r in rates['none'])} tx/s")
    print(f"throughput with {args.dashboards} dashboards: {', '.join(f'{r:,.0f}' for r in rates['dashboards'])} tx/s")
    print(f"ratio with / without: {dash / none:.3f} (target >= 0.95)")
    cpu_none, cpu_dash = statistics.mean(cpu_ms["none"]), statistics.mean(cpu_ms["dashboards"])
    other_none, other_dash = statistics.mean(cpu_ms_others["none"]), statistics.mean(cpu_ms_others["dashboards"])
    print(
        f"node 0 (the streams' node) CPU per committed tx: {cpu_none:.3f} ms without, {cpu_dash:.3f} ms with "
        f"(ratio {cpu_dash / cpu_none:.3f}); nodes 1-3: {other_none:.3f} / {other_dash:.3f} ms "
        f"(ratio {other_dash / other_none:.3f})"
    )
    print(
        "node 0's own account of the streams (uoc_dashboard_push_seconds_total) over its CPU time in the dashboard "
        f"phases: {', '.join(f'{100 * x:.2f}%' for x in push_share)}"
    )
    print(f"events per stream in the dashboard phases: min {min(events)}, max {max(events)}")
    print(
        f"first contentful paint under load: median {statistics.median(fcp):.0f} ms, max {max(fcp):.0f} ms over "
        f"{len(fcp)} loads (DOM ready with the price: median {statistics.median(ready):.0f} ms); the browser's first "
        f"load (a renderer starting) {cold[0]:.0f} ms; target <= 1,000 ms"
    )
    print(
        json.dumps(
            {
                "tx_per_s_none": [round(r) for r in rates["none"]],
                "tx_per_s_dashboards": [round(r) for r in rates["dashboards"]],
                "ratio": round(dash / none, 3),
                "node0_cpu_ms_per_tx": {"none": round(cpu_none, 3), "dashboards": round(cpu_dash, 3)},
                "node0_cpu_ratio": round(cpu_dash / cpu_none, 3),
                "others_cpu_ratio": round(other_dash / other_none, 3),
                "push_share_of_node0_cpu": [round(x, 5) for x in push_share],
                "dashboards": args.dashboards,
                "events_per_stream": [min(events), max(events)],
                "first_paint_ms": {"median": round(statistics.median(fcp)), "max": round(max(fcp))},
                "dom_ready_ms": {"median": round(statistics.median(ready)), "max": round(max(ready))},
                "cold_first_paint_ms": round(cold[0]),
            }
        )
    )


if __name__ == "__main__":
    main()

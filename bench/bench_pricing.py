"""`GET /v1/pricing` of a node that commits blocks, under a concurrent load generator, compared in the same
run with a bare aiohttp app serving a constant JSON body.

    .venv/bin/python bench/bench_pricing.py [--nodes 1] [--seconds 10] [--connections 64] [--rounds 2]
                                            [--block-interval-ms 200]

A devnet of `--nodes` validators (`uocd start` processes, 200 ms block interval) commits blocks; the load
generator (a separate process: an aiohttp client keeping `--connections` requests in flight) requests
`GET /v1/pricing` from node 0 for `--seconds`, then the same against the bare app (another process).
Prints req/s, p50 and p99 for both, their ratio, and the blocks node 0 committed during its run.
Targets: ≥ 3,000 req/s and p99 ≤ 50 ms while the node commits blocks. Everything shares the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devnet.launch import spawn_node  # noqa: E402
from node.config import (  # noqa: E402
    collect_genesis,
    compute_loopback_timeouts,
    find_free_port,
    init_home,
    load_home,
    update_config,
)

BARE_BODY = json.dumps(
    {
        "unit_of_compute_price": 100,
        "unit_of_compute_price_str": "100",
        "denom": "ngonka",
        "epoch": 3,
        "models": [
            {
                "id": "model-alpha",
                "units_of_compute_per_token": 10,
                "price_per_token": 1000,
                "price_per_token_str": "1000",
            }
        ],
    }
).encode()


# -- the load generator (a separate process) ------------------------------------------------------
async def generate_load(url: str, seconds: float, connections: int) -> dict[str, float]:
    """Keep `connections` GETs in flight for `seconds`; req/s and latency percentiles (ms)."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.get(url) as warm:
            await warm.read()
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    async with http.get(url) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }


def run_load(url: str, seconds: float, connections: int) -> dict[str, float]:
    """Run the load generator in a child process; its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--load", url, "--seconds", str(seconds), "--connections", str(connections)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the bare app (a separate process) --------------------------------------------------------------
def serve_bare(port: int) -> None:
    """A bare aiohttp app answering GET /v1/pricing with a constant JSON body."""
    from aiohttp import web

    async def pricing(request: web.Request) -> web.Response:
        return web.Response(body=BARE_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/pricing", pricing)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- the devnet ----------------------------------------------------------------------------------------
def make_devnet(root: Path, count: int, block_interval_ms: int) -> list[Path]:
    """`count` validator homes with one genesis and fast timeouts."""
    homes = []
    for i in range(count):
        home = root / f"node{i}"
        init_home(
            home,
            f"bench{i}",
            chain_id="uoc-pricingbench",
            key_name=f"pricingbench-{i}",
            epoch_length=10,
            listen=f"127.0.0.1:{find_free_port('127.0.0.1')}",
            block_interval_ms=block_interval_ms,
        )
        homes.append(home)
    collect_genesis(homes)
    for home in homes:
        update_config(home, timeouts=compute_loopback_timeouts(block_interval_ms), status_interval_ms=500)
    return homes


def start_node(home: Path) -> subprocess.Popen:
    return spawn_node(home, log_level=None, log_format=None)


def get_height(url: str) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/v1/status", timeout=2) as response:
            return json.loads(response.read())["height"]
    except OSError:
        return -1


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--block-interval-ms", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="node/bare runs, interleaved")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(generate_load(args.load, args.seconds, args.connections))))
        return
    if args.bare:
        serve_bare(args.bare)
        return

    with tempfile.TemporaryDirectory() as tmp:
        homes = make_devnet(Path(tmp), args.nodes, args.block_interval_ms)
        procs = [start_node(h) for h in homes]
        bare_port = find_free_port("127.0.0.1")
        bare = subprocess.Popen([sys.executable, __file__, "--bare", str(bare_port)], start_new_session=True)
        try:
            api = f"http://{load_home(homes[0]).config.api_public}"
            deadline = time.monotonic() + 60
            while get_height(api) < 3:
                if time.monotonic() > deadline:
                    raise SystemExit("the devnet did not commit 3 blocks in 60 s")
                time.sleep(0.2)
            print(
                f"{args.nodes} node(s) committing blocks every ~{args.block_interval_ms} ms; "
                f"{args.connections} connections for {args.seconds:.0f} s each"
            )
            node_runs, bare_runs, committed = [], [], 0
            for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
                before = get_height(api)
                node_runs.append(run_load(api + "/v1/pricing", args.seconds, args.connections))
                committed += get_height(api) - before
                bare_runs.append(run_load(f"http://127.0.0.1:{bare_port}/v1/pricing", args.seconds, args.connections))
        finally:
            for proc in [*procs, bare]:
                stop(proc)
    for i, (node, bare_result) in enumerate(zip(node_runs, bare_runs)):
        for name, r in (("node /v1/pricing", node), ("bare aiohttp", bare_result)):
            print(
                f"  round {i + 1} {name:18s} {r['rps']:8,.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
                f"  p99 {r['p99_ms']:6.2f} ms  ({r['requests']:,} ok, {r['errors']} errors)"
            )
    node_rps = sum(r["rps"] for r in node_runs) / len(node_runs)
    bare_rps = sum(r["rps"] for r in bare_runs) / len(bare_runs)
    worst_p99 = max(r["p99_ms"] for r in node_runs)
    print(f"  node committed {committed} blocks during its runs")
    print(f"  mean req/s node {node_rps:,.0f}, bare {bare_rps:,.0f}; ratio node/bare: {node_rps / bare_rps:.2f}")
    ok = node_rps >= 3000 and worst_p99 <= 50
    print(f"  target ≥ 3,000 req/s and p99 ≤ 50 ms (worst round {worst_p99:.2f} ms): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

"""Round trip of `POST /v1/admin/unit-of-compute-price-proposal` until committed, on a devnet of real nodes.

    .venv/bin/python bench/bench_admin_vote.py [--nodes 4] [--votes 40] [--block-interval-ms 200]

A devnet of `--nodes` validators (`uocd start` processes) commits blocks; node 0's operator posts
`--votes` price votes one after the other through the admin listener (signed with its validator key,
relayed, answered when committed). Prints p50/p99/max of the POST → 200 round trip and the mean block
time over the run (a vote waits on average about half a block interval plus one consensus round).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_pricing import get_height, make_devnet, start_node, stop  # noqa: E402

from node.config import load_home  # noqa: E402


def post_vote(admin: str, token: str, price: int) -> tuple[int, dict]:
    """POST one vote; (HTTP status, JSON body)."""
    request = urllib.request.Request(
        admin + "/v1/admin/unit-of-compute-price-proposal",
        data=json.dumps({"price": price, "denom": "ngonka"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--votes", type=int, default=40)
    parser.add_argument("--block-interval-ms", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        homes = make_devnet(Path(tmp), args.nodes, args.block_interval_ms)
        procs = [start_node(h) for h in homes]
        try:
            home = load_home(homes[0])
            api, admin = f"http://{home.config.api_public}", f"http://{home.config.api_admin}"
            deadline = time.monotonic() + 60
            while min(get_height(f"http://{load_home(h).config.api_public}") for h in homes) < 3:
                if time.monotonic() > deadline:
                    raise SystemExit("the devnet did not commit 3 blocks in 60 s")
                time.sleep(0.2)
            rtts, pending = [], 0
            first_height, started = get_height(api), time.monotonic()
            for i in range(args.votes):
                t0 = time.perf_counter()
                status, body = post_vote(admin, home.admin_token or "", 1000 + i)
                if status == 200:
                    rtts.append(1000 * (time.perf_counter() - t0))
                else:
                    pending += 1
            blocks, elapsed = get_height(api) - first_height, time.monotonic() - started
        finally:
            for proc in procs:
                stop(proc)
    rtts.sort()
    p99 = rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))]
    print(f"{args.nodes} validators, block interval {args.block_interval_ms} ms: {args.votes} admin votes in sequence")
    print(
        f"  POST → committed: p50 {statistics.median(rtts):.0f} ms  p99 {p99:.0f} ms  max {rtts[-1]:.0f} ms"
        f"  ({len(rtts)} committed, {pending} answered 202 pending)"
    )
    print(f"  {blocks} blocks in {elapsed:.1f} s: mean block time {1000 * elapsed / max(blocks, 1):.0f} ms")


if __name__ == "__main__":
    main()

"""The memory a configured peer can make a node hold: concurrent large `SendConsensus` calls, the node's peak RSS.

    .venv/bin/python bench/bench_peer_memory.py [--calls 64] [--connections 1] [--mib 16]

Starts a one-validator `uocd start` process, then sends `--calls` concurrent `SendConsensus` calls
of `--mib` MiB each (a proposal of a past height whose block holds one large tx: parsed, then
ignored) over `--connections` mutual-TLS connections authenticated as the node itself (a configured
peer is authenticated the same way). Prints the node's peak RSS (VmHWM) before and after, its ratio,
and how the calls were answered (most are refused by the peer's token bucket, after gRPC has read
them). docs/consensus.md, "Known limitations", says why this is not bounded and what would bound it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.pb import types_pb2 as pb  # noqa: E402
from tests.node.netutil import NodeProcess, aio_self_channel, make_homes, read_metric, wait_until  # noqa: E402


def get_peak_rss_mib(pid: int) -> float:
    """VmHWM of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


async def flood(home: Path, address: str, calls: int, connections: int, mib: int) -> Counter[str]:
    """Send the calls at once, round robin over the connections; how each was answered."""
    block = pb.Block(txs=[b"\0" * (mib * 1024 * 1024 - 4096)])
    payload = pb.ConsensusMessage(
        proposal=pb.Proposal(height=1, round=0, proposer="x", block=block)
    ).SerializeToString()
    channels = [aio_self_channel(home, address) for _ in range(connections)]

    async def one(channel) -> str:
        call = channel.unary_unary("/uoc.v1.Gossip/SendConsensus", request_serializer=None)
        try:
            await call(payload, timeout=120)
            return "OK"
        except Exception as exc:  # noqa: BLE001 - the status code is what is counted
            code = getattr(exc, "code", None)
            return str(code().name) if callable(code) else type(exc).__name__

    try:
        return Counter(await asyncio.gather(*(one(channels[i % connections]) for i in range(calls))))
    finally:
        for channel in channels:
            await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=64, help="concurrent calls (default 64)")
    parser.add_argument("--connections", type=int, default=1, help="connections they are spread over (default 1)")
    parser.add_argument("--mib", type=int, default=16, help="MiB per call (default 16, the default max_message_bytes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        (home,) = make_homes(Path(root), 1)
        node = NodeProcess(home)
        try:
            wait_for_height(node)
            before = get_peak_rss_mib(node.popen.pid)
            started = time.perf_counter()
            answers = asyncio.run(flood(home, node.grpc, args.calls, args.connections, args.mib))
            seconds = time.perf_counter() - started
            after = get_peak_rss_mib(node.popen.pid)
        finally:
            node.stop()
    print(
        f"{args.calls} calls of {args.mib} MiB over {args.connections} connection(s) in {seconds:.1f} s, answered "
        f"{dict(answers)}; node peak RSS {before:.0f} MiB before, {after:.0f} MiB after ({after / before:.1f}×)"
    )
    print(json.dumps({"peak_rss_mib_before": round(before), "peak_rss_mib_after": round(after), "answers": answers}))


def wait_for_height(node: NodeProcess) -> None:
    """Wait until the node has committed a few blocks (its gRPC server is up and it is past height 1)."""
    wait_until(
        lambda: read_metric(node.metrics, "cometbft_consensus_height") >= 3,
        "the node passes height 3",
        timeout=60,
        ignore=(OSError, AssertionError),
    )


if __name__ == "__main__":
    main()

"""`uocd grpc status --output json` has the shape of `GET /v1/status` (its keys in its order, types and values,
the chain's epoch and price included), then the fields only gRPC has."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.node.netutil import NodeProcess, make_homes, wait_until

ROOT = Path(__file__).resolve().parents[2]
ONLY_GRPC = {"latest_block_id", "node_id", "evidence_count", "round", "mempool_size"}  # after the HTTP keys


def test_grpc_status_json_has_the_shape_of_the_http_status(tmp_path):
    (home,) = make_homes(tmp_path, 1)
    node = NodeProcess(home)
    try:

        def http_status() -> dict:
            with urllib.request.urlopen(f"http://{node.public}/v1/status", timeout=10) as answer:
                return json.loads(answer.read())

        wait_until(lambda: http_status()["height"] >= 1, "the node commits a block", ignore=(OSError,))
        done = subprocess.run(
            [sys.executable, "-m", "uocd", "grpc", "status", "--home", str(home), "-o", "json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        http = http_status()
    finally:
        assert node.signal(signal.SIGTERM) == 0
    assert done.returncode == 0, done.stderr
    grpc = json.loads(done.stdout)
    assert list(grpc)[: len(http)] == list(http) and set(grpc) - set(http) == ONLY_GRPC
    assert {k: type(grpc[k]) for k in http} == {k: type(http[k]) for k in http}
    for key in ("chain_id", "moniker", "validator_address", "catching_up", "unit_of_compute_price"):
        assert grpc[key] == http[key]
    assert grpc["epoch"] >= 0 and grpc["height"] >= 1 and grpc["unit_of_compute_price"] > 0
    assert isinstance(grpc["round"], int) and isinstance(grpc["mempool_size"], int)

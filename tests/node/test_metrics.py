"""Metrics (node.metrics): a `uocd start` process serves the CometBFT-named series, the process's and the
chain's on its metrics listener, and they move as it commits blocks, takes a transaction and ends epochs."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from chain.crypto import PrivateKey
from chain.tx import MsgSend, sign_tx
from node.config import load_home, update_config
from node.metrics import NodeMetrics
from tests.node.netutil import FAST, NodeProcess, make_homes, read_metrics, wait_until

COMETBFT = (
    "cometbft_consensus_height",
    "cometbft_consensus_latest_block_height",
    "cometbft_consensus_rounds",
    "cometbft_consensus_validators",
    "cometbft_consensus_validators_power",
    "cometbft_consensus_missing_validators",
    "cometbft_consensus_missing_validators_power",
    "cometbft_consensus_byzantine_validators",
    "cometbft_consensus_byzantine_validators_power",
    "cometbft_consensus_block_interval_seconds_bucket",
    "cometbft_consensus_num_txs",
    "cometbft_consensus_txs_total",
    "cometbft_consensus_block_size_bytes",
    "cometbft_blocksync_syncing",
    "cometbft_p2p_peers",
    "cometbft_p2p_peer_receive_bytes_total",
    "cometbft_mempool_size",
    "cometbft_mempool_size_bytes",
    "cometbft_mempool_failed_txs_total",
)
PROCESS = ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_gc_collections_total", "python_info")
DOMAIN = (
    "uoc_epoch",
    "uoc_unit_of_compute_price_ngonka",
    "uoc_epoch_voters",
    "uoc_epoch_participation_ratio",
    "uoc_own_vote_ngonka",
    "uoc_own_vote_distance_ngonka",
)


def value(samples: dict, name: str) -> float:
    return sum(samples[name].values())


def post(url: str, body: bytes, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_a_node_serves_the_cometbft_series_and_they_move_as_it_commits_blocks_txs_and_epochs(tmp_path):
    (home,) = make_homes(tmp_path, 1)
    genesis = json.loads((home / "genesis.json").read_text())
    genesis["params"]["epoch_length"] = 5
    (home / "genesis.json").write_text(json.dumps(genesis))
    update_config(home, timeouts=replace(FAST, commit_ms=50))
    key = load_home(home).validator_key
    node = NodeProcess(home)
    try:
        first = wait_until(
            lambda: (s := read_metrics(node.metrics)) and value(s, "cometbft_consensus_height") >= 2 and s,
            "the node commits two blocks",
            ignore=(OSError,),
        )
        for name in (*COMETBFT, *PROCESS, *DOMAIN):
            assert name in first, name
        assert value(first, "cometbft_consensus_validators") == 1 and value(first, "cometbft_p2p_peers") == 0
        assert value(first, "cometbft_consensus_missing_validators") == 0
        raw = sign_tx(key, genesis["chain_id"], 0, [MsgSend(to=PrivateKey.from_name("m").address, amount=5)])
        assert post(f"http://{node.public}/v1/txs?wait=commit", raw, {})["code"] == "ok"
        post(
            f"http://{node.admin}/v1/admin/unit-of-compute-price-proposal",
            json.dumps({"price": 700, "denom": "ngonka"}).encode(),
            {"Authorization": f"Bearer {node.token}"},
        )
        later = wait_until(
            lambda: (s := read_metrics(node.metrics)) and value(s, "uoc_epoch_voters") == 1 and s,
            "an epoch ends with the vote counted",
        )
    finally:
        assert node.signal(signal.SIGTERM) == 0
    assert value(later, "cometbft_consensus_height") > value(first, "cometbft_consensus_height")
    assert value(later, "cometbft_consensus_txs_total") >= value(first, "cometbft_consensus_txs_total") + 2
    assert value(later, "cometbft_consensus_block_interval_seconds_count") > value(
        first, "cometbft_consensus_block_interval_seconds_count"
    )
    assert value(later, "uoc_unit_of_compute_price_ngonka") == 700 and value(later, "uoc_epoch") >= 2
    assert value(later, "uoc_own_vote_ngonka") == 700 and value(later, "uoc_own_vote_distance_ngonka") == 0
    assert value(later, "uoc_epoch_participation_ratio") == 1
    assert value(later, "uoc_http_requests_total") >= 1


def test_the_public_listener_serves_no_metrics(tmp_path):
    (home,) = make_homes(tmp_path, 1)
    node = NodeProcess(home)
    try:
        wait_until(lambda: read_metrics(node.metrics), "the metrics listener answers", ignore=(OSError,))
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://{node.public}/metrics", timeout=10)
        assert info.value.code == 404
    finally:
        assert node.signal(signal.SIGTERM) == 0


def test_the_model_series_follow_the_active_models():
    metrics = NodeMetrics()
    pricing = {"epoch": 3, "unit_of_compute_price_str": "100", "models": []}
    models = [{"id": "a", "price_per_token_str": "1000"}, {"id": "b", "price_per_token_str": "1200"}]
    metrics.on_pricing({**pricing, "models": models})
    metrics.on_pricing({**pricing, "models": models[1:]})
    text = metrics.render().decode()
    assert 'uoc_model_price_per_token_ngonka{model="b"} 1200.0' in text and 'model="a"' not in text


def submit(address: str, raw: bytes) -> bool:
    """POST one tx to a node's public API; whether it was admitted (a refusal is an HTTP 4xx)."""
    try:
        post(f"http://{address}/v1/txs", raw, {})
    except urllib.error.HTTPError as exc:
        assert 400 <= exc.code < 500, exc.code
        return False
    return True


def test_four_nodes_each_verify_every_distinct_transaction_once_whatever_path_its_copies_take(tmp_path):
    """Each sender's txs go first, newest first, to the next node (refused there for their sequence but
    for the first: verified, and refused), then in order to their own node, then to the three others (a
    client's retries, racing the relay and the block): copies come back by gossip, proposals, retries,
    after the commit and through the re-check. The load (40 txs) is far below the verify cache's
    256 MiB, so nothing is evicted and each node's verifications equal the distinct transactions it
    saw: those committed."""
    homes = make_homes(tmp_path, 4)
    nodes = [NodeProcess(home) for home in homes]
    chain_id = nodes[0].chain_id
    to = PrivateKey.from_name("sink").address
    txs = [
        (i, sign_tx(node.key, chain_id, seq, [MsgSend(to=to, amount=1 + seq)]))
        for seq in range(10)
        for i, node in enumerate(nodes)
    ]
    try:
        wait_until(
            lambda: all(value(read_metrics(n.metrics), "cometbft_consensus_height") >= 1 for n in nodes),
            "the four nodes commit a block",
            ignore=(OSError,),
        )
        for i, raw in reversed(txs):
            submit(nodes[(i + 1) % 4].public, raw)
        for i, raw in txs:
            submit(nodes[i].public, raw)  # admitted, or known already from the next node's relay
        for i, raw in txs:
            for other in nodes:
                if other is not nodes[i]:
                    submit(other.public, raw)  # refused as known or committed, or admitted before its relay copy

        def settled() -> list[dict] | None:
            samples = [read_metrics(n.metrics) for n in nodes]
            done = all(
                value(s, "cometbft_consensus_txs_total") == len(txs) and value(s, "cometbft_mempool_size") == 0
                for s in samples
            )
            return samples if done else None

        final = wait_until(settled, "every node commits the 40 txs and empties its mempool")
    finally:
        for node in nodes:
            assert node.signal(signal.SIGTERM) == 0
    for samples in final:
        assert value(samples, "uoc_verify_cache_evictions_total") == 0
        assert value(samples, "uoc_tx_signature_verifications_total") == len(txs)
        # each committed tx was applied in its block by its rules or from its admission's record
        assert value(samples, "uoc_tx_rule_runs_total") + value(samples, "uoc_tx_records_applied_total") >= len(txs)

"""Usage settlement throughput and cost-record aggregation, in process.

    .venv/bin/python bench/bench_usage.py [--settlements 4000] [--block-txs 500] [--records 10000,1000000]
    .venv/bin/python bench/bench_usage.py --network [--settlements 8000]

1. **Settlements per second.** A chain with one active model; 40 requesters with funded escrows and
   20 providers. The providers' signed `MsgSettleUsage` transactions (each with its requester's
   receipt signature) are made before the clock starts; then a node's work runs on them: admission
   (`check_tx`: decode, the tx signature, the rules, the requester's signature) and, per block of
   --block-txs, `finalize_block` and `commit`. Prints settlements committed per second, and the
   reference measured in the same run: the raw ed25519 verify rate over the same two signatures of
   each settlement (the tx's and the receipt's), halved, timed block by block in turn with the
   chain's blocks so both see the same load; both in CPU time. Both run under the collector settings
   a node runs with (`node.heap.settled_heap`, as `uocd start` applies once its ledger is open).
   Target: ratio ≥ 0.35.
2. **Aggregation p99.** For each size of --records, a SQLite state store holding that many settlement
   records with their by-provider and by-model index rows and the running totals the rules keep
   (the totals summed with the rules' own `compute_groups`; rows inserted in bulk, no block
   committed), then `usage_totals` (GET /v1/cost-records/totals) for every grouping, 200 requests
   each (a page of 100 groups): p50 and p99 per grouping, of the wall time and of the thread's CPU
   time (the query's own work, without the scheduler's waits on a loaded machine). Target: p99 ≤ 50 ms
   for every grouping at 1M records, about the same as at 10k (a page reads its groups' totals,
   never the records).
3. **--network** (instead of 1 and 2): 4 `uocd start` processes on loopback (mutual TLS, 1 s blocks,
   as `bench_network.py` runs them); the model is registered and voted in, the requesters fund their
   escrows, then the providers' pre-signed settlements are sent as fast as the nodes admit them
   (gRPC `BroadcastTxs` batches spread over the nodes). Prints settlements committed per second over
   the window from the first submission to the last commit, checked against the settlements the
   chain counts (`/v1/cost-records/totals`). Target ≥ 500/s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.app import Application
from chain.crypto import PrivateKey, verify_signature
from chain.encoding import canonical_json
from chain.queries import QueryContext, run_query
from chain.store import MemoryStore, State
from chain.tx import (
    MsgFundEscrow,
    MsgSettleUsage,
    MsgSubmitProposal,
    MsgVote,
    Receipt,
    RegisterModel,
    Tokens,
    compute_receipt_sign_bytes,
    decode_tx,
    sign_receipt,
    sign_tx,
)
from chain.usage import (
    DIMENSIONS,
    TOTAL_FIELDS,
    compute_aggregate_key,
    compute_groups,
    compute_index_entry_key,
    compute_totals_delta,
)
from node.client import ApiError, Client
from node.config import load_home, write_json
from node.heap import settled_heap
from node.pb import services_pb2 as spb
from node.store import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_network as network  # noqa: E402  (its 4-node harness)

CHAIN_ID = "bench-usage"
VALIDATOR = PrivateKey.from_name("validator", "bench-usage")
REQUESTERS = [PrivateKey.from_name(f"requester-{i}", "bench-usage") for i in range(40)]
PROVIDERS = [PrivateKey.from_name(f"provider-{i}", "bench-usage") for i in range(20)]
# on the network, more providers: a node's mempool holds at most 100 pending txs of one sender
NETWORK_PROVIDERS = [PrivateKey.from_name(f"provider-{i}", "bench-usage") for i in range(200)]
MODEL = "Qwen/Qwen2.5-7B-Instruct"


def make_chain() -> tuple[Application, int]:
    """A chain at an epoch start with MODEL active and every requester's escrow funded; its height."""
    app = Application(MemoryStore())
    app.init_chain(
        {
            "chain_id": CHAIN_ID,
            "params": {
                "epoch_length": 4,
                "voting_period": 2,
                "min_deposit": 10,
                "max_block_txs": 100_000,
                "protocol_fee_bps": 250,
                "fee_min": 1,
            },
            "accounts": [{"address": k.address, "balance": 10**15} for k in [VALIDATOR, *REQUESTERS, *PROVIDERS]],
            "validators": [{"address": VALIDATOR.address, "stake": 1_000}],
        }
    )
    setup = [
        [sign_tx(VALIDATOR, CHAIN_ID, 0, [MsgSubmitProposal(RegisterModel(MODEL, 3), 10)])],
        [sign_tx(VALIDATOR, CHAIN_ID, 1, [MsgVote(1, "yes")])],
        [sign_tx(k, CHAIN_ID, 0, [MsgFundEscrow(10**14)]) for k in REQUESTERS],
    ]
    height = 0
    while height < 8:
        height += 1
        results = app.finalize_block(height, setup[height - 1] if height <= len(setup) else [])
        assert all(r.ok for r in results.tx_results), [(r.code, r.log) for r in results.tx_results]
        app.commit()
    assert app.query("pricing")["models"], "the model is not active"
    return app, height


def make_settlements(
    count: int, expires_at: int, providers: list[PrivateKey] = PROVIDERS, chain_id: str = CHAIN_ID
) -> list[bytes]:
    """`count` settlement txs (requester signatures and tx signatures made here, before any clock)."""
    sequences = [0] * len(providers)
    raws = []
    for i in range(count):
        p = i % len(providers)
        requester = REQUESTERS[i % len(REQUESTERS)]
        receipt = Receipt(
            f"job-{i}",
            requester.address,
            providers[p].address,
            MODEL,
            Tokens(800 + i % 400, 200 + i % 100),
            10**9,
            expires_at,
            workforce=f"team-{i % 8}",
            function=f"fn-{i % 5}",
            worker=f"agent-{i % 50}",
        )
        msg = MsgSettleUsage(receipt, sign_receipt(requester, chain_id, receipt))
        raws.append(sign_tx(providers[p], chain_id, sequences[p], [msg]))
        sequences[p] += 1
    return raws


def compute_verify_work(raws: list[bytes], pubkeys: dict[str, bytes]) -> list[tuple[bytes, bytes, bytes]]:
    """The two signature checks of each settlement tx: (pubkey, signature, message)."""
    work = []
    for raw in raws:
        tx = decode_tx(raw)
        msg = tx.messages[0]
        assert isinstance(msg, MsgSettleUsage)
        work.append((tx.pubkey, tx.signature, tx.sign_bytes))
        sign_bytes = compute_receipt_sign_bytes(CHAIN_ID, msg.receipt)
        work.append((pubkeys[msg.receipt.requester], msg.requester_signature, sign_bytes))
    compute_receipt_sign_bytes.cache_clear()  # the chain's run starts cold
    return work


def run_settlements(count: int, block_txs: int) -> dict[str, float]:
    """Settlements committed per second by admission + finalize + commit, and the reference: the raw
    verification of the same blocks' two signatures per settlement, timed block by block between the
    chain's blocks (so both see the same load on a shared machine). Both in CPU time: the chain's work
    is one thread's, and another process's load then moves neither side. A first block of `block_txs`
    more settlements, and its verifications, run untimed: the steady state is measured, not the start."""
    app, height = make_chain()
    raws = make_settlements(block_txs + count, expires_at=10**6)  # the first block warms up, untimed
    work = compute_verify_work(raws, {k.address: k.pubkey for k in REQUESTERS})
    settle_s = verify_s = 0.0
    committed = 0
    with settled_heap():  # the collector's settings of a node's run (`uocd start`), both sides
        for start in range(0, len(raws), block_txs):
            block = raws[start : start + block_txs]
            if start == 0:  # warm-up: the caches and the CPU's clock as in the steady state, both sides
                assert all(verify_signature(*item) for item in work[: 2 * len(block)])
                assert all(r.ok for r in app.check_txs(block))
                height += 1
                assert all(r.ok for r in app.finalize_block(height, block).tx_results)
                app.commit()
                continue
            started = time.process_time()
            for pubkey, signature, message in work[2 * start : 2 * (start + len(block))]:
                assert verify_signature(pubkey, signature, message)
            verify_s += time.process_time() - started
            started = time.process_time()
            assert all(r.ok for r in app.check_txs(block))
            height += 1
            result = app.finalize_block(height, block)
            app.commit()
            settle_s += time.process_time() - started
            committed += sum(r.ok for r in result.tx_results)
    assert committed == count, f"{count - committed} settlements failed"
    rate, verify_rate = committed / settle_s, 2 * committed / verify_s
    return {"settlements": committed, "rate": rate, "verify_rate": verify_rate, "ratio": rate / (verify_rate / 2)}


# -- aggregation ---------------------------------------------------------------------------------


def build_store(path: Path, records: int, seed: int = 7) -> SqliteStore:
    """A state store holding `records` settlements, their index rows and the running totals."""
    rng = random.Random(seed)
    requesters = [PrivateKey.from_name(f"agg-requester-{i}", "bench-usage").address for i in range(200)]
    providers = [PrivateKey.from_name(f"agg-provider-{i}", "bench-usage").address for i in range(50)]
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * len(TOTAL_FIELDS))
    store = SqliteStore(path)
    rows: list[tuple[str, str, str]] = []
    conn = store._conn  # bulk load: the bench builds a big store without running 1M transactions

    def flush() -> None:
        with conn:
            conn.executemany("INSERT INTO state (space, key, value) VALUES (?, ?, ?)", rows)
        rows.clear()

    for i in range(records):
        tokens_in, tokens_out = rng.randrange(50, 4000), rng.randrange(10, 1000)
        charged = (tokens_in + tokens_out) * 300
        fee = max(charged * 250 // 10_000, 1)
        record = {
            "request_id": f"job-{i:08d}",
            "requester": requesters[i % len(requesters)],
            "provider": providers[rng.randrange(len(providers))],
            "model": f"model-{rng.randrange(20)}",
            "tokens": {"in": tokens_in, "out": tokens_out},
            "price_per_token": 300,
            "charged": charged,
            "payout": charged - fee,
            "fee": fee,
            "status": "settled",
            "epoch": i // 5000,
            "price_record": {"epoch": i // 5000, "unit_of_compute_price": 100, "units_per_token": 3},
            "height": 1 + i // 100,
            "tx_hash": f"{i:064X}",
            "dispute_until": 101 + i // 100,
            "fee_released": True,
            "attribution": {
                "workforce": f"wf-{rng.randrange(20)}",
                "function": f"fn-{rng.randrange(10)}",
                "intent": f"in-{rng.randrange(5)}",
                "role": f"role-{rng.randrange(8)}",
                "worker": f"agent-{rng.randrange(400)}",
            },
        }
        key = f"{record['requester']}|{record['request_id']}"
        rows.append(("usettle", key, canonical_json(record)))
        for space, owner in (("uprov", record["provider"]), ("umodel", record["model"])):
            index_key = compute_index_entry_key(owner, record["height"], record["requester"], record["request_id"])
            rows.append((space, index_key, "1"))
        delta = compute_totals_delta(record)
        for dimension, group in compute_groups(record):
            acc = totals[compute_aggregate_key(dimension, group)]
            for n, d in enumerate(delta):
                acc[n] += d
        if len(rows) >= 100_000:
            flush()
    rows.extend(("uagg", k, canonical_json(v)) for k, v in totals.items())
    flush()
    return store


def compute_p50_p99(times: list[float]) -> tuple[float, float]:
    """The median and the 99th percentile (nearest rank) of some times."""
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, -(-len(ordered) * 99 // 100) - 1)]


def run_aggregation(records: int, requests: int) -> dict[str, tuple[float, float, float, float, int]]:
    """(wall p50 ms, wall p99 ms, CPU p50 ms, CPU p99 ms, records covered by the first page) of
    usage_totals for every grouping. The CPU time (this thread's) is the query's own work; the wall
    time adds what a loaded machine's scheduler makes it wait."""
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp) / "state.db", records)
        ctx = QueryContext(State(store, 1), 1, "")
        out = {}
        for dimension in DIMENSIONS:
            wall, cpu = [], []
            covered = 0
            for _ in range(requests):
                started, started_cpu = time.perf_counter(), time.thread_time()
                answer = run_query(ctx, "usage_totals", group_by=dimension)
                cpu.append((time.thread_time() - started_cpu) * 1000)
                wall.append((time.perf_counter() - started) * 1000)
                covered = answer["covered"]
            out[dimension] = (*compute_p50_p99(wall), *compute_p50_p99(cpu), covered)
        store.close()
    return out


def get_json(home: Path, path: str, **params: Any) -> Any:
    """A public API answer of the node of `home`."""
    return Client(load_home(home).config.api_public).get(path, **params)


def run_network(count: int) -> dict[str, float]:
    """Settlements committed per second by a 4-node network (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        homes = network.make_network(Path(tmp), 4, [*REQUESTERS, *NETWORK_PROVIDERS], 1000)
        genesis = load_home(homes[0]).genesis
        genesis["params"] = {
            **genesis.get("params", {}),
            "epoch_length": 5,
            "voting_period": 3,
            "max_deposit_period": 3,
            "min_deposit": 10,
            "protocol_fee_bps": 250,
            "fee_min": 1,
        }
        for home in homes:
            write_json(home / "genesis.json", genesis)
        chain_id = genesis["chain_id"]
        validators = [load_home(h).validator_key for h in homes]
        procs = [network.start(h, None, False) for h in homes]
        channels = [network.open_channel(h, False) for h in homes]
        stubs = [network.unary(c, "/uoc.v1.Gossip/BroadcastTxs", spb.TxBatchAck) for c in channels]
        try:
            while True:
                try:
                    if get_json(homes[0], "/v1/status")["height"] >= 2:
                        break
                except ApiError:
                    pass
                time.sleep(0.2)
            propose = sign_tx(validators[0], chain_id, 0, [MsgSubmitProposal(RegisterModel(MODEL, 3), 10)])
            stubs[0](spb.TxBatch(txs=[propose]).SerializeToString(), timeout=10)
            while not get_json(homes[0], "/v1/governance/proposals")["proposals"]:
                time.sleep(0.2)
            votes = [sign_tx(v, chain_id, int(i == 0), [MsgVote(1, "yes")]) for i, v in enumerate(validators)]
            funds = [sign_tx(k, chain_id, 0, [MsgFundEscrow(10**14)]) for k in REQUESTERS]
            stubs[0](spb.TxBatch(txs=votes + funds).SerializeToString(), timeout=10)
            print("waiting for the model to be active ...", flush=True)
            while not get_json(homes[0], "/v1/pricing")["models"]:
                time.sleep(0.5)
            per_provider: list[list[bytes]] = [[] for _ in NETWORK_PROVIDERS]
            for i, raw in enumerate(make_settlements(count, 10**6, NETWORK_PROVIDERS, chain_id)):
                per_provider[i % len(NETWORK_PROVIDERS)].append(raw)
            watcher = network.Watcher(channels[0])
            watcher.start()
            while watcher.height == 0:
                time.sleep(0.1)
            sent: dict[str, float] = {}
            base = len(watcher.committed)
            print(f"sending {count} settlements as fast as the nodes admit them ...", flush=True)
            t0 = time.monotonic()
            network.submit(stubs, per_provider, None, sent, lambda: len(sent) - (len(watcher.committed) - base))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not all(h in watcher.committed for h in sent):
                time.sleep(0.2)
            done = [watcher.committed[h] for h in sent if h in watcher.committed]
            window = max(done) - t0
            watcher.stop.set()
            time.sleep(2)
            counted = get_json(homes[0], "/v1/cost-records/totals", group_by="model")["covered"]  # one model: one group
            return {"committed": len(done), "counted": counted, "window_s": window, "rate": counted / window}
        finally:
            network.stop_network(channels, procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settlements", type=int, default=4000)
    parser.add_argument("--block-txs", type=int, default=500)
    parser.add_argument("--records", default="10000,1000000", help="comma-separated store sizes")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--network", action="store_true", help="the 4-node network figure instead")
    args = parser.parse_args()

    if args.network:
        n = run_network(args.settlements if args.settlements != 4000 else 8000)
        print(
            f"network: {n['committed']:.0f} settlement txs in blocks, {n['counted']:.0f} counted by the chain, in "
            f"{n['window_s']:.1f} s: {n['rate']:.0f} settlements/s committed (target >= 500)"
        )
        return
    s = run_settlements(args.settlements, args.block_txs)
    print(f"settlements committed: {s['settlements']:.0f} in process, {s['rate']:.0f}/s")
    print(f"reference: raw ed25519 verify {s['verify_rate']:.0f}/s, /2 = {s['verify_rate'] / 2:.0f} settlements/s")
    print(f"ratio: {s['ratio']:.3f} (target >= 0.35: {'met' if s['ratio'] >= 0.35 else 'NOT met'})", flush=True)

    sizes = [int(n) for n in args.records.split(",")]
    results = {}
    for size in sizes:
        started = time.perf_counter()
        results[size] = run_aggregation(size, args.requests)
        print(f"store of {size:,} records built and queried in {time.perf_counter() - started:.0f} s", flush=True)
    print("grouping" + "".join(f" | wall p50/p99, CPU p50/p99 ms at {n:,} (covered)" for n in sizes))
    for dimension in DIMENSIONS:
        cells = ""
        for n in sizes:
            w50, w99, c50, c99, covered = results[n][dimension]
            cells += f" | {w50:.2f}/{w99:.2f}, {c50:.2f}/{c99:.2f} ({covered:,})"
        print(f"{dimension}{cells}")
    for label, index in (("wall", 1), ("CPU", 3)):
        worst = {n: max(v[index] for v in results[n].values()) for n in sizes}
        line = ", ".join(f"{worst[n]:.2f} ms at {n:,}" for n in sizes)
        ratio = f"; {sizes[-1]:,} to {sizes[0]:,}: {worst[sizes[-1]] / worst[sizes[0]]:.2f}" if len(sizes) > 1 else ""
        print(f"worst {label} p99: {line} (target <= 50 ms){ratio}")


if __name__ == "__main__":
    main()

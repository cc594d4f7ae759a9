"""The node's Prometheus metrics (prometheus-client), served on their own listener
(`[instrumentation] prometheus_listen_addr`, `GET /metrics`, no rate limit, no token).

One `CollectorRegistry` per node (several nodes may share a process in tests). The series:

- CometBFT's names (namespace `cometbft`), so a provider's dashboards and alerts work as they are:
  `cometbft_consensus_height`, `_rounds`, `_validators`, `_validators_power`, `_missing_validators`,
  `_missing_validators_power`, `_byzantine_validators`, `_byzantine_validators_power`,
  `_block_interval_seconds` (histogram), `_num_txs`, `_txs_total`, `_block_size_bytes`,
  `_latest_block_height`; `cometbft_blocksync_syncing`; `cometbft_p2p_peers`,
  `cometbft_p2p_peer_send_bytes_total`, `cometbft_p2p_peer_receive_bytes_total` (gossip payload bytes);
  `cometbft_mempool_size`, `cometbft_mempool_size_bytes`, `cometbft_mempool_failed_txs_total`;
- the process's (`process_*`, `python_gc_*`, `python_info`);
- the chain's, read at each committed block: `uoc_epoch`, `uoc_unit_of_compute_price_ngonka`,
  `uoc_epoch_voters`, `uoc_epoch_participation_ratio` (of the last ended epoch), the validator's
  `uoc_own_vote_ngonka` and `uoc_own_vote_distance_ngonka` (own vote − price), and
  `uoc_model_price_per_token_ngonka{model}`;
- the API's and the abuse limits': `uoc_http_requests_total{listener,route,method,status}`,
  `uoc_http_request_duration_seconds{listener,route,method}`, `uoc_http_rate_limited_total`,
  `uoc_http_connections_open|accepted_total|refused_total{listener}`, `uoc_grpc_rejected_total{method}`;
- the verification work: `uoc_tx_signature_verifications_total` (transaction signatures this node
  verified: each distinct transaction once) and `uoc_verify_cache_evictions_total` (verified
  transactions the byte-bounded verify cache dropped; only a copy of one of those is verified twice);
  `uoc_tx_rule_runs_total` (transactions whose rules ran) and `uoc_tx_records_applied_total`
  (transactions applied from their admission's record instead: `chain.app`, one execution per
  transaction).

Values the node keeps anyway (mempool size, peers, round, the limits' counters) are read at scrape time
by `LiveCollector`; the rest move at each committed block (`NodeMetrics.on_block`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

NAMESPACE = "cometbft"
BLOCK_INTERVAL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_MODEL_SERIES = 1000  # per-model series kept (the registry's active models; bounded like a query page)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Reading = Callable[[], Iterable[tuple[str, str, str, list[tuple[dict[str, str], float]]]]]


class LiveCollector(Collector):
    """Series read at scrape time: `read()` yields (name, kind "gauge"|"counter", help, [(labels, value)])."""

    def __init__(self, read: Reading) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        for name, kind, help_text, samples in self.read():
            labels = sorted({k for sample_labels, _ in samples for k in sample_labels})
            family: GaugeMetricFamily | CounterMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, help_text, labels=labels)
            else:
                family = GaugeMetricFamily(name, help_text, labels=labels)
            for sample_labels, value in samples:
                family.add_metric([sample_labels.get(k, "") for k in labels], value)
            yield family


class NodeMetrics:
    """A node's registry and the series it moves; `render()` is the exposition text."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)

        def gauge(name: str, help_text: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, help_text, labels, registry=registry)

        c = f"{NAMESPACE}_consensus"
        self.height = gauge(f"{c}_height", "Height of the chain: the last committed block's.")
        self.latest_block_height = gauge(f"{c}_latest_block_height", "The latest block height.")
        self.rounds = gauge(f"{c}_rounds", "Round in which the last block was committed.")
        self.validators = gauge(f"{c}_validators", "Number of validators.")
        self.validators_power = gauge(f"{c}_validators_power", "Total voting power of the validators.")
        self.missing = gauge(f"{c}_missing_validators", "Validators that did not sign the last block.")
        self.missing_power = gauge(f"{c}_missing_validators_power", "Voting power of the missing validators.")
        self.byzantine = gauge(f"{c}_byzantine_validators", "Validators punished for double signing in the block.")
        self.byzantine_power = gauge(f"{c}_byzantine_validators_power", "Voting power of the byzantine validators.")
        self.block_interval = Histogram(
            f"{c}_block_interval_seconds",
            "Time between this and the last block (block header times).",
            buckets=BLOCK_INTERVAL_BUCKETS,
            registry=registry,
        )
        self.num_txs = gauge(f"{c}_num_txs", "Number of transactions in the last block.")
        self.txs = Counter(f"{c}_txs", "Transactions committed.", registry=registry)
        self.block_size = gauge(f"{c}_block_size_bytes", "Size of the last block (its txs and evidence).")
        self.epoch = gauge("uoc_epoch", "Index of the current epoch.")
        self.price = gauge("uoc_unit_of_compute_price_ngonka", "Unit-of-compute price of the current epoch.")
        self.voters = gauge("uoc_epoch_voters", "Validators whose price vote counted in the last ended epoch.")
        self.participation = gauge(
            "uoc_epoch_participation_ratio", "Voters over the validators of the last ended epoch."
        )
        self.own_vote = gauge("uoc_own_vote_ngonka", "This validator's price vote in force (absent: none).")
        self.own_distance = gauge(
            "uoc_own_vote_distance_ngonka", "This validator's vote in force minus the unit-of-compute price."
        )
        self.model_price = gauge(
            "uoc_model_price_per_token_ngonka", "Price of a token of each active model this epoch.", ("model",)
        )
        self.requests = Counter(
            "uoc_http_requests",
            "HTTP requests by listener, route, method and status.",
            ("listener", "route", "method", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "uoc_http_request_duration_seconds",
            "HTTP request latency by listener, route and method (event streams are counted, not timed).",
            ("listener", "route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._last_time_ms: int | None = None
        self._models: set[str] = set()

    def add_live(self, read: Reading) -> None:
        """Series read at each scrape (`LiveCollector`)."""
        self.registry.register(LiveCollector(read))

    def observe_request(self, listener: str, route: str, method: str, status: int, seconds: float | None) -> None:
        """Count one HTTP request and its duration (None: a stream, open as long as its client stays,
        counted but not timed, so the latency histogram stays one of requests)."""
        self.requests.labels(listener, route, method, str(status)).inc()
        if seconds is not None:
            self.latency.labels(listener, route, method).observe(seconds)

    def on_block(
        self,
        *,
        height: int,
        round: int,
        time_ms: int,
        txs: int,
        size: int,
        powers: tuple[tuple[str, int], ...],
        signers: Iterable[str],
        byzantine: Iterable[str],
    ) -> None:
        """Move the consensus series for a committed block (`powers`: its height's validator set)."""
        power_of = dict(powers)
        signed = set(signers)
        missing = [a for a in power_of if a not in signed]
        punished = set(byzantine)
        self.height.set(height)
        self.latest_block_height.set(height)
        self.rounds.set(round)
        self.validators.set(len(power_of))
        self.validators_power.set(sum(power_of.values()))
        self.missing.set(len(missing))
        self.missing_power.set(sum(power_of[a] for a in missing))
        self.byzantine.set(len(punished))
        self.byzantine_power.set(sum(power_of.get(a, 0) for a in punished))
        self.num_txs.set(txs)
        self.txs.inc(txs)
        self.block_size.set(size)
        if self._last_time_ms is not None:
            self.block_interval.observe(max(0, time_ms - self._last_time_ms) / 1000)
        self._last_time_ms = time_ms

    def on_pricing(self, pricing: dict[str, Any]) -> None:
        """Move the epoch, the price and the per-model prices (`/v1/pricing`'s answer)."""
        self.epoch.set(pricing["epoch"])
        self.price.set(int(pricing["unit_of_compute_price_str"]))
        models = {m["id"]: int(m["price_per_token_str"]) for m in pricing["models"][:MAX_MODEL_SERIES]}
        for gone in self._models - set(models):
            self.model_price.remove(gone)
        for model, price in models.items():
            self.model_price.labels(model).set(price)
        self._models = set(models)

    def on_epoch(self, summary: dict[str, Any]) -> None:
        """Move the last ended epoch's voters, participation and the own vote (`NodeCore.get_epoch_summary`)."""
        self.voters.set(summary["voters"])
        counted = summary["voters"] + summary["non_voters"]
        self.participation.set(summary["voters"] / counted if counted else 0)
        if summary.get("own_vote") is not None:
            self.own_vote.set(summary["own_vote"])
            self.own_distance.set(summary["own_vote_distance"])

    def render(self) -> bytes:
        """The exposition (Prometheus text format 0.0.4)."""
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "LiveCollector", "NodeMetrics"]

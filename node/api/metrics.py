"""The API's Prometheus exposition (`GET /metrics`): node gauges, request counts and latency histograms
per route, and the abuse-limit counters."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .limits import ConnectionGate, RateLimiter
from .ports import ApiNode

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    """Cumulative-at-export latency histogram of one (route, method)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0


class Metrics:
    """Request counts and latencies per route, plus the node gauges, in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its duration."""
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get((route, method))
        if hist is None:
            hist = self.latency[(route, method)] = Histogram()
        hist.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        hist.total += seconds

    def render(self, node: ApiNode, limit_lines: list[str] | None = None) -> str:
        """The exposition text: node gauges, request counters, latency histograms, then `limit_lines`
        (the abuse-limit counters, `render_limit_metrics`)."""
        assert node.app is not None
        status = node.query("status")
        gauges = (
            ("uoc_height", "Height of the last committed block.", node.app.height),
            ("uoc_epoch", "Index of the current epoch.", status["epoch"]),
            (
                "uoc_unit_of_compute_price_ngonka",
                "Unit-of-compute price of the current epoch.",
                status["unit_of_compute_price"],
            ),
            ("uoc_mempool_txs", "Transactions waiting in the mempool.", len(node.mempool or ())),
            ("uoc_peers", "Peers that answered the last status poll.", node.reachable_peers),
            (
                "uoc_consensus_round",
                "Consensus round at the current height.",
                node.consensus.round if node.consensus else 0,
            ),
        )
        lines: list[str] = []
        for name, help_text, value in gauges:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        lines += [
            "# HELP uoc_http_requests_total HTTP requests by route, method and status.",
            "# TYPE uoc_http_requests_total counter",
        ]
        for (route, method, code), count in sorted(self.requests.items()):
            lines.append(
                f'uoc_http_requests_total{{route="{escape_label(route)}",method="{method}",status="{code}"}} {count}'
            )
        lines += [
            "# HELP uoc_http_request_duration_seconds HTTP request latency by route and method.",
            "# TYPE uoc_http_request_duration_seconds histogram",
        ]
        for (route, method), hist in sorted(self.latency.items()):
            labels = f'route="{escape_label(route)}",method="{method}"'
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), hist.counts):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'uoc_http_request_duration_seconds_bucket{{{labels},le="{le}"}} {cumulative}')
            lines.append(f"uoc_http_request_duration_seconds_sum{{{labels}}} {hist.total:.6f}")
            lines.append(f"uoc_http_request_duration_seconds_count{{{labels}}} {cumulative}")
        if limit_lines is not None:
            lines += limit_lines
        return "\n".join(lines) + "\n"


def render_limit_metrics(node: ApiNode, limiter: RateLimiter | None, gates: dict[str, ConnectionGate]) -> list[str]:
    """The abuse-limit counters: rate-limited requests, open and refused connections per listener, and the
    gRPC calls rejected per method."""
    lines = [
        "# HELP uoc_http_rate_limited_total Public API requests answered 429 by the per-client rate limit.",
        "# TYPE uoc_http_rate_limited_total counter",
        f"uoc_http_rate_limited_total {limiter.refused if limiter else 0}",
    ]
    listeners = sorted(gates.items())
    for name, kind, help_text, attr in (
        ("uoc_http_connections_open", "gauge", "Open HTTP connections by listener.", "open_total"),
        ("uoc_http_connections_accepted_total", "counter", "HTTP connections accepted by listener.", "accepted"),
        (
            "uoc_http_connections_refused_total",
            "counter",
            "HTTP connections refused (503, closed) by listener: over the total or per-client cap.",
            "refused",
        ),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{listener="{listener}"}} {getattr(gate, attr)}' for listener, gate in listeners]
    server = node.server
    rejected = sorted(server.handlers.rejected.items()) if server is not None else []
    lines += [
        "# HELP uoc_grpc_rejected_total gRPC calls rejected (malformed, invalid, refused) by method.",
        "# TYPE uoc_grpc_rejected_total counter",
        *(f'uoc_grpc_rejected_total{{method="{method}"}} {count}' for method, count in rejected),
    ]
    return lines


def escape_label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


__all__ = ["LATENCY_BUCKETS", "Histogram", "Metrics", "escape_label", "render_limit_metrics"]

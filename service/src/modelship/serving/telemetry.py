"""Prometheus metrics: what is counted (`GET /metrics` is `modelship.transport.http.metrics`).

Requests are counted by the serving middleware (`modelship.transport.http.middleware`),
predicted rows and shed requests by the data plane. Multi-worker safe: `modelship serve` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, each worker writes its
samples there, and `/metrics` aggregates all of them.
"""

from __future__ import annotations

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LABELS = ("method", "route", "status")
REQUESTS = Counter("modelship_http_requests", "HTTP requests answered", LABELS)
LATENCY = Histogram(
    "modelship_http_request_duration_seconds",
    "Time from request start to the last byte of the response",
    LABELS,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PREDICTIONS = Counter("modelship_predictions", "Rows predicted by the model")
BATCH_ROWS = Histogram(
    "modelship_batch_rows",
    "Rows per model call (a CSV upload makes one call per chunk)",
    buckets=(1, 10, 100, 1_000, 10_000, 100_000),
)
SHED = Counter(
    "modelship_requests_shed",
    "Requests answered 503 at once because the worker was full (the expected wait over "
    "MODELSHIP_SHED_WAIT_MS, or MODELSHIP_MAX_IN_FLIGHT in flight)",
)
MODEL_INFO = Gauge(
    "modelship_model_info",
    "The model being served (value is always 1)",
    ("name", "version", "task", "training_data_sha256", "modelship_version"),
    multiprocess_mode="max",
)


class RequestMetrics:
    """The counter and latency children of one (method, route, status)."""

    def __init__(self, method: str, route: str, status: int) -> None:
        labels = (method, route, str(status))
        self.count = REQUESTS.labels(*labels)
        self.latency = LATENCY.labels(*labels)

    def record(self, seconds: float) -> None:
        self.count.inc()
        self.latency.observe(seconds)


_request_metrics: dict[tuple[str, str, int], RequestMetrics] = {}


def request_metrics(method: str, route: str, status: int) -> RequestMetrics:
    """The metrics of one kind of answer, made once (`.labels()` is slow for a hot path)."""
    key = (method, route, status)
    found = _request_metrics.get(key)
    if found is None:
        found = _request_metrics[key] = RequestMetrics(method, route, status)
    return found


def observe_rows(rows: int) -> None:
    """One model call of `rows` rows."""
    PREDICTIONS.inc(rows)
    BATCH_ROWS.observe(rows)

"""Prometheus metrics: what is counted (`GET /metrics` is `modelship.transport.http.metrics`).

Requests are counted by the serving middleware (`modelship.transport.http.middleware`),
predicted rows and shed requests by the data plane. Multi-worker safe: `modelship serve` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, each worker writes its
samples there, and `/metrics` aggregates all of them.
"""

from __future__ import annotations

import asyncio
import bisect

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
        """One answer that took `seconds` (written at the end of the event-loop turn)."""
        if _turn.waits():
            _turn.latencies.setdefault(self, []).append(seconds)
        else:
            self.write([seconds])

    def write(self, latencies: list[float]) -> None:
        self.count.inc(len(latencies))
        observe_all(self.latency, latencies)


_request_metrics: dict[tuple[str, str, int], RequestMetrics] = {}


def request_metrics(method: str, route: str, status: int) -> RequestMetrics:
    """The metrics of one kind of answer, made once (`.labels()` is slow for a hot path)."""
    key = (method, route, status)
    found = _request_metrics.get(key)
    if found is None:
        found = _request_metrics[key] = RequestMetrics(method, route, status)
    return found


def observe_rows(rows: int) -> None:
    """One model call of `rows` rows (written at the end of the event-loop turn, or now when
    called off the loop, from a pool thread)."""
    if _turn.waits():
        _turn.rows.append(rows)
    else:
        _write_rows([rows])


def _write_rows(calls: list[int]) -> None:
    PREDICTIONS.inc(sum(calls))
    observe_all(BATCH_ROWS, calls)


class _Turn:
    """The answers and model calls of one turn of the event loop, written to the Prometheus
    values together when the turn is over. Every write to a multiprocess value takes a lock,
    checks the process id and packs into the shared file: six of them per single-row request
    were a tenth of a worker's CPU at 32 clients (py-spy, docs/benchmarks.md#single-row-cpu).
    A busy worker answers several requests per turn, and writes each value once for them all;
    the counts reach /metrics at the end of the turn that answered, before the next requests
    are read (the access log's lines are joined the same way)."""

    def __init__(self) -> None:
        self.latencies: dict[RequestMetrics, list[float]] = {}
        self.rows: list[int] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def waits(self) -> bool:
        """Whether counts can wait for the end of the turn: on an event loop, yes (the write is
        scheduled with the turn's first count); off it (a pool thread), no."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if loop is not self.loop:  # the turn's first count (or another loop: a test's)
            self.loop = loop
            loop.call_soon(self.write)
        return True

    def write(self) -> None:
        self.loop = None
        latencies, self.latencies = self.latencies, {}
        rows, self.rows = self.rows, []
        for metrics, seconds in latencies.items():
            metrics.write(seconds)
        if rows:
            _write_rows(rows)


_turn = _Turn()


def observe_all(histogram: Histogram, values: list[float] | list[int]) -> None:
    """`histogram.observe(v)` for each of `values`, each bucket and the sum written once.

    Through prometheus_client's own histogram fields (`_upper_bounds`, `_buckets`, `_sum`: its
    `observe` has no form for many values); the version is pinned in uv.lock, a test checks the
    result against `observe`, and a histogram without those fields is observed one by one."""
    if len(values) == 1 or not _BULK:
        for value in values:
            histogram.observe(value)
        return
    bounds: list[float] = histogram._upper_bounds
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
    histogram._sum.inc(sum(values))
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


_BULK = all(hasattr(BATCH_ROWS, name) for name in ("_upper_bounds", "_buckets", "_sum"))

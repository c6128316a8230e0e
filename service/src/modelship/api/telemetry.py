"""Prometheus metrics: what is counted, and `GET /metrics`.

Requests are counted by the serving middleware (`modelship.api.middleware`), predicted rows and
shed requests by the data plane. Multi-worker safe: `modelship serve` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, each worker writes its
samples there, and `/metrics` aggregates all of them.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.registry import Collector

from modelship import __version__
from modelship.card import ModelCard

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
    "Requests answered 503 at once because the worker had MODELSHIP_MAX_IN_FLIGHT in flight",
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


def install_metrics(app: FastAPI, card: ModelCard, drift: Collector | None = None) -> None:
    """`GET /metrics`, the model-info sample, and the drift view."""
    MODEL_INFO.labels(
        card.name, card.version, card.task, card.training_data.sha256, __version__
    ).set(1)
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format)",
        response_class=PlainTextResponse,
    )
    async def metrics() -> Response:
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            payload = generate_latest(registry)
        else:
            payload = generate_latest(REGISTRY)
        if drift is not None:  # computed from every worker's window, the same on each
            computed = CollectorRegistry()
            computed.register(drift)
            payload += generate_latest(computed)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)

"""Prometheus metrics (`/metrics`) and the per-request middleware: request id, timing, access log.

Multi-worker safe: `modelship serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
the workers start, each worker writes its samples there, and `/metrics` aggregates all of them.
(Not to be confused with `modelship.metrics`, the model-quality metrics of training and scoring.)
"""

from __future__ import annotations

import logging
import os
import re
import time

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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelship import __version__
from modelship.api.logging import access_line, fast_handler, request_id
from modelship.predictor import Predictor

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
MODEL_INFO = Gauge(
    "modelship_model_info",
    "The model being served (value is always 1)",
    ("name", "version", "task", "training_data_sha256", "modelship_version"),
    multiprocess_mode="max",
)

REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")
access_log = logging.getLogger("modelship.access")


def _observe_rows(rows: int) -> None:
    PREDICTIONS.inc(rows)
    BATCH_ROWS.observe(rows)


def install_metrics(app: FastAPI, predictor: Predictor, drift: Collector | None = None) -> None:
    """`GET /metrics`, the model-info sample, counting of predicted rows, and the drift view."""
    card = predictor.card
    MODEL_INFO.labels(
        card.name, card.version, card.task, card.training_data.sha256, __version__
    ).set(1)
    predictor.on_predict = _observe_rows
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


class RequestTelemetry:
    """Pure ASGI middleware (outermost): request id in and out, metrics, one access-log line."""

    def __init__(self, app: ASGIApp, metrics: bool, log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests
        # (method, route, status) -> (counter, histogram) children; .labels() is slow-ish.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = b""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if VALID_REQUEST_ID.match(value):
                    rid = value
                break
        if not rid:
            rid = os.urandom(16).hex().encode()
        token = request_id.set(rid.decode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            if self.metrics:
                key = (method, template, status)
                children = self._children.get(key)
                if children is None:
                    labels = (method, template, str(status))
                    children = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
                    self._children[key] = children
                children[0].inc()
                children[1].observe(elapsed)
            if self.log_requests and access_log.isEnabledFor(logging.INFO):
                fields = {
                    "method": method,
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                }
                handler = fast_handler(access_log)
                if handler is not None:
                    handler.write_line(access_line(fields))
                else:  # logging configured some other way: go through it
                    access_log.info(f"{method} {scope['path']} {status}", extra=fields)
            request_id.reset(token)

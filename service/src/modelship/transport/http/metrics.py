"""`GET /metrics`: every worker's Prometheus samples, and the drift and live-quality views."""

from __future__ import annotations

import os
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.registry import Collector

from modelship import __version__
from modelship.contracts.card import ModelCard
from modelship.serving.telemetry import MODEL_INFO, MULTIPROC_ENV


def install_metrics(app: FastAPI, card: ModelCard, computed: Sequence[Collector] = ()) -> None:
    """`GET /metrics`, the model-info sample, and the views computed at scrape time (drift,
    live quality)."""
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
        if computed:  # from every worker's state, the same on each
            views = CollectorRegistry()
            for collector in computed:
                views.register(collector)
            # In a thread: the live-quality view reads the labelled rows from the shared file.
            payload += await run_in_threadpool(generate_latest, views)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)

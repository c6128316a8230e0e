"""The FastAPI application: `create_app` builds it around a loaded predictor."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelship import __version__, artifact, store
from modelship.api.dataplane import DataPlane
from modelship.api.errors import install_error_handlers
from modelship.api.middleware import ServingMiddleware
from modelship.api.openapi import install_openapi
from modelship.api.responses import JSONBytes
from modelship.api.routes import drift, health, model, predict
from modelship.api.routes.v2 import register_v2_routes
from modelship.api.telemetry import install_metrics
from modelship.api.web import install_web_page
from modelship.card import ModelCard
from modelship.footprint import cgroup_memory_limit, memory_shortfall
from modelship.monitoring.capture import create_capture
from modelship.monitoring.monitor import DriftCollector
from modelship.monitoring.setup import create_monitor
from modelship.predictor import Predictor
from modelship.settings import Settings, load_settings


def create_app(settings: Settings, predictor: Predictor) -> FastAPI:
    card = predictor.card
    api_key = settings.required_key
    monitor = create_monitor(card, settings)
    dataplane = DataPlane(settings, predictor, unfit=memory_problem(settings, card))
    if monitor is not None:
        dataplane.quality_hooks.append(lambda batch, result: monitor.observe(batch.feeds, result))
    capture = create_capture(card, settings)
    if capture is not None:
        dataplane.quality_hooks.append(capture.observe)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if monitor is not None:
            monitor.start()
        if capture is not None:
            capture.start()
        dataplane.start()
        if dataplane.unfit is not None:
            # Not ready, so a rollout stops here instead of pods being OOM-killed under load.
            logging.getLogger("modelship").error("not ready: %s", dataplane.unfit)
        yield
        dataplane.stop()
        if monitor is not None:
            monitor.stop()
        if capture is not None:
            # What is left gets one upload within the shutdown grace; then the process exits.
            capture.stop(timeout=min(settings.shutdown_grace_seconds, 10.0))

    app = FastAPI(
        title=f"modelship · {card.name}",
        version=card.version,
        description=(
            f"{card.task.capitalize()} of `{card.target}` with {card.model.estimator}, served "
            f"from ONNX by modelship {__version__}. Try `GET /model/examples/0`, then POST it "
            "to `/predict`."
        ),
        lifespan=lifespan,
        default_response_class=JSONBytes,
    )
    app.state.dataplane = dataplane
    app.state.monitor = monitor
    app.state.capture = capture
    install_error_handlers(app)
    # Routes are matched in order: the prediction routes first (the profiler saw matching).
    app.include_router(predict.router)
    app.include_router(health.router)
    app.include_router(model.router)
    app.include_router(drift.router)
    register_v2_routes(app, dataplane)
    if settings.metrics:
        install_metrics(app, card, DriftCollector(monitor) if monitor else None)
    install_web_page(app, card, needs_key=api_key is not None)
    install_openapi(app, card, settings)
    app.add_middleware(
        ServingMiddleware,
        dataplane=dataplane,
        key=api_key,
        max_body_bytes=settings.max_body_bytes,
        metrics=settings.metrics,
        log_requests=settings.access_log,
    )
    return app


def memory_problem(settings: Settings, card: ModelCard) -> str | None:
    """Why the model's measured footprint does not fit this container's memory, or None."""
    limit = settings.memory_limit_bytes or cgroup_memory_limit()
    if card.footprint is None or limit is None:
        return None
    return memory_shortfall(
        card.name, card.footprint, settings.workers, limit, "the container's memory limit"
    )


def app_from_env() -> FastAPI:
    """Factory for uvicorn (`--factory`): settings from MODELSHIP_* variables, model from disk."""
    settings = load_settings()
    loaded = (
        store.fetch(settings.model_uri, settings.model_cache)
        if settings.model_uri
        else artifact.load(settings.artifact)
    )
    predictor = Predictor(loaded, threads=settings.onnx_threads)
    app = create_app(settings, predictor)
    # A worker's libraries, model and app live as long as it does: frozen, the garbage collector
    # no longer walks them. Unfrozen, a full collection (one per about 50,000 requests) held the
    # event loop for 80-120 ms, every request in flight waiting. Here, not in create_app: a
    # process that builds many apps (the tests) must still collect the ones it drops.
    gc.collect()
    gc.freeze()
    return app

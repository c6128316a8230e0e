"""The FastAPI application: `create_app` builds it around a built serving side."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client.registry import Collector

from modelship import __version__
from modelship.contracts.settings import load_settings
from modelship.serving.compose import Serving, build_serving, load_candidate, load_predictor
from modelship.serving.feedback import QualityCollector
from modelship.serving.monitoring.monitor import DriftCollector
from modelship.serving.rollout import RolloutCollector
from modelship.transport.http.errors import install_error_handlers
from modelship.transport.http.metrics import install_metrics
from modelship.transport.http.middleware import HttpAdmission, ServingMiddleware
from modelship.transport.http.openapi import install_openapi
from modelship.transport.http.responses import JSONBytes
from modelship.transport.http.routes import drift, feedback, health, model, predict, rollout
from modelship.transport.http.routes.v2 import register_v2_routes
from modelship.transport.http.web import install_web_page


def create_app(serving: Serving) -> FastAPI:
    """The HTTP routes, middleware and pages around `serving` (built by `build_serving`)."""
    settings, dataplane, monitor = serving.settings, serving.dataplane, serving.monitor
    card = dataplane.predictor.card
    api_key = settings.required_key

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serving.start()
        yield
        serving.stop()

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
        # modelship's telemetry is its own (Prometheus, EMF, access log); FastAPI's native
        # OpenTelemetry looks up three global providers on every request to find it is off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.dataplane = dataplane
    app.state.admission = HttpAdmission(dataplane)  # what the uvicorn adapter asks
    app.state.monitor = monitor
    app.state.capture = serving.capture
    install_error_handlers(app)
    # Routes are matched in order: the prediction routes first (the profiler saw matching).
    app.include_router(predict.router)
    app.include_router(health.router)
    app.include_router(model.router)
    app.include_router(drift.router)
    app.include_router(feedback.router)
    app.include_router(rollout.router)
    register_v2_routes(app, dataplane)
    if settings.metrics:
        computed: list[Collector] = []  # views computed at scrape time from every worker's state
        if monitor is not None:
            computed.append(DriftCollector(monitor))
        if serving.feedback is not None:
            computed.append(QualityCollector(serving.feedback))
        if serving.rollout is not None:
            computed.append(RolloutCollector(serving.rollout))
        install_metrics(app, card, computed)
    candidate = serving.rollout.candidate.card if serving.rollout else None
    install_web_page(app, card, needs_key=api_key is not None, candidate=candidate)
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


def app_from_env() -> FastAPI:
    """Factory for uvicorn (`--factory`): settings from MODELSHIP_* variables, model from disk."""
    settings = load_settings()
    app = create_app(build_serving(settings, load_predictor(settings), load_candidate(settings)))
    # A worker's libraries, model and app live as long as it does: frozen, the garbage collector no
    # longer walks them. Unfrozen, a full collection held the event loop for a long pause, every
    # request in flight waiting (docs/benchmarks.md#what-changed-and-why). Here, not in create_app:
    # a process that builds many apps (the tests) must still collect the ones it drops.
    gc.collect()
    gc.freeze()
    return app

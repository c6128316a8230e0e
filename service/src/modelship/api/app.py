"""The FastAPI application: `create_app` builds it around a loaded predictor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelship import __version__, artifact, store
from modelship.api.auth import configured_key
from modelship.api.dataplane import DataPlane
from modelship.api.errors import install_error_handlers
from modelship.api.middleware import ServingMiddleware
from modelship.api.openapi import install_openapi
from modelship.api.responses import JSONBytes
from modelship.api.routes import health, model, predict
from modelship.api.routes.v2 import register_v2_routes
from modelship.api.telemetry import install_metrics
from modelship.api.web import install_web_page
from modelship.predictor import Predictor
from modelship.settings import Settings, load_settings


def create_app(settings: Settings, predictor: Predictor) -> FastAPI:
    card = predictor.card
    api_key = configured_key(settings)
    dataplane = DataPlane(settings, predictor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dataplane.start()
        yield
        dataplane.stop()

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
    install_error_handlers(app)
    # Routes are matched in order: the prediction routes first (the profiler saw matching).
    app.include_router(predict.router)
    app.include_router(health.router)
    app.include_router(model.router)
    register_v2_routes(app, dataplane)
    if settings.metrics:
        install_metrics(app, card)
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


def app_from_env() -> FastAPI:
    """Factory for uvicorn (`--factory`): settings from MODELSHIP_* variables, model from disk."""
    settings = load_settings()
    loaded = (
        store.fetch(settings.model_uri, settings.model_cache)
        if settings.model_uri
        else artifact.load(settings.artifact)
    )
    predictor = Predictor(loaded, threads=settings.onnx_threads)
    return create_app(settings, predictor)

"""The FastAPI application: `create_app` builds it around a loaded predictor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

from modelship import __version__, artifact
from modelship.api.errors import install_error_handlers
from modelship.api.limits import BodySizeLimit
from modelship.api.openapi import install_openapi
from modelship.api.responses import JSONBytes
from modelship.api.routes import health, model, predict
from modelship.api.routes.v2 import register_v2_routes
from modelship.predictor import Predictor
from modelship.settings import Settings, load_settings


def create_app(settings: Settings, predictor: Predictor) -> FastAPI:
    card = predictor.card

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        predictor.warm_up()
        app.state.ready = True
        yield
        app.state.ready = False

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
    app.state.predictor = predictor
    app.state.settings = settings
    app.state.ready = False
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(model.router)
    app.include_router(predict.router)
    register_v2_routes(app, predictor)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return RedirectResponse("/docs")

    install_openapi(app, card, settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn (`--factory`): settings from MODELSHIP_* variables, model from disk."""
    settings = load_settings()
    predictor = Predictor(artifact.load(settings.artifact), threads=settings.onnx_threads)
    return create_app(settings, predictor)

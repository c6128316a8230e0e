"""Dependencies that hand route functions the objects they need, read from the app's state."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from modelship.errors import MalformedBody, NotReady
from modelship.predictor import Predictor
from modelship.settings import Settings


# `async def` on purpose: FastAPI runs plain `def` dependencies in its thread pool, and that hop
# cost more than the whole prediction (py-spy under wrk load, see docs/benchmarks.md).
async def get_predictor(request: Request) -> Predictor:
    return predictor_of(request)


def predictor_of(request: Request) -> Predictor:
    """The loaded predictor, or 503 while it is loading (also called directly on the hot path)."""
    if not request.app.state.ready:
        unfit = request.app.state.unfit
        raise NotReady(unfit or "the model is still loading; retry when /readyz answers 200")
    predictor: Predictor = request.app.state.predictor
    return predictor


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def json_body(request: Request) -> Any:
    """The parsed JSON body; malformed JSON is a 400 that says where it broke."""
    body = await request.body()
    if not body.strip():
        raise MalformedBody("the request body is empty: expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if "infinity" in str(exc) or b"NaN" in body or b"Infinity" in body:
            hint = " (NaN and Infinity are not JSON numbers: send null for a missing value)"
        raise MalformedBody(f"the request body is not valid JSON: {exc}{hint}") from None


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
JsonBody = Annotated[Any, Depends(json_body)]

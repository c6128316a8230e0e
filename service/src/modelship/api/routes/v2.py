"""Open Inference Protocol (KServe V2) REST routes, beside the native ones.

All registered in one place by `register_v2_routes`; errors in the protocol's `{"error": ...}` form.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from modelship import __version__
from modelship.api.responses import JSONBytes
from modelship.codec_v2 import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    V2Codec,
    V2Error,
    decode_binary,
)
from modelship.errors import ModelshipError
from modelship.predictor import Predictor

BINARY_HEADER = "inference-header-content-length"
V2_ERROR = {"content": {"application/json": {"example": {"error": "what was wrong"}}}}
V2_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"description": "Invalid request", **V2_ERROR},
    404: {"description": "Unknown model or version", **V2_ERROR},
}


def v2_error(status: int, message: str) -> Response:
    return JSONBytes({"error": message}, status_code=status)


def register_v2_routes(app: FastAPI, predictor: Predictor) -> None:
    """Serve the V2 health, metadata and inference endpoints under /v2."""
    card = predictor.card
    codec = V2Codec(card, predictor.schema)
    metadata = codec.metadata().model_dump(mode="json", exclude_none=True)
    server = MetadataServerResponse(name="modelship", version=__version__, extensions=[])
    router = APIRouter(prefix="/v2", tags=["v2 (Open Inference Protocol)"])

    def unknown_model(name: str, version: str | None) -> Response | None:
        if name != card.name:
            return v2_error(404, f"unknown model '{name}': this server serves '{card.name}'")
        if version is not None and version != card.version:
            return v2_error(
                404, f"model '{name}' has no version '{version}': it is version '{card.version}'"
            )
        return None

    def ready(request: Request) -> bool:
        return bool(request.app.state.ready)

    @router.get("", summary="Server metadata", response_model=MetadataServerResponse)
    async def server_metadata() -> Response:
        return JSONBytes(server.model_dump())

    @router.get("/health/live", summary="Server liveness")
    async def live() -> Response:
        return JSONBytes({"live": True})

    @router.get("/health/ready", summary="Server readiness (the model is loaded)")
    async def server_ready(request: Request) -> Response:
        is_ready = ready(request)
        return JSONBytes({"ready": is_ready}, status_code=200 if is_ready else 503)

    @router.get(
        "/models/{name}",
        summary="Model metadata: inputs (one per feature) and outputs",
        response_model=MetadataModelResponse,
        responses=V2_ERRORS,
    )
    @router.get(
        "/models/{name}/versions/{version}",
        summary="Model metadata of a version",
        response_model=MetadataModelResponse,
        responses=V2_ERRORS,
    )
    async def model_metadata(name: str, version: str | None = None) -> Response:
        return unknown_model(name, version) or JSONBytes(metadata)

    @router.get("/models/{name}/ready", summary="Model readiness", responses=V2_ERRORS)
    @router.get(
        "/models/{name}/versions/{version}/ready",
        summary="Model readiness of a version",
        responses=V2_ERRORS,
    )
    async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
        if (refused := unknown_model(name, version)) is not None:
            return refused
        is_ready = ready(request)
        return JSONBytes({"name": name, "ready": is_ready}, status_code=200 if is_ready else 503)

    @router.post(
        "/models/{name}/infer",
        summary="Inference: one input tensor per feature, shape [N] or [N, 1]",
        response_model=InferenceResponse,
        responses=V2_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": InferenceRequest.model_json_schema(),
                        "example": _example_request(codec),
                    }
                },
            }
        },
    )
    @router.post(
        "/models/{name}/versions/{version}/infer",
        summary="Inference on a version",
        response_model=InferenceResponse,
        responses=V2_ERRORS,
    )
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        if (refused := unknown_model(name, version)) is not None:
            return refused
        if not ready(request):
            return v2_error(503, "the model is still loading; retry when /v2/health/ready is 200")
        body = await request.body()
        try:
            header_length = request.headers.get(BINARY_HEADER)
            if header_length is None:
                inference = InferenceRequest.model_validate_json(body)
            else:
                split = _header_length(header_length, len(body))
                inference = InferenceRequest.model_validate_json(body[:split])
                decode_binary(inference, body[split:])
            codec.requested(inference)
            batch = codec.decode(inference)
        except ValidationError as exc:
            return v2_error(400, _validation_message(exc))
        except ModelshipError as exc:
            return v2_error(exc.status_code if exc.status_code != 422 else 400, exc.message)
        result = predictor.predict(batch)
        return JSONBytes(codec.encode(inference, batch, result))

    @router.api_route(
        "/{rest:path}",
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
    )
    async def not_found(request: Request, rest: str) -> Response:
        return v2_error(404, f"no V2 endpoint {request.method} {request.url.path}")

    app.include_router(router)


def _header_length(text: str, body_length: int) -> int:
    if not text.isdigit() or int(text) > body_length:
        raise V2Error(
            f"Inference-Header-Content-Length {text!r} is not a length within the body "
            f"({body_length} bytes)"
        )
    return int(text)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = exc.error_count() - len(parts)
    return "invalid inference request: " + "; ".join(parts) + (f" (+{more} more)" * (more > 0))


def _example_request(codec: V2Codec) -> dict[str, object]:
    example = codec.card.examples[0] if codec.card.examples else {}
    return {
        "id": "example-1",
        "inputs": [
            {
                "name": name,
                "shape": [1],
                "datatype": "BYTES" if kind == "categorical" else "FP32",
                "data": [example.get(name)],
            }
            for name, kind in codec.kinds.items()
        ],
    }

"""Open Inference Protocol (KServe V2) REST routes, beside the native ones.

All registered in one place by `register_v2_routes`, as thin adapters over the data plane (the
same limits, validation and predictions as the native routes); errors are rendered in the
protocol's `{"error": ...}` form by `modelship.transport.http.errors`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from modelship import __version__
from modelship.contracts.v2 import (
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
)
from modelship.errors import NotFound
from modelship.model.codecs.v2 import V2Codec
from modelship.serving.dataplane import DataPlane
from modelship.serving.rollout import ROUTE_KEY_HEADER
from modelship.transport.http.deps import answer_headers, request_id_of
from modelship.transport.http.responses import JSONBytes

BINARY_HEADER = "inference-header-content-length"
V2_ERROR = {"content": {"application/json": {"schema": ErrorResponse.model_json_schema()}}}
V2_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"description": "Invalid request", **V2_ERROR},
    404: {"description": "Unknown model or version", **V2_ERROR},
}
INFER_ERRORS: dict[int | str, dict[str, object]] = {
    **V2_ERRORS,
    413: {"description": "Body or rows over the configured limit", **V2_ERROR},
    503: {"description": "Still loading, overloaded (Retry-After) or timed out", **V2_ERROR},
}


def register_v2_routes(app: FastAPI, dataplane: DataPlane) -> None:
    """Serve the V2 health, metadata and inference endpoints under /v2."""
    card = dataplane.card
    codec = dataplane.v2
    metadata = codec.metadata().model_dump(mode="json", exclude_none=True)
    server = MetadataServerResponse(name="modelship", version=__version__, extensions=[])
    router = APIRouter(prefix="/v2", tags=["v2 (Open Inference Protocol)"])

    def check_model(name: str, version: str | None) -> None:
        if name != card.name:
            raise NotFound(f"unknown model '{name}': this server serves '{card.name}'")
        if version is not None:
            dataplane.route("", None, version)  # 404 naming the loaded versions

    @router.get("", summary="Server metadata", response_model=MetadataServerResponse)
    async def server_metadata() -> Response:
        return JSONBytes(server.model_dump())

    @router.get("/health/live", summary="Server liveness")
    async def live() -> Response:
        return JSONBytes({"live": True})

    @router.get("/health/ready", summary="Server readiness (the model is loaded)")
    async def server_ready() -> Response:
        is_ready = dataplane.ready
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
        check_model(name, version)
        return JSONBytes(metadata)

    @router.get("/models/{name}/ready", summary="Model readiness", responses=V2_ERRORS)
    @router.get(
        "/models/{name}/versions/{version}/ready",
        summary="Model readiness of a version",
        responses=V2_ERRORS,
    )
    async def model_ready(name: str, version: str | None = None) -> Response:
        check_model(name, version)
        is_ready = dataplane.ready
        return JSONBytes({"name": name, "ready": is_ready}, status_code=200 if is_ready else 503)

    @router.post(
        "/models/{name}/infer",
        summary="Inference: one input tensor per feature, shape [N] or [N, 1]",
        response_model=InferenceResponse,
        responses=INFER_ERRORS,
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
        summary="Inference on a version (in a rollout: the primary's or the candidate's)",
        response_model=InferenceResponse,
        responses=INFER_ERRORS,
    )
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        check_model(name, version)
        body = await request.body()
        inference = dataplane.parse_v2(body, request.headers.get(BINARY_HEADER))
        rid = request_id_of()
        answer = await dataplane.infer(
            inference, rid, request.headers.get(ROUTE_KEY_HEADER), version
        )
        rows = len(answer["parameters"]["prediction_ids"])
        return JSONBytes(answer, headers=answer_headers(rid, rows, answer["model_version"]))

    @router.api_route(
        "/{rest:path}",
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
    )
    async def not_found(request: Request, rest: str) -> Response:
        raise NotFound(f"no V2 endpoint {request.method} {request.url.path}")

    app.include_router(router)


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

"""`POST /feedback` (ground-truth labels for earlier predictions) and `GET /model/quality` (the
model's live quality per version, from the labels joined so far)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from modelship.errors import UnsupportedMediaType
from modelship.serving.dataplane import parse_json
from modelship.serving.feedback import labels_from_csv, labels_from_json
from modelship.transport.http.deps import ReadyDataPlaneDep
from modelship.transport.http.openapi import ERROR_REF
from modelship.transport.http.responses import JSONBytes

router = APIRouter(tags=["feedback"])

CSV_TYPES = ("text/csv", "application/csv", "text/plain")
ERROR = {"content": {"application/json": {"schema": ERROR_REF}}}
LABEL = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "A prediction id from an earlier answer"},
        "label": {"description": "The true value of the target (a number, or a class)"},
    },
    "required": ["id", "label"],
}
OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}


@router.post(
    "/feedback",
    summary="Labels for earlier predictions: one {id, label}, a JSON list of them, or a CSV "
    "of id,label; every item is counted (joined, unknown, expired, duplicate, invalid)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [LABEL, {"type": "array", "items": LABEL, "minItems": 1}]}
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
    responses={
        200: OBJECT,
        400: {"description": "Not JSON, or not UTF-8 CSV", **ERROR},
        404: {"description": "Feedback is off", **ERROR},
        413: {"description": "More items than MODELSHIP_MAX_BATCH_ROWS", **ERROR},
        415: {"description": "Neither JSON nor CSV", **ERROR},
        422: {"description": "No items, or a CSV without id and label columns", **ERROR},
    },
)
async def feedback(request: Request, dataplane: ReadyDataPlaneDep) -> Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    items: list[tuple[Any, Any]]
    if media in CSV_TYPES:
        items = labels_from_csv(body)
    elif media in ("application/json", ""):
        items = labels_from_json(parse_json(body))
    else:
        raise UnsupportedMediaType(
            f"content type {media!r} is not accepted; send application/json "
            '({"id": ..., "label": ...} or a list of them) or text/csv (id,label)'
        )
    report = await dataplane.receive_labels(items)
    return JSONBytes(report.as_json())


@router.get(
    "/model/quality",
    tags=["model"],
    summary="Live quality per model version: the card's metrics over the latest labelled rows, "
    "beside its training and test figures",
    responses={200: OBJECT, 404: {"description": "Feedback is off", **ERROR}},
)
async def quality(dataplane: ReadyDataPlaneDep) -> Response:
    return JSONBytes({"model_versions": await dataplane.quality()})

"""What the loaded model is: its card, and example rows to try the API with."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from modelship.api.deps import ReadyDataPlaneDep
from modelship.api.openapi import ERROR_REF, RECORD_REF
from modelship.api.responses import JSONBytes
from modelship.errors import NotFound

router = APIRouter(prefix="/model", tags=["model"])


@router.get(
    "",
    summary="The model card: features, metrics, parity, provenance",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def model_card(dataplane: ReadyDataPlaneDep) -> Response:
    return JSONBytes({**dataplane.card.model_dump(mode="json"), "version": dataplane.card.version})


@router.get(
    "/examples",
    summary="All example rows (held-out test rows from training)",
    responses={
        200: {"content": {"application/json": {"schema": {"type": "array", "items": RECORD_REF}}}}
    },
)
async def examples(dataplane: ReadyDataPlaneDep) -> Response:
    return JSONBytes(dataplane.card.examples)


@router.get(
    "/examples/{index}",
    summary="One example row, ready to POST to /predict",
    responses={
        200: {"content": {"application/json": {"schema": RECORD_REF}}},
        404: {
            "description": "No such example",
            "content": {"application/json": {"schema": ERROR_REF}},
        },
        422: {
            "description": "Not an integer",
            "content": {"application/json": {"schema": ERROR_REF}},
        },
    },
)
async def example(index: int, dataplane: ReadyDataPlaneDep) -> Response:
    rows = dataplane.card.examples
    if not 0 <= index < len(rows):
        raise NotFound(f"no example {index}: examples are numbered 0 to {len(rows) - 1}")
    return JSONBytes(rows[index])

"""Probes: liveness (the process answers) and readiness (the model is loaded and warmed up)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from modelship.api.responses import JSONBytes
from modelship.api.schemas import Health, Readiness, ok

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up", responses=ok(Health))
async def healthz() -> Response:
    return JSONBytes({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: the model is loaded and warmed up",
    responses={
        **ok(Readiness),
        503: {
            "model": Readiness,
            "description": "Still loading, or the model does not fit the container's memory",
        },
    },
)
async def readyz(request: Request) -> Response:
    if request.app.state.unfit is not None:
        message = request.app.state.unfit
        return JSONBytes({"status": "does not fit", "message": message}, status_code=503)
    if not request.app.state.ready:
        return JSONBytes({"status": "loading"}, status_code=503)
    card = request.app.state.predictor.card
    return JSONBytes({"status": "ready", "model": card.name, "version": card.version})

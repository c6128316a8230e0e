"""Probes: liveness (the process answers) and readiness (the model is loaded and warmed up)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from modelship.transport.http.deps import DataPlaneDep
from modelship.transport.http.responses import JSONBytes
from modelship.transport.http.schemas import Health, Readiness, ok

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
async def readyz(dataplane: DataPlaneDep) -> Response:
    if dataplane.unfit is not None:
        return JSONBytes({"status": "does not fit", "message": dataplane.unfit}, status_code=503)
    if not dataplane.ready:
        return JSONBytes({"status": "loading"}, status_code=503)
    card = dataplane.card
    return JSONBytes({"status": "ready", "model": card.name, "version": card.version})

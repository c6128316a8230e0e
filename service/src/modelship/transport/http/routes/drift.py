"""`GET /model/drift`: data drift of every feature and of the predictions, from all workers."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import Response

from modelship.errors import NotFound
from modelship.serving.monitoring.monitor import Monitor
from modelship.transport.http.deps import ReadyDataPlaneDep
from modelship.transport.http.openapi import ERROR_REF
from modelship.transport.http.responses import JSONBytes

router = APIRouter(prefix="/model", tags=["model"])


@router.get(
    "/drift",
    summary="Drift of each feature and of the predictions over the recent-rows window",
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}},
        404: {
            "description": "Monitoring is off",
            "content": {"application/json": {"schema": ERROR_REF}},
        },
    },
)
async def drift(request: Request, dataplane: ReadyDataPlaneDep) -> Response:
    monitor: Monitor | None = request.app.state.monitor
    if monitor is None:
        raise NotFound("monitoring is off on this server (MODELSHIP_MONITORING=false)")
    signals = [signal.as_json() for signal in monitor.drift()]
    settings = monitor.settings
    return JSONBytes(
        {
            "model_version": dataplane.card.version,
            # Every worker answers with the window of all workers; this says which one answered.
            "worker_pid": os.getpid(),
            "statistic": "psi",
            "window_rows": settings.drift_window_rows,
            "min_rows": settings.drift_min_rows,
            "features": [s for s in signals if s["kind"] == "feature"],
            "prediction": next(s for s in signals if s["kind"] == "prediction"),
        }
    )

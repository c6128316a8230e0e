"""`GET /rollout`: the candidate beside the primary, its gates and the shared verdict."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from modelship.errors import NotFound
from modelship.transport.http.deps import ReadyDataPlaneDep
from modelship.transport.http.openapi import ERROR_REF
from modelship.transport.http.responses import JSONBytes

router = APIRouter(tags=["model"])


@router.get(
    "/rollout",
    summary="The rollout: mode, traffic, window, each gate (value, threshold, pass or fail) and "
    "the verdict (baking, promote, abort), the same from every worker",
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}},
        404: {
            "description": "No candidate on this server",
            "content": {"application/json": {"schema": ERROR_REF}},
        },
    },
)
async def rollout(dataplane: ReadyDataPlaneDep) -> Response:
    if dataplane.rollout is None:
        raise NotFound(
            "no rollout on this server: start it with a candidate (modelship serve --candidate "
            "B, or MODELSHIP_CANDIDATE)"
        )
    # In a thread: it reads the window shared by the workers.
    report = await run_in_threadpool(dataplane.rollout.report)
    return JSONBytes({**report, "worker_pid": os.getpid()})

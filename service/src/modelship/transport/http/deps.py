"""Dependencies that hand route functions the objects they need, read from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from modelship.serving.dataplane import DataPlane
from modelship.serving.feedback import PredictionIds
from modelship.serving.rollout import VERSION_HEADER
from modelship.transport.http.logging import request_id

# The ids of a batch's rows: `<request id>#<first>..<request id>#<last>` (a single record's
# prediction id is its request id, in X-Request-Id).
PREDICTION_IDS_HEADER = "X-Modelship-Prediction-Ids"


# `async def` on purpose: FastAPI runs plain `def` dependencies in its thread pool, and that hop
# cost more than the whole prediction (py-spy under wrk load,
# docs/benchmarks.md#what-changed-and-why).
async def get_dataplane(request: Request) -> DataPlane:
    return dataplane_of(request)


def dataplane_of(request: Request) -> DataPlane:
    """The data plane (also called directly on the hot path, where Depends() costs too much)."""
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane


async def get_ready_dataplane(request: Request) -> DataPlane:
    """The data plane, or 503 while the model is loading."""
    dataplane = dataplane_of(request)
    dataplane.check_ready()
    return dataplane


DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
ReadyDataPlaneDep = Annotated[DataPlane, Depends(get_ready_dataplane)]


def request_id_of() -> str:
    """The id of the request being answered (the middleware sets it before any route runs)."""
    rid = request_id.get()
    assert rid is not None, "the serving middleware sets the request id"
    return rid


def prediction_ids_header(rid: str, rows: int) -> dict[str, str]:
    """The header naming the ids of a batch's `rows` rows (none for an empty answer)."""
    return {PREDICTION_IDS_HEADER: PredictionIds(rid, 0).header(rows)} if rows else {}


def answer_headers(rid: str, rows: int, version: str) -> dict[str, str]:
    """The headers of a prediction answer: the version(s) that answered, and the rows' ids."""
    return {VERSION_HEADER: version, **prediction_ids_header(rid, rows)}

"""What the loaded model is: its card, and example rows to try the API with."""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from modelship.contracts.card import ReportFiles
from modelship.errors import NotFound
from modelship.model.predictor import Predictor
from modelship.transport.http.deps import ReadyDataPlaneDep
from modelship.transport.http.openapi import ERROR_REF, RECORD_REF
from modelship.transport.http.responses import JSONBytes

# The report is data: no script runs and nothing is fetched, and the browser is told so.
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
NOT_FOUND = {
    "description": "No report in this artifact",
    "content": {"application/json": {"schema": ERROR_REF}},
}

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


@router.get(
    "/report",
    summary="The training report: one self-contained HTML page of plots",
    responses={200: {"content": {"text/html": {}}}, 404: NOT_FOUND},
)
async def report(dataplane: ReadyDataPlaneDep) -> Response:
    files = _report_files(dataplane.predictor)
    return _artifact_file(dataplane.predictor, files.page, "text/html; charset=utf-8")


@router.get(
    "/report/{file_name}",
    summary="One plot of the training report, as SVG (the names are in the card's report.plots)",
    responses={200: {"content": {"image/svg+xml": {}}}, 404: NOT_FOUND},
)
async def report_plot(file_name: str, dataplane: ReadyDataPlaneDep) -> Response:
    files = _report_files(dataplane.predictor)
    by_name = {PurePosixPath(p.file).name: p.file for p in files.plots}
    if file_name not in by_name:
        raise NotFound(
            f"the report has no plot {file_name!r}; it has: {', '.join(sorted(by_name))}"
        )
    return _artifact_file(dataplane.predictor, by_name[file_name], "image/svg+xml")


def _report_files(predictor: Predictor) -> ReportFiles:
    files = predictor.card.report
    if files is None:
        raise NotFound(
            "this model has no training report: its artifact was made before modelship wrote "
            "reports; train it again to get one"
        )
    return files


def _artifact_file(predictor: Predictor, relative: str, media_type: str) -> Response:
    root = predictor.artifact_path.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"the artifact's card lists {relative}, but the file is missing")
    return FileResponse(path, media_type=media_type, headers=REPORT_HEADERS)

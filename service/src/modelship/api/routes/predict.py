"""Prediction routes: one record, a JSON batch, a CSV file, and scoring a labelled CSV."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import asynccontextmanager
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from modelship.api.deps import PredictorDep, SettingsDep, json_body, predictor_of
from modelship.api.openapi import BATCH_REF, ERROR_REF, RECORD_REF
from modelship.api.responses import JSONBytes
from modelship.api.schemas import BatchResponse, PredictResponse, ScoreResponse, ok
from modelship.batch import CsvSummary, predict_csv, score_csv
from modelship.errors import (
    BodyTooLarge,
    InvalidInput,
    MalformedBody,
    Problem,
    UnsupportedMediaType,
)
from modelship.predictor import Predictor

router = APIRouter(tags=["predict"])

SPOOL_BYTES = 8 * 1024 * 1024  # CSV beyond this goes to a temporary file, not memory
STREAM_BLOCK = 64 * 1024
# Batches up to this size run inline: a thread hop costs more than predicting them.
INLINE_BATCH_ROWS = 1_000
CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/octet-stream")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for code, text in [
        (400, "Malformed body (not JSON / not CSV / not UTF-8)"),
        (413, "Body or batch over the configured limit"),
        (422, "Values that do not fit the model's features"),
    ]
}
UNSUPPORTED = {
    "description": "Not a CSV upload",
    "content": {"application/json": {"schema": ERROR_REF}},
}
CSV_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    },
}


def _response(predictor: Predictor, body: dict[str, Any]) -> Response:
    body["model_version"] = predictor.card.version
    return JSONBytes(body)


@router.post(
    "/predict",
    summary="Predict one record",
    response_model=None,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": RECORD_REF}}}
    },
    responses={**ok(PredictResponse), **ERRORS},
)
async def predict(request: Request) -> Response:
    # No Depends() here: on this route FastAPI's dependency solving cost more than validation
    # and the model together (cProfile of the ASGI app, bench/asgi_cost.py).
    predictor = predictor_of(request)
    record = await json_body(request)
    batch = predictor.schema.from_records([record])
    result = predictor.predict(batch)
    return _response(
        predictor, {**result.row(0, predictor.card.classes), "warnings": batch.warnings.as_json()}
    )


@router.post(
    "/predict/batch",
    summary="Predict a JSON list of records, answers in the same order",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_REF}}}
    },
    responses={**ok(BatchResponse), **ERRORS},
)
async def predict_batch(request: Request, settings: SettingsDep) -> Response:
    predictor = predictor_of(request)
    records = await json_body(request)
    if not isinstance(records, list):
        raise InvalidInput(
            [Problem(("body",), "expected a JSON array of records", "[{...}, {...}]")]
        )
    if not records:
        raise InvalidInput([Problem(("body",), "the batch is empty", "1 or more records")])
    if len(records) > settings.max_batch_rows:
        raise BodyTooLarge.batch(len(records), settings.max_batch_rows)

    def run() -> dict[str, Any]:
        batch = predictor.schema.from_records(records, ("body",))
        result = predictor.predict(batch)
        classes = predictor.card.classes
        return {
            "predictions": [result.row(i, classes) for i in range(batch.rows)],
            "count": batch.rows,
            "warnings": batch.warnings.as_json(),
        }

    body = run() if len(records) <= INLINE_BATCH_ROWS else await run_in_threadpool(run)
    return _response(predictor, body)


@router.post(
    "/predict/csv",
    summary="Upload a CSV, get it back with the prediction column(s) appended",
    openapi_extra={"requestBody": CSV_BODY},
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}},
        **ERRORS,
        415: {"description": "Not a CSV upload"},
    },
)
async def predict_csv_file(
    request: Request, predictor: PredictorDep, settings: SettingsDep
) -> Response:
    async with _csv_upload(request) as source:

        def run() -> tuple[IO[bytes], CsvSummary]:
            sink = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by the response
            text = io.TextIOWrapper(sink, encoding="utf-8", newline="")
            try:
                summary = predict_csv(predictor, source, text, settings.csv_chunk_rows)
            except BaseException:
                sink.close()
                raise
            text.flush()
            text.detach()
            sink.seek(0)
            return sink, summary

        sink, summary = await run_in_threadpool(run)
    headers = {
        "Content-Disposition": 'attachment; filename="predictions.csv"',
        "X-Modelship-Rows": str(summary.rows),
        "X-Modelship-Model-Version": predictor.card.version,
    }
    if summary.warnings:
        headers["X-Modelship-Warnings"] = _header_text(summary.warnings.summary())
    return StreamingResponse(_blocks(sink), media_type="text/csv; charset=utf-8", headers=headers)


@router.post(
    "/score",
    summary="Score the model on a labelled CSV (it must include the target column)",
    openapi_extra={"requestBody": CSV_BODY},
    responses={**ok(ScoreResponse), **ERRORS, 415: UNSUPPORTED},
)
async def score(request: Request, predictor: PredictorDep, settings: SettingsDep) -> Response:
    async with _csv_upload(request) as source:
        result = await run_in_threadpool(score_csv, predictor, source, settings.csv_chunk_rows)
    return JSONBytes(result)


@asynccontextmanager
async def _csv_upload(request: Request) -> Any:
    """The uploaded CSV as a binary file, from a multipart form or a raw text/csv body."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise MalformedBody(
                    "the multipart form has no file field named 'file' (curl -F file=@data.csv)"
                )
            yield upload.file
        return
    if media in CSV_TYPES:
        with SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            async for chunk in request.stream():
                spool.write(chunk)
            spool.seek(0)
            yield spool
        return
    raise UnsupportedMediaType(
        f"content type {media or '(none)'!r} is not accepted; send text/csv, or "
        "multipart/form-data with the CSV in a field named 'file'"
    )


def _blocks(sink: IO[bytes]) -> Iterator[bytes]:
    try:
        while block := sink.read(STREAM_BLOCK):
            yield block
    finally:
        sink.close()


def _header_text(text: str, limit: int = 1000) -> str:
    ascii_text = text.encode("ascii", "backslashreplace").decode("ascii")
    return ascii_text if len(ascii_text) <= limit else ascii_text[: limit - 3] + "..."

"""Native prediction routes: one record, a JSON batch, a CSV file, and scoring a labelled CSV.

Thin adapters over the data plane: each reads its wire format and writes the answer."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import QueryParams, UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from modelship.errors import MalformedBody, ModelshipError, UnsupportedMediaType
from modelship.serving.dataplane import SPOOL_BYTES, DataPlane, parse_json
from modelship.serving.rollout import ROUTE_KEY_HEADER, VERSION_HEADER
from modelship.transport.admission import REQUEST_ID_HEADER
from modelship.transport.http.deps import (
    ReadyDataPlaneDep,
    answer_headers,
    dataplane_of,
    request_id_of,
)
from modelship.transport.http.errors import render, unexpected
from modelship.transport.http.openapi import BATCH_REF, ERROR_REF, RECORD_REF
from modelship.transport.http.responses import JSONBytes, dumps
from modelship.transport.http.schemas import (
    BatchResponse,
    ExplainedPredictResponse,
    ExplainResponse,
    PredictResponse,
    ScoreResponse,
    ok,
)

router = APIRouter(tags=["predict"])

PATH = "/predict"  # the route `RecordEndpoint` serves
JSON = "application/json"
JSON_RAW = JSON.encode()
VERSION_HEADER_RAW = VERSION_HEADER.lower().encode()

STREAM_BLOCK = 1024 * 1024
CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/octet-stream")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {"schema": ERROR_REF}}}
    for code, text in [
        (400, "Malformed body (not JSON / not CSV / not UTF-8)"),
        (413, "Body or batch over the configured limit"),
        (422, "Values that do not fit the model's features"),
        (503, "Still loading, or over MODELSHIP_MAX_IN_FLIGHT (with Retry-After), or timed out"),
    ]
}
# /explain reads JSON whatever the content type says (as /predict does, so `curl -d` works);
# only these unambiguous CSV types make it read a CSV.
EXPLAIN_CSV_TYPES = ("text/csv", "application/csv", "multipart/form-data")
UNSUPPORTED = {
    "description": "Not a CSV upload",
    "content": {"application/json": {"schema": ERROR_REF}},
}
CSV_CONTENT: dict[str, Any] = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    },
    "text/csv": {"schema": {"type": "string"}},
}
CSV_BODY = {"required": True, "content": CSV_CONTENT}


@router.post(
    PATH,
    summary="Predict one record",
    response_model=None,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": RECORD_REF}}}
    },
    responses={**ok(PredictResponse), **ERRORS},
)
async def predict(request: Request) -> Response:
    # Served by `RecordEndpoint` below whenever the serving middleware is in front (always, in
    # an app from `create_app`); this route documents it and answers in any other assembly.
    content, version = answer_record(
        dataplane_of(request),
        await request.body(),
        request_id_of(),
        request.scope["query_string"],
        request.headers.get(ROUTE_KEY_HEADER),
    )
    return Response(content, headers={VERSION_HEADER: version}, media_type=JSON)


def answer_record(
    dataplane: DataPlane, body: bytes, rid: str, query: bytes, route_key: str | None
) -> tuple[bytes, str]:
    """The answer to `POST /predict` (its JSON body and the version that answered)."""
    answer = dataplane.predict_record(parse_json(body), rid, explain_asked(query), route_key)
    return dumps(answer), answer["model_version"]


class RecordEndpoint:
    """`POST /predict` as a plain ASGI handler, called by the serving middleware once it has
    checked the key, the size and the slot: FastAPI's exception middlewares, routing, request
    and response objects cost more CPU per request than validation, the model and the answer
    together (py-spy under wrk, docs/benchmarks.md#single-row-cpu). The answer is the route's:
    the same body, headers and errors (rendered by the same `render`)."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, rid: bytes, route_key: str | None
    ) -> int:
        """Answer the request; returns the status sent."""
        headers: list[tuple[bytes, bytes]]
        try:
            body = await self._body(receive)
            content, version = answer_record(
                self.dataplane, body, rid.decode(), scope["query_string"], route_key
            )
            status = 200
            headers = [
                (VERSION_HEADER_RAW, version.encode("latin-1")),
                (b"content-length", b"%d" % len(content)),
                (b"content-type", JSON_RAW),
                (REQUEST_ID_HEADER, rid),
            ]
        except ClientDisconnect:
            return 500  # nobody to answer (counted as FastAPI's route counted it)
        except Exception as exc:
            response = render(PATH, exc) if isinstance(exc, ModelshipError) else unexpected(scope)
            status = response.status_code
            content = bytes(response.body)
            headers = [*response.raw_headers, (REQUEST_ID_HEADER, rid)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        return status

    @staticmethod
    async def _body(receive: Receive) -> bytes:
        """The whole body. `receive` is the middleware's, which refuses a body (sent without
        Content-Length) once it passes the limit, as for every other route."""
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                return b"".join([*chunks, chunk]) if chunks else chunk
            chunks.append(chunk)


@router.post(
    "/predict/batch",
    summary="Predict a JSON list of records, answers in the same order",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_REF}}}
    },
    responses={**ok(BatchResponse), **ERRORS},
)
async def predict_batch(request: Request) -> Response:
    dataplane = dataplane_of(request)
    rid = request_id_of()
    body = parse_json(await request.body())
    answer = await dataplane.predict_records(
        body,
        rid,
        explain_asked(request.scope["query_string"]),
        request.headers.get(ROUTE_KEY_HEADER),
    )
    return JSONBytes(answer, headers=answer_headers(rid, answer["count"], answer["model_version"]))


@router.post(
    "/explain",
    summary="Predict one record, a JSON list of records or a CSV (answered as a JSON batch), each "
    "with its exact explanation: a base value and one contribution per input column that add up "
    "to the prediction",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [RECORD_REF, BATCH_REF]}},
                **CSV_CONTENT,
            },
        }
    },
    responses={
        200: {"model": ExplainedPredictResponse | ExplainResponse},
        **ERRORS,
        409: {
            "description": "The model has no exact explanation (the message says why)",
            "content": {"application/json": {"schema": ERROR_REF}},
        },
    },
)
async def explain(request: Request) -> Response:
    dataplane = dataplane_of(request)
    rid = request_id_of()
    key = request.headers.get(ROUTE_KEY_HEADER)
    if _media_type(request) in EXPLAIN_CSV_TYPES:
        async with _csv_upload(request) as source:
            answer = await dataplane.explain_csv(source, rid, key)
        headers = answer_headers(rid, answer["count"], answer["model_version"])
        return JSONBytes(answer, headers=headers)
    body = parse_json(await request.body())
    if isinstance(body, list):
        answer = await dataplane.predict_records(body, rid, True, key)
        rows = answer["count"]
    else:
        answer, rows = dataplane.predict_record(body, rid, True, key), 0
    return JSONBytes(answer, headers=answer_headers(rid, rows, answer["model_version"]))


def explain_asked(query: bytes) -> bool:
    """`?explain=true` on /predict and /predict/batch adds each row's explanation."""
    if not query:
        return False
    value = QueryParams(query).get("explain")
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise MalformedBody(f"query parameter explain={value!r} must be true or false")


@router.post(
    "/predict/csv",
    summary="Upload a CSV, get it back with the prediction column(s) appended",
    openapi_extra={"requestBody": CSV_BODY},
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **ERRORS, 415: UNSUPPORTED},
)
async def predict_csv_file(request: Request, dataplane: ReadyDataPlaneDep) -> Response:
    async with _csv_upload(request) as source:
        rid = request_id_of()
        sink, summary, version = await dataplane.predict_csv(
            source, rid, request.headers.get(ROUTE_KEY_HEADER)
        )
    headers = {
        "Content-Disposition": 'attachment; filename="predictions.csv"',
        "X-Modelship-Rows": str(summary.rows),
        **answer_headers(rid, summary.rows, version),
    }
    if summary.warnings:
        headers["X-Modelship-Warnings"] = _header_text(summary.warnings.summary())
    # The whole answer is written before it is sent: its length is known, so no chunked encoding
    headers["Content-Length"] = str(sink.seek(0, io.SEEK_END))
    sink.seek(0)
    return StreamingResponse(_blocks(sink), media_type="text/csv; charset=utf-8", headers=headers)


@router.post(
    "/score",
    summary="Score the model on a labelled CSV (it must include the target column)",
    openapi_extra={"requestBody": CSV_BODY},
    responses={**ok(ScoreResponse), **ERRORS, 415: UNSUPPORTED},
)
async def score(request: Request, dataplane: ReadyDataPlaneDep) -> Response:
    async with _csv_upload(request) as source:
        scored = await dataplane.score_csv(
            source, request_id_of(), request.headers.get(ROUTE_KEY_HEADER)
        )
    return JSONBytes(scored, headers={VERSION_HEADER: scored["model_version"]})


@asynccontextmanager
async def _csv_upload(request: Request) -> Any:
    """The uploaded CSV as a binary file, from a multipart form or a raw text/csv body."""
    media = _media_type(request)
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


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _blocks(sink: IO[bytes]) -> AsyncIterator[bytes]:
    """The answer in large blocks read on the event loop: the spool is memory or a local
    temporary file the answer was just written to, so a read does not wait on a disk, and a
    hop to a thread per block cost more than the read (docs/benchmarks.md#csv-at-2x)."""
    try:
        while block := sink.read(STREAM_BLOCK):
            yield block
    finally:
        sink.close()


def _header_text(text: str, limit: int = 1000) -> str:
    ascii_text = text.encode("ascii", "backslashreplace").decode("ascii")
    return ascii_text if len(ascii_text) <= limit else ascii_text[: limit - 3] + "..."

"""The one data plane between every transport and the predictor.

Native routes (JSON records, CSV files) and Open Inference Protocol (V2) routes are thin adapters
over `DataPlane`: it owns readiness, the limits (bytes, rows, requests in flight, time), the
decision to predict inline or in the thread pool, the prediction metrics, the data-quality hooks,
and turning foreign errors (bad JSON, invalid V2 requests) into `ModelshipError`s. Each adapter
keeps only its wire format; `modelship.transport.http.errors` renders every error in the
protocol's shape.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from tempfile import SpooledTemporaryFile
from typing import IO, Any, TypeVar

import orjson
from anyio import to_thread
from pydantic import ValidationError

from modelship.contracts.settings import Settings
from modelship.contracts.v2 import InferenceRequest
from modelship.errors import (
    BodyTooLarge,
    InvalidInput,
    InvalidTensor,
    MalformedBody,
    NotFound,
    NotReady,
    Problem,
    TimedOut,
)
from modelship.model.codecs.base import ModelInput, Warnings
from modelship.model.codecs.csv import CsvCodec, CsvReader
from modelship.model.codecs.records import RecordsCodec
from modelship.model.codecs.v2 import V2Codec, decode_binary
from modelship.model.predictor import Predictions, Predictor
from modelship.serving import scoring, telemetry
from modelship.serving.feedback import Feedback, FeedbackReport, PredictionIds
from modelship.serving.rollout import Rollout, Version

# Up to this many rows a request is predicted inline on the event loop: below it, a hop to the
# thread pool costs more than the prediction (py-spy under wrk load,
# docs/benchmarks.md#what-changed-and-why).
INLINE_BATCH_ROWS = 1_000
# Admission (docs/service.md#admission): before a worker has measured its completion rate it
# admits this many requests at once, and never fewer after (the fixed limit the wait budget
# replaced: safe for every request size the other limits allow).
COLD_IN_FLIGHT = 32
RATE_WINDOW_SECONDS = 1.0  # the completion rate is measured over about this much wall clock
RATE_CHECK_EVERY = 16  # completions between clock reads while the worker stays busy
SPOOL_BYTES = 8 * 1024 * 1024  # CSV results beyond this go to a temporary file, not memory

# Called after every prediction with the validated input, the result and the rows' prediction
# ids: the place where data-quality checks (drift, outliers), capture and the feedback join plug
# in. Runs where the prediction ran (the event loop for small requests, a pool thread for large
# ones), so a hook must be quick and thread-safe.
QualityHook = Callable[[ModelInput, Predictions, PredictionIds], None]
T = TypeVar("T")


class _Answered:
    """The versions that answered one file's chunks, in order of first answer. Chunks may be
    predicted in two threads at once, so adding holds a lock."""

    def __init__(self, fallback: str) -> None:
        self._fallback = fallback  # named when no chunk was predicted (an empty file)
        self._versions: list[str] = []
        self._lock = threading.Lock()

    def add(self, version: str) -> None:
        with self._lock:
            if version not in self._versions:
                self._versions.append(version)

    def header(self) -> str:
        """The comma-separated versions, as the `X-Modelship-Model-Version` header names them."""
        return ",".join(self._versions) or self._fallback


class DataPlane:
    """Readiness, limits, inline-or-thread, metrics and data-quality hooks, once for every
    protocol. Methods take decoded client input and return response bodies (JSON-ready)."""

    def __init__(self, settings: Settings, predictor: Predictor, unfit: str | None = None) -> None:
        self.settings = settings
        # Why the model cannot be served in this container (its memory), or None: then the
        # service never turns ready, so a rollout stops instead of pods being OOM-killed.
        self.unfit = unfit
        self.predictor = predictor
        self.card = predictor.card
        self.records = RecordsCodec(predictor.schema)
        self.v2 = V2Codec(predictor.card, self.records)
        self.max_rows = settings.max_batch_rows
        self.max_in_flight = settings.max_in_flight
        # Requests admitted at once now: the wait budget times the measured completion rate,
        # within [COLD_IN_FLIGHT, max_in_flight] (`_measure`).
        self.in_flight_limit = min(COLD_IN_FLIGHT, self.max_in_flight)
        self._shed_wait = settings.shed_wait_ms / 1000
        self._done = 0  # completions in the current rate window
        self._refused = 0  # refusals in the current rate window
        self._check_at = RATE_CHECK_EVERY
        self._busy = 0.0  # wall seconds of the window with a request in flight, up to _busy_from
        self._busy_from = 0.0
        self._window_end = time.perf_counter() + RATE_WINDOW_SECONDS
        self.timeout = settings.request_timeout_seconds
        self.ready = False
        self.in_flight = 0
        self.quality_hooks: list[QualityHook] = []
        self.feedback: Feedback | None = None  # set by the composition root when it is on
        # A candidate version beside this one (set by the composition root): None keeps the
        # request path to the one attribute check in `predict`.
        self.rollout: Rollout | None = None
        self._count = settings.metrics
        self._classes = predictor.card.classes
        self._version = predictor.card.version

    # --- life cycle and readiness -------------------------------------------------------------
    def start(self) -> None:
        """Warm the model up (the first real request pays no first-call cost), then be ready."""
        self.predictor.warm_up()
        self.ready = self.unfit is None

    def stop(self) -> None:
        self.ready = False

    def check_ready(self) -> None:
        if not self.ready:
            raise NotReady(
                self.unfit
                or "the model is still loading; retry when the readiness probe (/readyz, "
                "/v2/health/ready) answers 200"
            )

    # --- limits -------------------------------------------------------------------------------
    def full(self) -> bool:
        """Whether a request arriving now is shed: the queue already in flight would keep it
        waiting longer than `MODELSHIP_SHED_WAIT_MS` at the measured rate (or the hard bound,
        `MODELSHIP_MAX_IN_FLIGHT`, is reached). The one admission rule, for every adapter;
        asked once per arriving request, so a True is a refusal (`_measure` counts them)."""
        if self.in_flight < self.in_flight_limit:
            return False
        self._refused += 1
        return True

    def admit(self, count_shed: bool = True) -> bool:
        """Take a slot for one request, or False when the worker is `full` (and count it as
        shed, unless the caller counts refusals itself)."""
        if self.full():
            if self._count and count_shed:
                telemetry.SHED.inc()
            return False
        n = self.in_flight
        if n == 0:
            self._busy_from = time.perf_counter()
        self.in_flight = n + 1
        return True

    def release(self) -> None:
        n = self.in_flight = self.in_flight - 1
        self._done += 1
        if n == 0 or self._done >= self._check_at:
            self._measure()

    def _measure(self) -> None:
        """Account the busy time so far and, once a window of wall clock has passed, set the
        limit from the rate the worker completed requests at while it had any in flight. Wall
        clock, not CPU time: a CPU quota's throttling (the container stopped for the rest of its
        CFS period) lowers the rate as it lowers what the worker can serve; idle time does not
        (a burst after a quiet spell is judged by the worker's speed, not by the quiet).

        A worker that refuses more requests than it completes is past absorbing bursts: more
        arrive than it can ever serve, and a queue of a wait budget's length would only make
        every answer, the refusals too, that much later. It keeps to the floor (the fixed 32)
        until a window has fewer refusals than completions."""
        now = time.perf_counter()
        self._busy += now - self._busy_from
        self._busy_from = now  # (with none in flight, `admit` restarts it)
        self._check_at = self._done + RATE_CHECK_EVERY
        overloaded = self._refused > self._done
        if overloaded:
            self.in_flight_limit = min(COLD_IN_FLIGHT, self.max_in_flight)
        if now < self._window_end or self._done < RATE_CHECK_EVERY:
            return  # (a few completions in a quiet window would make a noisy rate)
        if not overloaded and self._busy > 0:
            limit = int(self._done / self._busy * self._shed_wait)
            self.in_flight_limit = min(max(limit, COLD_IN_FLIGHT), self.max_in_flight)
        self._done, self._refused, self._busy = 0, 0, 0.0
        self._check_at = RATE_CHECK_EVERY
        self._window_end = now + RATE_WINDOW_SECONDS

    def check_rows(self, rows: int) -> None:
        """The one row limit, for JSON batches and V2 requests alike."""
        if rows > self.max_rows:
            raise BodyTooLarge.batch(rows, self.max_rows)

    async def run(self, rows: int, work: Callable[[], T]) -> T:
        """Small requests inline; large ones in the thread pool, within the request timeout.

        A timed-out computation cannot be interrupted: it finishes in its thread (bounded by the
        row limit) while the client already has its 503; CSV work stops at its next chunk.
        """
        if rows <= INLINE_BATCH_ROWS:
            return work()
        try:
            return await asyncio.wait_for(to_thread.run_sync(work), self.timeout)
        except TimeoutError:
            raise TimedOut(self.timeout) from None

    # --- prediction ---------------------------------------------------------------------------
    def predict(
        self, batch: ModelInput, ids: PredictionIds, served: Version | None = None
    ) -> tuple[Predictions, str]:
        """The model on validated input, then metrics and data-quality hooks; with the version
        that answered (in a rollout: `served`, routed by `route`, or the primary if it failed)."""
        rollout = self.rollout
        if rollout is None:
            result = self.predictor.predict(batch)
            version, hooks = self._version, self.quality_hooks
        else:
            result, used = rollout.predict(batch, served or rollout.primary)
            version = used.name
            hooks = self.quality_hooks if used is rollout.primary else used.hooks
        if self._count:
            telemetry.observe_rows(batch.rows)
        for hook in hooks:
            hook(batch, result, ids)
        return result, version

    def route(self, request_id: str, key: str | None, version: str | None = None) -> Version | None:
        """The version that answers a request: the one named (V2's explicit version), else by
        its routing key (the request id when the client set none); None without a rollout."""
        rollout = self.rollout
        if rollout is None:
            if version is not None and version != self._version:
                raise NotFound(
                    f"model '{self.card.name}' has no version '{version}': it is version "
                    f"'{self._version}'"
                )
            return None
        return rollout.version(version) if version else rollout.route(key or request_id)

    def predictor_of(self, version: str) -> Predictor:
        """The loaded predictor of a version that answered (for its explanations)."""
        if self.rollout is None:
            return self.predictor
        return self.rollout.versions[version].predictor

    def _in_order(
        self, request_id: str, served: Version | None, answered: _Answered
    ) -> scoring.PredictFn:
        """`predict` for the chunks of one file, each numbering its rows from the index of its
        first row in the file; the versions that answered go to `answered`."""

        def predict(batch: ModelInput, first_row: int) -> Predictions:
            result, version = self.predict(batch, PredictionIds(request_id, first_row), served)
            answered.add(version)
            return result

        return predict

    # --- native protocol: JSON records --------------------------------------------------------
    def predict_record(
        self, record: Any, request_id: str, explain: bool = False, route_key: str | None = None
    ) -> dict[str, Any]:
        """One JSON record (always inline: it is the hot path); its prediction id is the
        request id; with its explanation if asked."""
        self.check_ready()
        batch = self.records.decode([record])
        served = None if self.rollout is None else self.route(request_id, route_key)
        result, version = self.predict(batch, PredictionIds(request_id), served)
        body = result.row(0, self._classes)
        body["id"] = request_id
        if explain:
            predictor = self.predictor_of(version)
            body["explanation"] = predictor.explanation_row(predictor.explain(batch), 0)
        body["warnings"] = batch.warnings.as_json()
        body["model_version"] = version
        return body

    async def predict_records(
        self, records: Any, request_id: str, explain: bool = False, route_key: str | None = None
    ) -> dict[str, Any]:
        """A JSON list of records, answered in order; row i's id is `<request id>#i`; with each
        one's explanation if asked."""
        self.check_ready()
        if not isinstance(records, list):
            raise InvalidInput(
                [Problem(("body",), "expected a JSON array of records", "[{...}, {...}]")]
            )
        if not records:
            raise InvalidInput([Problem(("body",), "the batch is empty", "1 or more records")])
        self.check_rows(len(records))
        served = self.route(request_id, route_key)

        def work() -> dict[str, Any]:
            batch = self.records.decode(records, ("body",))
            rows, version = self._answer_rows(batch, PredictionIds(request_id, 0), explain, served)
            return self._batch_answer(rows, batch.warnings, version)

        return await self.run(len(records), work)

    def _answer_rows(
        self, batch: ModelInput, ids: PredictionIds, explain: bool, served: Version | None
    ) -> tuple[list[dict[str, Any]], str]:
        """A batch's answer rows (with their ids, and explanations if asked), and the version
        that answered."""
        result, version = self.predict(batch, ids, served)
        rows = [result.row(i, self._classes) for i in range(batch.rows)]
        for row, prediction_id in zip(rows, ids.of(batch.rows), strict=True):
            row["id"] = prediction_id
        if explain:
            predictor = self.predictor_of(version)
            explanations = predictor.explain(batch)
            for i, row in enumerate(rows):
                row["explanation"] = predictor.explanation_row(explanations, i)
        return rows, version

    @staticmethod
    def _batch_answer(
        rows: list[dict[str, Any]], warnings: Warnings, version: str
    ) -> dict[str, Any]:
        return {
            "predictions": rows,
            "count": len(rows),
            "warnings": warnings.as_json(),
            "model_version": version,
        }

    async def explain_csv(
        self, source: IO[bytes], request_id: str, route_key: str | None = None
    ) -> dict[str, Any]:
        """A CSV's rows explained, answered as a JSON batch (row i's id is `<request id>#i`).

        The answer is one JSON document held in memory, so the file is held to the batch row
        limit, as a JSON list of records would be; it is read in chunks with the CSV codec that
        /predict/csv uses, and a file over the limit is refused at the chunk that crosses it.
        """
        self.check_ready()
        deadline = _with_deadline(source, self.timeout)
        served = self.route(request_id, route_key)

        def work() -> dict[str, Any]:
            codec = CsvCodec(self.predictor.schema)
            names = self.predictor.schema.names
            reader = CsvReader(deadline, names, min(self.settings.csv_chunk_rows, self.max_rows))
            problems = codec.header_problems(reader.header, names)
            if problems:
                raise InvalidInput(problems)
            rows: list[dict[str, Any]] = []
            warnings = Warnings()
            answered = _Answered(self._version)
            for chunk in reader.chunks():
                self.check_rows(len(rows) + len(chunk))
                batch = codec.decode(chunk, reader.positions)
                ids = PredictionIds(request_id, len(rows))
                chunk_rows, version = self._answer_rows(batch, ids, True, served)
                rows += chunk_rows
                answered.add(version)
                warnings.merge(batch.warnings)
            return self._batch_answer(rows, warnings, answered.header())

        return await to_thread.run_sync(work)

    # --- native protocol: CSV files -----------------------------------------------------------
    async def predict_csv(
        self, source: IO[bytes], request_id: str, route_key: str | None = None
    ) -> tuple[IO[bytes], scoring.CsvSummary, str]:
        """The CSV with the prediction column(s) and each row's prediction id appended, as a
        file to stream back, and the version(s) that answered (comma-separated)."""
        self.check_ready()
        deadline = _with_deadline(source, self.timeout)
        answered = _Answered(self._version)
        predict = self._in_order(request_id, self.route(request_id, route_key), answered)

        def work() -> tuple[IO[bytes], scoring.CsvSummary, str]:
            sink = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - the caller closes it
            text = io.TextIOWrapper(sink, encoding="utf-8", newline="")
            try:
                summary = scoring.predict_csv(
                    self.predictor,
                    deadline,
                    text,
                    self.settings.csv_chunk_rows,
                    predict,
                    request_id=request_id,
                )
            except BaseException:
                sink.close()
                raise
            text.flush()
            text.detach()
            sink.seek(0)
            return sink, summary, answered.header()

        return await to_thread.run_sync(work)

    async def score_csv(
        self, source: IO[bytes], request_id: str, route_key: str | None = None
    ) -> dict[str, Any]:
        """The training metrics on a labelled CSV, with the version(s) that answered."""
        self.check_ready()
        deadline = _with_deadline(source, self.timeout)
        answered = _Answered(self._version)
        scored = await to_thread.run_sync(
            scoring.score_csv,
            self.predictor,
            deadline,
            self.settings.csv_chunk_rows,
            self._in_order(request_id, self.route(request_id, route_key), answered),
        )
        scored["model_version"] = answered.header()
        return scored

    # --- Open Inference Protocol (V2) ---------------------------------------------------------
    def parse_v2(self, body: bytes, header_length: str | None) -> InferenceRequest:
        """The request from its JSON (and, with the binary extension, the tensors after it)."""
        try:
            if header_length is None:
                return InferenceRequest.model_validate_json(body)
            split = _header_length(header_length, len(body))
            request = InferenceRequest.model_validate_json(body[:split])
        except ValidationError as exc:
            raise InvalidTensor(_validation_message(exc)) from None
        decode_binary(request, body[split:])
        return request

    async def infer(
        self,
        request: InferenceRequest,
        request_id: str,
        route_key: str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """V2 inference: the same rows limit, validation, inline-or-thread rule as native; the
        rows' ids (`<request id>#i`) are in the answer's `parameters.prediction_ids`; `version`
        (the versioned route) picks the version that answers."""
        self.check_ready()
        self.v2.requested(request)
        rows = self.v2.rows(request)
        self.check_rows(rows)
        served = self.route(request_id, route_key, version)

        def work() -> dict[str, Any]:
            batch = self.v2.decode(request)
            ids = PredictionIds(request_id, 0)
            result, answered = self.predict(batch, ids, served)
            explained = (
                self.predictor_of(answered).explain(batch)
                if self.v2.wants_explanation(request)
                else None
            )
            body = self.v2.encode(request, batch, result, explained)
            body["model_version"] = answered
            body.setdefault("parameters", {})["prediction_ids"] = ids.of(batch.rows)
            return body

        return await self.run(rows, work)

    # --- feedback: labels in, live quality out --------------------------------------------------
    def joined(self) -> Feedback:
        """The feedback join, or 404 when MODELSHIP_FEEDBACK is off."""
        if self.feedback is None:
            raise NotFound("feedback is off on this server (MODELSHIP_FEEDBACK=false)")
        return self.feedback

    async def receive_labels(self, items: list[tuple[Any, Any]]) -> FeedbackReport:
        """Join `(id, label)` items (in the thread pool: it waits on the shared file)."""
        feedback = self.joined()
        self.check_rows(len(items))
        return await to_thread.run_sync(feedback.receive, items)

    async def quality(self) -> dict[str, dict[str, Any]]:
        """Live quality per model version."""
        return await to_thread.run_sync(self.joined().quality)


def parse_json(body: bytes) -> Any:
    """The parsed JSON body; malformed JSON is a 400 that says where it broke."""
    if not body.strip():
        raise MalformedBody("the request body is empty: expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if "infinity" in str(exc) or b"NaN" in body or b"Infinity" in body:
            hint = " (NaN and Infinity are not JSON numbers: send null for a missing value)"
        raise MalformedBody(f"the request body is not valid JSON: {exc}{hint}") from None


def _with_deadline(source: IO[bytes], seconds: float) -> IO[bytes]:
    """The CSV source, refusing to be read once the request timeout has passed: reads are in
    blocks, so the check costs nothing per row and a timed-out upload stops within a block."""
    return io.BufferedReader(_Deadline(source, seconds), buffer_size=256 * 1024)


class _Deadline(io.RawIOBase):
    def __init__(self, source: IO[bytes], seconds: float) -> None:
        self._source = source
        self._seconds = seconds
        self._until = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if time.monotonic() > self._until:
            raise TimedOut(self._seconds)
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _header_length(text: str, body_length: int) -> int:
    if not text.isdigit() or int(text) > body_length:
        raise InvalidTensor(
            f"Inference-Header-Content-Length {text!r} is not a length within the body "
            f"({body_length} bytes)"
        )
    return int(text)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = exc.error_count() - len(parts)
    return "invalid inference request: " + "; ".join(parts) + (f" (+{more} more)" * (more > 0))

"""Capture: a sample of the rows served and their predictions, written to the model store.

Rows go to `captures/<model version>/<UTC date>/<time>-<worker token>-<sequence>.csv` under
`MODELSHIP_CAPTURE_URI`: the feature columns (as the model saw them: a missing number is an
empty cell), the prediction column(s) and the prediction id, the layout `/predict/csv` answers,
then the model version. The prediction id is what labels name, so `modelship quality` joins
labels that arrive weeks later to the captured rows.

The request path only draws the sample and appends array references to a queue (`observe`);
a daemon thread per worker turns the queue into CSV objects of `capture_batch_rows` rows, at
least every `capture_interval_seconds`. Memory is bounded by `capture_buffer_rows`: while the
store is slow or unreachable the uploads are retried with backoff and rows beyond the bound are
dropped and counted, never waited for; an object that fails `MAX_UPLOAD_ATTEMPTS` writes in a
row is dropped and counted too. A prediction never blocks on, or fails because of, the store.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Gauge

from modelship.contracts.card import ModelCard
from modelship.contracts.settings import Settings
from modelship.errors import ModelshipError
from modelship.model import store
from modelship.model.codecs.base import number_texts
from modelship.serving.feedback import PREDICTION_ID

if TYPE_CHECKING:
    from modelship.model.codecs.base import ModelInput
    from modelship.model.predictor import Predictions
    from modelship.serving.feedback import PredictionIds

CAPTURES_PREFIX = "captures"
MODEL_VERSION = "model_version"  # the column after the prediction id
# Between failed uploads the thread waits this long, doubling up to the capture interval.
FIRST_RETRY_SECONDS = 1.0
# An object that failed this many uploads in a row is dropped (and counted), so one the store
# keeps refusing cannot hold back every later one; with the backoff that is minutes of retrying.
MAX_UPLOAD_ATTEMPTS = 10
# Failures are logged at most this often (a store that is down would otherwise flood the log).
LOG_EVERY_SECONDS = 60.0
log = logging.getLogger("modelship.capture")

CAPTURED = Counter(
    "modelship_capture_rows", "Captured rows written to the model store (captures/<version>/)"
)
# Watched by the CloudWatch lines (monitoring/cloudwatch.py) as by the Prometheus alert.
DROPPED_METRIC = "modelship_capture_dropped_rows"
UPLOAD_ERRORS_METRIC = "modelship_capture_upload_errors"
DROPPED = Counter(
    DROPPED_METRIC,
    "Sampled rows not written: the buffer was full (store slow or unreachable), their upload "
    "failed MAX_UPLOAD_ATTEMPTS times, or unsent at shutdown",
    ("reason",),
)
UPLOAD_ERRORS = Counter(UPLOAD_ERRORS_METRIC, "Capture uploads that failed (and are retried)")
BUFFERED = Gauge(
    "modelship_capture_buffered_rows",
    "Captured rows waiting in memory for upload (summed over workers)",
    multiprocess_mode="livesum",
)


@dataclass
class _Sample:
    """Sampled rows of one served batch: their model inputs and prediction columns."""

    feeds: dict[str, npt.NDArray[Any]]
    predictions: list[npt.NDArray[Any]]
    ids: list[str]
    rows: int

    def split(self, rows: int) -> tuple[_Sample, _Sample]:
        """The first `rows` rows, and the rest."""
        head = _Sample(
            {name: values[:rows] for name, values in self.feeds.items()},
            [values[:rows] for values in self.predictions],
            self.ids[:rows],
            rows,
        )
        tail = _Sample(
            {name: values[rows:] for name, values in self.feeds.items()},
            [values[rows:] for values in self.predictions],
            self.ids[rows:],
            self.rows - rows,
        )
        return head, tail


class Capture:
    """Samples served rows at `capture_rate` and uploads them in batches off the request path."""

    def __init__(self, card: ModelCard, settings: Settings) -> None:
        assert settings.capture_uri is not None  # the settings refuse a rate without a URI
        location = store.parse(settings.capture_uri)
        if location.scheme == "file" and not os.path.isabs(location.bucket):
            raise ModelshipError(
                f"setting MODELSHIP_CAPTURE_URI = {settings.capture_uri!r}: a directory must be "
                "absolute (file:///DIR or /DIR)"
            )
        self.location = location
        self.prefix = location.key(CAPTURES_PREFIX, card.version)
        self.rate = settings.capture_rate
        self.batch_rows = settings.capture_batch_rows
        self.buffer_rows = settings.capture_buffer_rows
        self.interval = settings.capture_interval_seconds
        self.header = [
            *(f.name for f in card.features),
            *card.prediction_columns,
            PREDICTION_ID,
            MODEL_VERSION,
        ]
        self.version = card.version
        self._inputs = [f.input_name for f in card.features]
        self._numeric = [f.numeric is not None for f in card.features]
        self._token = secrets.token_hex(4)  # pods can share PIDs; the token keeps keys apart
        self._sequence = 0
        self._random = random.random
        self._rng = np.random.default_rng()
        self._queue: deque[_Sample] = deque()
        self._pending: deque[tuple[str, bytes, int]] = deque()  # formatted, not yet uploaded
        self._lock = threading.Lock()  # guards the queue's tail and the two row counts below
        self.queued = 0  # rows sampled, not yet formatted
        self.buffered = 0  # rows held in memory: queued plus formatted and not yet uploaded
        self._oldest: float | None = None  # when the oldest queued row arrived
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backend: store.Backend | None = None
        self._last_log = -LOG_EVERY_SECONDS
        self._attempts = 0  # failed uploads of the object at the head of `_pending`
        self.failing = False
        # Created at zero, so rate() and alerts work before the first drop.
        self._dropped_full = DROPPED.labels("buffer_full")
        self._dropped_full.inc(0)
        DROPPED.labels("shutdown").inc(0)
        DROPPED.labels("upload_failed").inc(0)
        CAPTURED.inc(0)
        UPLOAD_ERRORS.inc(0)

    # --- the request path -------------------------------------------------------------------
    def observe(self, batch: ModelInput, predictions: Predictions, ids: PredictionIds) -> None:
        """Draw the sample of one served batch and queue it (a single row is not copied)."""
        rows = batch.rows
        if rows == 1:
            if self._random() >= self.rate:
                return
            feeds = batch.feeds
            columns = predictions.columns()
            names = ids.of(1)
            taken = 1
        else:
            picked = np.flatnonzero(self._rng.random(rows) < self.rate)
            taken = len(picked)
            if not taken:
                return
            feeds = {name: batch.feeds[name][picked] for name in self._inputs}
            columns = [column[picked] for column in predictions.columns()]
            assert ids.first is not None  # a batch's rows are numbered
            names = [f"{ids.request_id}#{ids.first + int(i)}" for i in picked]
        with self._lock:
            if self.buffered + taken > self.buffer_rows:
                self._dropped_full.inc(taken)
                return
            self.buffered += taken
            self.queued += taken
            full = self.queued >= self.batch_rows
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._queue.append(_Sample(feeds, columns, names, taken))  # with the counts, atomically
        if full:
            self._wake.set()

    # --- off the request path ---------------------------------------------------------------
    def start(self) -> None:
        """Upload in a daemon thread: a full batch at once, any rows within the interval."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="modelship-capture", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Upload what is left (one attempt, within `timeout`); count what stays as dropped."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            left, self.buffered, self.queued = self.buffered, 0, 0
        if left:
            DROPPED.labels("shutdown").inc(left)
        BUFFERED.set(0)

    def _run(self) -> None:
        backoff = FIRST_RETRY_SECONDS
        while not self._stop.is_set():
            self._wake.wait(backoff if self.failing else self._until_due())
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.failing or self._until_due() == 0 or self.queued >= self.batch_rows:
                if self.flush(force=self._until_due() == 0):
                    backoff = FIRST_RETRY_SECONDS
                else:
                    backoff = min(backoff * 2, self.interval)
        self.flush(force=True)

    def _until_due(self) -> float:
        """Seconds until the oldest queued row has waited the interval (0: due now)."""
        oldest = self._oldest
        if oldest is None:
            return self.interval
        return max(0.0, self.interval - (time.monotonic() - oldest))

    def flush(self, force: bool = True) -> bool:
        """Format full batches (every queued row with `force`) and upload them in order; False
        when an upload failed (it stays pending, within the buffer bound, for the next try)."""
        self._format(force)
        try:
            while self._pending:
                key, data, rows = self._pending[0]
                try:
                    self._store().write_once(key, data)
                except store.ExistsError:
                    # The key is this worker's own (token and sequence) and its bytes never
                    # change between attempts: the object is an earlier attempt of this upload
                    # whose answer was lost (the SDK's retry then fails the create-only
                    # precondition). The service may not read captures back to compare.
                    pass
                except Exception as exc:  # any client error: predictions never see it
                    UPLOAD_ERRORS.inc()
                    self._attempts += 1
                    if self._attempts >= MAX_UPLOAD_ATTEMPTS:
                        self._give_up(key, rows, exc)
                    else:
                        self._log_failure(key, exc)
                    self.failing = True
                    return False
                self._pending.popleft()
                self._attempts = 0
                with self._lock:
                    self.buffered -= rows
                CAPTURED.inc(rows)
                if self.failing:
                    log.warning("capture: writing to %s works again", self.location.uri)
                    self.failing = False
            return True
        finally:
            BUFFERED.set(self.buffered)

    def _format(self, force: bool) -> None:
        """Queued samples into CSV objects of `batch_rows` rows (the rest too with `force`)."""
        while self.queued >= self.batch_rows or (force and self.queued):
            samples: list[_Sample] = []
            rows = 0
            while rows < self.batch_rows and self._queue:
                sample = self._queue.popleft()
                room = self.batch_rows - rows
                if sample.rows > room:  # a large request: its rest starts the next object
                    sample, rest = sample.split(room)
                    self._queue.appendleft(rest)
                samples.append(sample)
                rows += sample.rows
            if not samples:
                return
            with self._lock:
                self.queued -= rows
                if not self.queued:
                    self._oldest = None
            self._pending.append(self._object(samples, rows))

    def _object(self, samples: list[_Sample], rows: int) -> tuple[str, bytes, int]:
        """One CSV object (header, then the rows), and the key it is written under."""
        columns: list[list[str]] = []
        # Feeds are [rows, 1] and prediction columns [rows]: one concatenate and one ravel per
        # column (a reshape per sample was a third of the formatting time).
        for name, numeric in zip(self._inputs, self._numeric, strict=True):
            values = np.concatenate([s.feeds[name] for s in samples]).ravel()
            columns.append(_numbers(values) if numeric else [str(v) for v in values])
        for index in range(len(samples[0].predictions)):
            values = np.concatenate([s.predictions[index] for s in samples]).ravel()
            columns.append(_numbers(values) if values.dtype.kind == "f" else values.tolist())
        columns.append([name for s in samples for name in s.ids])
        columns.append([self.version] * rows)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(zip(*columns, strict=True))
        now = datetime.now(UTC)
        self._sequence += 1
        name = f"{now:%H%M%S}-{self._token}-{self._sequence:06d}.csv"
        key = "/".join((self.prefix, f"{now:%Y-%m-%d}", name))
        return key, text.getvalue().encode(), rows

    def _store(self) -> store.Backend:
        if self._backend is None:
            self._backend = store.backend(self.location)
        return self._backend

    def _give_up(self, key: str, rows: int, exc: Exception) -> None:
        """Drop the head object after its last failed attempt: count its rows and say so."""
        self._pending.popleft()
        self._attempts = 0
        with self._lock:
            self.buffered -= rows
        DROPPED.labels("upload_failed").inc(rows)
        log.error(
            "capture: dropped %s (%d rows) after %d failed uploads, the last %s: %s; counted in "
            'modelship_capture_dropped_rows_total{reason="upload_failed"}',
            self.location.uri_of(key),
            rows,
            MAX_UPLOAD_ATTEMPTS,
            type(exc).__name__,
            exc,
        )

    def _log_failure(self, key: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_SECONDS:
            self._last_log = now
            log.warning(
                "capture: cannot write %s (%s: %s); retrying, %d rows buffered (at most %d, "
                "beyond that rows are dropped and counted in modelship_capture_dropped_rows)",
                self.location.uri_of(key),
                type(exc).__name__,
                exc,
                self.buffered,
                self.buffer_rows,
            )


def _numbers(values: npt.NDArray[Any]) -> list[str]:
    """Shortest text of each float; NaN (a missing value the model imputed) as an empty cell."""
    texts = number_texts(values)
    if np.isnan(values).any():
        return ["" if t == "nan" else t for t in texts]
    return texts


def create_capture(card: ModelCard, settings: Settings) -> Capture | None:
    """The capture (None when MODELSHIP_CAPTURE_RATE is 0, the default)."""
    return Capture(card, settings) if settings.capture_rate > 0 else None

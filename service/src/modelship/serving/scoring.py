"""CSV scoring: a CSV predicted in chunks (CSV in, CSV out), or measured against its labels;
shared by the HTTP routes and the batch transform."""

from __future__ import annotations

import csv
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from modelship.errors import InvalidInput, Problem
from modelship.model.codecs.base import MISSING_TOKENS, ModelInput, Warnings, number_texts
from modelship.model.codecs.csv import BadRow, CsvChunk, CsvCodec, CsvReader
from modelship.model.predictor import Predictions, Predictor
from modelship.model_quality import classification_metrics, regression_metrics
from modelship.serving.feedback import PREDICTION_ID, PredictionIds

# How a chunk is predicted: the predictor's own `predict`, or the service's data plane (which
# also counts it and runs its data-quality hooks). Given the chunk and the index of its first row
# among the file's answered rows (chunks may be predicted concurrently, so the callee cannot
# count them itself).
PredictFn = Callable[[ModelInput, int], Predictions]
# Threads that score one large upload, this one included: each reads and decodes the next chunk,
# predicts it (the model runs without the GIL) and writes what is next in file order, so while
# one thread parses or writes the other keeps a core busy with the model. One per core: a third
# thread only took turns with these on the two cores (docs/benchmarks.md#csv-at-2x).
MODEL_THREADS = 2
# How far reading may run ahead of writing, in chunks: what one upload holds in memory.
MOST_AHEAD = 4
# Told each row left out under `--on-error skip`: its line, its cells and what is wrong with it.
RejectRow = Callable[[int, list[str], Sequence[Problem]], None]


@dataclass
class CsvSummary:
    rows: int = 0
    """Rows predicted (and written)."""
    rejected: int = 0
    """Rows left out because `reject` was given and they are invalid."""
    warnings: Warnings = field(default_factory=Warnings)


def predict_csv(
    predictor: Predictor,
    source: IO[bytes],
    sink: IO[str],
    chunk_rows: int,
    predict: PredictFn | None = None,
    *,
    reject: RejectRow | None = None,
    request_id: str | None = None,
) -> CsvSummary:
    """Append the prediction column(s) to every row of `source`, writing CSV text to `sink`.

    An invalid row fails the whole file, or, given `reject`, is handed to it and left out.
    With `request_id` (a served upload), each row's prediction id (`<request id>#<row index>`)
    is appended too, in a last column `prediction_id`.
    """
    predict = predict or _plain(predictor)
    codec = CsvCodec(predictor.schema)
    summary = CsvSummary()
    # A chunk's rows of the wrong width are found as it is read, its invalid values as it is
    # decoded: its rejects are held and handed on in line order once the chunk is done.
    held: list[tuple[int, list[str], Sequence[Problem]]] = []

    def reject_bad_width(line: int, cells: list[str], problem: Problem) -> None:
        held.append((line, cells, [problem]))

    def hand_on_rejects() -> None:
        assert reject is not None
        held.sort(key=lambda rejected: rejected[0])
        for rejected in held:
            reject(*rejected)
        summary.rejected += len(held)
        held.clear()

    reader = _open(
        codec, source, chunk_rows, predictor.schema.names, reject_bad_width if reject else None
    )
    added = _added_columns(predictor, reader, request_id is not None)
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow([*reader.header, *added])

    def write(chunk: CsvChunk, batch: ModelInput, result: Predictions) -> None:
        columns = [number_texts(column) for column in result.columns()]
        if request_id is not None:
            columns.append(PredictionIds(request_id, summary.rows).of(batch.rows))
        if chunk.texts is not None:  # rows without quotes: their text, then the predictions
            # map/zip/join run in C: no Python step per row
            sink.write("\n".join(map(",".join, zip(chunk.texts, *columns, strict=True))))
            sink.write("\n")
        else:
            writer.writerows(
                [*cells, *extra] for cells, *extra in zip(chunk.rows(), *columns, strict=True)
            )
        summary.rows += batch.rows
        summary.warnings.merge(batch.warnings)

    def write_or_split(chunk: CsvChunk) -> None:
        """Halve a failing chunk until the bad rows stand alone: the good ones are still
        predicted in batches and in order, each bad one is rejected with its own problems."""
        try:
            batch = codec.decode(chunk, reader.positions)
            write(chunk, batch, predict(batch, summary.rows))
        except InvalidInput as exc:
            if reject is None:
                raise
            if len(chunk) == 1:
                held.append((chunk.lines[0], next(chunk.rows()), exc.problems))
                return
            middle = len(chunk) // 2
            write_or_split(chunk.slice(0, middle))
            write_or_split(chunk.slice(middle, len(chunk)))

    if reject is not None:  # one chunk at a time, so that rejects are handed on in line order
        for chunk in reader.chunks():
            write_or_split(chunk)
            if held:
                hand_on_rejects()
        if held:  # the last rows read were all of the wrong width
            hand_on_rejects()
        return summary

    _pipelined(reader.chunks(), lambda chunk: codec.decode(chunk, reader.positions), predict, write)
    return summary


def _added_columns(predictor: Predictor, reader: CsvReader, ids: bool) -> list[str]:
    """The columns prediction appends (the prediction id last, with `ids`), none of them
    already in the input."""
    added = [*predictor.card.prediction_columns, *[PREDICTION_ID] * ids]
    clashing = [c for c in added if c in reader.positions]
    if clashing:
        raise InvalidInput(
            [
                Problem(
                    ("file", "line 1", name),
                    "the input already has this column, which prediction would add",
                    "rename or remove it",
                )
                for name in clashing
            ]
        )
    return added


def _pipelined(
    chunks: Iterable[CsvChunk],
    decode: Callable[[CsvChunk], ModelInput],
    predict: PredictFn,
    write: Callable[[CsvChunk, ModelInput, Predictions], None],
) -> None:
    """Score the chunks on `MODEL_THREADS` threads: this one and the rest from a pool."""
    scoring = _InOrder(iter(chunks), decode, predict, write)
    with ThreadPoolExecutor(MODEL_THREADS - 1, thread_name_prefix="csv-model") as helpers:
        others = [helpers.submit(scoring.work) for _ in range(MODEL_THREADS - 1)]
        scoring.work()
        for other in others:
            other.result()
    if scoring.failures:  # the first in the file, as if the chunks had been scored one by one
        raise scoring.failures[min(scoring.failures)]


class _InOrder:
    """Chunks scored by several threads, each taking the next chunk, predicting it and writing
    every chunk that is next in file order.

    Reading, decoding and writing take turns under one lock (they need the GIL anyway); the
    model runs outside it. Chunks are numbered as read, so rows, their ids and the first error
    are in file order whichever thread finishes first; at most `MOST_AHEAD` chunks are read and
    not yet written."""

    def __init__(
        self,
        source: Iterator[CsvChunk],
        decode: Callable[[CsvChunk], ModelInput],
        predict: PredictFn,
        write: Callable[[CsvChunk, ModelInput, Predictions], None],
    ) -> None:
        self.source, self.decode, self.predict, self.write = source, decode, predict, write
        self.turn = threading.Condition()
        # All guarded by `turn`: chunks read and written, rows read, chunks predicted and not
        # yet written (by number), what failed (by chunk number), and the end of the file.
        self.read = self.written = self.rows = 0
        self.done: dict[int, tuple[CsvChunk, ModelInput, Predictions]] = {}
        self.failures: dict[int, BaseException] = {}
        self.ended = False

    def work(self) -> None:
        while (taken := self._take()) is not None:
            number, chunk, batch, first_row = taken
            try:
                result = self.predict(batch, first_row)
            except BaseException as exc:
                self._fail(number, exc)
                return
            self._hand_in(number, (chunk, batch, result))

    def _take(self) -> tuple[int, CsvChunk, ModelInput, int] | None:
        """The next chunk, decoded, with its number and the index of its first row; None when
        the file is done or a chunk failed."""
        with self.turn:
            while self.read - self.written >= MOST_AHEAD and not self._stopped():
                self.turn.wait()
            if self._stopped():
                return None
            try:
                chunk = next(self.source, None)
                if chunk is None:
                    self.ended = True
                    return None
                batch = self.decode(chunk)
            except BaseException as exc:
                self._fail(self.read, exc)
                return None
            number, first_row = self.read, self.rows
            self.read += 1
            self.rows += batch.rows
            return number, chunk, batch, first_row

    def _hand_in(self, number: int, outcome: tuple[CsvChunk, ModelInput, Predictions]) -> None:
        """Keep a predicted chunk; write it and the ones after it that are done, in order."""
        with self.turn:
            self.done[number] = outcome
            while self.written in self.done and not self.failures:
                try:
                    self.write(*self.done.pop(self.written))
                except BaseException as exc:
                    self._fail(self.written, exc)
                    return
                self.written += 1
            self.turn.notify_all()

    def _fail(self, number: int, exc: BaseException) -> None:
        with self.turn:
            self.failures[number] = exc
            self.turn.notify_all()

    def _stopped(self) -> bool:
        return self.ended or bool(self.failures)


def _plain(predictor: Predictor) -> PredictFn:
    """The predictor's own `predict`, which numbers no rows."""
    return lambda batch, _first_row: predictor.predict(batch)


def score_csv(
    predictor: Predictor, source: IO[bytes], chunk_rows: int, predict: PredictFn | None = None
) -> dict[str, Any]:
    """The training metrics, computed on a labelled CSV (it must have the target column)."""
    predict = predict or _plain(predictor)
    card = predictor.card
    codec = CsvCodec(predictor.schema)
    reader = _open(codec, source, chunk_rows, [*predictor.schema.names, card.target])
    target_at = reader.positions[card.target]
    truth: list[Any] = []
    predicted: list[Any] = []
    probabilities: list[Any] = []
    warnings = Warnings()
    for chunk in reader.chunks():
        labels = [
            _target_value(cell, line, card.task, card.target)
            for line, cell in zip(chunk.lines, chunk.columns[target_at], strict=True)
        ]
        batch = codec.decode(chunk, reader.positions)
        result = predict(batch, len(truth))
        truth.extend(labels)
        warnings.merge(batch.warnings)
        if result.values is not None:
            predicted.append(result.values)
        else:
            assert result.labels is not None and result.probabilities is not None
            predicted.extend(result.labels.astype(str).tolist())
            probabilities.append(result.probabilities)
    if card.task == "regression":
        metrics: dict[str, Any] = regression_metrics(truth, np.concatenate(predicted))
    else:
        assert card.classes is not None
        unseen = sorted(set(truth) - set(card.classes))
        if unseen:
            warnings.add(
                card.target,
                f"label(s) {', '.join(map(repr, unseen[:10]))} not seen in training",
                "rows with them always count as wrong",
                None,
            )
        metrics = classification_metrics(
            truth, predicted, np.concatenate(probabilities), card.classes
        )
    return {
        "rows": len(truth),
        "metrics": metrics,
        "training_metrics": card.metrics.get("test"),
        "warnings": warnings.as_json(),
        "model_version": card.version,
    }


def _open(
    codec: CsvCodec,
    source: IO[bytes],
    chunk_rows: int,
    required: list[str],
    on_bad_row: BadRow | None = None,
) -> CsvReader:
    reader = CsvReader(source, required, chunk_rows, on_bad_row)
    problems = codec.header_problems(reader.header, required)
    if problems:
        raise InvalidInput(problems)
    return reader


def _target_value(text: str, line: int, task: str, target: str) -> Any:
    stripped = text.strip()
    if stripped in MISSING_TOKENS:
        raise InvalidInput(
            [Problem(("file", f"line {line}", target), "the target value is missing", "a label")]
        )
    if task == "classification":
        return text
    try:
        value = float(stripped)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput(
            [
                Problem(
                    ("file", f"line {line}", target),
                    f"expected a number, got {stripped[:40]!r}",
                    "the numeric target value, a finite number",
                )
            ]
        )
    return value

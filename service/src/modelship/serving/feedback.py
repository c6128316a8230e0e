"""Feedback: ground-truth labels joined to the predictions they judge, and live model quality.

Every row answered has a prediction id (`PredictionIds`): the request id for a single record,
`<request id>#<row index>` for the rows of a batch, a CSV file or a V2 request. The request path
only appends a reference to the answered arrays to a list (`observe`); a daemon thread per
worker writes them to the server's shared SQLite file (`modelship.serving.shared`) every
`feedback_flush_seconds`, so any worker can join a label to a prediction another one answered,
also after that worker is gone.

Labels (`receive`) are validated against the model's target, joined in one transaction, and
counted by outcome (joined, unknown, expired, duplicate, invalid): a bad item never fails the
others. Predictions are remembered for `feedback_window_seconds`, at most `feedback_window_rows`
of them (the oldest go first); the ids of forgotten ones are kept as long again, so a late label
is reported as expired rather than unknown. Live quality is the card's own metrics over the last
`quality_window_rows` labelled rows of each model version (`quality`), computed by
`modelship.model_quality`, the code that computed the card's test figures.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Metric
from prometheus_client.core import GaugeMetricFamily

from modelship.contracts.card import ModelCard
from modelship.contracts.settings import Settings
from modelship.errors import InvalidInput, MalformedBody
from modelship.errors import Problem as InputProblem
from modelship.model.predictor import Predictions
from modelship.model_quality import classification_metrics, regression_metrics
from modelship.serving.shared import connect, sqlite_errors, transaction

if TYPE_CHECKING:
    from modelship.model.codecs.base import ModelInput

DATABASE = "feedback.sqlite3"
PREDICTION_ID = "prediction_id"  # the column of each row's id in a served CSV and in captures
MAX_ID_CHARS = 200
MAX_REPORTED = 20  # problems listed in an answer; all are counted
# The metric each task's live quality is judged by against the card's test figure.
HEADLINE = {"regression": "r2", "classification": "accuracy"}
log = logging.getLogger("modelship.feedback")

Outcome = Literal["joined", "unknown", "expired", "duplicate", "invalid"]
OUTCOMES: tuple[Outcome, ...] = ("joined", "unknown", "expired", "duplicate", "invalid")
LABELS = Counter(
    "modelship_feedback_labels", "Labels received, by what became of them", ["outcome"]
)
REMEMBERED = Counter(
    "modelship_feedback_predictions", "Predictions written to the join, awaiting their labels"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY, version TEXT NOT NULL, at REAL NOT NULL,
    prediction NOT NULL, probabilities BLOB, labelled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS forgotten (id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, version TEXT NOT NULL,
    at REAL NOT NULL, truth NOT NULL, prediction NOT NULL, probabilities BLOB
);
CREATE INDEX IF NOT EXISTS labels_by_version ON labels (version, seq);
"""


@dataclass(frozen=True, slots=True)
class PredictionIds:
    """The ids of the rows of one answer: `request_id` alone for a single record (`first` is
    None), else `<request_id>#<first + i>` for row i (a CSV is predicted in chunks)."""

    request_id: str
    first: int | None = None

    def of(self, rows: int) -> list[str]:
        if self.first is None:
            return [self.request_id]
        return [f"{self.request_id}#{self.first + i}" for i in range(rows)]

    def header(self, rows: int) -> str:
        """The ids of an answer in one header value: the id, or the first and last joined by
        `..` (the ids between are the row indexes in order)."""
        if self.first is None:
            return self.request_id
        if rows == 1:
            return f"{self.request_id}#{self.first}"
        return f"{self.request_id}#{self.first}..{self.request_id}#{self.first + rows - 1}"


@dataclass
class Problem:
    """One label item that was not joined, and why."""

    index: int
    id: str | None
    outcome: Outcome
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "outcome": self.outcome,
            "message": self.message,
        }


@dataclass
class FeedbackReport:
    """What became of the labels of one request."""

    received: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    joined_by_version: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def count(self, outcome: Outcome, index: int, item_id: str | None, message: str) -> None:
        self.counts[outcome] += 1
        if outcome != "joined" and len(self.problems) < MAX_REPORTED:
            self.problems.append(Problem(index, item_id, outcome, message))

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            **self.counts,
            "model_versions": self.joined_by_version,
            "problems": [p.as_json() for p in self.problems],
            "problems_listed": len(self.problems),
        }


def labels_from_json(body: Any) -> list[tuple[Any, Any]]:
    """`(id, label)` items of a JSON body: one `{"id": ..., "label": ...}` object or a list of
    them. An item of the wrong shape becomes an item with no id, counted as invalid."""
    items = body if isinstance(body, list) else [body]
    if not isinstance(body, list | dict):
        raise InvalidInput(
            [
                InputProblem(
                    ("body",), "expected a JSON object or array", '{"id": ..., "label": ...}'
                )
            ]
        )
    if not items:
        raise InvalidInput([InputProblem(("body",), "no labels", "1 or more items")])
    return [
        (item.get("id"), item.get("label")) if isinstance(item, dict) else (None, None)
        for item in items
    ]


def labels_from_csv(data: bytes) -> list[tuple[Any, Any]]:
    """`(id, label)` items of a CSV with a header naming the columns `id` and `label`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"the CSV is not UTF-8 text: {exc}") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(rows, [])]
    missing = [name for name in ("id", "label") if name not in header]
    if missing:
        raise InvalidInput(
            [
                InputProblem(("file", "line 1", name), "the header has no such column", "id,label")
                for name in missing
            ]
        )
    at_id, at_label = header.index("id"), header.index("label")
    width = max(at_id, at_label)
    items = [
        (row[at_id], row[at_label]) if len(row) > width else (None, None) for row in rows if row
    ]
    if not items:
        raise InvalidInput([InputProblem(("file",), "no labels after the header", "id,label rows")])
    return items


class LabelRule:
    """A label as the model's target takes it: a finite number (regression), or one of the
    classes the model was trained on (classification). CSV cells arrive as text."""

    def __init__(self, target: str, classes: list[str] | None) -> None:
        self.target = target
        self.classes = classes
        self._known = frozenset(classes or ())

    def parse(self, value: Any) -> tuple[Any, str | None]:
        """(the label, None), or (None, what is wrong with it)."""
        if self.classes is None:
            number: float | None = None
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
            elif isinstance(value, str):
                try:
                    number = float(value.strip())
                except ValueError:
                    number = None
            if number is None or not math.isfinite(number):
                return None, f"{self.target} is a number: expected a finite number, got {value!r}"
            return number, None
        if isinstance(value, str):
            text = value.strip()
        elif isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            text = None
        if text is None or text not in self._known:
            shown = ", ".join(map(repr, self.classes[:20]))
            return None, f"{self.target} is one of the model's classes ({shown}); got {value!r}"
        return text, None


def _client_floats(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Float32 model output as the client read it: the shortest text that round-trips the float32
    (what the JSON and CSV answers carry), parsed as float64. Joining the float32 value itself
    would differ from the client's own figures by float32 rounding."""
    return np.asarray(values.astype(str), dtype=np.float64)


_Pending = tuple[str, PredictionIds, int, Predictions, float]


def _by_version(
    pending: list[_Pending],
) -> Iterator[tuple[str, list[PredictionIds], list[int], Predictions, list[float]]]:
    """The answers of each version (in order of first answer) with their outputs joined, so a
    flush converts each version's outputs in one numpy call instead of one per answer (at a few
    thousand single-row answers per second, the per-answer conversion was most of the flush)."""
    versions: dict[str, list[_Pending]] = {}
    for answer in pending:
        versions.setdefault(answer[0], []).append(answer)
    for version, answers in versions.items():
        results = [answer[3] for answer in answers]
        joined = Predictions(
            values=_joined([r.values for r in results]),
            labels=_joined([r.labels for r in results]),
            probabilities=_joined([r.probabilities for r in results]),
        )
        ids = [answer[1] for answer in answers]
        counts = [answer[2] for answer in answers]
        yield version, ids, counts, joined, [answer[4] for answer in answers]


def _joined(arrays: list[npt.NDArray[Any] | None]) -> npt.NDArray[Any] | None:
    first = arrays[0]
    if first is None:
        return None
    return first if len(arrays) == 1 else np.concatenate(arrays)  # type: ignore[arg-type]


class Feedback:
    """The join of one server (shared by its workers) for the model versions it serves."""

    def __init__(self, cards: Sequence[ModelCard], settings: Settings, directory: Path) -> None:
        self.cards = {card.version: card for card in cards}
        self.rules = {card.version: LabelRule(card.target, card.classes) for card in cards}
        self.window_seconds = settings.feedback_window_seconds
        self.window_rows = settings.feedback_window_rows
        self.flush_seconds = settings.feedback_flush_seconds
        self.quality_rows = settings.quality_window_rows
        self.min_rows = settings.quality_min_rows
        self.margin = settings.quality_margin
        self.path = directory / DATABASE
        self._db = connect(self.path)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()  # one connection per worker, used by two threads
        self._pending: list[_Pending] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0
        for outcome in OUTCOMES:
            LABELS.labels(outcome).inc(0)
        REMEMBERED.inc(0)

    # --- the request path -------------------------------------------------------------------
    def observe(
        self, version: str, batch: ModelInput, result: Predictions, ids: PredictionIds
    ) -> None:
        """Remember an answer's rows (a reference: written by the flush thread)."""
        self._pending.append((version, ids, batch.rows, result, time.time()))

    # --- off the request path ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="modelship-feedback", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.flush()
        with self._lock:
            self._db.close()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except sqlite3.Error as exc:  # never the end of the thread: the next flush retries
                log.warning("feedback: cannot write the predictions to %s: %s", self.path, exc)

    def flush(self, sweep: bool = False) -> None:
        """Write the remembered answers to the shared file, and forget what is past the window
        (every ten seconds at most, or now with `sweep`)."""
        with self._lock:  # the thread and a label request may flush at once
            pending, self._pending = self._pending, []  # one swap: appends go to the new list
            rows = [row for answers in _by_version(pending) for row in self._rows(*answers)]
            if rows:
                with transaction(self._db):
                    self._db.executemany(
                        "INSERT OR REPLACE INTO predictions "
                        "(id, version, at, prediction, probabilities) VALUES (?, ?, ?, ?, ?)",
                        rows,
                    )
                REMEMBERED.inc(len(rows))
            now = time.time()
            if sweep or now >= self._next_sweep:
                self._next_sweep = now + max(self.flush_seconds, 10.0)
                self._sweep(now)

    def _rows(
        self,
        version: str,
        ids: list[PredictionIds],
        counts: list[int],
        result: Predictions,
        at: list[float],
    ) -> Iterator[tuple[str, str, float, Any, bytes | None]]:
        """The rows of one version's answers (`result` holds all their rows, in order)."""
        names = [
            name
            for answer_ids, count in zip(ids, counts, strict=True)
            for name in answer_ids.of(count)
        ]
        times = [when for when, count in zip(at, counts, strict=True) for _ in range(count)]
        if result.values is not None:
            values = _client_floats(result.values).tolist()
            for name, value, when in zip(names, values, times, strict=True):
                yield name, version, when, value, None
            return
        assert result.labels is not None and result.probabilities is not None
        labels = result.labels.astype(str).tolist()
        probabilities = _client_floats(result.probabilities)
        for i, (name, when) in enumerate(zip(names, times, strict=True)):
            yield name, version, when, labels[i], probabilities[i].tobytes()

    def _sweep(self, now: float) -> None:
        """Forget predictions past the window or beyond its row bound (the oldest first),
        keeping their ids as long again to tell a late label from an unknown one."""
        old = "at < ? OR rowid <= (SELECT max(rowid) FROM predictions) - ?"
        limits = (now - self.window_seconds, self.window_rows)
        with transaction(self._db):
            self._db.execute(
                f"INSERT OR REPLACE INTO forgotten SELECT id, at FROM predictions WHERE {old}",  # noqa: S608 - a constant
                limits,
            )
            self._db.execute(f"DELETE FROM predictions WHERE {old}", limits)  # noqa: S608
            self._db.execute(
                "DELETE FROM forgotten WHERE at < ? "
                "OR rowid <= (SELECT max(rowid) FROM forgotten) - ?",
                (now - 2 * self.window_seconds, self.window_rows),
            )
            for version in self.cards:
                self._trim_labels(version)

    def _trim_labels(self, version: str) -> None:
        self._db.execute(
            "DELETE FROM labels WHERE version = ? AND seq <= "
            "(SELECT seq FROM labels WHERE version = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (version, version, self.quality_rows),
        )

    def remembered(self) -> int:
        """Predictions in the join now (all workers')."""
        with self._lock:
            count: int = self._db.execute("SELECT count(*) FROM predictions").fetchone()[0]
        return count

    # --- labels in --------------------------------------------------------------------------
    def receive(self, items: Iterable[tuple[Any, Any]]) -> FeedbackReport:
        """Join `(id, label)` items to the predictions they judge; every item is counted."""
        with sqlite_errors(self.path, "join the labels in"):
            return self._receive(items)

    def _receive(self, items: Iterable[tuple[Any, Any]]) -> FeedbackReport:
        self.flush()  # this worker's latest answers can be labelled at once
        report = FeedbackReport()
        now = time.time()
        seen: set[str] = set()
        with self._lock, transaction(self._db):
            for index, (item_id, value) in enumerate(items):
                report.received += 1
                if not isinstance(item_id, str) or not 0 < len(item_id) <= MAX_ID_CHARS:
                    report.count(
                        "invalid",
                        index,
                        None,
                        f"id must be a prediction id (text of 1 to {MAX_ID_CHARS} characters), "
                        f"got {str(item_id)[:60]!r}",
                    )
                    continue
                outcome, message = self._join(item_id, value, now, seen, report)
                report.count(outcome, index, item_id, message)
            for version in report.joined_by_version:
                self._trim_labels(version)
        for name, count in report.counts.items():
            if count:
                LABELS.labels(name).inc(count)
        return report

    def _join(
        self, item_id: str, value: Any, now: float, seen: set[str], report: FeedbackReport
    ) -> tuple[Outcome, str]:
        found = self._db.execute(
            "SELECT version, at, prediction, probabilities, labelled FROM predictions WHERE id = ?",
            (item_id,),
        ).fetchone()
        if found is None:
            if self._db.execute("SELECT 1 FROM forgotten WHERE id = ?", (item_id,)).fetchone():
                return "expired", self._expired_message()
            return "unknown", "no prediction with this id (never answered, or by another server)"
        version, at, prediction, probabilities, labelled = found
        if labelled or item_id in seen:
            return "duplicate", "this prediction already has a label: the first one counts"
        if at < now - self.window_seconds:
            return "expired", self._expired_message()
        rule = self.rules.get(version)
        if rule is None:  # a version this server no longer serves
            return "expired", f"model version {version} is no longer served here"
        label, problem = rule.parse(value)
        if problem is not None:
            return "invalid", problem
        seen.add(item_id)
        self._db.execute("UPDATE predictions SET labelled = 1 WHERE id = ?", (item_id,))
        self._db.execute(
            "INSERT INTO labels (id, version, at, truth, prediction, probabilities) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, version, now, label, prediction, probabilities),
        )
        report.joined_by_version[version] = report.joined_by_version.get(version, 0) + 1
        return "joined", ""

    def _expired_message(self) -> str:
        return (
            f"the prediction is older than the join's window ({self.window_seconds:g} s or "
            f"{self.window_rows} predictions): score it offline with `modelship quality`"
        )

    # --- live quality -----------------------------------------------------------------------
    def quality(self) -> dict[str, dict[str, Any]]:
        """Per model version: the live metrics over the last labelled rows, beside the card's
        training and test figures, and whether live quality fell below the test figure."""
        answer: dict[str, dict[str, Any]] = {}
        for version, card in self.cards.items():
            with self._lock, sqlite_errors(self.path, "read the labelled rows from"):
                rows = self._db.execute(
                    "SELECT truth, prediction, probabilities FROM labels WHERE version = ? "
                    "ORDER BY seq DESC LIMIT ?",
                    (version, self.quality_rows),
                ).fetchall()
            answer[version] = self._judge(card, rows)
        return answer

    def _judge(self, card: ModelCard, rows: list[tuple[Any, Any, Any]]) -> dict[str, Any]:
        live = joined_metrics(card.classes, rows) if rows else None
        test = card.metrics.get("test") or {}
        metric = HEADLINE[card.task]
        state = "ok"
        if len(rows) < self.min_rows or live is None:
            state = "insufficient_data"
        elif (
            isinstance(test.get(metric), float)
            and live[metric] is not None
            and live[metric] < test[metric] - self.margin
        ):
            state = "below_test"
        return {
            "labelled_rows": len(rows),
            "window_rows": self.quality_rows,
            "min_rows": self.min_rows,
            "metric": metric,
            "margin": self.margin,
            "state": state,
            "live": live,
            "test": test or None,
            "train": card.metrics.get("train"),
        }


class QualityCollector:
    """Adds live quality to a /metrics scrape, per model version: each of the card's metrics as
    measured live and as on the training and test splits (`source`), the labelled rows, and
    whether live quality is below the test figure (what ModelshipQualityBelowTest watches)."""

    def __init__(self, feedback: Feedback) -> None:
        self.feedback = feedback

    def describe(self) -> list[Metric]:
        return []  # registering must not compute anything

    def collect(self) -> Iterator[Metric]:
        quality = GaugeMetricFamily(
            "modelship_quality",
            "Model quality by the card's metrics: live (the latest labelled rows), test, train",
            labels=["model_version", "metric", "source"],
        )
        rows = GaugeMetricFamily(
            "modelship_quality_labelled_rows",
            "Labelled rows live quality is measured over",
            labels=["model_version"],
        )
        below = GaugeMetricFamily(
            "modelship_quality_below_test",
            "1 when live quality is below the test figure by more than MODELSHIP_QUALITY_MARGIN "
            "(over at least MODELSHIP_QUALITY_MIN_ROWS labelled rows)",
            labels=["model_version"],
        )
        for version, judged in self.feedback.quality().items():
            for source in ("live", "test", "train"):
                for metric, value in (judged[source] or {}).items():
                    if isinstance(value, float):
                        quality.add_metric([version, metric, source], value)
            rows.add_metric([version], judged["labelled_rows"])
            below.add_metric([version], 1.0 if judged["state"] == "below_test" else 0.0)
        yield from (quality, rows, below)


def joined_metrics(
    classes: list[str] | None, rows: Sequence[tuple[Any, Any, Any]]
) -> dict[str, Any]:
    """The card's metrics on joined rows of (label, prediction, probabilities): a regression's
    (`classes` None) or a classifier's, whose probabilities are float64 bytes in class order."""
    truth = [row[0] for row in rows]
    predicted = [row[1] for row in rows]
    if classes is None:
        return dict(regression_metrics(truth, predicted))
    probabilities = np.stack([np.frombuffer(row[2], dtype=np.float64) for row in rows])
    return classification_metrics(truth, predicted, probabilities, classes)

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
of them (the oldest answers go first, each whole, so the bound may be passed by less than one
answer); the ids of forgotten ones are kept at least as long again, so a late label is reported
as expired rather than unknown. Live quality is the card's own metrics over the last
`quality_window_rows` labelled rows of each model version (`quality`), computed by
`modelship.model_quality`, the code that computed the card's test figures.
"""

from __future__ import annotations

import csv
import hashlib
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
import orjson
from prometheus_client import Counter, Metric
from prometheus_client.core import GaugeMetricFamily

from modelship.contracts.card import ModelCard
from modelship.contracts.settings import Settings
from modelship.errors import InvalidInput, MalformedBody
from modelship.errors import Problem as InputProblem
from modelship.model_quality import classification_metrics, regression_metrics
from modelship.serving.shared import connect, sqlite_errors, transaction

if TYPE_CHECKING:
    from modelship.model.codecs.base import ModelInput
    from modelship.model.predictor import Predictions

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

# One entry per answer (a single record, a JSON batch, a CSV chunk), not one per row: the ids of
# its rows are `<request_id>#<first + i>`, so a label finds its row from the id alone, and an
# upload costs one insert per chunk instead of one per row (docs/benchmarks.md#csv-at-2x).
# `first` is -1 for a single record, whose id is the request id itself. `upto` counts the rows
# answered up to this entry (all workers'): it is the table's rowid, so answers are appended at
# the end in the order they were written and the window is a range of it (`answered.forgotten`
# is the last entry forgotten). A forgotten answer keeps its id and loses its predictions
# (`numbers` NULL) for another window, so a late label is told apart from an unknown one; then it
# is deleted from the front. The one index, of id hashes by generation (below), is the only tree
# an answer goes into at a random place, and a small part of it: that keeps a full window as
# cheap to write as a filling one (docs/monitoring.md#feedback).
SCHEMA = """
CREATE TABLE answers (
    upto INTEGER PRIMARY KEY, generation INTEGER NOT NULL, id_hash INTEGER NOT NULL,
    request_id TEXT NOT NULL, first INTEGER NOT NULL, rows INTEGER NOT NULL,
    version TEXT NOT NULL, at REAL NOT NULL, dtype TEXT, numbers BLOB, labels BLOB
);
CREATE INDEX answers_by_id ON answers (generation, id_hash);
CREATE TABLE answered (
    total INTEGER NOT NULL, forgotten INTEGER NOT NULL, generation_rows INTEGER NOT NULL
);
CREATE TABLE labelled (
    id TEXT NOT NULL, at REAL NOT NULL, upto INTEGER NOT NULL, PRIMARY KEY (id, upto)
);
CREATE INDEX labelled_by_upto ON labelled (upto);
CREATE INDEX labelled_by_at ON labelled (at);
CREATE TABLE labels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, version TEXT NOT NULL,
    at REAL NOT NULL, truth NOT NULL, prediction NOT NULL, probabilities BLOB
);
CREATE INDEX labels_by_version ON labels (version, seq);
"""
# `PRAGMA user_version` of a file with this schema. A file written by another one (a
# MODELSHIP_STATE_DIR kept across an upgrade) is started afresh: the join outlives no server.
SCHEMA_VERSION = 2
TABLES = ("answers", "answered", "forgotten_answers", "labelled", "labels")
# The id index is keyed by (generation, hash): a generation is the answers of a run of
# `generation_rows` rows (a window's eighth, at least 16,384), so an answer is inserted into the
# latest generation's small subtree, not a random place in the whole window's, and a label is
# looked up in each generation still kept (about 17 probes at most).
GENERATIONS = 8
MIN_GENERATION_ROWS = 16_384
SINGLE = -1  # `first` of a single record's answer


def _id_hash(request_id: str) -> int:
    """The index key of a request id: 64 bits of BLAKE2b, signed as SQLite's integers are. A
    client chooses its request ids, so not a checksum whose collisions are easy to make; a
    collision only costs comparing the ids."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _create(db: sqlite3.Connection, window_rows: int) -> None:
    """The join's tables, unless the file has them (another worker made them first)."""
    generation_rows = max(MIN_GENERATION_ROWS, window_rows // GENERATIONS)
    with transaction(db):
        if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        for table in TABLES:
            db.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO answered VALUES (0, 0, ?)", (generation_rows,))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


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


def _stored(result: Predictions) -> tuple[str, bytes, bytes | None]:
    """An answer's predictions as stored: the model's numbers (values, or probabilities) as raw
    bytes of their dtype, and a classifier's labels as a JSON list. Nothing per row: the client's
    figures are made only for the rows that get a label (`_prediction`)."""
    if result.values is not None:
        return result.values.dtype.str, result.values.tobytes(), None
    assert result.labels is not None and result.probabilities is not None
    probabilities = np.ascontiguousarray(result.probabilities)
    labels = orjson.dumps(result.labels.astype(str).tolist())
    return f"{probabilities.dtype.str}/{probabilities.shape[1]}", probabilities.tobytes(), labels


def _prediction(
    row: int, dtype: str, numbers: bytes, labels: bytes | None
) -> tuple[Any, bytes | None]:
    """Row `row` of a stored answer as the client read it: (the value, None), or (the label,
    its probabilities as float64 bytes)."""
    if labels is None:
        return float(_client_floats(np.frombuffer(numbers, dtype)[row : row + 1])[0]), None
    kind, classes = dtype.split("/")
    width = int(classes)
    probabilities = np.frombuffer(numbers, kind)[row * width : (row + 1) * width]
    return orjson.loads(labels)[row], _client_floats(probabilities).tobytes()


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
        _create(self._db, self.window_rows)
        self._lock = threading.Lock()  # one connection per worker, used by two threads
        self._pending: list[tuple[str, PredictionIds, int, Predictions, float]] = []
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
        (once a flush period at most, or now with `sweep`), in one transaction: a page the
        writes and the sweep both change is written to the log once."""
        with self._lock:  # the thread and a label request may flush at once
            pending, self._pending = self._pending, []  # one swap: appends go to the new list
            now = time.time()
            sweeping = sweep or now >= self._next_sweep
            if not pending and not sweeping:
                return
            with transaction(self._db):
                if pending:
                    self._write(pending)
                if sweeping:
                    # Every flush: each sweep then forgets about one flush's answers, a range at
                    # the table's front, instead of a burst every 10 s that took a 500m
                    # replica's CPU for a quarter of a second at 2,000 answers/s
                    # (docs/capacity.md).
                    self._next_sweep = now + self.flush_seconds
                    self._sweep(now)
            REMEMBERED.inc(sum(answer[2] for answer in pending))

    def _write(self, pending: list[tuple[str, PredictionIds, int, Predictions, float]]) -> None:
        total, _, generation_rows = self._bounds()
        entries = []
        for version, ids, count, result, at in pending:
            if count == 0:  # no row to label (and `upto` must grow)
                continue
            total += count
            first = SINGLE if ids.first is None else ids.first
            key = (total // generation_rows, _id_hash(ids.request_id))
            entry = (total, *key, ids.request_id, first, count, version, at)
            entries.append((*entry, *_stored(result)))
        self._db.executemany(
            "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entries
        )
        self._db.execute("UPDATE answered SET total = ?", (total,))

    def _bounds(self) -> tuple[int, int, int]:
        """Rows answered so far by every worker (the `upto` of the latest answer), the `upto`
        of the last answer forgotten, and the rows of a generation of the id index."""
        total, forgotten, generation_rows = self._db.execute(
            "SELECT total, forgotten, generation_rows FROM answered"
        ).fetchone()
        return int(total), int(forgotten), int(generation_rows)

    def _cut(self, after: int, total: int, seconds: float, rows: int, now: float) -> int:
        """The `upto` up to which answers are past `seconds` or beyond the latest `rows` rows:
        the row bound, or the answers before the first one after `after` answered within
        `seconds` (the scan stops there: answers are in about the order they were answered,
        and one a worker wrote a moment late is judged by its own time when labelled)."""
        recent = self._db.execute(
            "SELECT upto - rows FROM answers WHERE upto > ? AND at >= ? ORDER BY upto LIMIT 1",
            (after, now - seconds),
        ).fetchone()
        return max(total - rows, total if recent is None else int(recent[0]))

    def _sweep(self, now: float) -> None:
        """Forget answers past the window or beyond its row bound (the oldest first; an answer
        goes once its last row is beyond it), keeping their ids as long again to tell a late
        label from an unknown one. Each step is a range of the table's rowid, from the front."""
        total, forgotten, generation_rows = self._bounds()
        cut = self._cut(forgotten, total, self.window_seconds, self.window_rows, now)
        if cut > forgotten:
            self._db.execute(
                "UPDATE answers SET dtype = NULL, numbers = NULL, labels = NULL "
                "WHERE upto > ? AND upto <= ?",
                (forgotten, cut),
            )
            self._db.execute("UPDATE answered SET forgotten = ?", (cut,))
        # Ids go a whole generation at a time (kept a little longer than the window again):
        # its index entries are neighbours, so each index page is emptied once, not rewritten
        # by every sweep.
        gone = self._cut(0, total, 2 * self.window_seconds, 2 * self.window_rows, now)
        self._db.execute(
            "DELETE FROM answers WHERE upto < ?", (gone // generation_rows * generation_rows,)
        )
        self._db.execute(
            "DELETE FROM labelled WHERE at < ? OR upto <= ?",
            (now - self.window_seconds, total - self.window_rows),
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
            count: int = self._db.execute(
                "SELECT coalesce(sum(rows), 0) FROM answers WHERE upto > "
                "(SELECT forgotten FROM answered) AND numbers IS NOT NULL"
            ).fetchone()[0]
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
            kept = self._kept_generations()
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
                outcome, message = self._join(item_id, value, now, seen, report, kept=kept)
                report.count(outcome, index, item_id, message)
            for version in report.joined_by_version:
                self._trim_labels(version)
        for name, count in report.counts.items():
            if count:
                LABELS.labels(name).inc(count)
        return report

    def _join(
        self,
        item_id: str,
        value: Any,
        now: float,
        seen: set[str],
        report: FeedbackReport,
        *,
        kept: str | None,
    ) -> tuple[Outcome, str]:
        found = self._find(item_id, "version, at, upto, dtype, numbers, labels", kept)
        if found is None:
            return "unknown", "no prediction with this id (never answered, or by another server)"
        row, (version, at, upto, dtype, numbers, labels) = found
        if numbers is None:  # forgotten: its id is kept to say so
            return "expired", self._expired_message()
        # `upto` tells answers apart: a request id sent again is a new answer, labelled anew
        labelled = "SELECT 1 FROM labelled WHERE id = ? AND upto = ?"
        if item_id in seen or self._db.execute(labelled, (item_id, upto)).fetchone():
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
        prediction, probabilities = _prediction(row, dtype, numbers, labels)
        self._db.execute("INSERT INTO labelled VALUES (?, ?, ?)", (item_id, at, upto))
        self._db.execute(
            "INSERT INTO labels (id, version, at, truth, prediction, probabilities) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, version, now, label, prediction, probabilities),
        )
        report.joined_by_version[version] = report.joined_by_version.get(version, 0) + 1
        return "joined", ""

    def _kept_generations(self) -> str | None:
        """The condition that selects the generations of the id index that have entries (one
        probe each), or None when the join holds no answer. Read once per batch of labels: a
        label request writes no answers."""
        total, _, generation_rows = self._bounds()
        oldest = self._db.execute("SELECT min(upto) FROM answers").fetchone()[0]
        if oldest is None:
            return None
        generations = range(oldest // generation_rows, total // generation_rows + 1)
        return f"generation IN ({', '.join(map(str, generations))})"

    def _find(
        self, item_id: str, columns: str, kept: str | None
    ) -> tuple[int, tuple[Any, ...]] | None:
        """The latest answer holding the row `item_id` names, and the row's index in it:
        `<request id>#<index>` (a row of a batch), else the id of a single record. The id is
        looked up in each generation of the index `kept` selects."""
        if kept is None:
            return None
        request_id, sep, index = item_id.rpartition("#")
        if sep and index.isascii() and index.isdigit():
            row = int(index)
            found = self._db.execute(
                f"SELECT first, {columns} FROM answers WHERE {kept} AND id_hash = ? "  # noqa: S608 - integers and constants
                "AND request_id = ? AND first >= 0 AND first <= ? AND first + rows > ? "
                "ORDER BY upto DESC LIMIT 1",
                (_id_hash(request_id), request_id, row, row),
            ).fetchone()
            if found is not None:
                return row - found[0], found[1:]
        found = self._db.execute(
            f"SELECT {columns} FROM answers WHERE {kept} AND id_hash = ? "  # noqa: S608
            "AND request_id = ? AND first = ? ORDER BY upto DESC LIMIT 1",
            (_id_hash(item_id), item_id, SINGLE),
        ).fetchone()
        return None if found is None else (0, found)

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

"""Per-feature data quality and drift, counted from the model's input arrays as they are served.

The request path only sets the served values aside (`observe`): a small batch's values as plain
Python numbers and strings appended to one list per column (no numpy call per array, nothing of
the request kept alive), a larger batch's arrays as they are. A background thread folds them into
counters and a sliding window of bin counts every `monitor_interval_seconds` (sooner when many
rows wait), vectorised over everything that arrived meanwhile; reading the drift view folds too,
so it is never behind. A request never folds.

Multi-worker: each worker keeps its share of the window and publishes its bin counts as a
Prometheus gauge in `livesum` mode, so with PROMETHEUS_MULTIPROC_DIR set (as `modelship serve`
does) the files of all workers add up to one window, the same whichever worker answers.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from modelship.contracts.card import Distribution, Feature, ModelCard, NumericDistribution
from modelship.contracts.settings import Settings
from modelship.errors import ModelshipError
from modelship.serving.monitoring.distribution import (
    bin_counts,
    numeric_bins,
    psi,
    reference_shares,
)
from modelship.serving.telemetry import MULTIPROC_ENV

if TYPE_CHECKING:
    from modelship.model.predictor import Predictions

# Up to this many rows a batch's values are copied out as Python objects, which costs less than
# keeping its arrays (and everything they hold on to) alive until the fold: bench/monitor_cost.py
# measured that keeping one-row batches cost several times what the hook itself did.
SMALL_BATCH_ROWS = 8
# When this many values (rows x features) wait, the background thread folds without waiting
# for its interval, so what waits stays bounded under heavy traffic whatever the table's width:
# about 100,000 rows of the 6-feature default model (a 100,000-row upload is folded once, not
# five times while its chunks are predicted: each fold bins the window's rows again, and the
# thread's work competed with the upload's for the cores), 3,000 rows of a 200-column table.
FLUSH_VALUES = 600_000

SignalKind = Literal["feature", "prediction"]
State = Literal["ok", "drift", "insufficient_data", "unavailable"]
STATES: tuple[State, ...] = ("ok", "drift", "insufficient_data", "unavailable")

MISSING = Counter(
    "modelship_feature_missing_values",
    "Values served that were missing (imputed by the model), per feature",
    ("feature",),
)
OUT_OF_RANGE = Counter(
    "modelship_feature_out_of_range_values",
    "Numeric values served outside the training range (min to max of the model card)",
    ("feature",),
)
UNSEEN = Counter(
    "modelship_feature_unseen_categories",
    "Categorical values served that training never saw (the model ignores them)",
    ("feature",),
)
WINDOW_BINS_METRIC = "modelship_drift_window_bin_rows"
WINDOW_BINS = Gauge(
    WINDOW_BINS_METRIC,
    "Rows of the recent-rows window per bin of the training distribution (summed over workers)",
    ("kind", "feature", "bin"),
    multiprocess_mode="livesum",
)
LIVESUM_FILE = re.compile(r"^gauge_livesum_(\d+)\.db$")


@dataclass
class _Signal:
    """One monitored column: a feature, or the predictions."""

    kind: SignalKind
    name: str
    threshold: float
    reference: Distribution | None
    ring: npt.NDArray[np.int16] = field(default_factory=lambda: np.empty(0, dtype=np.int16))
    position: int = 0
    counts: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    published: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    gauges: list[Any] = field(default_factory=list)
    edges: npt.NDArray[np.float32] | None = None
    bins_of: dict[str, int] | None = None  # categorical: category -> bin; unseen -> other

    def start_window(self, capacity: int) -> None:
        if self.reference is None:
            return
        size = len(reference_shares(self.reference))
        self.ring = np.full(capacity, -1, dtype=np.int16)
        self.counts = np.zeros(size)
        self.published = np.full(size, -1.0)
        self.gauges = [WINDOW_BINS.labels(self.kind, self.name, str(b)) for b in range(size)]
        if isinstance(self.reference, NumericDistribution):
            self.edges = np.asarray(self.reference.edges, dtype=np.float32)
        else:
            self.bins_of = {name: i for i, name in enumerate(self.reference.frequencies)}
        self.publish()

    def bins(self, column: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
        if self.edges is not None:
            # The reference binned float32 values: a float64 input binned as float32 lands in
            # the bin its training twin did.
            return numeric_bins(self.edges, column.astype(np.float32, copy=False))
        assert self.bins_of is not None
        # map() over C callables: no Python frame per row (a CSV chunk is thousands of rows)
        texts = map(str, column.reshape(-1).tolist())
        found = map(self.bins_of.get, texts, repeat(len(self.bins_of)))
        return np.fromiter(found, dtype=np.intp, count=column.size)

    @property
    def capacity(self) -> int:
        """The window's rows: the most recent rows that can still be in it after a push
        (binning the rest of a large upload, 100,000 rows against a few thousand, is wasted)."""
        return len(self.ring)

    def push(self, bins: npt.NDArray[np.intp]) -> None:
        """Slide the window: the newest rows replace the oldest."""
        capacity = len(self.ring)
        if len(bins) >= capacity:
            self.ring[:] = bins[-capacity:]
            self.position = 0
            self.counts = bin_counts(self.ring.astype(np.intp), len(self.counts))
            return
        slots = (self.position + np.arange(len(bins))) % capacity
        leaving = self.ring[slots]
        self.counts -= bin_counts(leaving[leaving >= 0].astype(np.intp), len(self.counts))
        self.ring[slots] = bins
        self.counts += bin_counts(bins, len(self.counts))
        self.position = int((self.position + len(bins)) % capacity)

    def publish(self) -> None:
        for index in np.flatnonzero(self.counts != self.published):
            self.gauges[index].set(float(self.counts[index]))
        self.published = self.counts.copy()


@dataclass(frozen=True)
class SignalDrift:
    kind: SignalKind
    name: str
    statistic: float | None
    threshold: float
    state: State
    rows: int

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "statistic": None if self.statistic is None else round(self.statistic, 6),
            "threshold": self.threshold,
            "state": self.state,
            "rows": self.rows,
        }


class _Column:
    """What is counted for every row of one feature, distribution or not."""

    def __init__(self, feature: Feature) -> None:
        self.input_name = feature.input_name
        self.numeric = feature.numeric
        self.known = frozenset(feature.categories or ())
        self.dtype = np.float32 if feature.numeric is not None else object
        # Only the counters that can move for this kind of feature; created at zero, so rate()
        # works before the first problem.
        if self.numeric is not None:
            self.missing = MISSING.labels(feature.name)
            self.out_of_range = OUT_OF_RANGE.labels(feature.name)
            self.missing.inc(0)
            self.out_of_range.inc(0)
        else:  # a categorical value cannot be missing: the codec refuses a null category
            self.unseen = UNSEEN.labels(feature.name)
            self.unseen.inc(0)

    def count(self, column: npt.NDArray[Any]) -> None:
        if self.numeric is not None:
            missing = int(np.isnan(column).sum())
            if missing:
                self.missing.inc(missing)
            with np.errstate(invalid="ignore"):
                outside = int(((column < self.numeric.min) | (column > self.numeric.max)).sum())
            if outside:
                self.out_of_range.inc(outside)
        else:
            values = column.reshape(-1).tolist()
            if self.known.issuperset(values):  # the common case in one C pass, no count per row
                return
            unseen = len(values) - sum(map(self.known.__contains__, values))
            self.unseen.inc(unseen)


class Monitor:
    """Counters and drift windows for one served model; `observe` is the only hot-path call."""

    def __init__(self, card: ModelCard, settings: Settings) -> None:
        unknown = sorted(set(settings.drift_feature_thresholds) - {f.name for f in card.features})
        if unknown:
            raise ModelshipError(
                f"MODELSHIP_DRIFT_FEATURE_THRESHOLDS names {', '.join(map(repr, unknown))}, not "
                f"a feature of the model; features: {', '.join(f.name for f in card.features)}"
            )
        self.settings = settings
        self.is_classifier = card.task == "classification"
        self.min_rows = settings.drift_min_rows
        self._columns = [_Column(f) for f in card.features]
        self._features = [
            _Signal(
                "feature",
                f.name,
                settings.drift_feature_thresholds.get(f.name, settings.drift_threshold),
                f.distribution,
            )
            for f in card.features
        ]
        self._prediction = _Signal(
            "prediction",
            card.target,
            settings.prediction_drift_threshold,
            card.prediction_distribution,
        )
        capacity = self._window_rows = math.ceil(settings.drift_window_rows / settings.workers)
        for signal in self.signals:
            signal.start_window(capacity)
        # Small batches: one list of plain values per model input and one for the predictions.
        # Appended by requests and taken by the fold with single list operations, which are
        # atomic, so the request path takes no lock.
        self._pending: list[tuple[str, list[Any]]] = [
            (column.input_name, []) for column in self._columns
        ]
        self._pending_predictions: list[Any] = []
        # Larger batches: what the fold needs of their arrays (`_kept`), and whether their
        # categories are all known.
        self._queue: deque[tuple[dict[str, npt.NDArray[Any]], npt.NDArray[Any], bool]] = deque()
        self._waiting_rows = 0  # only decides when to wake the thread early: races are harmless
        self._flush_rows = max(1, FLUSH_VALUES // max(1, len(self._columns)))
        self._fold_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Run by the monitor's thread after each fold (the CloudWatch emitter, when enabled).
        self.periodic: list[Callable[[], None]] = []

    @property
    def signals(self) -> list[_Signal]:
        return [*self._features, self._prediction]

    # --- the request path -------------------------------------------------------------------
    def observe(
        self,
        feeds: dict[str, npt.NDArray[Any]],
        predictions: Predictions,
        *,
        categories_known: bool = False,
    ) -> None:
        """Set a served batch aside, its model inputs and its predictions; nothing else.
        `categories_known`: the codec found every categorical value among the known ones, so
        none is counted as unseen without looking again."""
        rows = len(predictions)
        if rows == 1:
            for name, pending in self._pending:
                pending.append(feeds[name].item())
            self._pending_predictions.append(_predicted(predictions).item())
        elif rows <= SMALL_BATCH_ROWS:
            for name, pending in self._pending:
                pending.extend(feeds[name].reshape(-1).tolist())
            self._pending_predictions.extend(_predicted(predictions).tolist())
        else:
            self._queue.append(
                (*self._kept(feeds, predictions, categories_known), categories_known)
            )
        self._waiting_rows += rows
        if self._waiting_rows >= self._flush_rows:
            self._wake.set()

    def _kept(
        self, feeds: dict[str, npt.NDArray[Any]], predictions: Predictions, categories_known: bool
    ) -> tuple[dict[str, npt.NDArray[Any]], npt.NDArray[Any]]:
        """What the fold needs of a large batch: every numeric value (missing and out-of-range
        values are counted over all rows), but of the categories (when the codec found them all
        known) and of the predictions only the rows that can stay in the window. Kept whole, a
        100,000-row upload held every category cell it read until the fold."""
        window = self._window_rows
        kept = {}
        for column in self._columns:
            values = feeds[column.input_name].reshape(-1)
            if column.numeric is None and categories_known and len(values) > window:
                values = values[len(values) - window :].copy()
            kept[column.input_name] = values
        predicted = _predicted(predictions)
        if len(predicted) > window:
            predicted = predicted[len(predicted) - window :].copy()
        return kept, predicted

    # --- off the request path ---------------------------------------------------------------
    def start(self) -> None:
        """Fold what was served every `monitor_interval_seconds`, in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="modelship-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.fold()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.monitor_interval_seconds)
            self._wake.clear()
            self.fold()
            for task in self.periodic:
                task()

    def fold(self) -> None:
        """Count and bin everything served so far (one numpy pass per column)."""
        with self._fold_lock:
            self._waiting_rows = 0
            batches = []
            while self._queue:
                batches.append(self._queue.popleft())
            small = [_take(pending) for _, pending in self._pending]
            small_predictions = _take(self._pending_predictions)
            if not batches and not small_predictions:
                return
            for column, signal, values in zip(self._columns, self._features, small, strict=True):
                parts = [np.asarray(values, dtype=column.dtype)] if values else []
                counted = list(parts)
                for feeds, _, categories_known in batches:
                    parts.append(feeds[column.input_name].reshape(-1))
                    if column.numeric is not None or not categories_known:
                        counted.append(parts[-1])
                for part in counted:  # counted part by part: no copy of a whole large upload
                    column.count(part)
                if signal.reference is not None:
                    signal.push(signal.bins(_last_rows(parts, signal.capacity)))
                    signal.publish()
            if self._prediction.reference is not None:
                parts = [np.asarray(small_predictions)] if small_predictions else []
                parts += [predicted for _, predicted, _ in batches]
                predicted = _last_rows(parts, self._prediction.capacity)
                if self.is_classifier and predicted.dtype.kind != "O":
                    predicted = predicted.astype(str).astype(object)
                self._prediction.push(self._prediction.bins(predicted))
                self._prediction.publish()

    # --- the view, the same from every worker -----------------------------------------------
    def window_counts(self) -> dict[tuple[str, str], list[float]]:
        """Bin counts of the whole window: every worker's (multiprocess files) or this one's."""
        self.fold()
        if not os.environ.get(MULTIPROC_ENV):
            return {(s.kind, s.name): list(s.counts) for s in self.signals if s.reference}
        totals: dict[tuple[str, str], list[float]] = {
            (s.kind, s.name): [0.0] * len(s.counts) for s in self.signals if s.reference
        }
        for metric in collected_metrics():
            if metric.name != WINDOW_BINS_METRIC:
                continue
            for sample in metric.samples:
                labels = sample.labels
                bins = totals.get((labels["kind"], labels["feature"]))
                index = int(labels["bin"])
                if bins is not None and index < len(bins):
                    bins[index] += sample.value
        return totals

    def drift(self) -> list[SignalDrift]:
        counts = self.window_counts()
        return [self._state(s, counts.get((s.kind, s.name))) for s in self.signals]

    def _state(self, signal: _Signal, counts: list[float] | None) -> SignalDrift:
        if signal.reference is None or counts is None:
            return SignalDrift(signal.kind, signal.name, None, signal.threshold, "unavailable", 0)
        rows = int(sum(counts))
        if rows < self.min_rows:
            return SignalDrift(
                signal.kind, signal.name, None, signal.threshold, "insufficient_data", rows
            )
        value = psi(reference_shares(signal.reference), signal.reference.rows, counts)
        state: State = "drift" if value > signal.threshold else "ok"
        return SignalDrift(signal.kind, signal.name, value, signal.threshold, state, rows)


def collected_metrics() -> Iterable[Metric]:
    """This process's metrics, or with PROMETHEUS_MULTIPROC_DIR the sum of every worker's."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY.collect()
    _forget_dead_workers(Path(directory))
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
    return registry.collect()


def _predicted(predictions: Predictions) -> npt.NDArray[Any]:
    """What the prediction drift is measured on: the values, or the predicted classes."""
    column = predictions.values if predictions.values is not None else predictions.labels
    assert column is not None
    return column.reshape(-1)


def _last_rows(parts: list[npt.NDArray[Any]], rows: int) -> npt.NDArray[Any]:
    """The last `rows` rows of `parts` joined, copying only the parts that hold them."""
    kept, count = [], 0
    for part in reversed(parts):
        if count >= rows:
            break
        kept.append(part)
        count += len(part)
    return np.concatenate(kept[::-1])[-rows:]


def _take(pending: list[Any]) -> list[Any]:
    """The values appended so far, removed from the list; appends meanwhile stay for next time."""
    count = len(pending)
    taken = pending[:count]
    del pending[:count]
    return taken


def _forget_dead_workers(directory: Path) -> None:
    """Drop the window files of workers that exited (a restarted worker starts a new window)."""
    for path in directory.glob("gauge_livesum_*.db"):
        match = LIVESUM_FILE.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            prometheus_multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, someone else's
            pass


class DriftCollector:
    """Adds the drift view to a /metrics scrape: statistic, threshold, rows and state per signal."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def describe(self) -> list[Metric]:
        return []  # registering must not compute anything

    def collect(self) -> Iterator[Metric]:
        drifts = self.monitor.drift()
        labels = ["kind", "feature"]
        statistic = GaugeMetricFamily(
            "modelship_drift_psi",
            "Population stability index of the window vs training",
            labels=labels,
        )
        threshold = GaugeMetricFamily(
            "modelship_drift_threshold", "PSI above which the signal is in drift", labels=labels
        )
        rows = GaugeMetricFamily(
            "modelship_drift_window_rows", "Rows in the drift window (all workers)", labels=labels
        )
        state = GaugeMetricFamily(
            "modelship_drift_state",
            "1 for the signal's current state (ok, drift, insufficient_data, unavailable)",
            labels=[*labels, "state"],
        )
        for drift in drifts:
            key = [drift.kind, drift.name]
            if drift.statistic is not None:
                statistic.add_metric(key, drift.statistic)
            threshold.add_metric(key, drift.threshold)
            rows.add_metric(key, drift.rows)
            for name in STATES:
                state.add_metric([*key, name], 1.0 if drift.state == name else 0.0)
        yield from (statistic, threshold, rows, state)

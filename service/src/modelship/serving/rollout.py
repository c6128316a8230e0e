"""A rollout: a candidate model version served beside the primary, judged on its own behaviour.

Traffic (`candidate_traffic`): in **shadow** every answer comes from the primary; in **canary N%**
a deterministic N% of routing keys (the `X-Modelship-Route-Key` header, else the request id:
`crc32(key) % 100 < N`) are answered by the candidate. Either way the *other* version scores the
same rows off the request path: the answered request goes to a bounded queue (sampled when busy:
beyond `rollout_scored_per_second` per worker or half of the queue; shed when it is full or the
worker is overloaded: it never delays nor fails an answer) and one daemon thread per worker
scores it and compares the two versions' predictions. The rate cap is what keeps shadow cheap at
saturation: the scoring thread shares the worker's core, so scoring every answer would add its
whole cost to every answer (docs/rollout.md#speed).

The gates judge the latest `rollout_window` compared requests of every worker, kept in the
server's shared SQLite file (`modelship.serving.shared`): the same thread writes this worker's
comparisons there every `rollout_sync_seconds`, evaluates the gates and reads the verdict back.
The first worker whose evaluation reaches `promote` or `abort` writes it (one transaction, so one
writer wins and logs one line); the verdict is final. On `abort` each worker stops routing to the
candidate at its next sync: the brake reaches every worker within `rollout_sync_seconds` (plus one
off-path scoring call), and the request path only reads an attribute of its own process.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client import Counter, Metric
from prometheus_client.core import GaugeMetricFamily

from modelship.contracts.card import ModelCard, NumericDistribution
from modelship.contracts.rollout import check_compatible
from modelship.contracts.settings import Settings, parse_traffic
from modelship.errors import NotFound
from modelship.serving.monitoring.distribution import (
    bin_counts,
    numeric_bins,
    psi,
    reference_shares,
)
from modelship.serving.shared import SharedStateError, connect, sqlite_errors, transaction

if TYPE_CHECKING:
    from modelship.model.codecs.base import ModelInput
    from modelship.model.predictor import Predictions, Predictor
    from modelship.serving.feedback import PredictionIds

DATABASE = "rollout.sqlite3"
ROUTE_KEY_HEADER = "X-Modelship-Route-Key"
VERSION_HEADER = "X-Modelship-Model-Version"
HEADLINE = {"regression": "r2", "classification": "accuracy"}
QUANTILES = {"p50": "0.5", "p99": "0.99"}
log = logging.getLogger("modelship.rollout")

Verdict = Literal["baking", "promote", "abort"]
GateState = Literal["pass", "fail", "insufficient_data"]
Hook = Callable[["ModelInput", "Predictions", "PredictionIds"], None]
# Live quality per model version (`Feedback.quality`).
LiveQuality = Callable[[], dict[str, dict[str, Any]]]

ANSWERS = Counter(
    "modelship_rollout_answers",
    "Requests answered, by the model version that answered",
    ["model_version"],
)
SKIPPED = Counter(
    "modelship_rollout_unscored",
    "Answered requests the other version did not score off the path, by why: sampled (over "
    "the worker's scoring rate, or the queue over half full), full (queue full), overload (the "
    "worker at its in-flight limit)",
    ["reason"],
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS compared (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, pair TEXT NOT NULL, at REAL NOT NULL,
    rows INTEGER NOT NULL, primary_error INTEGER NOT NULL, candidate_error INTEGER NOT NULL,
    primary_ms REAL, candidate_ms REAL, difference REAL, disagreement REAL, distance REAL,
    primary_bins BLOB, candidate_bins BLOB
);
CREATE INDEX IF NOT EXISTS compared_by_pair ON compared (pair, seq);
CREATE TABLE IF NOT EXISTS verdicts (
    pair TEXT PRIMARY KEY, verdict TEXT NOT NULL, at REAL NOT NULL, report TEXT NOT NULL
);
"""


@dataclass
class Version:
    """One loaded model version: what answers and what watches its answers."""

    predictor: Predictor
    hooks: list[Hook] = field(default_factory=list)

    @property
    def card(self) -> ModelCard:
        return self.predictor.card

    @property
    def name(self) -> str:
        return self.predictor.card.version


class _Binner:
    """A version's predictions binned like its card's training prediction distribution."""

    def __init__(self, card: ModelCard) -> None:
        reference = card.prediction_distribution
        self.reference = reference
        self.size = len(reference_shares(reference)) if reference is not None else 0
        self.edges: npt.NDArray[np.float32] | None = None
        self.index: dict[str, int] = {}
        if isinstance(reference, NumericDistribution):
            self.edges = np.asarray(reference.edges, dtype=np.float32)
        elif reference is not None:
            self.index = {name: i for i, name in enumerate(reference.frequencies)}

    def counts(self, result: Predictions) -> bytes | None:
        if self.reference is None:
            return None
        if self.edges is not None:
            assert result.values is not None
            bins = numeric_bins(self.edges, result.values)
        else:
            assert result.labels is not None
            other = len(self.index)
            bins = np.fromiter(
                (self.index.get(str(label), other) for label in result.labels.tolist()),
                dtype=np.intp,
            )
        return bin_counts(bins, self.size).tobytes()

    def psi(self, blobs: Sequence[bytes | None]) -> tuple[float | None, int]:
        """PSI of the summed bin counts against the training shares, and the rows counted."""
        if self.reference is None:
            return None, 0
        total = np.zeros(self.size)
        for blob in blobs:
            if blob is not None:
                total += np.frombuffer(blob, dtype=np.float64)
        rows = int(total.sum())
        if rows == 0:
            return None, 0
        return psi(reference_shares(self.reference), self.reference.rows, total.tolist()), rows


@dataclass
class _Item:
    """An answered request waiting to be scored by the other version."""

    batch: ModelInput
    served: Version
    result: Predictions | None  # None: the served version failed, the fallback answered
    ms: float | None


@dataclass
class Gate:
    """One gate: its value against its threshold, in the model card's terms."""

    gate: str
    value: float | None
    threshold: float
    state: GateState
    reads: str

    def as_json(self) -> dict[str, Any]:
        passed = None if self.state == "insufficient_data" else self.state == "pass"
        return {**asdict(self), "passed": passed}


class Rollout:
    """The primary and the candidate of one worker, their routing, gates and verdict."""

    def __init__(
        self,
        settings: Settings,
        primary: Version,
        candidate: Version,
        directory: Path,
        *,
        overloaded: Callable[[], bool],
        quality: LiveQuality | None = None,
    ) -> None:
        check_compatible(primary.card, candidate.card)
        self.settings = settings
        self.primary = primary
        self.candidate = candidate
        self.versions = {primary.name: primary, candidate.name: candidate}
        self.percent = parse_traffic(settings.candidate_traffic)
        self.mode = "shadow" if self.percent is None else "canary"
        self.pair = f"{primary.name}->{candidate.name}"
        self.quality = quality
        self.overloaded = overloaded
        self.aborted = False  # the brake: read on every request, set by the sync
        self.final: Verdict | None = None
        self.path = directory / DATABASE
        self._db = connect(self.path)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()  # one connection, used by the thread and by /rollout
        self._queue: queue.Queue[_Item] = queue.Queue(settings.rollout_queue)
        self._half = max(settings.rollout_queue // 2, 1)
        self._sampled = 0
        # A token bucket of `rollout_scored_per_second`, one second deep.
        self._rate = settings.rollout_scored_per_second
        self._tokens = self._rate
        self._refilled = time.monotonic()
        self._pending: list[tuple[Any, ...]] = []
        self._binners = {v.name: _Binner(v.card) for v in self.versions.values()}
        self._answers = {v.name: ANSWERS.labels(v.name) for v in self.versions.values()}
        self._skipped = {r: SKIPPED.labels(r) for r in ("sampled", "full", "overload")}
        test = primary.card.metrics.get("test") or {}
        self._scale = test.get("mae") if isinstance(test.get("mae"), float) else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read_verdict()

    # --- the request path -------------------------------------------------------------------
    def route(self, key: str) -> Version:
        """The version that answers a request with this routing key."""
        if self.percent is None or self.aborted:
            return self.primary
        if zlib.crc32(key.encode()) % 100 < self.percent:
            return self.candidate
        return self.primary

    def version(self, name: str) -> Version:
        """A version by name (V2's explicit version), or 404 naming the loaded ones."""
        found = self.versions.get(name)
        if found is None:
            raise NotFound(
                f"model '{self.primary.card.name}' has no version '{name}': the loaded versions "
                f"are '{self.primary.name}' (primary) and '{self.candidate.name}' (candidate)"
            )
        return found

    def predict(self, batch: ModelInput, served: Version) -> tuple[Predictions, Version]:
        """`served`'s answer (the primary's if the candidate fails), with the other version's
        scoring of the same rows queued off the path."""
        started = time.thread_time_ns()
        try:
            result = served.predictor.predict(batch)
        except Exception:
            if served is self.primary:
                raise
            # A candidate that cannot answer counts against it; the client gets the primary's.
            self._offer(_Item(batch, served, None, None))
            result = self.primary.predictor.predict(batch)
            self._answers[self.primary.name].inc()
            return result, self.primary
        ms = (time.thread_time_ns() - started) / 1e6
        self._answers[served.name].inc()
        if self.final is None:
            self._offer(_Item(batch, served, result, ms))
        return result, served

    def _offer(self, item: _Item) -> None:
        if self.overloaded():
            self._skipped["overload"].inc()
            return
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1:
            self._skipped["sampled"].inc()
            return
        self._tokens -= 1
        if self._queue.qsize() >= self._half:
            self._sampled += 1
            if self._sampled % 10:  # one in ten beyond half of the queue
                self._skipped["sampled"].inc()
                return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._skipped["full"].inc()

    # --- off the request path ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="modelship-rollout", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._lock:
            self._db.close()

    def _run(self) -> None:
        period = self.settings.rollout_sync_seconds
        next_sync = time.monotonic() + period
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=max(next_sync - time.monotonic(), 0.0))
            except queue.Empty:
                item = None
            if item is not None:
                self._pending.append(self._compare(item))
            if time.monotonic() >= next_sync:
                next_sync = time.monotonic() + period
                try:
                    self.sync()
                except (sqlite3.Error, SharedStateError) as exc:  # the next sync retries
                    log.warning("rollout: cannot use the shared state %s: %s", self.path, exc)

    def _compare(self, item: _Item) -> tuple[Any, ...]:
        """One compared request: each version's error, compute time, bins, and the divergence."""
        other = self.candidate if item.served is self.primary else self.primary
        started = time.thread_time_ns()
        try:
            theirs: Predictions | None = other.predictor.predict(item.batch)
            other_ms: float | None = (time.thread_time_ns() - started) / 1e6
        except Exception:
            theirs, other_ms = None, None
        results = {item.served.name: (item.result, item.ms), other.name: (theirs, other_ms)}
        ours_p, primary_ms = results[self.primary.name]
        ours_c, candidate_ms = results[self.candidate.name]
        difference = disagreement = distance = None
        if ours_p is not None and ours_c is not None:
            if ours_p.values is not None and ours_c.values is not None:
                delta = ours_p.values.astype(np.float64) - ours_c.values.astype(np.float64)
                difference = float(np.abs(delta).sum())
            elif ours_p.labels is not None and ours_c.labels is not None:
                disagreement = float(np.sum(ours_p.labels != ours_c.labels))
                assert ours_p.probabilities is not None and ours_c.probabilities is not None
                gap = ours_p.probabilities.astype(np.float64) - ours_c.probabilities
                distance = float(0.5 * np.abs(gap).sum())
        return (
            self.pair,
            time.time(),
            item.batch.rows,
            int(ours_p is None),
            int(ours_c is None),
            primary_ms,
            candidate_ms,
            difference,
            disagreement,
            distance,
            self._binners[self.primary.name].counts(ours_p) if ours_p is not None else None,
            self._binners[self.candidate.name].counts(ours_c) if ours_c is not None else None,
        )

    def sync(self) -> None:
        """Write this worker's comparisons, judge the shared window, read the verdict back."""
        pending, self._pending = self._pending, []
        with self._lock:
            if pending:
                with transaction(self._db):
                    self._db.executemany(
                        "INSERT INTO compared (pair, at, rows, primary_error, candidate_error, "
                        "primary_ms, candidate_ms, difference, disagreement, distance, "
                        "primary_bins, candidate_bins) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        pending,
                    )
                    self._db.execute(
                        "DELETE FROM compared WHERE pair = ? AND seq <= (SELECT seq FROM compared "
                        "WHERE pair = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                        (self.pair, self.pair, self.settings.rollout_window),
                    )
        if self._read_verdict() is None:
            report = self.evaluate()
            if report["verdict"] != "baking":
                self._decide(report)

    def _read_verdict(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT verdict, report FROM verdicts WHERE pair = ?", (self.pair,)
            ).fetchone()
        if row is None:
            return None
        self.final = row[0]
        self.aborted = row[0] == "abort"
        report: dict[str, Any] = orjson.loads(row[1])
        return report

    def _decide(self, report: dict[str, Any]) -> None:
        with self._lock, transaction(self._db):
            written = self._db.execute(
                "INSERT OR IGNORE INTO verdicts (pair, verdict, at, report) VALUES (?, ?, ?, ?)",
                (self.pair, report["verdict"], time.time(), orjson.dumps(report)),
            ).rowcount
        self._read_verdict()
        if not written:  # another worker decided first, and said so
            return
        if report["verdict"] == "abort":
            failed = next(g for g in report["gates"] if g["state"] == "fail")
            log.error(
                "rollout: abort: candidate %s stops taking traffic in every worker; gate %s "
                "failed: %s (value %.4g, threshold %g); answering from primary %s",
                self.candidate.name,
                failed["gate"],
                failed["reads"],
                failed["value"],
                failed["threshold"],
                self.primary.name,
            )
        else:
            log.warning(
                "rollout: promote: candidate %s passed every gate over %d compared requests",
                self.candidate.name,
                report["window"]["compared"],
            )

    # --- the gates --------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """What GET /rollout answers: the final verdict's report once there is one, else the
        gates over the shared window now."""
        final = self._read_verdict()
        return final if final is not None else self.evaluate()

    def evaluate(self) -> dict[str, Any]:
        with self._lock, sqlite_errors(self.path, "read the rollout window from"):
            rows = self._db.execute(
                "SELECT rows, primary_error, candidate_error, primary_ms, candidate_ms, "
                "difference, disagreement, distance, primary_bins, candidate_bins FROM compared "
                "WHERE pair = ? ORDER BY seq DESC LIMIT ?",
                (self.pair, self.settings.rollout_window),
            ).fetchall()
        gates = list(self._gates(rows))
        if any(g.state == "fail" for g in gates):
            verdict: Verdict = "abort"
        elif all(g.state == "pass" for g in gates if g.gate != "live_quality"):
            verdict = "promote"
        else:
            verdict = "baking"
        s = self.settings
        return {
            "mode": self.mode,
            "traffic": {
                "candidate_percent": 0 if self.percent is None else self.percent,
                "setting": s.candidate_traffic,
                "route_key_header": ROUTE_KEY_HEADER,
            },
            "primary": _described(self.primary.card),
            "candidate": _described(self.candidate.card),
            "window": {
                "requests": s.rollout_window,
                "min_requests": s.rollout_min_requests,
                "compared": len(rows),
            },
            "gates": [g.as_json() for g in gates],
            "verdict": verdict,
            "versions": self._per_version(rows),
        }

    def _per_version(self, rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
        answer: dict[str, dict[str, Any]] = {}
        for version, error_at, ms_at, bins_at in (
            (self.primary, 1, 3, 8),
            (self.candidate, 2, 4, 9),
        ):
            times = [r[ms_at] for r in rows if r[ms_at] is not None]
            psi_value, psi_rows = self._binners[version.name].psi([r[bins_at] for r in rows])
            answer[version.name] = {
                "error_rate": sum(r[error_at] for r in rows) / len(rows) if rows else None,
                "p50_ms": _quantile(times, 0.5),
                "p99_ms": _quantile(times, 0.99),
                "prediction_psi": psi_value,
                "psi_rows": psi_rows,
            }
        return answer

    def _gates(self, rows: list[tuple[Any, ...]]) -> Iterator[Gate]:
        s = self.settings
        enough = len(rows) >= s.rollout_min_requests
        per = self._per_version(rows)
        p, c = per[self.primary.name], per[self.candidate.name]
        # Rows both versions answered: what the divergence of their predictions is taken over.
        compared_rows = sum(r[0] for r in rows if r[1] == 0 and r[2] == 0)

        def per_row(at: int) -> float | None:
            """A column of summed per-row figures, as a mean over the compared rows."""
            total = sum(r[at] for r in rows if r[at] is not None)
            return total / compared_rows if compared_rows else None

        def gate(
            name: str, value: float | None, threshold: float, reads: str, bad: bool | None = None
        ) -> Gate:
            if not enough or value is None:
                needed = f"{len(rows)} of {s.rollout_min_requests} compared requests needed"
                return Gate(name, value, threshold, "insufficient_data", needed)
            failed = value > threshold if bad is None else bad
            return Gate(name, value, threshold, "fail" if failed else "pass", reads)

        yield gate(
            "error_rate",
            c["error_rate"] - p["error_rate"] if rows else None,
            s.rollout_max_error_rate,
            f"the candidate's model calls fail {c['error_rate'] or 0:.2%} of the time, the "
            f"primary's {p['error_rate'] or 0:.2%}",
        )
        for quantile in ("p50", "p99"):
            ours, theirs = p[f"{quantile}_ms"], c[f"{quantile}_ms"]
            ratio = theirs / ours if ours and theirs is not None else None
            yield gate(
                f"latency_{quantile}",
                ratio,
                s.rollout_max_latency_ratio,
                f"the candidate's {quantile} compute time is {theirs or 0:.3f} ms, "
                f"{ratio or 0:.2f}x the primary's {ours or 0:.3f} ms (differences under "
                f"{s.rollout_latency_floor_ms:g} ms never abort)",
                bad=ratio is not None
                and ratio > s.rollout_max_latency_ratio
                and theirs - ours > s.rollout_latency_floor_ms,
            )
        target = self.primary.card.target
        if self.primary.card.task == "regression":
            mean_gap = per_row(5)
            value = mean_gap / self._scale if mean_gap is not None and self._scale else None
            yield gate(
                "divergence",
                value,
                s.rollout_max_divergence,
                f"on the same rows the versions' predictions of {target} differ by "
                f"{mean_gap or 0:.4g} on average, {value or 0:.2f}x the primary's test MAE "
                f"({self._scale or 0:.4g})",
            )
        else:
            share, distance = per_row(6), per_row(7)
            yield gate(
                "disagreement",
                share,
                s.rollout_max_disagreement,
                f"on the same rows the versions predict a different {target} for "
                f"{share or 0:.2%} of them",
            )
            yield gate(
                "probability_distance",
                distance,
                s.rollout_max_probability_distance,
                f"the versions' class probabilities are {distance or 0:.3f} apart on average "
                "(total variation: 0 the same, 1 disjoint)",
            )
        psi_gap = (
            c["prediction_psi"] - p["prediction_psi"]
            if c["prediction_psi"] is not None and p["prediction_psi"] is not None
            else None
        )
        yield gate(
            "prediction_drift",
            psi_gap,
            s.rollout_max_psi,
            f"the candidate's predictions drift from its training predictions by PSI "
            f"{c['prediction_psi'] or 0:.3f}, the primary's from theirs by "
            f"{p['prediction_psi'] or 0:.3f}",
        )
        yield self._quality_gate()

    def _quality_gate(self) -> Gate:
        """Live quality once labels arrive: the candidate's headline metric (r2, accuracy) may
        be below the primary's live figure (its test figure before the primary has labels) by
        at most `quality_margin`."""
        s = self.settings
        metric = HEADLINE[self.primary.card.task]
        waiting = Gate(
            "live_quality",
            None,
            s.quality_margin,
            "insufficient_data",
            f"fewer than {s.quality_min_rows} labelled rows answered by the candidate "
            "(POST /feedback; never gates promote)",
        )
        if self.quality is None:
            waiting.reads = "feedback is off (MODELSHIP_FEEDBACK=false)"
            return waiting
        live = self.quality()
        theirs = live.get(self.candidate.name) or {}
        ours = live.get(self.primary.name) or {}
        if theirs.get("state") in (None, "insufficient_data"):
            return waiting
        figure = (theirs.get("live") or {}).get(metric)
        if ours.get("state") not in (None, "insufficient_data"):
            reference, against = (ours.get("live") or {}).get(metric), "the primary's live"
        else:
            test = self.primary.card.metrics.get("test") or {}
            reference, against = test.get(metric), "the primary's test"
        if not isinstance(figure, float) or not isinstance(reference, float):
            return waiting
        drop = reference - figure
        return Gate(
            "live_quality",
            drop,
            s.quality_margin,
            "fail" if drop > s.quality_margin else "pass",
            f"the candidate's live {metric} is {figure:.4g} over {theirs['labelled_rows']} "
            f"labelled rows, {against} {reference:.4g}",
        )


def _described(card: ModelCard) -> dict[str, Any]:
    return {"version": card.version, "name": card.name, "model": card.model.estimator}


def _quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


class RolloutCollector:
    """Adds the rollout to a /metrics scrape, from the state shared by the workers: the verdict,
    each gate's value, threshold and state (label model_version: the candidate's), and each
    version's error rate, compute time and prediction PSI over the window."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout

    def describe(self) -> list[Metric]:
        return []  # registering must not compute anything

    def collect(self) -> Iterator[Metric]:
        report = self.rollout.report()
        candidate = report["candidate"]["version"]
        aborted = GaugeMetricFamily(
            "modelship_rollout_aborted",
            "1 when the rollout's verdict is abort (the candidate takes no more traffic)",
            labels=["model_version"],
        )
        aborted.add_metric([candidate], 1.0 if report["verdict"] == "abort" else 0.0)
        verdict = GaugeMetricFamily(
            "modelship_rollout_verdict",
            "1 for the rollout's verdict (baking, promote, abort)",
            labels=["model_version", "verdict"],
        )
        for name in ("baking", "promote", "abort"):
            verdict.add_metric([candidate, name], 1.0 if report["verdict"] == name else 0.0)
        share = GaugeMetricFamily(
            "modelship_rollout_candidate_percent",
            "Share of routing keys the candidate answers (0 in shadow mode)",
            labels=["model_version"],
        )
        share.add_metric([candidate], report["traffic"]["candidate_percent"])
        value = GaugeMetricFamily(
            "modelship_rollout_gate_value",
            "A rollout gate's value",
            labels=["model_version", "gate"],
        )
        threshold = GaugeMetricFamily(
            "modelship_rollout_gate_threshold",
            "A rollout gate's threshold",
            labels=["model_version", "gate"],
        )
        passed = GaugeMetricFamily(
            "modelship_rollout_gate_passed",
            "1 when a rollout gate passes, 0 when it fails (absent while insufficient_data)",
            labels=["model_version", "gate"],
        )
        for gate in report["gates"]:
            key = [candidate, gate["gate"]]
            if gate["value"] is not None:
                value.add_metric(key, gate["value"])
            threshold.add_metric(key, gate["threshold"])
            if gate["passed"] is not None:
                passed.add_metric(key, 1.0 if gate["passed"] else 0.0)
        errors = GaugeMetricFamily(
            "modelship_rollout_error_rate",
            "Share of failed model calls over the rollout window, per version",
            labels=["model_version"],
        )
        compute = GaugeMetricFamily(
            "modelship_rollout_compute_seconds",
            "Model compute time per request over the rollout window, per version",
            labels=["model_version", "quantile"],
        )
        drift = GaugeMetricFamily(
            "modelship_rollout_prediction_psi",
            "PSI of each version's predictions against its own training predictions",
            labels=["model_version"],
        )
        for version, figures in report["versions"].items():
            if figures["error_rate"] is not None:
                errors.add_metric([version], figures["error_rate"])
            for quantile in ("p50", "p99"):
                if figures[f"{quantile}_ms"] is not None:
                    compute.add_metric(
                        [version, QUANTILES[quantile]], figures[f"{quantile}_ms"] / 1000
                    )
            if figures["prediction_psi"] is not None:
                drift.add_metric([version], figures["prediction_psi"])
        yield from (aborted, verdict, share, value, threshold, passed, errors, compute, drift)

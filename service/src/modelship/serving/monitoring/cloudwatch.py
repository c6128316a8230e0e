"""The monitoring signals as CloudWatch embedded-metric-format (EMF) lines on stdout.

On ECS the awslogs driver sends stdout to CloudWatch Logs, which turns each EMF line into metric
values: no agent, no API call, no credentials. One worker per task writes them (the one holding a
lock file in the metrics directory), from the totals of all workers, so a task reports once. The
lock file also keeps the totals the last line reported: the first line counts from the task's
start, and a worker taking over from one that exited counts from where that one stopped.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from modelship.serving.monitoring.capture import DROPPED_METRIC, UPLOAD_ERRORS_METRIC
from modelship.serving.monitoring.monitor import Monitor, collected_metrics

# Live quality per model version (`Feedback.quality`): {version: {"live", "metric", "state", ...}}
LiveQuality = Callable[[], dict[str, dict[str, Any]]]
# Whether a rollout's shared verdict is abort (`modelship.serving.rollout`).
RolloutAborted = Callable[[], bool]
NAMESPACE = "modelship"
LOCK_FILE = "cloudwatch-emitter.lock"
REQUESTS_METRIC = "modelship_http_requests"
COUNTS = frozenset(
    {
        "Requests",
        "Errors5xx",
        "CaptureFailures",
        "FeaturesInDrift",
        "PredictionDrift",
        "LabelledRows",
    }
)


def _stdout_line(line: bytes) -> None:
    os.write(1, line)  # one write per line: lines of concurrent writers never interleave


class CloudWatchEmitter:
    """Every `interval` seconds: requests, 5xx errors, capture failures, how many signals are in
    drift, the PSI of each signal in drift, (with feedback on) the live quality of each model
    version that has labelled rows, and (in a rollout) whether its verdict is abort."""

    def __init__(
        self,
        monitor: Monitor,
        service: str,
        interval: float,
        directory: Path | None,
        write: Callable[[bytes], None] = _stdout_line,
        *,
        quality: LiveQuality | None = None,
        rollout: RolloutAborted | None = None,
    ) -> None:
        self.quality = quality
        self.rollout = rollout
        self.monitor = monitor
        self.service = service
        self.interval = interval
        self.directory = directory
        self.write = write
        self._next = time.monotonic() + interval
        self._lock: IO[bytes] | None = None
        # The counters start at zero with the task (a new metrics directory per `serve`).
        self._last_totals = (0.0, 0.0, 0.0)

    def tick(self) -> None:
        """Called often (by the monitor's thread); emits when the interval has passed."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        if self._is_emitter():
            self.emit()

    def _is_emitter(self) -> bool:
        if self.directory is None or self._lock is not None:
            return True
        handle = (self.directory / LOCK_FILE).open("a+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock = handle  # held until this worker exits; then another one takes over
        handle.seek(0)
        reported = handle.read()
        if reported:  # a previous emitter's last line
            requests, errors, capture_failures = orjson.loads(reported)
            self._last_totals = (requests, errors, capture_failures)
        return True

    def emit(self) -> None:
        timestamp = int(time.time() * 1000)
        drifts = self.monitor.drift()
        in_drift = [d for d in drifts if d.kind == "feature" and d.state == "drift"]
        prediction = next(d for d in drifts if d.kind == "prediction")
        service_values: dict[str, float] = {
            "FeaturesInDrift": float(len(in_drift)),
            "PredictionDrift": 1.0 if prediction.state == "drift" else 0.0,
        }
        totals = self._totals()
        last = self._last_totals  # counts since the last line: CloudWatch sums them
        service_values["Requests"] = max(totals[0] - last[0], 0.0)
        service_values["Errors5xx"] = max(totals[1] - last[1], 0.0)
        service_values["CaptureFailures"] = max(totals[2] - last[2], 0.0)
        if self.quality is not None:
            # Only versions with labels: a metric costs for every hour it gets a value.
            labelled = {v: q for v, q in self.quality().items() if q["labelled_rows"]}
            if labelled:
                below = self._quality_lines(timestamp, labelled)
                service_values["QualityBelowTest"] = float(below)
        if self.rollout is not None:
            # At the Service level, like QualityBelowTest: an alarm cannot name a candidate
            # version that changes with every rollout.
            service_values["RolloutAborted"] = 1.0 if self.rollout() else 0.0
        self._line(timestamp, {"Service": self.service}, service_values)
        self._last_totals = totals
        if self._lock is not None:  # for the worker that takes over when this one exits
            self._lock.truncate(0)
            self._lock.write(orjson.dumps(totals))
            self._lock.flush()
        for drift in drifts:
            # CloudWatch bills a custom metric for every hour it gets a value, so one PSI metric
            # per feature, always, would cost more than the rest of the monitoring: a signal's
            # PSI goes out only while it is in drift (docs/cost.md). Every signal's is on
            # /model/drift and /metrics.
            if drift.statistic is None or drift.state != "drift":
                continue
            dimensions = {"Service": self.service, "Signal": f"{drift.kind}:{drift.name}"}
            self._line(timestamp, dimensions, {"DriftPSI": drift.statistic})

    def _quality_lines(self, timestamp: int, versions: dict[str, dict[str, Any]]) -> bool:
        """One line per model version (dimension ModelVersion: what a rollout gate selects);
        True when any version's live quality is below its test figure (the Service-level value
        the alarm watches: an alarm cannot name a version that changes with every model)."""
        below = False
        for version, judged in versions.items():
            values = {"LabelledRows": float(judged["labelled_rows"])}
            live = judged["live"] or {}
            if isinstance(live.get(judged["metric"]), float):
                values["LiveQuality"] = live[judged["metric"]]
            values["QualityBelowTest"] = 1.0 if judged["state"] == "below_test" else 0.0
            below = below or judged["state"] == "below_test"
            self._line(timestamp, {"Service": self.service, "ModelVersion": version}, values)
        return below

    def _line(self, timestamp: int, dimensions: dict[str, str], values: dict[str, float]) -> None:
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [list(dimensions)],
                        "Metrics": [
                            {"Name": name, "Unit": "Count" if name in COUNTS else "None"}
                            for name in values
                        ],
                    }
                ],
            },
            **dimensions,
            **values,
        }
        self.write(orjson.dumps(document) + b"\n")

    def _totals(self) -> tuple[float, float, float]:
        """Requests, 5xx answers, and capture failures (failed uploads and rows dropped on a
        full buffer: what `ModelshipCaptureFailing` in monitoring/alerts.yml watches), so far."""
        requests = errors = capture_failures = 0.0
        for metric in collected_metrics():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                if metric.name == REQUESTS_METRIC:
                    requests += sample.value
                    if sample.labels.get("status", "").startswith("5"):
                        errors += sample.value
                elif metric.name == UPLOAD_ERRORS_METRIC or (
                    metric.name == DROPPED_METRIC and sample.labels.get("reason") == "buffer_full"
                ):
                    capture_failures += sample.value
        return requests, errors, capture_failures

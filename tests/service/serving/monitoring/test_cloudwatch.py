"""The CloudWatch EMF lines as metrics: which custom metrics a task creates, and so pays for."""

from __future__ import annotations

import json
from typing import cast

from modelship.serving.monitoring.cloudwatch import CloudWatchEmitter
from modelship.serving.monitoring.monitor import Monitor, SignalDrift

Metric = tuple[str, tuple[tuple[str, str], ...]]
"""A CloudWatch custom metric: its name and its dimensions (name, value)."""


class _Signals:
    """The one thing the emitter asks of its monitor: the drift of every signal."""

    def __init__(self, drifts: list[SignalDrift]) -> None:
        self.drifts = drifts

    def drift(self) -> list[SignalDrift]:
        return self.drifts


def signals(features: int, drifting: int) -> list[SignalDrift]:
    """`features` feature signals (the first `drifting` of them in drift) and the prediction."""
    return [
        SignalDrift(
            "feature",
            f"f{i}",
            0.5 if i < drifting else 0.01,
            0.2,
            "drift" if i < drifting else "ok",
            500,
        )
        for i in range(features)
    ] + [SignalDrift("prediction", "charges", 0.01, 0.2, "ok", 500)]


def emitted_metrics(drifts: list[SignalDrift]) -> set[Metric]:
    """The custom metrics two successive emits create (the second adds the per-interval counts)."""
    lines: list[bytes] = []
    emitter = CloudWatchEmitter(cast(Monitor, _Signals(drifts)), "svc", 60, None, lines.append)
    emitter.emit()
    emitter.emit()
    metrics: set[Metric] = set()
    for line in lines:
        document = json.loads(line)
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        for dimension_set in directive["Dimensions"]:
            dimensions = tuple((name, document[name]) for name in dimension_set)
            metrics |= {(m["Name"], dimensions) for m in directive["Metrics"]}
    return metrics


SERVICE_METRICS = {"Requests", "Errors5xx", "CaptureFailures", "FeaturesInDrift", "PredictionDrift"}


def test_a_signals_psi_is_a_metric_only_while_it_is_in_drift() -> None:
    """One `DriftPSI` per feature, always, was $0.30 a month each: $19.20 for 64 features."""
    quiet = emitted_metrics(signals(64, drifting=0))
    assert {name for name, _ in quiet} == SERVICE_METRICS
    assert len(quiet) == len(SERVICE_METRICS)  # one dimension set: the service

    drifting = emitted_metrics(signals(64, drifting=3))
    psi = sorted(dict(d)["Signal"] for name, d in drifting if name == "DriftPSI")
    assert psi == ["feature:f0", "feature:f1", "feature:f2"]
    assert len(drifting) == len(SERVICE_METRICS) + 3

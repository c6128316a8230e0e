"""Builds the monitor a server runs, from its settings."""

from __future__ import annotations

import os
from pathlib import Path

from modelship.contracts.card import ModelCard
from modelship.contracts.settings import Settings
from modelship.serving.monitoring.cloudwatch import CloudWatchEmitter, LiveQuality, RolloutAborted
from modelship.serving.monitoring.monitor import Monitor
from modelship.serving.telemetry import MULTIPROC_ENV


def create_monitor(
    card: ModelCard,
    settings: Settings,
    quality: LiveQuality | None = None,
    *,
    rollout: RolloutAborted | None = None,
) -> Monitor | None:
    """The monitor (None when MODELSHIP_MONITORING is off), with CloudWatch lines if asked
    (live quality among them when `quality` is given, the rollout's brake with `rollout`)."""
    if not settings.monitoring:
        return None
    monitor = Monitor(card, settings)
    if settings.cloudwatch_metrics:
        directory = os.environ.get(MULTIPROC_ENV)
        emitter = CloudWatchEmitter(
            monitor,
            settings.cloudwatch_service,
            settings.cloudwatch_interval_seconds,
            Path(directory) if directory else None,
            quality=quality,
            rollout=rollout,
        )
        monitor.periodic.append(emitter.tick)
    return monitor

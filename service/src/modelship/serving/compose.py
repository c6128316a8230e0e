"""The composition root: builds what a server worker runs (data plane, monitor, request capture,
the feedback join, quality hooks, the memory check) from the settings and a loaded predictor.

Every transport receives the built `Serving` (the FastAPI app, the measuring process, the tests);
none of them builds a data plane itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from modelship.contracts.rollout import check_compatible
from modelship.contracts.settings import Settings
from modelship.model import artifact, store
from modelship.model.predictor import Predictor
from modelship.serving.dataplane import DataPlane, QualityHook
from modelship.serving.feedback import Feedback
from modelship.serving.memory import memory_problem
from modelship.serving.monitoring.capture import Capture, create_capture
from modelship.serving.monitoring.monitor import Monitor
from modelship.serving.monitoring.setup import create_monitor
from modelship.serving.rollout import Rollout, Version
from modelship.serving.shared import StateDirectory


@dataclass(frozen=True)
class Serving:
    """One worker's serving side: the data plane and what watches it."""

    settings: Settings
    dataplane: DataPlane
    monitor: Monitor | None
    capture: Capture | None
    feedback: Feedback | None = None
    state: StateDirectory | None = field(default=None, repr=False)
    rollout: Rollout | None = None

    def start(self) -> None:
        """Start the background work (monitor windows, capture uploads, the feedback join's
        writes) and the data plane."""
        if self.monitor is not None:
            self.monitor.start()
        if self.capture is not None:
            self.capture.start()
        if self.feedback is not None:
            self.feedback.start()
        if self.rollout is not None:
            self.rollout.start()
            self.rollout.candidate.predictor.warm_up()
        self.dataplane.start()
        if self.dataplane.unfit is not None:
            # Not ready, so a rollout stops here instead of pods being OOM-killed under load.
            logging.getLogger("modelship").error("not ready: %s", self.dataplane.unfit)

    def stop(self) -> None:
        """Stop in reverse; what capture holds gets one upload within the shutdown grace."""
        self.dataplane.stop()
        if self.monitor is not None:
            self.monitor.stop()
        if self.capture is not None:
            self.capture.stop(timeout=min(self.settings.shutdown_grace_seconds, 10.0))
        if self.rollout is not None:  # before the feedback join its gates read
            self.rollout.stop()
        if self.feedback is not None:
            self.feedback.stop()
        if self.state is not None:
            self.state.close()


def build_serving(
    settings: Settings, predictor: Predictor, candidate: Predictor | None = None
) -> Serving:
    """The data plane around `predictor` (and, in a rollout, the `candidate` beside it), with
    monitoring, capture and feedback as `settings` ask."""
    card = predictor.card
    unfit = memory_problem(settings, card, candidate.card if candidate else None)
    dataplane = DataPlane(settings, predictor, unfit=unfit)
    primary, other = Version(predictor), Version(candidate) if candidate else None
    if other is not None:
        check_compatible(card, other.card)  # before any file is made
    feedback: Feedback | None = None
    state: StateDirectory | None = None
    if settings.feedback or other is not None:
        state = StateDirectory(settings.state_dir)
    if settings.feedback:
        assert state is not None
        joined = feedback = Feedback(
            [v.card for v in (primary, other) if v is not None], settings, state.path
        )
        for version in (primary, other):
            if version is not None:
                version.hooks.append(_observe(joined, version.name))
        dataplane.quality_hooks.extend(primary.hooks)
        dataplane.feedback = feedback
    rollout: Rollout | None = None
    if other is not None:
        assert state is not None
        rollout = dataplane.rollout = Rollout(
            settings,
            primary,
            other,
            state.path,
            overloaded=lambda: dataplane.in_flight >= dataplane.in_flight_limit,
            quality=feedback.quality if feedback else None,
        )
    monitor = create_monitor(
        card,
        settings,
        feedback.quality if feedback else None,
        rollout=(lambda: rollout.report()["verdict"] == "abort") if rollout else None,
    )
    if monitor is not None:
        dataplane.quality_hooks.append(
            lambda batch, result, ids: monitor.observe(
                batch.feeds, result, categories_known=batch.categories_known
            )
        )
    capture = create_capture(card, settings)
    if capture is not None:
        dataplane.quality_hooks.append(capture.observe)
    return Serving(settings, dataplane, monitor, capture, feedback, state, rollout)


def _observe(feedback: Feedback, version: str) -> QualityHook:
    """The feedback join's hook for the answers of one version."""
    return lambda batch, result, ids: feedback.observe(version, batch, result, ids)


def load_predictor(settings: Settings) -> Predictor:
    """The model the settings name (from the store's cache, or the artifact directory)."""
    loaded = (
        store.fetch(settings.model_uri, settings.model_cache)
        if settings.model_uri
        else artifact.load(settings.artifact)
    )
    return Predictor(loaded, threads=settings.onnx_threads)


def load_candidate(settings: Settings) -> Predictor | None:
    """The rollout's candidate the settings name (a store URI, fetched and verified like
    `model_uri`, or an artifact directory), or None."""
    if settings.candidate is None:
        return None
    loaded = (
        store.fetch(settings.candidate, settings.model_cache)
        if store.is_store_uri(settings.candidate)
        else artifact.load(Path(settings.candidate))
    )
    return Predictor(loaded, threads=settings.onnx_threads)

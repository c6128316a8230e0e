"""The composition root: builds what a server worker runs (data plane, monitor, request capture,
the feedback join, quality hooks, the memory check) from the settings and a loaded predictor.

Every transport receives the built `Serving` (the FastAPI app, the measuring process, the tests);
none of them builds a data plane itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from modelship.contracts.settings import Settings
from modelship.model import artifact, store
from modelship.model.predictor import Predictor
from modelship.serving.dataplane import DataPlane
from modelship.serving.feedback import Feedback
from modelship.serving.memory import memory_problem
from modelship.serving.monitoring.capture import Capture, create_capture
from modelship.serving.monitoring.monitor import Monitor
from modelship.serving.monitoring.setup import create_monitor
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

    def start(self) -> None:
        """Start the background work (monitor windows, capture uploads, the feedback join's
        writes) and the data plane."""
        if self.monitor is not None:
            self.monitor.start()
        if self.capture is not None:
            self.capture.start()
        if self.feedback is not None:
            self.feedback.start()
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
        if self.feedback is not None:
            self.feedback.stop()
        if self.state is not None:
            self.state.close()


def build_serving(settings: Settings, predictor: Predictor) -> Serving:
    """The data plane around `predictor`, with monitoring, capture and feedback as `settings`
    ask."""
    card = predictor.card
    dataplane = DataPlane(settings, predictor, unfit=memory_problem(settings, card))
    feedback: Feedback | None = None
    state: StateDirectory | None = None
    if settings.feedback:
        state = StateDirectory(settings.state_dir)
        # Keyed by model version: a second model served beside this one adds its card here.
        joined = feedback = Feedback([card], settings, state.path)
        version = card.version
        dataplane.quality_hooks.append(
            lambda batch, result, ids: joined.observe(version, batch, result, ids)
        )
        dataplane.feedback = feedback
    monitor = create_monitor(card, settings, feedback.quality if feedback else None)
    if monitor is not None:
        dataplane.quality_hooks.append(
            lambda batch, result, ids: monitor.observe(batch.feeds, result)
        )
    capture = create_capture(card, settings)
    if capture is not None:
        dataplane.quality_hooks.append(capture.observe)
    return Serving(settings, dataplane, monitor, capture, feedback, state)


def load_predictor(settings: Settings) -> Predictor:
    """The model the settings name (from the store's cache, or the artifact directory)."""
    loaded = (
        store.fetch(settings.model_uri, settings.model_cache)
        if settings.model_uri
        else artifact.load(settings.artifact)
    )
    return Predictor(loaded, threads=settings.onnx_threads)

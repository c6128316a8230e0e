"""The composition root: builds what a server worker runs (data plane, monitor, request capture,
quality hooks, the memory check) from the settings and a loaded predictor.

Every transport receives the built `Serving` (the FastAPI app, the measuring process, the tests);
none of them builds a data plane itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from modelship.contracts.settings import Settings
from modelship.model import artifact, store
from modelship.model.predictor import Predictor
from modelship.serving.dataplane import DataPlane
from modelship.serving.memory import memory_problem
from modelship.serving.monitoring.capture import Capture, create_capture
from modelship.serving.monitoring.monitor import Monitor
from modelship.serving.monitoring.setup import create_monitor


@dataclass(frozen=True)
class Serving:
    """One worker's serving side: the data plane and what watches it."""

    settings: Settings
    dataplane: DataPlane
    monitor: Monitor | None
    capture: Capture | None

    def start(self) -> None:
        """Start the background work (monitor windows, capture uploads) and the data plane."""
        if self.monitor is not None:
            self.monitor.start()
        if self.capture is not None:
            self.capture.start()
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


def build_serving(settings: Settings, predictor: Predictor) -> Serving:
    """The data plane around `predictor`, with monitoring and capture as `settings` ask."""
    card = predictor.card
    monitor = create_monitor(card, settings)
    dataplane = DataPlane(settings, predictor, unfit=memory_problem(settings, card))
    if monitor is not None:
        dataplane.quality_hooks.append(lambda batch, result: monitor.observe(batch.feeds, result))
    capture = create_capture(card, settings)
    if capture is not None:
        dataplane.quality_hooks.append(capture.observe)
    return Serving(settings, dataplane, monitor, capture)


def load_predictor(settings: Settings) -> Predictor:
    """The model the settings name (from the store's cache, or the artifact directory)."""
    loaded = (
        store.fetch(settings.model_uri, settings.model_cache)
        if settings.model_uri
        else artifact.load(settings.artifact)
    )
    return Predictor(loaded, threads=settings.onnx_threads)

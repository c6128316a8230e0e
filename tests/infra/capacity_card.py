"""A test double of `modelship capacity`'s result: an artifact whose card carries measured points.

The stacks read `ModelCard.capacity` at preview; the tests give them a copy of a trained
artifact whose card says what one replica served, with figures chosen for easy arithmetic (the
measurement itself is `modelship capacity`'s, tested with the service).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from modelship.contracts.capacity import Capacity, CapacityPoint
from modelship.model import artifact

CPU_MODEL = "Test CPU @ 2.0GHz (a test double, not a measurement)"


def point(
    cpu: str,
    memory: str,
    max_rps: float,
    *,
    workers: int = 1,
    cpu_ms_per_request: float = 4.5,
    p99_target_ms: float = 100.0,
) -> CapacityPoint:
    """A single-row point: `max_rps` at p99 under `p99_target_ms`."""
    return CapacityPoint(
        cpu=cpu,
        memory=memory,
        workers=workers,
        rows_per_request=1,
        p99_target_ms=p99_target_ms,
        max_rps=max_rps,
        p99_ms=p99_target_ms * 0.8,
        cpu_ms_per_request=cpu_ms_per_request,
        memory_mib=180.0,
    )


def with_capacity(
    source: Path,
    destination: Path,
    points: list[CapacityPoint],
    *,
    measured_at: str = "2026-12-01T10:00:00Z",
    cpu_model: str = CPU_MODEL,
) -> Path:
    """A copy of the artifact at `source` whose card carries `points` (the model is unchanged,
    so the artifact still verifies)."""
    shutil.copytree(source, destination)
    loaded = artifact.load(destination)
    capacity = Capacity(measured_at=measured_at, cpu_model=cpu_model, points=points)
    card = loaded.card.model_copy(update={"capacity": capacity})
    artifact.save(destination, card, loaded.onnx_bytes)
    return destination

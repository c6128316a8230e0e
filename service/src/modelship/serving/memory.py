"""Whether the model's measured footprint fits this container's memory (the readiness check)."""

from __future__ import annotations

from pathlib import Path

from modelship.contracts.card import ModelCard
from modelship.contracts.footprint import memory_shortfall
from modelship.contracts.settings import Settings

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as a huge number (the page-rounded maximum of a signed 64 bit).
_V1_UNLIMITED = 2**60


def cgroup_memory_limit(root: Path = CGROUP_ROOT) -> int | None:
    """This container's memory limit in bytes (cgroup v2 `memory.max`, or v1
    `memory/memory.limit_in_bytes`); None when there is none or it cannot be read."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit() or int(text) >= _V1_UNLIMITED:
            return None
        return int(text)
    return None


def memory_problem(
    settings: Settings, card: ModelCard, candidate: ModelCard | None = None
) -> str | None:
    """Why the model's measured footprint (with a rollout's `candidate` loaded beside it in
    every worker) does not fit this container's memory, or None."""
    limit = settings.memory_limit_bytes or cgroup_memory_limit()
    if card.footprint is None or limit is None:
        return None
    beside = None
    if candidate is not None and candidate.footprint is not None:
        beside = (candidate.name, candidate.footprint)
    return memory_shortfall(
        card.name,
        card.footprint,
        settings.workers,
        limit,
        "the container's memory limit",
        candidate=beside,
    )

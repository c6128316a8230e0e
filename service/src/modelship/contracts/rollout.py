"""What makes a candidate model comparable with the primary in a rollout.

Here, below the serving side, so `modelship serve` can refuse a candidate before any worker
starts without importing the server (and its metrics) first.
"""

from __future__ import annotations

from modelship.contracts.card import ModelCard
from modelship.errors import ModelshipError


def check_compatible(primary: ModelCard, candidate: ModelCard) -> None:
    """Refuse a candidate that does not answer the primary's question on the primary's input."""
    problems = []
    if (candidate.task, candidate.target) != (primary.task, primary.target):
        problems.append(
            f"it is a {candidate.task} of {candidate.target!r}, the primary a {primary.task} of "
            f"{primary.target!r}"
        )
    ours = [(f.name, f.kind, f.input_name) for f in primary.features]
    theirs = [(f.name, f.kind, f.input_name) for f in candidate.features]
    if ours != theirs:
        problems.append(
            f"its features {[f[:2] for f in theirs]} differ from the primary's "
            f"{[f[:2] for f in ours]}"
        )
    if candidate.classes != primary.classes:
        problems.append(f"its classes {candidate.classes} differ from {primary.classes}")
    if problems:
        raise ModelshipError(
            f"candidate {candidate.name} version {candidate.version} cannot be compared with "
            f"primary {primary.name} version {primary.version}: {'; '.join(problems)}"
        )
    if candidate.version == primary.version:
        raise ModelshipError(
            f"the candidate is the primary itself (version {primary.version}): nothing to roll out"
        )

"""A rollout: a candidate model version served beside the primary, on every target the same way.

`modelship:candidateModelUri` names the candidate (a version in the model store, like
`modelship:modelUri`), `modelship:candidateTraffic` how it is tried: `shadow` (it scores a copy
of the rows off the request path; every answer comes from the primary) or the whole percent of
requests it answers (canary). The container gets them as `MODELSHIP_CANDIDATE` and
`MODELSHIP_CANDIDATE_TRAFFIC`; the service judges the candidate and brakes on its own
(docs/rollout.md). Promotion stays declarative: the candidate becomes `modelship:modelUri` and the
two keys are cleared, in the stack file (`infra.offline.rollout`).

Each target checks the candidate's URI the way it checks `modelship:modelUri` (a cloud target by
its shape at preview, the local target on disk, with both models' memory); the rules every target
shares are here: the traffic's values, no traffic without a candidate, and a candidate that is
not the model already served.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import ConfigReader
from modelship.contracts.card import ModelCard

KEY_CANDIDATE_MODEL_URI = "modelship:candidateModelUri"
KEY_CANDIDATE_TRAFFIC = "modelship:candidateTraffic"
SHADOW = "shadow"
TRAFFIC_ALLOWED = (
    f"{SHADOW} (the candidate scores a copy of the rows; every answer comes from the primary) "
    "or the whole percent of requests the candidate answers, from 0 to 100 (e.g. 10 or 10%)"
)


@dataclass(frozen=True)
class RolloutSettings:
    """The candidate version (as the target names it) and its traffic; no candidate: no rollout."""

    candidate_uri: str | None = None
    traffic: str = SHADOW
    """`shadow` or a whole percent, as the service's `candidate_traffic` setting reads it."""

    @property
    def enabled(self) -> bool:
        return self.candidate_uri is not None


def parse_traffic(value: str) -> str:
    """`shadow` or a whole percent 0-100 (`10` or `10%`, as the service reads it), spelled one way
    in the container (`10`), so a re-typed value does not roll the service."""
    if value == SHADOW:
        return value
    digits = value.removesuffix("%")
    if not digits.isascii() or not digits.isdigit() or not 0 <= int(digits) <= 100:
        raise ValueError(value)
    return str(int(digits))


def version_sha256(uri: str) -> str:
    """The content hash a version URI ends with (`…/models/NAME/SHA256/`): two URIs with the same
    hash are the same model, whichever bucket or spelling names them."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


def inputs_differ(primary: ModelCard, candidate: ModelCard) -> str | None:
    """Why the candidate cannot score the rows the primary is sent (the service compares the two
    on identical rows), or None. Where both cards are known before deploying (the local target)."""
    if candidate.task != primary.task:
        return (
            f"is a {candidate.task} model and the primary {primary.name} a {primary.task} one: "
            "a candidate must do the primary's task"
        )
    theirs = [f.name for f in candidate.features]
    ours = [f.name for f in primary.features]
    if sorted(theirs) != sorted(ours):
        return (
            f"takes the features {', '.join(theirs)} and the primary {primary.name} takes "
            f"{', '.join(ours)}: a candidate must score the rows the primary is sent"
        )
    return None


def read_rollout(
    reader: ConfigReader, candidate_uri: str | None, primary_sha256: str | None
) -> RolloutSettings:
    """The traffic, and the rules every target shares, given the candidate the target has already
    checked (None: unset or refused) and the hash of the model it serves (None: unknown, the model
    trained into the image at build time)."""
    traffic = reader.parse(KEY_CANDIDATE_TRAFFIC, SHADOW, parse_traffic, TRAFFIC_ALLOWED)
    given = reader.raw(KEY_CANDIDATE_MODEL_URI)
    if given is None:
        if reader.raw(KEY_CANDIDATE_TRAFFIC) is not None:
            reader.problem(
                KEY_CANDIDATE_TRAFFIC,
                reader.raw(KEY_CANDIDATE_TRAFFIC),
                f"only used with {KEY_CANDIDATE_MODEL_URI} (the candidate it sends traffic to)",
            )
        return RolloutSettings()
    if candidate_uri is None:  # refused by the target's own check, already reported
        return RolloutSettings()
    if primary_sha256 is not None and version_sha256(candidate_uri) == primary_sha256:
        reader.problem(
            KEY_CANDIDATE_MODEL_URI,
            given,
            "is the model already served (the same sha256 as the primary): a candidate must be "
            "another version; to keep this one, unset the candidate keys",
        )
        return RolloutSettings()
    return RolloutSettings(candidate_uri=candidate_uri, traffic=traffic)

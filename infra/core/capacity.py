"""Replicas from the measured rate: `modelship:targetRps` against the served model's card.

`modelship capacity` writes into the model card what one replica serves, confined to a CPU quota
and a memory limit (`ModelCard.capacity`: the highest open-loop rate whose p99 stays under the
target, with no errors). At preview this module finds the point measured at the stack's own
container size (`modelship:cpu`, `modelship:memory`, `modelship:workers`) and, when
`modelship:targetRps` (the peak rate to plan for) is set, sizes the service from it:

- each replica is planned at `max_rps x (1 - headroom)` (`modelship:capacityHeadroom`, the share
  of the measured rate kept spare: 0.3 by default);
- `maxReplicas` = ceil(targetRps / (max_rps x (1 - headroom))): the peak with that headroom;
- `minReplicas` = max(2, ceil(targetRps / max_rps)): the peak at the measured limit, so a burst
  to it holds p99 while the autoscaler adds the rest; never fewer than the 2 that survive the
  loss of one;
- `cpuTargetPercent` = (1 - headroom) x the CPU the replica used at its measured limit
  (max_rps x cpu_ms_per_request / the CPU quota), so scaling starts before the limit.

A key set in the stack's config is kept, never overridden; preview fails when the configured
replicas cannot carry `targetRps` at the measured rate, and when `targetRps` is set but no
measurement exists for this container size (the rate is never guessed; the message names the
command that measures it). Without `targetRps` nothing is derived and nothing fails: the
`capacity` output shows the measured rate, if any.

The served model's card is read where preview can read it: the artifact directory of
`modelship:imageModel` (unless `modelship:modelUri` serves another model) or, on the local
target, the store version of `modelship:modelUri`. The default image model is trained during
the image build and a cloud `modelUri` lives in a bucket: neither has a card on this machine, so
`modelship:replicaRps` states the rate instead (`1100@500m/512Mi`: what `modelship capacity`
printed, with the CPU and memory it was measured at, checked against the container's). A stated
rate wins over a card: the user said it last.

A rate measured with less memory than the container has holds for it (the CPU quota is what
limits the rate; the measured peak memory stayed under the smaller limit), so a point at
500m/512Mi plans a 500m/1Gi Fargate task (Fargate has no 512 MiB size at 0.5 vCPU). The CPU
quota and the workers must be the same.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi

from infra.config import ConfigReader, parse_cpu_millicores, parse_memory_bytes
from infra.settings import (
    KEY_CPU,
    KEY_CPU_TARGET,
    KEY_IMAGE_MODEL,
    KEY_MAX_REPLICAS,
    KEY_MEMORY,
    KEY_MIN_REPLICAS,
    KEY_MODEL_URI,
    KEY_WORKERS,
    ContainerSettings,
    Settings,
)
from modelship.contracts.capacity import Capacity, CapacityPoint
from modelship.errors import ModelshipError
from modelship.model import artifact

KEY_TARGET_RPS = "modelship:targetRps"
KEY_HEADROOM = "modelship:capacityHeadroom"
KEY_REPLICA_RPS = "modelship:replicaRps"
REPLICA_RPS_ALLOWED = (
    "the requests/s one replica serves, with the CPU and memory it was measured at, as "
    "RATE@CPU/MEMORY (what `modelship capacity` prints), e.g. 1100@500m/512Mi"
)
_REPLICA_RPS = re.compile(r"\s*([^@\s]+)\s*@\s*([^/\s]+)\s*/\s*(\S+)\s*")
DEFAULT_HEADROOM = 0.3
MAX_HEADROOM = 0.9
# Two replicas: one survives a node or zone loss, or a rollout, while the other serves.
MIN_AVAILABLE_REPLICAS = 2
MAX_REPLICAS = 100  # the range `modelship:maxReplicas` accepts (infra.settings)
MIN_CPU_TARGET, MAX_CPU_TARGET = 10, 100


@dataclass(frozen=True)
class ServedCard:
    """The card of the model the stack serves, and the key that chose it."""

    key: str
    path: Path


@dataclass(frozen=True)
class ReplicaRate:
    """What one replica of the container serves: from the card's point or stated in the config."""

    max_rps: float
    cpu_ms_per_request: float
    """0 when not known (a stated rate): the CPU target is then not derived."""
    p99_target_ms: float | None
    """None when not known (a stated rate is held to whatever target it was measured at)."""

    @classmethod
    def measured(cls, point: CapacityPoint) -> ReplicaRate:
        return cls(point.max_rps, point.cpu_ms_per_request, point.p99_target_ms)


@dataclass(frozen=True)
class StatedRate:
    """`modelship:replicaRps`: a rate and the container size it was measured at."""

    max_rps: float
    cpu: str
    memory: str
    cpu_millicores: int
    memory_bytes: int


def parse_replica_rps(value: str) -> StatedRate:
    """`RATE@CPU/MEMORY` (`1100@500m/512Mi`); ValueError when it is not one."""
    match = _REPLICA_RPS.fullmatch(value)
    if match is None:
        raise ValueError(value)
    rate, cpu, memory = match.groups()
    return StatedRate(
        _positive_rate(rate), cpu, memory, parse_cpu_millicores(cpu), parse_memory_bytes(memory)
    )


@dataclass(frozen=True)
class CapacityPlan:
    """What the stack plans for: the load, the measured rate, and the replicas that follow."""

    target_rps: float | None
    headroom: float
    point: ReplicaRate | None
    source: str
    """Where the rate came from, or why there is none."""
    min_replicas: int
    max_replicas: int
    cpu_target_percent: int
    planned_replicas: int
    """Replicas running at the planned load (the minimum without one; 0 when parked)."""
    derived: tuple[str, ...] = ()

    @property
    def rps_per_replica(self) -> float | None:
        return None if self.point is None else self.point.max_rps

    @property
    def planned_rps_per_replica(self) -> float | None:
        return None if self.point is None else self.point.max_rps * (1 - self.headroom)

    def output(self) -> dict[str, Any]:
        """The `capacity` stack output."""
        point = self.point
        return {
            "target_rps": self.target_rps,
            "rps_per_replica": self.rps_per_replica,
            "planned_rps_per_replica": _round(self.planned_rps_per_replica),
            "headroom": self.headroom,
            "p99_target_ms": None if point is None else point.p99_target_ms,
            "rate_source": self.source,
            "replicas": {
                "min": self.min_replicas,
                "max": self.max_replicas,
                "at_planned_load": self.planned_replicas,
            },
            "max_rps_at_max_replicas": _round(
                None if point is None else point.max_rps * self.max_replicas
            ),
            "cpu_target_percent": self.cpu_target_percent,
            "derived": list(self.derived),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def served_card(
    reader: ConfigReader, settings: Settings, local_version: Path | None = None
) -> ServedCard | None:
    """The served model's artifact directory when preview can read it (see the module doc)."""
    if local_version is not None:
        return ServedCard(KEY_MODEL_URI, local_version)
    if settings.image.model_dir is not None and reader.raw(KEY_MODEL_URI) is None:
        return ServedCard(KEY_IMAGE_MODEL, settings.image.model_dir)
    return None


def measured_point(capacity: Capacity, container: ContainerSettings) -> CapacityPoint | None:
    """The single-row point measured at this container's CPU quota and worker count, with the
    most memory up to the container's (quantities compared by value: `1` and `1000m` are one
    size); a point with less memory holds for more (see the module doc)."""
    fitting: list[tuple[int, CapacityPoint]] = []
    for point in capacity.points:
        try:
            cpu, memory = parse_cpu_millicores(point.cpu), parse_memory_bytes(point.memory)
        except ValueError:
            continue
        if (
            point.rows_per_request == 1
            and point.workers == container.workers
            and cpu == container.cpu_millicores
            and memory <= container.memory_bytes
        ):
            fitting.append((memory, point))
    return max(fitting, key=lambda pair: pair[0])[1] if fitting else None


def _positive_rate(value: str) -> float:
    rate = float(value)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(value)
    return rate


def _headroom(value: str) -> float:
    share = float(value)
    if not 0 <= share <= MAX_HEADROOM:
        raise ValueError(value)
    return share


def _measure_command(card: ServedCard | None, container: ContainerSettings) -> str:
    where = str(card.path) if card is not None else "ARTIFACT"
    return (
        f"`modelship capacity {where} --cpu {container.cpu} --memory {container.memory}` "
        f"(with {container.workers} worker(s), as {KEY_WORKERS} runs it)"
    )


def _size_key(container: ContainerSettings) -> str:
    return (
        f"{KEY_CPU}={container.cpu}, {KEY_MEMORY}={container.memory}, {container.workers} worker(s)"
    )


def _find_point(
    card: ServedCard | None, container: ContainerSettings
) -> tuple[ReplicaRate | None, str]:
    """The measured rate for this container, and where it came from (or why there is none)."""
    size = _size_key(container)
    if card is None:
        return None, (
            "not measured: preview reads the served model's card only from an artifact "
            f"directory on this machine ({KEY_IMAGE_MODEL}, or {KEY_MODEL_URI} on the local "
            "target); the image's default model is trained during the image build and a "
            f"cloud {KEY_MODEL_URI} is in a bucket"
        )
    try:
        model_card = artifact.load(card.path).card
    except ModelshipError as exc:  # already reported by the key's own check
        return None, f"not measured: {exc.message}"
    if model_card.capacity is None:
        return None, f"not measured: the model card of {card.key} ({card.path}) has no capacity"
    point = measured_point(model_card.capacity, container)
    if point is None:
        sizes = ", ".join(
            f"{p.cpu}/{p.memory} x{p.workers}"
            for p in model_card.capacity.points
            if p.rows_per_request == 1
        )
        return None, (
            f"not measured at {size}: the model card of {card.key} ({card.path}) has "
            f"single-row points for {sizes or 'no size'} (a point counts for the same CPU "
            "and workers with at most the container's memory)"
        )
    measured = model_card.capacity
    at = "" if point.memory == container.memory else f" (measured at {point.memory})"
    return ReplicaRate.measured(point), (
        f"the model card of {card.key} ({card.path}): {point.max_rps:g} requests/s per replica "
        f"at p99 <= {point.p99_target_ms:g} ms, {size}{at}, measured {measured.measured_at} on "
        f"{measured.cpu_model}"
    )


def _stated_rate(
    reader: ConfigReader, container: ContainerSettings
) -> tuple[ReplicaRate | None, str] | None:
    """`modelship:replicaRps` checked against the container (problems go to `reader`); None
    when unset."""
    value = reader.raw(KEY_REPLICA_RPS)
    if value is None:
        return None
    try:
        stated = parse_replica_rps(value)
    except ValueError:
        reader.problem(KEY_REPLICA_RPS, value, REPLICA_RPS_ALLOWED)
        return None, f"not stated: {KEY_REPLICA_RPS} is not RATE@CPU/MEMORY"
    if (
        stated.cpu_millicores != container.cpu_millicores
        or stated.memory_bytes > container.memory_bytes
    ):
        reader.problem(
            KEY_REPLICA_RPS,
            value,
            f"was measured at {stated.cpu}/{stated.memory}, but the container is "
            f"{_size_key(container)}: a rate holds only for the same CPU quota with at least "
            f"the memory it was measured at. Measure this size with "
            f"{_measure_command(None, container)}, or set {KEY_CPU}/{KEY_MEMORY} to the "
            "measured size",
        )
        return None, f"not stated for this size: {KEY_REPLICA_RPS} is {value}"
    return ReplicaRate(stated.max_rps, 0.0, None), (
        f"{KEY_REPLICA_RPS} in the stack's config: {stated.max_rps:g} requests/s per replica "
        f"measured at {stated.cpu}/{stated.memory}, for {_size_key(container)}"
    )


def plan_capacity(
    reader: ConfigReader,
    settings: Settings,
    card: ServedCard | None,
    *,
    single_replica: bool = False,
) -> tuple[Settings, CapacityPlan]:
    """Read `targetRps` and the headroom, size the replicas from the measured rate (problems go
    to `reader`) and return the settings to deploy with and the plan. `single_replica`: the
    target runs exactly one container (local): checked, never derived."""
    target_rps = reader.parse(
        KEY_TARGET_RPS,
        None,
        _positive_rate,
        "a number of requests per second above 0 (the peak to plan for), e.g. 50",
    )
    headroom = reader.parse(
        KEY_HEADROOM,
        DEFAULT_HEADROOM,
        _headroom,
        f"a share of the measured rate kept spare, from 0 to {MAX_HEADROOM}, e.g. 0.3",
    )
    container, scaling = settings.container, settings.scaling
    stated = _stated_rate(reader, container)
    point, source = stated or _find_point(card, container)
    configured = ScalingKeys(reader)
    plan = CapacityPlan(
        target_rps=target_rps,
        headroom=headroom,
        point=point,
        source=source,
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        cpu_target_percent=scaling.cpu_target_percent,
        planned_replicas=0 if scaling.scale_to_zero else scaling.min_replicas,
    )
    if stated is not None and point is None:  # its own problem says what is wrong
        return settings, plan
    if target_rps is not None and point is None:
        reader.problem(
            KEY_TARGET_RPS,
            f"{target_rps:g}",
            f"needs the measured rate of one replica; the served model's rate is {source}. "
            f"Measure it with {_measure_command(card, container)} and set {KEY_IMAGE_MODEL} "
            f"to that artifact or {KEY_REPLICA_RPS} to the rate it prints (RATE@CPU/MEMORY, "
            f"e.g. 1100@{container.cpu}/{container.memory}), or unset {KEY_TARGET_RPS} and "
            f"size {KEY_MIN_REPLICAS}/{KEY_MAX_REPLICAS} yourself",
        )
        return settings, plan
    if target_rps is None or point is None:
        return settings, plan
    if point.max_rps <= 0:
        reader.problem(
            KEY_TARGET_RPS,
            f"{target_rps:g}",
            f"the served model's card measured 0 requests/s within p99 <= "
            f"{point.p99_target_ms or 0:g} ms at this size ({source}): no replica count "
            f"carries it; give the container more CPU ({KEY_CPU}) and measure again",
        )
        return settings, plan
    plan = _size(
        reader,
        plan,
        target_rps=target_rps,
        point=point,
        container=container,
        configured=configured,
        single_replica=single_replica,
    )
    if scaling.scale_to_zero:
        plan = replace(plan, planned_replicas=0)
    new_scaling = replace(
        scaling,
        min_replicas=plan.min_replicas,
        max_replicas=plan.max_replicas,
        cpu_target_percent=plan.cpu_target_percent,
    )
    return replace(settings, scaling=new_scaling), plan


@dataclass(frozen=True)
class ScalingKeys:
    """Which replica keys the stack's config sets (those are kept, never derived)."""

    min_replicas: bool
    max_replicas: bool
    cpu_target: bool

    def __init__(self, reader: ConfigReader) -> None:
        object.__setattr__(self, "min_replicas", reader.raw(KEY_MIN_REPLICAS) is not None)
        object.__setattr__(self, "max_replicas", reader.raw(KEY_MAX_REPLICAS) is not None)
        object.__setattr__(self, "cpu_target", reader.raw(KEY_CPU_TARGET) is not None)


def _size(
    reader: ConfigReader,
    plan: CapacityPlan,
    *,
    target_rps: float,
    point: ReplicaRate,
    container: ContainerSettings,
    configured: ScalingKeys,
    single_replica: bool,
) -> CapacityPlan:
    """The replica range and CPU target from the measured rate (see the module doc)."""
    rate, spare = point.max_rps, plan.headroom
    at_limit = math.ceil(target_rps / rate)
    with_headroom = math.ceil(target_rps / (rate * (1 - spare)))
    derived: list[str] = []
    minimum, maximum, cpu_target = plan.min_replicas, plan.max_replicas, plan.cpu_target_percent
    if not single_replica:
        if not configured.min_replicas:
            minimum, derived = max(MIN_AVAILABLE_REPLICAS, at_limit), [KEY_MIN_REPLICAS]
        if not configured.max_replicas:
            maximum = max(with_headroom, minimum)
            derived.append(KEY_MAX_REPLICAS)
        if not configured.cpu_target and point.cpu_ms_per_request > 0:
            cpu_target = _cpu_target(point, container, spare)
            derived.append(KEY_CPU_TARGET)
    if with_headroom > MAX_REPLICAS and KEY_MAX_REPLICAS in derived:
        reader.problem(
            KEY_TARGET_RPS,
            f"{target_rps:g}",
            f"needs {with_headroom} replicas of {rate:g} requests/s each (with headroom "
            f"{spare:g}), more than the {MAX_REPLICAS} allowed: give each replica more CPU "
            f"({KEY_CPU}) and measure that size, or lower {KEY_TARGET_RPS}",
        )
        maximum = MAX_REPLICAS
    elif maximum * rate < target_rps:
        key = KEY_MAX_REPLICAS if not single_replica else KEY_TARGET_RPS
        fix = (
            f"set {KEY_MAX_REPLICAS} to at least {at_limit} ({with_headroom} with headroom "
            f"{spare:g}; unset, it is derived), or lower {KEY_TARGET_RPS}"
            if not single_replica
            else f"the local target runs one container: lower {KEY_TARGET_RPS} to at most "
            f"{rate:g}, or give it more CPU ({KEY_CPU}) and measure that size"
        )
        reader.problem(
            key,
            str(maximum) if not single_replica else f"{target_rps:g}",
            f"{maximum} replica(s) x {rate:g} requests/s measured per replica = "
            f"{maximum * rate:g} requests/s, below {KEY_TARGET_RPS} ({target_rps:g}); {fix}",
        )
    elif maximum * rate * (1 - spare) < target_rps:
        pulumi.log.warn(
            f"capacity: {maximum} replica(s) carry {KEY_TARGET_RPS} ({target_rps:g}) only "
            f"without the headroom of {spare:g} ({with_headroom} would keep it): at the peak "
            "p99 sits at its measured limit"
        )
    limit_percent = _limit_percent(point, container)
    if configured.cpu_target and limit_percent is not None and cpu_target >= limit_percent:
        pulumi.log.warn(
            f"capacity: {KEY_CPU_TARGET} ({cpu_target}) is at or above the CPU a replica uses at "
            f"its measured limit ({limit_percent:.0f}%): the autoscaler starts only after p99 "
            "has passed its target"
        )
    planned = 1 if single_replica else min(max(with_headroom, minimum), maximum)
    return replace(
        plan,
        min_replicas=minimum,
        max_replicas=maximum,
        cpu_target_percent=cpu_target,
        planned_replicas=planned,
        derived=tuple(derived),
    )


def _limit_percent(point: ReplicaRate, container: ContainerSettings) -> float | None:
    """CPU used at the measured limit, in percent of the container's CPU (what autoscalers
    compare their target with)."""
    if point.cpu_ms_per_request <= 0:
        return None
    return 100 * point.max_rps * point.cpu_ms_per_request / container.cpu_millicores


def _cpu_target(point: ReplicaRate, container: ContainerSettings, spare: float) -> int:
    limit = _limit_percent(point, container)
    assert limit is not None  # only called with a measured CPU per request
    share = round(limit * (1 - spare), 6)  # a float product like 62.999999 is 63
    return min(MAX_CPU_TARGET, max(MIN_CPU_TARGET, math.floor(share)))

"""The settings every target shares, read and validated once into one frozen, typed object.

`read_shared` reads the shared `modelship:*` keys (target, image, container size, scaling, API
key, environment) with the problem-collecting reader of `infra.config`; each target then reads
its own section (`infra/targets/<name>/config.py`). Nothing here knows a cloud.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from infra.config import (
    CPU_ALLOWED,
    MEMORY_ALLOWED,
    ConfigReader,
    check_replicas,
    parse_cpu_millicores,
    parse_memory_bytes,
)
from infra.stack_file import REPO_ROOT
from modelship.contracts.card import ModelCard
from modelship.contracts.footprint import memory_shortfall
from modelship.errors import ModelshipError
from modelship.model import artifact


def check_model_fits(
    reader: ConfigReader,
    container: ContainerSettings,
    card: ModelCard,
    source: str,
    candidate: ModelCard | None = None,
) -> None:
    """The served model's measured worker memory x `modelship:workers` must fit in
    `modelship:memory`: otherwise every pod is OOM-killed under load, after the rollout.
    `source` says which key chose the model. During a rollout every worker also holds the
    `candidate`: then the pair must fit."""
    if card.footprint is None:  # a model trained before modelship measured footprints
        return
    pair = None
    if candidate is not None:
        if candidate.footprint is None:
            return
        pair = (candidate.name, candidate.footprint)
    shortfall = memory_shortfall(
        card.name,
        card.footprint,
        container.workers,
        container.memory_bytes,
        KEY_MEMORY,
        candidate=pair,
    )
    if shortfall is not None:
        what = f"the model of {source}" + ("" if pair is None else " and its candidate")
        reader.problem(KEY_MEMORY, container.memory, f"{shortfall} ({what})")


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# What a stack is for; the policy pack (policy/) checks deletion protection against it.
ENVIRONMENTS = ("development", "staging", "production")
PLATFORMS = ("linux/amd64", "linux/arm64")


# --------------------------------------------------------------------------- shared settings


@dataclass(frozen=True)
class ImageSettings:
    """How the service image is built (shared by every target)."""

    platform: str = "linux/amd64"
    build_on_preview: bool = False
    keep_images: int = 10
    model_dir: Path | None = None
    """An artifact directory baked into the service image instead of the default model (the
    Dockerfile's `model` build context); None bakes the model trained on the bundled data."""
    model_sha256: str | None = None
    """That artifact's ONNX checksum, so a tag derived from the build's inputs names it."""
    card: ModelCard | None = field(default=None, compare=False)
    """That artifact's card (a rollout checks a candidate against it)."""


@dataclass(frozen=True)
class ContainerSettings:
    """Size and runtime knobs of one service container."""

    cpu: str = "500m"
    memory: str = "512Mi"
    cpu_millicores: int = 500
    memory_bytes: int = 512 * 2**20
    workers: int = 1
    log_level: str = "info"
    shutdown_grace_seconds: int = 20
    access_log: bool = True
    """One log line per request (the largest usage line of the bill at hundreds of requests/s)."""


@dataclass(frozen=True)
class ScalingSettings:
    """Replica range and autoscaling target; `scale_to_zero` parks the service at 0 replicas."""

    min_replicas: int = 2
    max_replicas: int = 4
    cpu_target_percent: int = 70
    scale_to_zero: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything the program needs, read and validated once.

    `target_settings` is the section of the chosen target (`GkeSettings`, ...); each target's
    deploy function receives it typed (see `infra.targets`).
    """

    project: str
    stack: str
    target: str
    image: ImageSettings
    container: ContainerSettings
    scaling: ScalingSettings
    api_key: pulumi.Output[str] | None = field(default=None, repr=False, compare=False)
    environment: str = "development"


# Shared keys. Targets add their own in their module (see infra/targets/gke/config.py).
KEY_TARGET = "modelship:target"
KEY_PLATFORM = "modelship:platform"
KEY_BUILD_ON_PREVIEW = "modelship:buildOnPreview"
KEY_KEEP_IMAGES = "modelship:keepImages"
KEY_CPU = "modelship:cpu"
KEY_MEMORY = "modelship:memory"
KEY_WORKERS = "modelship:workers"
KEY_LOG_LEVEL = "modelship:logLevel"
KEY_ACCESS_LOG = "modelship:accessLog"
KEY_SHUTDOWN_GRACE = "modelship:shutdownGraceSeconds"
KEY_MIN_REPLICAS = "modelship:minReplicas"
KEY_MAX_REPLICAS = "modelship:maxReplicas"
KEY_CPU_TARGET = "modelship:cpuTargetPercent"
KEY_SCALE_TO_ZERO = "modelship:scaleToZero"
KEY_API_KEY = "modelship:apiKey"
KEY_ENVIRONMENT = "modelship:environment"
KEY_IMAGE_MODEL = "modelship:imageModel"
# Read by each target's model-store section; here only to know whether the baked model is served.
KEY_MODEL_URI = "modelship:modelUri"
IMAGE_MODEL_ALLOWED = (
    "must be a model artifact directory (model.onnx + model-card.json, as written by "
    "`modelship train` or `modelship import`), absolute or relative to the repository"
)


def _read_image_model(
    reader: ConfigReader, container: ContainerSettings
) -> tuple[Path | None, ModelCard | None]:
    """`modelship:imageModel`, verified (card valid, model.onnx matches it) and, when the image
    serves it (no `modelship:modelUri`), its measured footprint checked against the memory."""
    value = reader.raw(KEY_IMAGE_MODEL)
    if value is None:
        return None, None
    given = Path(value).expanduser()
    directory = (given if given.is_absolute() else REPO_ROOT / given).resolve()
    try:
        baked = artifact.load(directory)
    except ModelshipError as exc:
        reader.problem(KEY_IMAGE_MODEL, value, f"{exc.message}; {IMAGE_MODEL_ALLOWED}")
        return None, None
    if reader.raw(KEY_MODEL_URI) is None:
        check_model_fits(reader, container, baked.card, KEY_IMAGE_MODEL)
    return directory, baked.card


def read_shared(reader: ConfigReader, project: str, targets: Iterable[str]) -> Settings:
    """The part of the settings every target shares. `targets` are the allowed target names."""
    allowed_targets = tuple(targets)
    target = reader.raw(KEY_TARGET)
    if target is None or target not in allowed_targets:
        reader.problem(KEY_TARGET, target, "must be one of " + ", ".join(allowed_targets))
        target = ""

    cpu = reader.string(KEY_CPU, ContainerSettings.cpu)
    memory = reader.string(KEY_MEMORY, ContainerSettings.memory)
    cpu_millicores = reader.parse(
        KEY_CPU, ContainerSettings.cpu_millicores, parse_cpu_millicores, CPU_ALLOWED
    )
    memory_bytes = reader.parse(
        KEY_MEMORY, ContainerSettings.memory_bytes, parse_memory_bytes, MEMORY_ALLOWED
    )
    container = ContainerSettings(
        cpu=cpu,
        memory=memory,
        cpu_millicores=cpu_millicores,
        memory_bytes=memory_bytes,
        workers=reader.integer(KEY_WORKERS, ContainerSettings.workers, 1, 32),
        log_level=reader.choice(KEY_LOG_LEVEL, ContainerSettings.log_level, LOG_LEVELS),
        shutdown_grace_seconds=reader.integer(
            KEY_SHUTDOWN_GRACE, ContainerSettings.shutdown_grace_seconds, 1, 300
        ),
        access_log=reader.boolean(KEY_ACCESS_LOG, ContainerSettings.access_log),
    )

    model_dir, model_card = _read_image_model(reader, container)
    image = ImageSettings(
        platform=reader.choice(KEY_PLATFORM, ImageSettings.platform, PLATFORMS),
        build_on_preview=reader.boolean(KEY_BUILD_ON_PREVIEW, ImageSettings.build_on_preview),
        keep_images=reader.integer(KEY_KEEP_IMAGES, ImageSettings.keep_images, 1, 1000),
        model_dir=model_dir,
        model_sha256=None if model_card is None else model_card.artifact.onnx_sha256,
        card=model_card,
    )

    min_replicas = reader.integer(KEY_MIN_REPLICAS, ScalingSettings.min_replicas, 1, 100)
    max_replicas = reader.integer(KEY_MAX_REPLICAS, ScalingSettings.max_replicas, 1, 100)
    check_replicas(reader, KEY_MIN_REPLICAS, KEY_MAX_REPLICAS, min_replicas, max_replicas)
    scaling = ScalingSettings(
        min_replicas=min_replicas,
        max_replicas=max(max_replicas, min_replicas),
        cpu_target_percent=reader.integer(
            KEY_CPU_TARGET, ScalingSettings.cpu_target_percent, 10, 100
        ),
        scale_to_zero=reader.boolean(KEY_SCALE_TO_ZERO, ScalingSettings.scale_to_zero),
    )

    return Settings(
        project=project,
        stack=reader.stack,
        target=target,
        image=image,
        container=container,
        scaling=scaling,
        api_key=reader.secret(KEY_API_KEY),
        environment=reader.choice(KEY_ENVIRONMENT, "development", ENVIRONMENTS),
    )

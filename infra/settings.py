"""Config → one frozen, typed settings object, validated before any resource is declared.

Every `modelship:*` key (and the provider keys a target needs, like `gcp:project`) is read here
once. Problems are collected, not raised one by one, so a wrong stack file fails `pulumi preview`
with every bad key at once: the key, the value and what is allowed. The `check_*` and `parse_*`
functions are shared by all targets (fargate and local reuse them for their own sections).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

import pulumi
import pulumi.runtime.config as runtime_config

from modelship import artifact
from modelship.card import ModelCard
from modelship.errors import ModelshipError
from modelship.footprint import memory_shortfall

# Relative paths in config are relative to the repository, not to the working directory
# (Pulumi runs the program in infra/).
REPO_ROOT = Path(__file__).resolve().parent.parent

PROJECT_NAMESPACE = "modelship"
T = TypeVar("T")


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    """One invalid config value: which key, what it was, and what would be accepted."""

    key: str
    value: str | None
    allowed: str

    def render(self) -> str:
        shown = "(not set)" if self.value is None else repr(self.value)
        return f"{self.key} = {shown}: {self.allowed}"


class ConfigError(Exception):
    """Raised before any resource is declared when the stack's config is invalid."""

    def __init__(self, stack: str, problems: Iterable[Problem]) -> None:
        self.stack = stack
        self.problems = tuple(problems)
        lines = [f"invalid configuration for stack '{stack}':"]
        lines += [f"  - {p.render()}" for p in self.problems]
        lines.append(f"fix with: pulumi config set <key> <value> -s {stack}")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- reader


class ConfigReader:
    """Reads raw config values and collects problems instead of raising on the first one.

    Every key read is remembered, so `check_unknown_keys` can reject a misspelled
    `modelship:minReplica` that would otherwise be silently ignored.
    """

    def __init__(self, stack: str, all_keys: Iterable[str] | None = None) -> None:
        self.stack = stack
        self.problems: list[Problem] = []
        self.known_keys: set[str] = set()
        self._all_keys = set(all_keys) if all_keys is not None else set(_configured_keys())

    # raw access -------------------------------------------------------------
    def raw(self, key: str) -> str | None:
        """The raw string value of a fully qualified key (`namespace:name`), or None."""
        self.known_keys.add(key)
        namespace, name = key.split(":", 1)
        value = pulumi.Config(namespace).get(name)
        return None if value is None or value == "" else value

    def secret(self, key: str) -> pulumi.Output[str] | None:
        """A secret value as a secret Output (never logged, never shown in errors)."""
        self.known_keys.add(key)
        namespace, name = key.split(":", 1)
        return pulumi.Config(namespace).get_secret(name)

    def problem(self, key: str, value: str | None, allowed: str) -> None:
        self.problems.append(Problem(key, value, allowed))

    # typed access ----------------------------------------------------------
    def parse(self, key: str, default: T, parser: Callable[[str], T], allowed: str) -> T:
        """Parse `key` with `parser` (which raises ValueError on bad input); default if unset."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            return parser(value)
        except ValueError:
            self.problem(key, value, allowed)
            return default

    def string(self, key: str, default: str) -> str:
        return self.raw(key) or default

    def optional_string(self, key: str) -> str | None:
        return self.raw(key)

    def required_string(self, key: str, allowed: str) -> str:
        value = self.raw(key)
        if value is None:
            self.problem(key, None, f"required; {allowed}")
            return ""
        return value

    def boolean(self, key: str, default: bool) -> bool:
        return self.parse(key, default, parse_bool, "must be true or false")

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self.parse(key, default, int, f"must be an integer from {minimum} to {maximum}")
        if not minimum <= value <= maximum:
            self.problem(key, str(value), f"must be an integer from {minimum} to {maximum}")
            return default
        return value

    def choice(self, key: str, default: str, allowed: Iterable[str]) -> str:
        options = tuple(allowed)
        value = self.raw(key)
        if value is None:
            return default
        if value not in options:
            self.problem(key, value, "must be one of " + ", ".join(options))
            return default
        return value

    def matching(self, key: str, default: str, pattern: re.Pattern[str], allowed: str) -> str:
        value = self.raw(key)
        if value is None:
            return default
        if not pattern.fullmatch(value):
            self.problem(key, value, allowed)
            return default
        return value

    # closing ----------------------------------------------------------------
    def check_unknown_keys(self, namespace: str = PROJECT_NAMESPACE) -> None:
        """Every configured `namespace:*` key must have been read by the target's settings."""
        for key in sorted(self._all_keys):
            if key.startswith(f"{namespace}:") and key not in self.known_keys:
                known = ", ".join(sorted(k for k in self.known_keys if k.startswith(namespace)))
                self.problem(key, None, f"unknown key for this target; known keys: {known}")

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ConfigError(self.stack, self.problems)


def _configured_keys() -> list[str]:
    """Keys the engine passed to this program (the same sources `pulumi.Config` reads)."""
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return sorted(keys)


# --------------------------------------------------------------------------- parsers and checks

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


# Kubernetes quantity grammar (resource.Quantity): a signed decimal number with an optional
# binary (Ki..Ei), decimal (n, u, m, k, M..E) or exponent (e3) suffix.
_QUANTITY = re.compile(
    r"(?P<num>\+?(\d+(\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(value: str) -> Decimal:
    """A Kubernetes quantity as a Decimal in base units; ValueError if Kubernetes rejects it."""
    match = _QUANTITY.fullmatch(value.strip())
    if match is None or value != value.strip():
        raise ValueError(value)
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(value) from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def parse_cpu_millicores(value: str) -> int:
    """`500m`, `0.5`, `1` → millicores; whole millicores only (Kubernetes' precision for CPU)."""
    millicores = parse_quantity(value) * 1000
    if millicores <= 0 or millicores != millicores.to_integral_value():
        raise ValueError(value)
    return int(millicores)


def parse_memory_bytes(value: str) -> int:
    """`512Mi`, `1Gi`, `1G` → bytes; whole bytes of at least 4 MiB (no `m` milli-bytes)."""
    quantity = parse_quantity(value)
    if quantity != quantity.to_integral_value() or quantity < 4 * 2**20:
        raise ValueError(value)
    return int(quantity)


CPU_ALLOWED = "a Kubernetes CPU quantity of whole millicores, e.g. 250m, 500m, 1, 2"
MEMORY_ALLOWED = "a Kubernetes memory quantity of whole bytes, at least 4Mi, e.g. 512Mi, 1Gi"

GCP_REGION = re.compile(r"[a-z]+-[a-z]+[1-9][0-9]*")
GCP_REGION_ALLOWED = "a Google Cloud region such as us-central1, europe-west4, asia-southeast1"
AWS_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[1-9]")
AWS_REGION_ALLOWED = "an AWS region such as us-east-1, eu-west-3, ap-southeast-2"
GCP_PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
GCP_PROJECT_ALLOWED = (
    "a Google Cloud project id: 6-30 lowercase letters, digits or hyphens, starting with a "
    "letter (set it with `pulumi config set gcp:project <id>`)"
)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_LABEL_ALLOWED = (
    "a DNS-1123 label: at most 63 lowercase letters, digits or '-', alphanumeric at both ends"
)
HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
HOSTNAME_ALLOWED = "a fully qualified lowercase domain name such as api.example.com"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# What a stack is for; the policy pack (policy/) checks deletion protection against it.
ENVIRONMENTS = ("development", "staging", "production")
PLATFORMS = ("linux/amd64", "linux/arm64")


def parse_cidr(value: str) -> ipaddress.IPv4Network:
    """An IPv4 CIDR block with no host bits set (`10.10.0.0/20`)."""
    network = ipaddress.ip_network(value, strict=True)
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(value)
    return network


def check_replicas(
    reader: ConfigReader, min_key: str, max_key: str, minimum: int, maximum: int
) -> None:
    """max must not be below min (each already checked for range)."""
    if maximum < minimum:
        reader.problem(max_key, str(maximum), f"must be >= {min_key} ({minimum})")


def check_no_overlap(reader: ConfigReader, ranges: Mapping[str, ipaddress.IPv4Network]) -> None:
    """CIDR ranges given by key must not overlap each other."""
    items = list(ranges.items())
    for i, (key_a, net_a) in enumerate(items):
        for key_b, net_b in items[i + 1 :]:
            if net_a.overlaps(net_b):
                reader.problem(key_b, str(net_b), f"must not overlap {key_a} ({net_a})")


# Fargate task sizes (CLOUD-PITFALLS 2): vCPU → allowed memory in MiB (start, stop, step).
FARGATE_MEMORY_MIB: dict[int, range] = {
    256: range(512, 2048 + 1, 512),  # 0.25 vCPU: 0.5, 1, 2 GB (1.5 GB is not offered)
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}


def fargate_cpu_units(cpu_millicores: int) -> int:
    """Kubernetes-style millicores → Fargate CPU units (1 vCPU = 1024 units)."""
    return cpu_millicores * 1024 // 1000


def check_fargate_size(
    reader: ConfigReader, cpu_key: str, memory_key: str, cpu_millicores: int, memory_mib: int
) -> None:
    """CPU and memory must be a task size Fargate offers; the message lists the valid memory."""
    units = fargate_cpu_units(cpu_millicores)
    if units not in FARGATE_MEMORY_MIB:
        reader.problem(
            cpu_key, f"{cpu_millicores}m", "on Fargate must be 250m, 500m, 1, 2, 4, 8 or 16"
        )
        return
    allowed = FARGATE_MEMORY_MIB[units]
    if memory_mib not in allowed or (units == 256 and memory_mib == 1536):
        options = [f"{m}Mi" for m in allowed if not (units == 256 and m == 1536)]
        shown = (
            ", ".join(options)
            if len(options) <= 8
            else f"{options[0]} to {options[-1]} in steps of {allowed.step}Mi"
        )
        reader.problem(
            memory_key, f"{memory_mib}Mi", f"on Fargate with {cpu_millicores}m CPU must be {shown}"
        )


def check_model_fits(
    reader: ConfigReader, container: ContainerSettings, card: ModelCard, source: str
) -> None:
    """The served model's measured worker memory x `modelship:workers` must fit in
    `modelship:memory`: otherwise every pod is OOM-killed under load, after the rollout.
    `source` says which key chose the model."""
    if card.footprint is None:  # a model trained before modelship measured footprints
        return
    shortfall = memory_shortfall(
        card.name, card.footprint, container.workers, container.memory_bytes, KEY_MEMORY
    )
    if shortfall is not None:
        reader.problem(KEY_MEMORY, container.memory, f"{shortfall} (the model of {source})")


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


# Shared keys. Targets add their own in their module (see infra/gke/config.py).
KEY_TARGET = "modelship:target"
KEY_PLATFORM = "modelship:platform"
KEY_BUILD_ON_PREVIEW = "modelship:buildOnPreview"
KEY_KEEP_IMAGES = "modelship:keepImages"
KEY_CPU = "modelship:cpu"
KEY_MEMORY = "modelship:memory"
KEY_WORKERS = "modelship:workers"
KEY_LOG_LEVEL = "modelship:logLevel"
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
) -> tuple[Path | None, str | None]:
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
    return directory, baked.card.artifact.onnx_sha256


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
    )

    model_dir, model_sha256 = _read_image_model(reader, container)
    image = ImageSettings(
        platform=reader.choice(KEY_PLATFORM, ImageSettings.platform, PLATFORMS),
        build_on_preview=reader.boolean(KEY_BUILD_ON_PREVIEW, ImageSettings.build_on_preview),
        keep_images=reader.integer(KEY_KEEP_IMAGES, ImageSettings.keep_images, 1, 1000),
        model_dir=model_dir,
        model_sha256=model_sha256,
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

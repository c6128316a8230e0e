"""The model store and the training job: what every cloud target declares the same way.

Each cloud stack owns one bucket (GCS on gke, S3 on fargate) laid out as the service's store
(`modelship.model.store`): training CSVs under `data/`, model versions under
`models/<name>/<sha256>/`. The training job runs `modelship train` in the training image, reads
`data/…` and publishes a new immutable version under `models/`; the service fetches the version
named by `modelship:modelUri` and verifies it before it reports ready. So the identities split:

  serving   may read `models/` only, and with `modelship:captureRate` above 0 create objects
            under `captures/` (the request capture, `modelship.serving.monitoring.capture`);
  training  may read `data/` and `models/` and create (never overwrite or delete) in `models/`.

This module holds the config keys, their validation and the training command line; the targets
turn them into buckets, IAM and a Kubernetes CronJob or an ECS task definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi

from infra.config import (
    CPU_ALLOWED,
    MEMORY_ALLOWED,
    ConfigReader,
    parse_cpu_millicores,
    parse_memory_bytes,
)
from infra.core.batch import BatchSettings, read_batch
from infra.core.rollout import (
    KEY_CANDIDATE_MODEL_URI,
    RolloutSettings,
    read_rollout,
    version_sha256,
)
from infra.settings import KEY_MODEL_URI, Settings
from modelship.build.training.options import DEFAULT_TIME_BUDGET_SECONDS

KEY_KEEP_MODEL_STORE = "modelship:keepModelStore"
KEY_TRAINING_DATA_DAYS = "modelship:trainingDataDays"
KEY_TRAINING_DATA = "modelship:trainingData"
KEY_TRAINING_TARGET = "modelship:trainingTarget"
KEY_TRAINING_CPU = "modelship:trainingCpu"
KEY_TRAINING_MEMORY = "modelship:trainingMemory"
KEY_TRAINING_TIMEOUT = "modelship:trainingTimeoutMinutes"
KEY_TRAINING_TIME_BUDGET = "modelship:trainingTimeBudgetSeconds"
KEY_CAPTURE_RATE = "modelship:captureRate"
KEY_CAPTURE_DAYS = "modelship:captureDays"

DATA_PREFIX = "data/"
MODELS_PREFIX = "models/"
CAPTURES_PREFIX = "captures/"
CAPTURE_RATE_ALLOWED = (
    "the share of the rows served that are captured to captures/ of the model store: a number "
    "from 0 (off) to 1 (every row), e.g. 0.01"
)
# Overwritten or deleted objects stay recoverable this long (bucket versioning), then go.
NONCURRENT_VERSION_DAYS = 30

_BUCKET = r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"
_VERSION = r"models/[A-Za-z0-9._-]+/[0-9a-f]{64}/?"
DATA_KEY = re.compile(r"data/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
DATA_KEY_ALLOWED = (
    "a CSV file under data/ in the model store, e.g. data/insurance.csv "
    "(letters, digits, '.', '_', '-' and '/')"
)
COLUMN = re.compile(r"[^,\s][^,]*")


def model_uri_pattern(scheme: str) -> re.Pattern[str]:
    """A version URI in a stack's bucket: `<scheme>://BUCKET/models/NAME/SHA256/`."""
    return re.compile(rf"{scheme}://{_BUCKET}/{_VERSION}")


def model_uri_allowed(scheme: str, unset: str = "serve the model baked into the image") -> str:
    return (
        f"a model version in this stack's bucket: {scheme}://BUCKET/models/NAME/SHA256/ "
        f"as printed by the training job or `modelship models list {scheme}://BUCKET` "
        f"(unset: {unset})"
    )


@dataclass(frozen=True)
class TrainingSettings:
    """What the training job reads and how big it is."""

    data_key: str = "data/insurance.csv"
    target: str = "charges"
    cpu: str = "1"
    memory: str = "2Gi"
    cpu_millicores: int = 1000
    memory_bytes: int = 2 * 2**30
    timeout_minutes: int = 60
    time_budget_seconds: int | None = None
    """The model search's `--time-budget`; None leaves `modelship train`'s default."""

    @property
    def search_options(self) -> list[str]:
        """The `modelship train` options that size the search."""
        if self.time_budget_seconds is None:
            return []
        return ["--time-budget", f"{self.time_budget_seconds}s"]

    @property
    def timeout_seconds(self) -> int:
        return self.timeout_minutes * 60

    @property
    def memory_mib(self) -> int:
        return self.memory_bytes // 2**20


@dataclass(frozen=True)
class CaptureSettings:
    """Request capture: the share of rows written to `captures/` and how long they stay."""

    rate: float = 0.0
    days: int = 30
    """Objects under `captures/` are deleted this many days after they were written."""

    @property
    def enabled(self) -> bool:
        return self.rate > 0


def _capture_rate(value: str) -> float:
    rate = float(value)
    if not 0 <= rate <= 1:  # also refuses nan
        raise ValueError(value)
    return rate


def read_capture(reader: ConfigReader, *, with_days: bool = True) -> CaptureSettings:
    """The capture keys; a store without lifecycle rules (a directory) leaves the days unknown."""
    return CaptureSettings(
        rate=reader.parse(
            KEY_CAPTURE_RATE, CaptureSettings.rate, _capture_rate, CAPTURE_RATE_ALLOWED
        ),
        days=reader.integer(KEY_CAPTURE_DAYS, CaptureSettings.days, 1, 3650)
        if with_days
        else CaptureSettings.days,
    )


@dataclass(frozen=True)
class ModelStoreSettings:
    """The stack's bucket, the model version to serve and the training job."""

    model_uri: str | None = None
    """The version to serve (`gs://…/models/NAME/SHA256/`), or None for the image's own model."""
    keep: bool = False
    """Keep the bucket on `pulumi destroy` (production); otherwise it is emptied and deleted."""
    training_data_days: int = 90
    """Objects under `data/` are deleted this many days after upload."""
    training: TrainingSettings = TrainingSettings()
    capture: CaptureSettings = CaptureSettings()
    batch: BatchSettings = field(default_factory=BatchSettings)
    """The batch transform job (`modelship predict --shard`) and how long its outputs stay."""
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    """A candidate version in the same bucket (readable under `models/` like the primary)."""


def read_training(reader: ConfigReader, *, with_timeout: bool = True) -> TrainingSettings:
    """The training keys: data, target column, size and (where the platform enforces one)
    the deadline. The local target has no deadline to enforce, so it leaves that key unknown."""
    timeout_minutes = (
        reader.integer(KEY_TRAINING_TIMEOUT, TrainingSettings.timeout_minutes, 5, 24 * 60)
        if with_timeout
        else TrainingSettings.timeout_minutes
    )
    return TrainingSettings(
        data_key=reader.matching(
            KEY_TRAINING_DATA, TrainingSettings.data_key, DATA_KEY, DATA_KEY_ALLOWED
        ),
        target=reader.matching(
            KEY_TRAINING_TARGET,
            TrainingSettings.target,
            COLUMN,
            "the name of the column to predict (no commas)",
        ),
        cpu=reader.string(KEY_TRAINING_CPU, TrainingSettings.cpu),
        memory=reader.string(KEY_TRAINING_MEMORY, TrainingSettings.memory),
        cpu_millicores=reader.parse(
            KEY_TRAINING_CPU, TrainingSettings.cpu_millicores, parse_cpu_millicores, CPU_ALLOWED
        ),
        memory_bytes=reader.parse(
            KEY_TRAINING_MEMORY, TrainingSettings.memory_bytes, parse_memory_bytes, MEMORY_ALLOWED
        ),
        timeout_minutes=timeout_minutes,
        time_budget_seconds=_read_time_budget(reader, timeout_minutes if with_timeout else None),
    )


def _read_time_budget(reader: ConfigReader, timeout_minutes: int | None) -> int | None:
    """`modelship:trainingTimeBudgetSeconds`: the search must end well inside the job's deadline
    (the fit on all rows, the export and the report come after it)."""
    if reader.raw(KEY_TRAINING_TIME_BUDGET) is None:
        return None
    most = 24 * 3600 if timeout_minutes is None else timeout_minutes * 60 // 2
    where = "" if timeout_minutes is None else f" (half of {KEY_TRAINING_TIMEOUT})"
    return reader.parse(
        KEY_TRAINING_TIME_BUDGET,
        round(DEFAULT_TIME_BUDGET_SECONDS),  # not used: an unset key returned None above
        lambda text: _seconds_within(text, 5, most),
        f"a whole number of seconds from 5 to {most}{where}",
    )


def _seconds_within(text: str, least: int, most: int) -> int:
    value = int(text)
    if not least <= value <= most:
        raise ValueError(text)
    return value


def read_model_store(reader: ConfigReader, settings: Settings, scheme: str) -> ModelStoreSettings:
    """Read and check the model-store and training keys for a bucket of `scheme` (gs, s3)."""
    model_uri = reader.matching(
        KEY_MODEL_URI, "", model_uri_pattern(scheme), model_uri_allowed(scheme)
    )
    return ModelStoreSettings(
        model_uri=version_uri(model_uri) if model_uri else None,
        rollout=read_store_candidate(reader, settings, scheme, model_uri or None),
        keep=reader.boolean(KEY_KEEP_MODEL_STORE, settings.environment == "production"),
        training_data_days=reader.integer(
            KEY_TRAINING_DATA_DAYS, ModelStoreSettings.training_data_days, 1, 3650
        ),
        training=read_training(reader),
        capture=read_capture(reader),
        batch=read_batch(reader),
    )


def read_store_candidate(
    reader: ConfigReader, settings: Settings, scheme: str, model_uri: str | None
) -> RolloutSettings:
    """`modelship:candidateModelUri` checked like `modelship:modelUri` on a cloud target: a
    version URI in the stack's bucket (a preview makes no cloud call, so the service's start-up
    fetch is what proves the version is there and intact), and not the model already served."""
    candidate = reader.matching(
        KEY_CANDIDATE_MODEL_URI,
        "",
        model_uri_pattern(scheme),
        model_uri_allowed(scheme, unset="no rollout, the primary alone"),
    )
    primary = version_sha256(model_uri) if model_uri else settings.image.model_sha256
    return read_rollout(reader, version_uri(candidate) if candidate else None, primary)


def version_uri(uri: str) -> str:
    """One spelling per version (trailing slash), so a re-typed URI is not a change."""
    return uri if uri.endswith("/") else uri + "/"


def store_root(scheme: str, bucket: pulumi.Input[str]) -> pulumi.Output[str]:
    """`gs://BUCKET` / `s3://BUCKET`: where the training job publishes."""
    return pulumi.Output.concat(f"{scheme}://", bucket)


def training_command(
    scheme: str, bucket: pulumi.Input[str], training: TrainingSettings
) -> pulumi.Output[list[str]]:
    """The container command of the training job (the image's entrypoint is `modelship`)."""
    return store_root(scheme, bucket).apply(
        lambda root: [
            "train",
            "--data",
            f"{root}/{training.data_key}",
            "--target",
            training.target,
            "--output",
            root,
            *training.search_options,
        ]
    )

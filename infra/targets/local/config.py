"""The local section of the settings: host port, bind address, restart policy, platform, and
the model store (a directory on this machine) with the version to serve and the training run.

A local stack can look at the disk it deploys to, so `modelship:modelUri` is checked at preview
the way the service checks it at start-up (`modelship.model.store.fetch`): a version that is
missing, incomplete or does not match its hash is a config error before the running container
is touched.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from infra.config import ConfigReader
from infra.core.batch import BatchSettings, read_batch
from infra.core.model_store import (
    CAPTURES_PREFIX,
    DATA_PREFIX,
    MODELS_PREFIX,
    CaptureSettings,
    TrainingSettings,
    read_capture,
    read_training,
)
from infra.core.rollout import (
    KEY_CANDIDATE_MODEL_URI,
    RolloutSettings,
    inputs_differ,
    read_rollout,
)
from infra.settings import (
    KEY_IMAGE_MODEL,
    KEY_MAX_REPLICAS,
    KEY_MIN_REPLICAS,
    KEY_MODEL_URI,
    KEY_PLATFORM,
    ContainerSettings,
    ImageSettings,
    Settings,
    check_model_fits,
)
from infra.stack_file import REPO_ROOT
from modelship.contracts.card import ModelCard
from modelship.errors import ModelshipError
from modelship.model import store

KEY_HOST_PORT = "modelship:hostPort"
KEY_BIND_ADDRESS = "modelship:bindAddress"
KEY_RESTART = "modelship:restart"
# Docker's restart policies (`docker run --restart`); `on-failure` retries a crashing container.
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
BIND_ALLOWED = "an IPv4 address of this machine: 127.0.0.1 (only you) or 0.0.0.0 (your network)"

KEY_MODEL_STORE_DIR = "modelship:modelStoreDir"
DEFAULT_MODEL_STORE_DIR = "model-store"  # under the repository root; in .gitignore/.dockerignore
DEFAULT_MODEL_STORE = (REPO_ROOT / DEFAULT_MODEL_STORE_DIR).resolve()
STORE_DIR_ALLOWED = (
    "a directory on this machine, absolute or relative to the repository root "
    f"(default {DEFAULT_MODEL_STORE_DIR}); no ':' (Docker's volume syntax splits on it)"
)
# A version directory relative to the store: the layout of `modelship.model.store` and the buckets.
VERSION_PATH = re.compile(rf"{MODELS_PREFIX}[A-Za-z0-9._-]+/[0-9a-f]{{64}}")
MODEL_URI_ALLOWED = (
    "a model version in the model store ({store}): the path printed by "
    "`modelship train --output file://{store}` ({store}/models/NAME/SHA256/) or "
    "models/NAME/SHA256/ relative to the store; `modelship models list {store}` lists them "
    "(unset: serve the model baked into the image)"
)


@dataclass(frozen=True)
class LocalModelStore:
    """The model store on this machine: a directory laid out like the cloud buckets.

    `data/` holds training CSVs, `models/<name>/<sha256>/` the published versions. The service
    container sees only the version it serves (read-only); the training run reads `data/` and
    writes `models/`.
    """

    directory: Path = DEFAULT_MODEL_STORE
    """Absolute (Docker bind mounts need one), symlinks resolved."""
    version: str | None = None
    """The version to serve, `models/<name>/<sha256>` relative to `directory`; None: the
    model baked into the image."""
    training: TrainingSettings = field(default_factory=TrainingSettings)
    """What the training run reads (`data_key` under `directory`), predicts and may use."""
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    """The share of served rows the service writes to `captures/` (kept until you delete them)."""
    batch: BatchSettings = field(default_factory=BatchSettings)
    """The batch transform's shards and sizes (`batch_command`)."""
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    """A candidate version, `models/<name>/<sha256>` relative to `directory` like `version`."""

    @property
    def version_dir(self) -> Path | None:
        return None if self.version is None else self.directory / self.version

    @property
    def candidate_dir(self) -> Path | None:
        candidate = self.rollout.candidate_uri
        return None if candidate is None else self.directory / candidate

    @property
    def data_dir(self) -> Path:
        return self.directory / DATA_PREFIX.rstrip("/")

    @property
    def models_dir(self) -> Path:
        return self.directory / MODELS_PREFIX.rstrip("/")

    @property
    def captures_dir(self) -> Path:
        return self.directory / CAPTURES_PREFIX.rstrip("/")


@dataclass(frozen=True)
class LocalSettings:
    """Validated settings of the local target."""

    host_port: int = 8080
    bind_address: str = "127.0.0.1"
    restart: str = "unless-stopped"
    native_platform: bool = True
    """Build for this machine's platform unless `modelship:platform` is set."""
    model_store: LocalModelStore = field(default_factory=LocalModelStore)

    @property
    def url_host(self) -> str:
        """The host name in the `url` output: localhost unless bound to one specific address."""
        return "localhost" if self.bind_address in ("127.0.0.1", "0.0.0.0") else self.bind_address  # noqa: S104


def _parse_ipv4(value: str) -> str:
    return str(ipaddress.IPv4Address(value))


def read_local_settings(reader: ConfigReader, settings: Settings) -> LocalSettings:
    """Read and check the local keys; problems go to `reader`."""
    scaling = settings.scaling
    for key, value in (
        (KEY_MIN_REPLICAS, scaling.min_replicas),
        (KEY_MAX_REPLICAS, scaling.max_replicas),
    ):
        if value != 1:
            reader.problem(
                key,
                str(value),
                "the local target runs exactly one container: must be 1 "
                "(modelship:scaleToZero true stops it)",
            )
    return LocalSettings(
        host_port=reader.integer(KEY_HOST_PORT, LocalSettings.host_port, 1024, 65535),
        bind_address=reader.parse(
            KEY_BIND_ADDRESS, LocalSettings.bind_address, _parse_ipv4, BIND_ALLOWED
        ),
        restart=reader.choice(KEY_RESTART, LocalSettings.restart, RESTART_POLICIES),
        native_platform=reader.raw(KEY_PLATFORM) is None,
        model_store=read_model_store(reader, settings.container, settings.image),
    )


def _store_dir(value: str) -> Path:
    if ":" in value:
        raise ValueError(value)
    path = Path(value).expanduser()
    # Relative to the repository, not to the working directory (Pulumi runs us in infra/).
    directory = (path if path.is_absolute() else REPO_ROOT / path).resolve()
    if directory.exists() and not directory.is_dir():
        raise ValueError(value)
    return directory


def read_model_store(
    reader: ConfigReader, container: ContainerSettings, image: ImageSettings
) -> LocalModelStore:
    """The store directory, the version to serve (checked on disk) and the training run.

    Only the model-store keys that mean something on one machine are read: a directory has no
    lifecycle rules, versioning or force-destroy (`pulumi destroy` never deletes it), so
    `modelship:keepModelStore`, `trainingDataDays`, `captureDays` and `trainingTimeoutMinutes`
    stay unknown keys.
    """
    directory = reader.parse(
        KEY_MODEL_STORE_DIR, LocalModelStore.directory, _store_dir, STORE_DIR_ALLOWED
    )
    training = read_training(reader, with_timeout=False)
    version, card = _read_version(reader, KEY_MODEL_URI, directory)
    if card is not None:
        check_model_fits(reader, container, card, KEY_MODEL_URI)
    primary, source = (card, KEY_MODEL_URI) if card is not None else (image.card, KEY_IMAGE_MODEL)
    return LocalModelStore(
        directory=directory,
        version=version,
        training=training,
        capture=read_capture(reader, with_days=False),
        batch=read_batch(reader, lifecycle=False, deadline=False),
        rollout=_read_candidate(reader, directory, container, primary, source),
    )


def _read_candidate(
    reader: ConfigReader,
    directory: Path,
    container: ContainerSettings,
    primary: ModelCard | None,
    source: str,
) -> RolloutSettings:
    """`modelship:candidateModelUri` verified on disk like the served version, not that version,
    scoring the same rows, and fitting the memory beside it. `primary` is unknown (None) for the
    model the image trains at build time: then only the candidate itself is checked."""
    candidate, card = _read_version(reader, KEY_CANDIDATE_MODEL_URI, directory)
    rollout = read_rollout(
        reader, candidate, None if primary is None else primary.artifact.onnx_sha256
    )
    if rollout.enabled and primary is not None and card is not None:
        mismatch = inputs_differ(primary, card)
        if mismatch is not None:
            reader.problem(KEY_CANDIDATE_MODEL_URI, reader.raw(KEY_CANDIDATE_MODEL_URI), mismatch)
        else:
            # Each worker holds both models through the rollout: the pair must fit the memory.
            check_model_fits(reader, container, primary, source, candidate=card)
    return rollout


def _read_version(
    reader: ConfigReader, key: str, directory: Path
) -> tuple[str | None, ModelCard | None]:
    """`key` (`modelship:modelUri`, `modelship:candidateModelUri`) as a version path relative to
    the store, verified on disk, and that version's card."""
    value = reader.raw(key)
    if value is None:
        return None, None
    allowed = MODEL_URI_ALLOWED.format(store=directory)
    given = Path(value.removeprefix("file://")).expanduser()
    path = (given if given.is_absolute() else directory / given).resolve()
    if not path.is_relative_to(directory):
        reader.problem(key, value, f"is outside the model store; {allowed}")
        return None, None
    version = path.relative_to(directory).as_posix()
    if not VERSION_PATH.fullmatch(version):
        reader.problem(key, value, f"is not a version directory; {allowed}")
        return None, None
    try:
        # The service's own start-up check: card and model present, hashes of the directory
        # name, the card and model.onnx agree. A directory is read in place (no cache used).
        loaded = store.fetch(str(path) + "/", cache=path)
    except ModelshipError as exc:
        reader.problem(key, value, f"{exc.message}; {allowed}")
        return None, None
    return version, loaded.card

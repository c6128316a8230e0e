"""The one description of the service container, which every target turns into its own objects.

The service contract (built in `service/`): port 8080, `GET /healthz` liveness, `GET /readyz`
readiness (model loaded; a few seconds after start), non-root UID/GID 10001, only `/tmp` writable,
configured through `MODELSHIP_*` environment variables, graceful shutdown on SIGTERM.
GKE turns this into a Deployment, Fargate into a task definition, local into a Docker container.

The variable names come from the service's own `Settings` fields (`service_env`), so renaming a
setting in `service/` fails here, in the infra tests, instead of in a deployed container.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.core.model_store import CaptureSettings
from infra.core.rollout import RolloutSettings
from infra.settings import Settings
from modelship.contracts.settings import Settings as ServiceSettings


def service_env(setting: str) -> str:
    """The environment variable the service reads its `Settings.<setting>` from.

    KeyError when the service has no such setting: a renamed or removed setting fails the
    program (and so its tests) instead of being ignored by the service at run time.
    """
    if setting not in ServiceSettings.model_fields:
        raise KeyError(
            f"the service's Settings has no field {setting!r} (modelship.contracts.settings)"
        )
    return f"{ServiceSettings.model_config['env_prefix']}{setting.upper()}"


CONTAINER_NAME = "api"
CONTAINER_PORT = 8080
PORT_NAME = "http"
RUN_AS_USER = 10001
RUN_AS_GROUP = 10001
ARTIFACT_DIR = "/app/model"
TMP_DIR = "/tmp"  # noqa: S108 - the one writable directory the service needs (an emptyDir/tmpfs)
TMP_SIZE_LIMIT = "64Mi"
# Serving from a cloud model URI keeps the downloaded version under /tmp (MODELSHIP_MODEL_CACHE).
TMP_SIZE_LIMIT_WITH_MODEL_CACHE = "512Mi"
API_KEY_DIR = "/var/run/secrets/modelship"
API_KEY_FILE_NAME = "api-key"
API_KEY_ENV = service_env("api_key")
API_KEY_FILE_ENV = service_env("api_key_file")
# Extra seconds beyond the service's own shutdown grace, for the load balancer to stop sending.
TERMINATION_SLACK_SECONDS = 10
PRE_STOP_SLEEP_SECONDS = 5


@dataclass(frozen=True)
class Probe:
    """An HTTP GET probe against the container port."""

    path: str
    period_seconds: int
    timeout_seconds: int
    failure_threshold: int
    initial_delay_seconds: int = 0


@dataclass(frozen=True)
class ContainerSpec:
    """Port, environment, probes, size and replica range of the service container."""

    name: str
    port: int
    port_name: str
    env: tuple[tuple[str, pulumi.Input[str]], ...]
    """Sorted by name; values are strings except where a resource's output goes in (the
    capture store's bucket)."""
    liveness: Probe
    readiness: Probe
    startup: Probe
    cpu: str
    memory: str
    cpu_millicores: int
    memory_bytes: int
    min_replicas: int
    max_replicas: int
    cpu_target_percent: int
    scale_to_zero: bool
    run_as_user: int
    run_as_group: int
    tmp_dir: str
    tmp_size_limit: str
    api_key_dir: str | None
    api_key_file_name: str
    shutdown_grace_seconds: int

    @property
    def desired_replicas(self) -> int:
        """Replicas to run when autoscaling is off: 0 when parked, else the minimum."""
        return 0 if self.scale_to_zero else self.min_replicas

    @property
    def autoscaling(self) -> bool:
        """Whether an autoscaler owns the replica count (not while parked at zero)."""
        return not self.scale_to_zero

    @property
    def memory_mib(self) -> int:
        return self.memory_bytes // 2**20

    @property
    def termination_grace_seconds(self) -> int:
        return self.shutdown_grace_seconds + TERMINATION_SLACK_SECONDS

    @property
    def env_with_key_as_variable(self) -> tuple[tuple[str, pulumi.Input[str]], ...]:
        """`env` for a platform that hands the API key over as the `API_KEY_ENV` variable (an ECS
        secret, a Docker environment value) instead of mounting it as a file: without the file's
        path, which would point at nothing (the service refuses a missing key file)."""
        return tuple((key, value) for key, value in self.env if key != API_KEY_FILE_ENV)

    def exec_health_check(self, probe: Probe) -> list[str]:
        """`probe` as a command run inside the container (ECS and Docker health checks): the image
        has Python but no curl, so an HTTP GET in Python that exits 1 on any failure."""
        url = f"http://127.0.0.1:{self.port}{probe.path}"
        return [
            "CMD",
            "python",
            "-c",
            f"import urllib.request; urllib.request.urlopen('{url}', timeout=2)",
        ]


def container_spec(
    settings: Settings,
    *,
    api_key_file: bool | None = None,
    model_uri: str | None = None,
    capture: CaptureSettings | None = None,
    capture_uri: pulumi.Input[str] | None = None,
    rollout: RolloutSettings | None = None,
) -> ContainerSpec:
    """The container every target deploys, from the validated settings.

    The API-key file is mounted when `modelship:apiKey` is set; `api_key_file=True` says the
    target mounts one from elsewhere (an existing Secret), `False` that there is none.
    `model_uri` (`modelship:modelUri`, as the container sees it) makes the service fetch and
    verify that version at start-up instead of serving the model baked into the image; a new
    value changes the environment, which rolls the service. With `capture` enabled the service
    writes that share of the rows it serves under `captures/` of `capture_uri`. With a `rollout`
    (its candidate as the container sees it) the service also serves the candidate and judges it;
    setting or clearing one changes the environment too, so it rolls the service like a new model.
    """
    c = settings.container
    with_key = settings.api_key is not None if api_key_file is None else api_key_file
    api_key_dir = API_KEY_DIR if with_key else None
    values: dict[str, pulumi.Input[str]] = {
        "host": "0.0.0.0",  # noqa: S104 - inside the container; the platform fronts it
        "port": str(CONTAINER_PORT),
        "workers": str(c.workers),
        "artifact": ARTIFACT_DIR,
        "log_level": c.log_level,
        "shutdown_grace_seconds": str(c.shutdown_grace_seconds),
    }
    if not c.access_log:  # set only when off, so a default stack's environment is unchanged
        values["access_log"] = "false"
    if model_uri is not None:
        values["model_uri"] = model_uri
    if rollout is not None and rollout.candidate_uri is not None:
        values["candidate"] = rollout.candidate_uri
        values["candidate_traffic"] = rollout.traffic
    if capture is not None and capture.enabled:
        if capture_uri is None:
            raise ValueError("capture is enabled but the target gave no store to capture to")
        values["capture_rate"] = f"{capture.rate:g}"
        values["capture_uri"] = capture_uri
    if api_key_dir is not None:
        values["api_key_file"] = f"{api_key_dir}/{API_KEY_FILE_NAME}"
    env = {service_env(setting): value for setting, value in values.items()}
    s = settings.scaling
    return ContainerSpec(
        name=CONTAINER_NAME,
        port=CONTAINER_PORT,
        port_name=PORT_NAME,
        env=tuple(sorted(env.items())),
        # Liveness: the process answers; generous so a busy worker is not killed.
        liveness=Probe("/healthz", period_seconds=10, timeout_seconds=3, failure_threshold=3),
        # Readiness: the model is loaded; traffic only then.
        readiness=Probe("/readyz", period_seconds=5, timeout_seconds=3, failure_threshold=2),
        # Startup: up to 2 s x 60 = 120 s for the process to come up before liveness applies.
        startup=Probe("/healthz", period_seconds=2, timeout_seconds=2, failure_threshold=60),
        cpu=c.cpu,
        memory=c.memory,
        cpu_millicores=c.cpu_millicores,
        memory_bytes=c.memory_bytes,
        min_replicas=s.min_replicas,
        max_replicas=s.max_replicas,
        cpu_target_percent=s.cpu_target_percent,
        scale_to_zero=s.scale_to_zero,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_GROUP,
        tmp_dir=TMP_DIR,
        tmp_size_limit=TMP_SIZE_LIMIT
        if model_uri is None and "candidate" not in values
        else TMP_SIZE_LIMIT_WITH_MODEL_CACHE,
        api_key_dir=api_key_dir,
        api_key_file_name=API_KEY_FILE_NAME,
        shutdown_grace_seconds=c.shutdown_grace_seconds,
    )

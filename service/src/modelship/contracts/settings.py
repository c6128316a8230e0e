"""Serving settings, read from MODELSHIP_* environment variables (the container's interface)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelship.errors import ModelshipError

DEFAULT_ARTIFACT = Path("artifacts/default")


SHADOW = "shadow"


def parse_traffic(text: str) -> int | None:
    """`candidate_traffic` as the candidate's percentage of answers, or None for shadow.

    The grammar: `shadow`, or a whole number 0 to 100 with an optional trailing `%`."""
    value = text.strip().lower()
    if value == SHADOW:
        return None
    digits = value.removesuffix("%")
    if not digits.isdigit() or int(digits) > 100:
        raise ValueError(
            f"{text!r} is not a candidate traffic: expected 'shadow' or a whole percentage "
            "from 0 to 100 (for example 10 or 10%)"
        )
    return int(digits)


class Settings(BaseSettings):
    """Every field is also an environment variable: `artifact` is MODELSHIP_ARTIFACT, and so on."""

    model_config = SettingsConfigDict(env_prefix="MODELSHIP_", frozen=True, extra="ignore")

    artifact: Path = Field(DEFAULT_ARTIFACT, description="Model artifact directory to serve")
    model_uri: str | None = Field(
        None,
        description="Model version to fetch and verify at start-up "
        "(s3://…/models/<name>/<sha256>/, gs://… or a version directory); overrides `artifact`",
    )
    model_cache: Path = Field(
        Path("/tmp/modelship-models"),  # noqa: S108 - the one writable place in the container
        description="Where fetched model versions are kept",
    )
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers)")
    port: int = Field(8080, ge=1, le=65535, description="TCP port to listen on")
    workers: int = Field(1, ge=1, le=64, description="Worker processes (one per core is best)")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level"
    )
    max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)"
    )
    max_batch_rows: int = Field(
        10_000,
        ge=1,
        description="Most rows per JSON batch (/predict/batch) or V2 inference request (413 above)",
    )
    max_in_flight: int = Field(
        512,
        ge=1,
        le=100_000,
        description="Most requests a worker works on at once, whatever MODELSHIP_SHED_WAIT_MS "
        "allows; beyond it the answer is 503 with Retry-After at once (probes and /metrics are "
        "never refused)",
    )
    shed_wait_ms: float = Field(
        50.0,
        gt=0,
        le=60_000,
        description="Longest a request may be expected to wait behind those in flight (their "
        "count over the worker's measured completion rate); beyond it 503 with Retry-After at "
        "once (at least 32 in flight are always admitted, within MODELSHIP_MAX_IN_FLIGHT; raise it "
        "for CPU limits below 500m)",
    )
    request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Longest a large batch or CSV upload may compute before a 503 (small "
        "requests run inline and are not cut short)",
    )
    csv_chunk_rows: int = Field(
        5_000, ge=100, le=1_000_000, description="CSV rows predicted at a time (bounds memory)"
    )
    onnx_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads per worker")
    uvicorn_adapter: bool = Field(
        True,
        description="Refuse overload at the connection with modelship's uvicorn adapter (used "
        "only with the uvicorn, uvloop and httptools versions it was tested with); off: stock "
        "uvicorn, overload refused by the ASGI middleware",
    )
    keep_alive_seconds: int = Field(
        620,
        ge=1,
        le=86_400,
        description="How long an idle connection is kept open for its next request; longer than "
        "every proxy in front keeps its idle connections to the service (ALB and ingress-nginx "
        "60 s, Google's HTTPS load balancer 600 s), or the proxy reuses a connection the "
        "service has just closed and its client gets a 502",
    )
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, le=3600, description="On SIGTERM, how long in-flight requests may finish"
    )
    api_key: SecretStr | None = Field(
        None,
        description="If set, prediction and model routes need it (Authorization: Bearer <key> or "
        "X-API-Key); probes, /metrics and the page stay open",
    )
    api_key_file: Path | None = Field(
        None, description="File holding the API key (a mounted secret); used instead of api_key"
    )
    memory_limit_bytes: int | None = Field(
        None,
        ge=1,
        description="Memory the service may use, checked against the model card's measured "
        "footprint x workers before it reports ready; default: the container's cgroup limit",
    )
    access_log: bool = Field(True, description="One JSON log line per request")
    metrics: bool = Field(True, description="Serve Prometheus metrics at /metrics")
    monitoring: bool = Field(
        True,
        description="Count missing, out-of-range and unseen values per feature and measure drift "
        "against the model card's training distributions (/model/drift, /metrics)",
    )
    drift_window_rows: int = Field(
        2_000,
        ge=100,
        le=1_000_000,
        description="Recent rows drift is measured over, shared out evenly among the workers",
    )
    drift_min_rows: int = Field(
        200, ge=10, description="Below this many rows in the window, drift is 'insufficient_data'"
    )
    drift_threshold: float = Field(
        0.2,
        gt=0,
        le=100,
        description="PSI of a feature above which it is in drift (PSI under 0.1 is usually read "
        "as stable, above 0.25 as a major shift)",
    )
    drift_feature_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description='Per-feature thresholds overriding drift_threshold, as JSON: {"bmi": 0.3}',
    )
    prediction_drift_threshold: float = Field(
        0.2, gt=0, le=100, description="PSI of the predictions above which they are in drift"
    )
    monitor_interval_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often each worker folds the rows it served into its drift window "
        "(off the request path)",
    )
    cloudwatch_metrics: bool = Field(
        False,
        description="Print the drift and error signals as CloudWatch embedded-metric-format log "
        "lines (the fargate stack turns it on)",
    )
    cloudwatch_service: str = Field(
        "modelship",
        min_length=1,
        max_length=250,
        description="Value of the Service dimension of the CloudWatch metrics (alarms select it)",
    )
    cloudwatch_interval_seconds: float = Field(
        60.0, ge=1, le=3600, description="Seconds between CloudWatch metric lines"
    )

    capture_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of the rows served that are written, with their predictions, to "
        "captures/<model version>/ under capture_uri (0: off; 0.01 = one row in a hundred)",
    )
    capture_uri: str | None = Field(
        None,
        description="Model store the captures go to: s3://BUCKET, gs://BUCKET or file:///DIR "
        "(the stacks set it to their own store)",
    )
    capture_batch_rows: int = Field(
        1_000, ge=1, le=100_000, description="Captured rows per object written to the store"
    )
    capture_interval_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Longest a captured row waits for its batch before it is written anyway",
    )
    capture_buffer_rows: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Captured rows a worker holds while the store is slow or unreachable; "
        "beyond, rows are dropped and counted (modelship_capture_dropped_rows_total)",
    )

    feedback: bool = Field(
        True,
        description="Remember each prediction (by its id) so labels posted to /feedback join it, "
        "and measure live quality per model version (/model/quality, /metrics)",
    )
    feedback_window_seconds: float = Field(
        86_400.0,
        ge=1,
        le=90 * 86_400,
        description="How long a prediction waits for its label; a later label is counted as "
        "expired (score those offline with `modelship quality`)",
    )
    feedback_window_rows: int = Field(
        100_000,
        ge=1_000,
        le=50_000_000,
        description="Most predictions remembered per server (the oldest are forgotten first); "
        "the default fits the stacks' 64 MiB /tmp (measured: docs/monitoring.md#feedback)",
    )
    feedback_flush_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often each worker writes the predictions it answered to the join "
        "shared by the workers (a label for an answer of another worker joins after that)",
    )
    quality_window_rows: int = Field(
        10_000,
        ge=10,
        le=1_000_000,
        description="Live quality is measured over this many most recent labelled rows, per "
        "model version",
    )
    quality_min_rows: int = Field(
        200, ge=1, description="Below this many labelled rows, live quality is 'insufficient_data'"
    )
    quality_margin: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Live quality is 'below_test' (and alerts) when its headline metric (r2, or "
        "accuracy) is lower than the model card's test figure by more than this",
    )
    candidate: str | None = Field(
        None,
        description="Candidate model served beside the primary in a rollout: an artifact "
        "directory or a store URI (fetched and verified like model_uri); unset: no rollout",
    )
    candidate_traffic: str = Field(
        "shadow",
        description="How the candidate takes traffic: 'shadow' (every answer from the primary, "
        "the candidate scores the same rows off the request path) or a whole percentage 0-100 "
        "('10' or '10%': that share of routing keys is answered by the candidate)",
    )
    rollout_window: int = Field(
        1_000,
        ge=10,
        le=1_000_000,
        description="The rollout gates judge the latest this many compared requests",
    )
    rollout_min_requests: int = Field(
        200,
        ge=1,
        description="Below this many compared requests a gate is 'insufficient_data' (baking)",
    )
    rollout_max_error_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Abort when the candidate's share of failed model calls exceeds the "
        "primary's by more than this",
    )
    rollout_max_latency_ratio: float = Field(
        2.0,
        ge=1,
        le=1000,
        description="Abort when the candidate's p50 or p99 model compute time exceeds the "
        "primary's times this (and by more than rollout_latency_floor_ms)",
    )
    rollout_latency_floor_ms: float = Field(
        1.0,
        ge=0,
        le=60_000,
        description="Latency differences below this many milliseconds never abort (noise on "
        "sub-millisecond models)",
    )
    rollout_max_divergence: float = Field(
        1.0,
        gt=0,
        le=1000,
        description="Regression: abort when the versions' mean absolute difference on the same "
        "rows exceeds this many times the primary's test MAE",
    )
    rollout_max_disagreement: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Classification: abort when the versions predict different classes for "
        "more than this share of the same rows",
    )
    rollout_max_probability_distance: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Classification: abort when the mean total-variation distance between the "
        "versions' class probabilities on the same rows exceeds this",
    )
    rollout_max_psi: float = Field(
        0.2,
        gt=0,
        le=100,
        description="Abort when the candidate's predictions drift from its training "
        "distribution (PSI) more than the primary's do from theirs by over this",
    )
    rollout_queue: int = Field(
        1_000,
        ge=1,
        le=1_000_000,
        description="Requests a worker holds for off-path scoring by the other version; "
        "sampled beyond half of it, shed when full or when the worker is overloaded",
    )
    rollout_scored_per_second: float = Field(
        200.0,
        ge=1,
        le=1_000_000,
        description="Most answered requests per second a worker has the other version score off "
        "the path; beyond it they are sampled (the scoring shares the worker's CPU)",
    )
    rollout_sync_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often each worker writes its rollout outcomes to the state shared by "
        "the workers and reads the verdict back (the brake reaches every worker within it)",
    )
    state_dir: Path | None = Field(
        None,
        description="Directory of the state the workers share (the feedback join); `modelship "
        "serve` makes a fresh one per start; unset: a private one per worker",
    )

    _api_key: bytes | None = PrivateAttr(None)

    @property
    def required_key(self) -> bytes | None:
        """The API key requests must carry (read from `api_key_file` or `api_key`), or None."""
        return self._api_key

    @model_validator(mode="after")
    def _one_usable_api_key(self) -> Settings:
        """The key file is read here, once, so an unusable key stops start-up, not a request."""
        if self.api_key_file is not None and self.api_key is not None:
            raise ValueError(
                "set only one of MODELSHIP_API_KEY or MODELSHIP_API_KEY_FILE, not both"
            )
        if self.api_key_file is not None:
            try:
                text = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"MODELSHIP_API_KEY_FILE {self.api_key_file}: cannot read it "
                    f"({exc.strerror or exc})"
                ) from exc
            if not text:
                raise ValueError(f"MODELSHIP_API_KEY_FILE {self.api_key_file} is empty")
            self._api_key = text.encode()
        elif self.api_key is not None:
            text = self.api_key.get_secret_value().strip()
            if not text:
                raise ValueError("MODELSHIP_API_KEY is set but empty")
            self._api_key = text.encode()
        return self

    @field_validator("candidate_traffic")
    @classmethod
    def _traffic_grammar(cls, value: str) -> str:
        parse_traffic(value)
        return value.strip().lower()

    @model_validator(mode="after")
    def _window_holds_min_rows(self) -> Settings:
        if self.drift_min_rows > self.drift_window_rows:
            raise ValueError(
                f"drift_min_rows ({self.drift_min_rows}) cannot exceed drift_window_rows "
                f"({self.drift_window_rows})"
            )
        for name, value in self.drift_feature_thresholds.items():
            if not 0 < value <= 100:
                raise ValueError(
                    f"drift_feature_thresholds[{name!r}] = {value}: must be above 0, at most 100"
                )
        if self.capture_rate > 0 and not self.capture_uri:
            raise ValueError(
                f"capture_rate is {self.capture_rate} but capture_uri is not set: set "
                "MODELSHIP_CAPTURE_URI to s3://BUCKET, gs://BUCKET or file:///DIR (or "
                "MODELSHIP_CAPTURE_RATE to 0)"
            )
        if self.capture_batch_rows > self.capture_buffer_rows:
            raise ValueError(
                f"capture_batch_rows ({self.capture_batch_rows}) cannot exceed "
                f"capture_buffer_rows ({self.capture_buffer_rows})"
            )
        if self.rollout_min_requests > self.rollout_window:
            raise ValueError(
                f"rollout_min_requests ({self.rollout_min_requests}) cannot exceed "
                f"rollout_window ({self.rollout_window})"
            )
        if self.quality_min_rows > self.quality_window_rows:
            raise ValueError(
                f"quality_min_rows ({self.quality_min_rows}) cannot exceed quality_window_rows "
                f"({self.quality_window_rows})"
            )
        return self


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and explicit overrides), with a readable error."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        # A rule's own ValueError reads better without pydantic's "Value error, " in front.
        message = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        if not first["loc"]:  # a rule across settings: its message names them
            raise ModelshipError(f"settings: {message}") from exc
        name = str(first["loc"][0])
        raise ModelshipError(
            f"setting MODELSHIP_{name.upper()} = {first.get('input')!r}: {message}"
        ) from exc

"""The batch transform job, as every target declares it: `modelship predict --shard I/N`.

A user scores a large CSV (or a prefix of them) from the stack's bucket in N shards, one worker
per shard, with one command the stack prints: a Kubernetes Indexed Job on gke and k8s, N ECS
tasks on fargate, N `docker run` containers on local. Every worker runs the service image (ONNX
scoring needs nothing more), reads its byte range of the input, writes its part under
`outputs/<run>/` and its shard manifest; the last one to finish writes `_manifest.json`
(`modelship.transform`). A re-run shard replaces its own part only.

This module holds the config keys, their validation and the container command; each target
turns them into its job definition, identity (read `data/` and `models/`, write `outputs/`) and
its `batch_command` output.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import (
    CPU_ALLOWED,
    MEMORY_ALLOWED,
    ConfigReader,
    parse_cpu_millicores,
    parse_memory_bytes,
)

KEY_BATCH_SHARDS = "modelship:batchShards"
KEY_BATCH_PARALLELISM = "modelship:batchParallelism"
KEY_BATCH_CPU = "modelship:batchCpu"
KEY_BATCH_MEMORY = "modelship:batchMemory"
KEY_BATCH_TIMEOUT = "modelship:batchTimeoutMinutes"
KEY_BATCH_OUTPUT_DAYS = "modelship:batchOutputDays"

OUTPUTS_PREFIX = "outputs/"
MAX_SHARDS = 1000
# Placeholders the batch command fills in per run (environment variables of the printed line).
INPUT_VARIABLE = "INPUT"
OUTPUT_VARIABLE = "OUTPUT"
RUN_VARIABLE = "RUN"


@dataclass(frozen=True)
class BatchSettings:
    """How many shards a run has, how many run at once, and how big each worker is."""

    shards: int = 4
    parallelism: int = 4
    cpu: str = "1"
    # 1 vCPU with 2 GiB: the smallest Fargate size for 1 vCPU, inside Autopilot's ratio too.
    memory: str = "2Gi"
    cpu_millicores: int = 1000
    memory_bytes: int = 2 * 2**30
    timeout_minutes: int = 120
    output_days: int = 30
    """Results under `outputs/` are deleted this many days after they were written."""

    @property
    def timeout_seconds(self) -> int:
        return self.timeout_minutes * 60

    @property
    def memory_mib(self) -> int:
        return self.memory_bytes // 2**20


def read_batch(
    reader: ConfigReader, *, lifecycle: bool = True, deadline: bool = True
) -> BatchSettings:
    """The batch keys; parallelism may not exceed the shard count (a worker with no shard).

    Without a bucket of the stack's own (k8s, local) there is no lifecycle rule, and without a
    platform deadline (local) no timeout: those keys stay unknown there."""
    defaults = BatchSettings()
    shards = reader.integer(KEY_BATCH_SHARDS, defaults.shards, 1, MAX_SHARDS)
    parallelism = reader.integer(
        KEY_BATCH_PARALLELISM, min(defaults.parallelism, shards), 1, MAX_SHARDS
    )
    if parallelism > shards:
        reader.problem(
            KEY_BATCH_PARALLELISM,
            str(parallelism),
            f"at most {KEY_BATCH_SHARDS} ({shards}): workers beyond the shard count get no work",
        )
        parallelism = shards
    return BatchSettings(
        shards=shards,
        parallelism=parallelism,
        cpu=reader.string(KEY_BATCH_CPU, defaults.cpu),
        memory=reader.string(KEY_BATCH_MEMORY, defaults.memory),
        cpu_millicores=reader.parse(
            KEY_BATCH_CPU, defaults.cpu_millicores, parse_cpu_millicores, CPU_ALLOWED
        ),
        memory_bytes=reader.parse(
            KEY_BATCH_MEMORY, defaults.memory_bytes, parse_memory_bytes, MEMORY_ALLOWED
        ),
        timeout_minutes=reader.integer(KEY_BATCH_TIMEOUT, defaults.timeout_minutes, 5, 7 * 24 * 60)
        if deadline
        else defaults.timeout_minutes,
        output_days=reader.integer(KEY_BATCH_OUTPUT_DAYS, defaults.output_days, 1, 3650)
        if lifecycle
        else defaults.output_days,
    )


def predict_command(model: str, input_uri: str, output_uri: str, shard: str) -> list[str]:
    """Arguments of the image's `modelship` entrypoint for one worker."""
    return ["predict", model, input_uri, "-o", output_uri, "--shard", shard]


def require_input(example: str) -> str:
    """A shell line that stops with a message when INPUT is not set."""
    hint = f"set {INPUT_VARIABLE} to the CSV or prefix to score, e.g. {example}"
    return f': "${{{INPUT_VARIABLE}:?{hint}}}"'

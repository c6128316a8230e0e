"""The local batch transform: N `docker run` containers of the service image, one per shard.

Like the training run, it is a one-off a person starts, so the stack exports the exact command
(`batch_command`) instead of running containers on every `pulumi up`:

    INPUT=<store>/data/export.csv eval "$(pulumi stack output batch_command -s local)"

`xargs -P` starts the shards `modelship:batchParallelism` at a time and fails if any shard
fails; a shard run again replaces its own part only. The store's `data/` and `models/` are
mounted read-only and `outputs/` read-write, at their host paths (so the manifest names the
files as they are on this machine), with the caller's user id, no network, and the sizes of
`modelship:batchCpu` / `modelship:batchMemory`.
"""

from __future__ import annotations

import shlex

from infra.core.batch import (
    INPUT_VARIABLE,
    OUTPUT_VARIABLE,
    OUTPUTS_PREFIX,
    RUN_VARIABLE,
    BatchSettings,
    predict_command,
    require_input,
)
from infra.core.container import ARTIFACT_DIR, TMP_DIR
from infra.targets.local.config import LocalModelStore
from infra.targets.local.training import RUN_AS_CALLER

SHARD_PLACEHOLDER = "{}"


def batch_command(store: LocalModelStore, batch: BatchSettings, image: str, stack_id: str) -> str:
    """Shell lines that score $INPUT into $OUTPUT (default `<store>/outputs/<run>/`)."""
    data_dir, models_dir = str(store.data_dir), str(store.models_dir)
    outputs_dir = str(store.directory / OUTPUTS_PREFIX.rstrip("/"))
    model = str(store.version_dir) + "/" if store.version_dir is not None else ARTIFACT_DIR
    head = ["docker", "run", "--rm", "--user"]
    rest = [
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        TMP_DIR,
        "--cpus",
        f"{batch.cpu_millicores / 1000:g}",
        "--memory",
        f"{batch.memory_mib}m",
        "-v",
        f"{data_dir}:{data_dir}:ro",
        "-v",
        f"{models_dir}:{models_dir}:ro",
        "-v",
        f"{outputs_dir}:{outputs_dir}",
        image,
    ]
    predict = predict_command(
        model,
        f'"${INPUT_VARIABLE}"',
        f'"${OUTPUT_VARIABLE}"',
        f"{SHARD_PLACEHOLDER}/{batch.shards}",
    )
    # INPUT and OUTPUT stay shell expansions (quoted); everything else is quoted here.
    command = " ".join(part if part.startswith('"$') else shlex.quote(part) for part in predict)
    default = f"{outputs_dir}/${RUN_VARIABLE}/"
    return " && ".join(
        [
            require_input(f"{data_dir}/export.csv"),
            f'{RUN_VARIABLE}="${{{RUN_VARIABLE}:-{stack_id}-batch-$(date +%Y%m%d%H%M%S)}}"',
            f'{OUTPUT_VARIABLE}="${{{OUTPUT_VARIABLE}:-{default}}}"',
            f'mkdir -p "${OUTPUT_VARIABLE}"',
            f"seq 0 {batch.shards - 1} | xargs -P {batch.parallelism} -I {SHARD_PLACEHOLDER} "
            f"{shlex.join(head)} {RUN_AS_CALLER} {shlex.join(rest)} {command}",
            f'echo "manifest: ${{{OUTPUT_VARIABLE}}}_manifest.json"',
        ]
    )

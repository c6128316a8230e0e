"""The local training run: `modelship train` in the training image, as one `docker run` line.

The stack builds and loads the training image; training itself is a one-off a person starts
when there is new data, so the stack exports the exact command (`train_command`) instead of
running a container on every `pulumi up`:

    eval "$(pulumi stack output train_command -s local)"

What it does, and why:
- `data/` of the store is mounted read-only and `models/` read-write, the split the cloud
  targets make with IAM (training reads data, writes models; it cannot change its own input).
- Both are mounted at their host paths, so `modelship train --output file://<store>` prints
  `published: <store>/models/<name>/<sha256>/`, the very value `modelship:modelUri` takes (and
  the same line as a run without Docker, `uv run modelship train --output file://<store>`).
- `--user "$(id -u):$(id -g)"`: new versions belong to whoever runs the command, so no `chown`
  or `sudo` is needed on Linux (Docker Desktop on macOS maps ownership either way), and the
  service (UID 10001) still reads them: files are created 0644, directories 0755.
- `--network none`: training reads and writes local files only.
- CPU and memory from `modelship:trainingCpu` / `modelship:trainingMemory`, as in the cloud.
"""

from __future__ import annotations

import shlex

from infra.targets.local.config import LocalModelStore

# Expanded by the shell that runs the command (hence `eval`, or a paste into a terminal).
RUN_AS_CALLER = '"$(id -u):$(id -g)"'


def train_command(store: LocalModelStore, image: str) -> str:
    """The `docker run` line that trains on `data/<file>` and publishes into `models/`."""
    training = store.training
    data_dir, models_dir = str(store.data_dir), str(store.models_dir)
    head = ["docker", "run", "--rm", "--user"]
    rest = [
        "--network",
        "none",
        "--cpus",
        f"{training.cpu_millicores / 1000:g}",
        "--memory",
        f"{training.memory_mib}m",
        "-v",
        f"{data_dir}:{data_dir}:ro",
        "-v",
        f"{models_dir}:{models_dir}",
        image,
        "train",
        "--data",
        str(store.directory / training.data_key),
        "--target",
        training.target,
        "--output",
        f"file://{store.directory}",
        *training.search_options,
    ]
    return f"{shlex.join(head)} {RUN_AS_CALLER} {shlex.join(rest)}"

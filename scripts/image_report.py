"""Measure the images built from service/Dockerfile: sizes, layers, start-up time and memory.

Builds the service image and the training image with buildah on the stand-in base, exactly as
the image tests do (`tests/image/buildah.py`: the layer cache makes a rebuild quick), then prints
for each image its uncompressed size, the gzip-compressed layer total (the layers `buildah push`
writes, what a registry stores and a node pulls), and every layer with its size and the
Dockerfile instruction that made it; for the service image also the seconds from start to
`/readyz` answering 200 and the container's resident memory after one prediction, started as
the k8s stack runs it (read-only root, user 10001, its own `/tmp`).

Needs root, buildah, podman and debootstrap (as the image tests). Run it on an idle machine:

    uv run python scripts/image_report.py [--starts N]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.image.buildah import (
    DOCKERFILE,
    Layer,
    build_image,
    compressed_layer_bytes,
    history,
    missing_tools,
    remove_image,
    standin_base,
    uncompressed_bytes,
)
from tests.image.runtime import run_container
from tests.image.stacks import deployment
from tests.infra.k8s_stack import run_k8s

MiB = 2**20
TAG = "localhost/modelship-report"


def _mib(size: int) -> str:
    return f"{size / MiB:7.1f} MiB"


def stage_copies(stage: str) -> dict[str, str]:
    """Destination → the `COPY` instruction of `stage` in service/Dockerfile (buildah's history
    names a COPY by the content hash of its source, not by the stage it copies from)."""
    copies, current = {}, None
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            current = words[-1]
        elif current == stage and words[:1] == ["COPY"]:
            copies[words[-1].rstrip("/")] = line.strip()
    return copies


def _instruction(layer: Layer, copies: dict[str, str]) -> str:
    text = layer.created_by.removeprefix("/bin/sh -c ").removeprefix("#(nop) ").strip()
    copied = re.fullmatch(r"COPY \S+ in (\S+)", text)
    if copied and copied.group(1).rstrip("/") in copies:
        text = copies[copied.group(1).rstrip("/")]
    elif text.startswith("ADD file:"):
        text = "the base image's file system"
    return text if len(text) <= 110 else text[:107] + "..."


def describe(image: str, title: str, stage: str) -> None:
    copies = stage_copies(stage)
    layers = history(image)
    print(f"\n{title} ({image})")
    print(f"  uncompressed:           {_mib(uncompressed_bytes(image))}")
    print(f"  compressed layer total: {_mib(compressed_layer_bytes(image))} (gzip, as pushed)")
    print("  layers, oldest first (size uncompressed, instruction):")
    for layer in layers:
        if layer.size_bytes:
            print(f"    {_mib(layer.size_bytes)}  {_instruction(layer, copies)}")
    empty = sum(1 for layer in layers if not layer.size_bytes)
    print(f"    (and {empty} instructions that change only the config: ENV, USER, CMD, ...)")


def startup(image: str, starts: int) -> None:
    deployed = deployment(run_k8s())
    (port,) = deployed.spec.ports
    seconds, resident = [], []
    for _ in range(starts):
        with run_container(image, deployed.spec) as container:
            seconds.append(container.wait_until(port, "/readyz", 120))
            with container.client(port) as client:
                example = client.get("/model/examples/0").json()
                assert client.post("/predict", json=example).status_code == 200
            time.sleep(1)  # let the request's allocations settle
            resident.append(container.rss_bytes())
    print(f"\nservice start-up as the k8s stack runs it, {starts} starts:")
    print(f"  to /readyz 200: {', '.join(f'{s:.2f}' for s in seconds)} s "
          f"(median {statistics.median(seconds):.2f} s)")  # fmt: skip
    print(f"  resident memory after one prediction: median {_mib(int(statistics.median(resident)))}"
          f" (limit {_mib(deployed.memory_limit_bytes or 0).strip()})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3, help="service starts to time (3)")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        parser.error("needs " + ", ".join(missing))
    load = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")  # fmt: skip
    base = standin_base()
    service, training = f"{TAG}:service", f"{TAG}:training"
    build_image(service, base=base)
    build_image(training, base=base, target="training")
    try:
        describe(base, "stand-in base (Debian bookworm + Debian's python3)", "")
        describe(service, "service image (default target)", "runtime")
        describe(training, "training image (--target training)", "training")
        startup(service, args.starts)
    finally:
        remove_image(service)
        remove_image(training)
    return 0


if __name__ == "__main__":
    sys.exit(main())

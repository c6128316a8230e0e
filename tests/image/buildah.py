"""Build images from service/Dockerfile with buildah (no daemon, no registry) and read them back.

- `standin_base()`: no registry is reachable, so the Dockerfile's `PYTHON_IMAGE` is a stand-in made
  from Debian's own packages (debootstrap + Debian's python3), imported once per machine and kept
  in the machine's image storage under a tag derived from its recipe: a changed recipe (or CA
  bundle) makes a new one, an unchanged one is reused.
- `build_image(...)`: `buildah bud` with layer caching, so the service target, the training target
  and the `--build-context model=DIR` variant share the stages they have in common.
- `image_config(...)`, `history(...)`, `compressed_layer_bytes(...)`: what a platform reads from
  the image (entry point, user, environment, health check) and what it pulls.

The images live in a storage of their own (`IMAGE_STORE`, per machine: the stand-in and the layer
cache survive between sessions), passed as flags on every call (buildah 1.28 ignores the
STORAGE_DRIVER variable). Its driver is the kernel's `overlay` where the machine can mount one on
that file system (each layer stored as a diff: a build takes minutes, not an hour, and a few GB,
not tens), else `vfs` (each layer a full copy; works everywhere).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO

DOCKERFILE = REPO / "service" / "Dockerfile"
IMAGE_STORE = Path(os.environ.get("MODELSHIP_IMAGE_STORE", "/var/lib/modelship/images"))
# The image tools need these Debian packages (bookworm: buildah 1.28, podman 4.3) and root.
REQUIRED_TOOLS = ("buildah", "podman", "debootstrap")

# The stand-in for python:3.11-slim-bookworm. Part of its cache key: change it, get a new base.
STANDIN_NAME = "localhost/modelship-python-standin"
STANDIN_SUITE = "bookworm"
STANDIN_MIRROR = "http://deb.debian.org/debian"
STANDIN_PACKAGES = (
    "python3",
    "python3-pip",
    "python3-venv",
    "python-is-python3",
    "ca-certificates",
)
STANDIN_CA = "/etc/ssl/certs/ca-certificates.crt"
# What the official image's config sets that builds rely on; its Python is /usr/local/bin's.
STANDIN_CONFIG = (f"ENV SSL_CERT_FILE={STANDIN_CA}", "ENV LANG=C.UTF-8", 'CMD ["python3"]')
# Trimmed as Debian's slim images trim (no docs, man pages, apt lists), so sizes compare.
STANDIN_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists")
STANDIN_SETUP = (
    "set -e; rm -f /usr/lib/python3*/EXTERNALLY-MANAGED;"  # the official image has no such marker
    " apt-get clean; python3 -m pip --version"
)


class ImageToolError(RuntimeError):
    """A buildah/podman/debootstrap call failed; the message carries the tool's own output."""


def missing_tools() -> list[str]:
    """The programs to install before images can be built."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def _run(argv: Sequence[str], *, input_: bytes | None = None, timeout: float = 1800) -> str:
    result = subprocess.run(
        list(argv), input=input_, capture_output=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise ImageToolError(f"{' '.join(argv[:4])} ... failed ({result.returncode}):\n{output}")
    return result.stdout.decode(errors="replace")


@functools.cache
def storage_driver() -> str:
    """`overlay` if the kernel mounts one with its layers on the store's file system."""
    probe = IMAGE_STORE / "probe"
    shutil.rmtree(probe, ignore_errors=True)
    for name in ("lower", "upper", "work", "merged"):
        (probe / name).mkdir(parents=True)
    options = f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work"
    merged = f"{probe}/merged"
    mounted = subprocess.run(
        ["unshare", "--mount", "mount", "-t", "overlay", "-o", options, "overlay", merged],
        capture_output=True,
        check=False,
    )
    shutil.rmtree(probe, ignore_errors=True)
    return "overlay" if mounted.returncode == 0 else "vfs"


def storage_flags() -> list[str]:
    driver = storage_driver()
    return [
        "--root", str(IMAGE_STORE / driver), "--runroot", f"/run/modelship-images/{driver}",
        "--storage-driver", driver,
    ]  # fmt: skip


def buildah(*args: str, input_: bytes | None = None) -> str:
    return _run(["buildah", *storage_flags(), *args], input_=input_)


def podman(*args: str, input_: bytes | None = None) -> str:
    return _run(["podman", *storage_flags(), *args], input_=input_)


def image_exists(image: str) -> bool:
    found = subprocess.run(
        ["buildah", *storage_flags(), "inspect", "--type", "image", image],
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """One builder at a time per machine for `name` (parallel test sessions share the storage)."""
    IMAGE_STORE.mkdir(parents=True, exist_ok=True)
    with (IMAGE_STORE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- the stand-in base


def ca_bundle() -> Path:
    """The CA bundle this machine trusts (a TLS-intercepting proxy's CA may be in it only)."""
    return Path(os.environ.get("SSL_CERT_FILE") or STANDIN_CA)


def standin_tag() -> str:
    """The stand-in's name: its recipe and the CA bundle it carries, hashed."""
    recipe = json.dumps(
        [STANDIN_SUITE, STANDIN_MIRROR, STANDIN_PACKAGES, STANDIN_CONFIG, STANDIN_TRIM,
         STANDIN_SETUP, hashlib.sha256(ca_bundle().read_bytes()).hexdigest()]
    )  # fmt: skip
    return f"{STANDIN_NAME}:{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def standin_base() -> str:
    """The stand-in base image, made once per machine (about a minute) and reused after."""
    tag = standin_tag()
    with machine_lock("standin"):
        if not image_exists(tag):
            _make_standin(tag)
    return tag


def _make_standin(tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="modelship-standin-") as tmp:
        root = Path(tmp) / "root"
        # --include resolves the packages' dependencies (not their recommendations, as
        # `apt-get install --no-install-recommends` in the official image's recipe).
        _run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(STANDIN_PACKAGES)}",
             STANDIN_SUITE, str(root), STANDIN_MIRROR]
        )  # fmt: skip
        shutil.copyfile(ca_bundle(), root / STANDIN_CA.lstrip("/"))
        _run(["chroot", str(root), "/bin/sh", "-c", STANDIN_SETUP])
        for path in STANDIN_TRIM:
            shutil.rmtree(root / path, ignore_errors=True)
            (root / path).mkdir(parents=True, exist_ok=True)
        archive = _run_bytes(["tar", "-C", str(root), "--numeric-owner", "-c", "."])
        changes = [arg for change in STANDIN_CONFIG for arg in ("--change", change)]
        podman("import", *changes, "-", tag, input_=archive)


def _run_bytes(argv: Sequence[str]) -> bytes:
    return subprocess.run(list(argv), capture_output=True, check=True).stdout


# --------------------------------------------------------------------------- builds


@dataclass(frozen=True)
class Build:
    """One `buildah bud`: the tag it made, wall and CPU seconds (of buildah and its children)."""

    tag: str
    seconds: float
    cpu_seconds: float


def build_image(
    tag: str,
    *,
    base: str,
    target: str | None = None,
    dockerfile: Path = DOCKERFILE,
    contexts: Mapping[str, Path] | None = None,
    build_args: Mapping[str, str] | None = None,
) -> Build:
    """`buildah bud` from the repository root, on `base` through the `PYTHON_IMAGE` argument.

    `--layers`: steps whose inputs are unchanged come from the cache (also across targets and
    sessions). `--format docker` keeps `HEALTHCHECK` (the OCI format has no field for it).
    """
    argv = ["bud", "--isolation", "chroot", "--pull-never", "--layers", "--format", "docker"]
    for name, value in {"PYTHON_IMAGE": base, **(build_args or {})}.items():
        argv += ["--build-arg", f"{name}={value}"]
    for name, path in (contexts or {}).items():
        argv += ["--build-context", f"{name}={path}"]
    if target is not None:
        argv += ["--target", target]
    argv += ["-f", str(dockerfile), "-t", tag, str(REPO)]
    started, cpu = time.monotonic(), _children_cpu()
    with machine_lock("build"):
        buildah(*argv)
    return Build(tag, time.monotonic() - started, _children_cpu() - cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def remove_image(image: str) -> None:
    """Untag `image` (its layers stay in the build cache for the next session)."""
    with contextlib.suppress(ImageToolError):
        buildah("rmi", image)


# --------------------------------------------------------------------------- reading images


@dataclass(frozen=True)
class HealthCheck:
    test: tuple[str, ...]
    """`("CMD", argv...)` or `("CMD-SHELL", command)`, as Docker and ECS write it."""
    timeout_seconds: float


@dataclass(frozen=True)
class ImageConfig:
    """What a platform reads from the image to start a container from it."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    env: Mapping[str, str]
    working_dir: str
    exposed_ports: tuple[int, ...]
    volumes: tuple[str, ...]
    healthcheck: HealthCheck | None
    labels: Mapping[str, str]


def inspect(image: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))
    return found


def image_config(image: str) -> ImageConfig:
    config = inspect(image)["Docker"]["config"]
    health = config.get("Healthcheck")
    healthcheck = None
    if health and health.get("Test") and health["Test"] != ["NONE"]:
        healthcheck = HealthCheck(tuple(health["Test"]), health.get("Timeout", 30e9) / 1e9)
    return ImageConfig(
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
        user=config.get("User") or "",
        env=dict(item.split("=", 1) for item in config.get("Env") or ()),
        working_dir=config.get("WorkingDir") or "/",
        exposed_ports=tuple(sorted(int(p.split("/")[0]) for p in config.get("ExposedPorts") or {})),
        volumes=tuple(sorted(config.get("Volumes") or {})),
        healthcheck=healthcheck,
        labels=dict(config.get("Labels") or {}),
    )


@dataclass(frozen=True)
class Layer:
    created_by: str
    size_bytes: int


def history(image: str) -> list[Layer]:
    """The image's layers, oldest first, with the instruction that made each and its size."""
    rows = json.loads(podman("history", "--format", "json", image))
    return [
        Layer(" ".join(str(row.get("CreatedBy") or row.get("createdBy") or "").split()),
              int(row.get("Size") or row.get("size") or 0))
        for row in reversed(rows)
    ]  # fmt: skip


def uncompressed_bytes(image: str) -> int:
    size: int = json.loads(podman("image", "inspect", image))[0]["Size"]
    return size


def compressed_layer_bytes(image: str) -> int:
    """What a registry stores and a node pulls: the gzip-compressed layers, summed."""
    with tempfile.TemporaryDirectory(prefix="modelship-push-") as tmp:
        buildah("push", "--format", "docker", image, f"dir:{tmp}/image")
        manifest = json.loads((Path(tmp) / "image" / "manifest.json").read_text())
        return sum(int(layer["size"]) for layer in manifest["layers"])


@contextlib.contextmanager
def mounted(image: str) -> Iterator[Path]:
    """The image's root file system, read-only by contract: the storage's own copy of its top
    layer (vfs keeps each layer whole), so nothing is copied. Never write to it."""
    path = Path(podman("image", "mount", image).strip())
    try:
        yield path
    finally:
        with contextlib.suppress(ImageToolError):
            podman("image", "unmount", image)

"""The containers the stacks declare, read from the resources they declare, as `RunSpec`s.

The plans are made of these very resources (`tests.infra.harness.run_stack` records them): the
gke and k8s Deployments and the gke CronJob (Kubernetes pod specs), the fargate task definitions'
`containerDefinitions`, the local Docker container and the local `docker run` line. Each is
turned into what its platform would set when it starts the image: entry point and arguments,
environment, user, read-only root, the writable `/tmp`, ports, health checks, the stop grace
period and the memory limit. A field a platform would apply but this reader does not understand
fails loudly, so a new field in a stack cannot be silently dropped from the image tests.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import parse_memory_bytes
from infra.core.values import plain
from infra.targets.local.training import RUN_AS_CALLER
from tests.image.runtime import BindMount, RunSpec
from tests.infra.harness import StackRun

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CRONJOB = "kubernetes:batch/v1:CronJob"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
DOCKER_CONTAINER = "docker:index/container:Container"
# Fargate's default task storage; the `tmp` volume lives on it (no size of its own).
FARGATE_EPHEMERAL_GIB = 20


@dataclass(frozen=True)
class HealthCommand:
    """A command the platform runs inside the container; healthy when it exits 0 in time."""

    argv: tuple[str, ...]
    timeout_seconds: float


@dataclass(frozen=True)
class HttpProbe:
    """A GET the platform sends to the container's port; healthy on 200-399 in time."""

    kind: str
    path: str
    port: int
    timeout_seconds: float


@dataclass(frozen=True)
class Deployed:
    """One container as a stack declares it."""

    where: str
    """Which resource it comes from, for messages: `gke Deployment modelship-app-deployment`."""
    image: str
    """The image reference the stack declares (a registry digest, a local tag)."""
    spec: RunSpec
    health_commands: tuple[HealthCommand, ...] = ()
    http_probes: tuple[HttpProbe, ...] = ()
    stop_grace_seconds: float = 10
    """How long the platform waits after SIGTERM before it kills the container."""
    memory_limit_bytes: int | None = None


def health_command(test: list[str] | tuple[str, ...], timeout_seconds: float) -> HealthCommand:
    """Docker's and ECS's health-check form: `["CMD", argv...]` or `["CMD-SHELL", "command"]`."""
    kind, *rest = test
    if kind == "CMD":
        return HealthCommand(tuple(rest), timeout_seconds)
    if kind == "CMD-SHELL":
        return HealthCommand(("/bin/sh", "-c", *rest), timeout_seconds)
    raise ValueError(f"health check {test!r}: expected CMD or CMD-SHELL")


def _known(where: str, fields: Mapping[str, Any], understood: set[str]) -> None:
    unknown = sorted(set(fields) - understood)
    if unknown:
        raise NotImplementedError(f"{where}: the image tests do not apply {unknown} yet")


def _tmpfs_size(quantity: str) -> str:
    return f"size={parse_memory_bytes(quantity)}"


# --------------------------------------------------------------------------- Kubernetes

_K8S_CONTAINER_FIELDS = {
    "name", "image", "imagePullPolicy", "command", "args", "env", "ports", "resources",
    "securityContext", "volumeMounts", "livenessProbe", "readinessProbe", "startupProbe",
    "lifecycle", "workingDir",
}  # fmt: skip


def pod_container(where: str, pod: Mapping[str, Any], name: str | None = None) -> Deployed:
    """A container of a pod spec as the kubelet starts it."""
    containers = pod["containers"]
    container = next(c for c in containers if name is None or c["name"] == name)
    _known(where, container, _K8S_CONTAINER_FIELDS)
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" not in item:
            raise NotImplementedError(f"{where}: env {item['name']} from {sorted(item)}")
        env[item["name"]] = item["value"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmpfs: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" not in volume:
            raise NotImplementedError(f"{where}: volume {mount['name']} is not an emptyDir")
        size = volume["emptyDir"].get("sizeLimit")
        tmpfs[mount["mountPath"]] = _tmpfs_size(size) if size else ""
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    probes = []
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(kind)
        if probe is None:
            continue
        get = probe["httpGet"]
        port = get["port"] if isinstance(get["port"], int) else ports[get["port"]]
        probes.append(HttpProbe(kind, get["path"], port, probe.get("timeoutSeconds", 1)))
    user = None
    if "runAsUser" in security:
        user = f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}"
    limits = container.get("resources", {}).get("limits", {})
    command, args = container.get("command"), container.get("args")
    spec = RunSpec(
        entrypoint=tuple(command) if command is not None else None,
        # Kubernetes: `command` without `args` drops the image's CMD, as Docker's rule does.
        command=tuple(args) if args is not None else None,
        env=env,
        user=user,
        working_dir=container.get("workingDir"),
        read_only_root=bool(security.get("readOnlyRootFilesystem", False)),
        tmpfs=tmpfs,
        ports=tuple(ports.values()),
        image_volumes=False,
    )
    return Deployed(
        where=where,
        image=container["image"],
        spec=spec,
        http_probes=tuple(probes),
        stop_grace_seconds=pod.get("terminationGracePeriodSeconds", 30),
        memory_limit_bytes=parse_memory_bytes(limits["memory"]) if "memory" in limits else None,
    )


def deployment(run: StackRun) -> Deployed:
    """The service container of the stack's Deployment (gke, k8s)."""
    resource = run.one(DEPLOYMENT)
    pod = plain(dict(resource.inputs))["spec"]["template"]["spec"]
    return pod_container(f"{run.stack} Deployment {resource.name}", pod, "api")


def cronjob(run: StackRun) -> Deployed:
    """The training container of the stack's training CronJob (gke; the batch one is beside it)."""
    (resource,) = [r for r in run.of_type(CRONJOB) if r.name.endswith("-training-cronjob")]
    pod = plain(dict(resource.inputs))["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod_container(f"{run.stack} CronJob {resource.name}", pod)


# --------------------------------------------------------------------------- ECS

_ECS_CONTAINER_FIELDS = {
    "name", "image", "essential", "portMappings", "environment", "user", "readonlyRootFilesystem",
    "mountPoints", "linuxParameters", "healthCheck", "stopTimeout", "logConfiguration",
    "entryPoint", "command", "workingDirectory",
}  # fmt: skip
ECS_DEFAULT_STOP_TIMEOUT = 30


def task_container(run: StackRun, container: str) -> Deployed:
    """The container named `container` of the fargate task definition that holds it."""
    for resource in run.of_type(TASK_DEFINITION):
        task = plain(dict(resource.inputs))
        for definition in json.loads(task["containerDefinitions"]):
            if definition["name"] == container:
                return _ecs(f"{run.stack} task definition {resource.name}", task, definition)
    raise KeyError(f"no container {container!r} in {run.stack}'s task definitions")


def _ecs(where: str, task: Mapping[str, Any], definition: Mapping[str, Any]) -> Deployed:
    _known(where, definition, _ECS_CONTAINER_FIELDS)
    volumes = {v["name"]: v for v in task.get("volumes", [])}
    tmpfs: dict[str, str] = {}
    for mount in definition.get("mountPoints", []):
        volume = volumes[mount["sourceVolume"]]
        if set(volume) != {"name"} or mount.get("readOnly"):
            raise NotImplementedError(f"{where}: volume {volume} is not plain task storage")
        # A task-storage volume starts with the image's content and permissions at that path
        # (the image declares /tmp a VOLUME, mode 1777): a fresh writable directory.
        tmpfs[mount["containerPath"]] = f"size={FARGATE_EPHEMERAL_GIB}g"
    check = definition.get("healthCheck")
    entrypoint, command = definition.get("entryPoint"), definition.get("command")
    spec = RunSpec(
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        command=tuple(command) if command is not None else None,
        env={e["name"]: e["value"] for e in definition.get("environment", [])},
        user=definition.get("user"),
        working_dir=definition.get("workingDirectory"),
        read_only_root=bool(definition.get("readonlyRootFilesystem", False)),
        tmpfs=tmpfs,
        ports=tuple(p["containerPort"] for p in definition.get("portMappings", [])),
    )
    return Deployed(
        where=where,
        image=definition["image"],
        spec=spec,
        health_commands=(
            () if check is None else (health_command(check["command"], check.get("timeout", 5)),)
        ),
        stop_grace_seconds=definition.get("stopTimeout", ECS_DEFAULT_STOP_TIMEOUT),
        memory_limit_bytes=int(task["memory"]) * 2**20 if "memory" in task else None,
    )


# --------------------------------------------------------------------------- Docker (local)

_DOCKER_CONTAINER_FIELDS = {
    "image", "envs", "ports", "networksAdvanced", "restart", "healthcheck", "user", "readOnly",
    "tmpfs", "mounts", "capabilities", "securityOpts", "memory", "memorySwap", "cpus",
    "logDriver", "logOpts", "labels", "stopSignal", "stopTimeout", "destroyGraceSeconds",
    "mustRun", "wait", "waitTimeout", "name", "entrypoints", "command", "workingDir",
}  # fmt: skip


def _duration_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit):
            return float(value.removesuffix(unit)) * units[unit]
    raise ValueError(f"duration {value!r}")


def docker_container(run: StackRun) -> Deployed:
    """The local stack's service container as the Docker engine starts it."""
    resource = run.one(DOCKER_CONTAINER)
    where = f"{run.stack} Container {resource.name}"
    inputs = plain(dict(resource.inputs))
    _known(where, inputs, _DOCKER_CONTAINER_FIELDS)
    if inputs.get("stopSignal", "SIGTERM") != "SIGTERM":
        raise NotImplementedError(f"{where}: stop signal {inputs['stopSignal']}")
    mounts = []
    for mount in inputs.get("mounts", []):
        if mount.get("type") != "bind":
            raise NotImplementedError(f"{where}: mount {mount}")
        mounts.append(
            BindMount(Path(mount["source"]), mount["target"], bool(mount.get("readOnly")))
        )
    check = inputs.get("healthcheck")
    entrypoints, command = inputs.get("entrypoints"), inputs.get("command")
    spec = RunSpec(
        entrypoint=tuple(entrypoints) if entrypoints is not None else None,
        command=tuple(command) if command is not None else None,
        env=dict(item.split("=", 1) for item in inputs.get("envs", [])),
        user=inputs.get("user"),
        working_dir=inputs.get("workingDir"),
        read_only_root=bool(inputs.get("readOnly", False)),
        tmpfs=dict(inputs.get("tmpfs", {})),
        mounts=tuple(mounts),
        ports=tuple(p["internal"] for p in inputs.get("ports", [])),
    )
    return Deployed(
        where=where,
        image=str(run.outputs["image_tag"]),  # `image` is the id the tag resolves to
        spec=spec,
        health_commands=(
            ()
            if check is None
            else (health_command(check["tests"], _duration_seconds(check.get("timeout", "30s"))),)
        ),
        stop_grace_seconds=inputs.get("stopTimeout", 10),
        memory_limit_bytes=inputs["memory"] * 2**20 if "memory" in inputs else None,
    )


def docker_run(line: str, caller: str) -> Deployed:
    """A `docker run` line (the local `train_command`) as Docker would start it; `caller` is
    the `UID:GID` that the line's `$(id -u):$(id -g)` expands to in the user's shell."""
    words = shlex.split(line.replace(RUN_AS_CALLER, caller))
    if words[:2] != ["docker", "run"]:
        raise ValueError(f"not a docker run line: {line}")
    words = words[2:]
    user, mounts, memory = None, [], None
    while words[0].startswith("-"):
        option = words.pop(0)
        if option == "--rm":
            continue
        value = words.pop(0)
        if option == "--user":
            user = value
        elif option == "--network":
            if value != "none":
                raise NotImplementedError(f"docker run --network {value}")
        elif option == "--cpus":
            continue  # CPU shares change timing only
        elif option == "--memory":
            memory = parse_memory_bytes(value.removesuffix("m") + "Mi")
        elif option == "-v":
            source, target, *mode = value.split(":")
            mounts.append(BindMount(Path(source), target, mode == ["ro"]))
        else:
            raise NotImplementedError(f"docker run {option}")
    image, *command = words
    spec = RunSpec(command=tuple(command) or None, user=user, mounts=tuple(mounts))
    return Deployed(where="local train_command", image=image, spec=spec, memory_limit_bytes=memory)

"""The service on the local Docker engine: the shared container description as a Docker container.

A bridge network, the built image resolved to its local image id (so a rebuild replaces the
container and an unchanged image leaves it alone), and one container with the port published on
the host, a restart policy, a health check on the readiness path, the same environment, user,
read-only root file system, writable `/tmp`, CPU and memory limits as in the cloud, and rotated
logs. `pulumi up` waits until Docker reports the container healthy.

With a model version to serve, that one version directory of the host's model store is
bind-mounted read-only (`model_mount`) and the container spec names it in `MODELSHIP_MODEL_URI`.
With request capture on, the store's `captures/` is mounted read-write (`capture_mount`) and the
container runs as the user who runs Pulumi, so the captured files are theirs (as with the
training run's `--user`), not UID 10001's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NotRequired, TypedDict

import pulumi
import pulumi_docker as docker

from infra.config import parse_memory_bytes
from infra.core.components import child_opts
from infra.core.container import API_KEY_ENV, ContainerSpec

# Docker's json-file driver keeps logs forever unless rotated: 3 files of 10 MB at most.
LOG_OPTS = {"max-size": "10m", "max-file": "3"}
HEALTH_INTERVAL = "5s"
HEALTH_TIMEOUT = "3s"


class ReadOnlyMount(TypedDict):
    """A host directory the container sees, read-only, at `target`."""

    source: str
    """Absolute host path (Docker refuses relative ones, and a missing one: checked at preview)."""
    target: str


class CaptureMount(TypedDict):
    """The host directory the service writes its request captures to, and who writes them."""

    source: str
    target: str
    user: str
    """`UID:GID` the container runs as: the owner of the captured files on the host."""


class LocalServiceArgs(TypedDict):
    """Inputs of `LocalService`."""

    image: pulumi.Input[str]
    """A local image name or tag (`modelship:local`), already loaded into the Docker engine."""
    image_digest: pulumi.Input[str]
    """The build's digest: a new one replaces the resolved image and so the container."""
    image_context_hash: pulumi.Input[str]
    """The build context's hash: also replaces them (in case a loaded build reports no digest)."""
    container: ContainerSpec
    labels: Mapping[str, str]
    host_port: int
    bind_address: str
    restart: str
    api_key: pulumi.Input[str] | None
    model_mount: NotRequired[ReadOnlyMount]
    """The model version to serve (`modelship:modelUri`); none: the image's own model."""
    candidate_mount: NotRequired[ReadOnlyMount]
    """The candidate version of a rollout (`modelship:candidateModelUri`)."""
    capture_mount: NotRequired[CaptureMount]
    """Where request captures go (`modelship:captureRate` above 0)."""


class LocalService(pulumi.ComponentResource):
    """Network + resolved image + container (none while parked with scale-to-zero)."""

    network: docker.Network
    image: docker.RemoteImage
    container: docker.Container | None
    image_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: LocalServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:local:LocalService", name, None, opts)
        spec = args["container"]
        labels = dict(args["labels"])
        child = child_opts(self, opts)

        self.network = docker.Network(
            f"{name}-network",
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in labels.items()],
            opts=child,
        )
        # Resolves the freshly built tag to its image id: the provider looks the name up among the
        # local images before it would pull. The container runs that id, pinned to one build.
        self.image = docker.RemoteImage(
            f"{name}-image",
            name=args["image"],
            keep_locally=True,
            triggers={"digest": args["image_digest"], "context": args["image_context_hash"]},
            opts=child,
        )
        self.image_id = self.image.image_id

        self.container = None
        if not spec.scale_to_zero:
            env: list[pulumi.Input[str]] = [
                pulumi.Output.concat(key, "=", value)
                if isinstance(value, pulumi.Output)
                else f"{key}={value}"
                for key, value in spec.env_with_key_as_variable
            ]
            api_key = args["api_key"]
            if api_key is not None:
                # A file cannot be copied into a read-only container; the key goes in as a
                # (secret) environment value instead.
                env.append(pulumi.Output.secret(pulumi.Output.concat(f"{API_KEY_ENV}=", api_key)))
            grace = spec.termination_grace_seconds
            capture = args.get("capture_mount")
            mounts = [
                docker.ContainerMountArgs(
                    type="bind", source=m["source"], target=m["target"], read_only=m is not capture
                )
                for m in (args.get("model_mount"), args.get("candidate_mount"), capture)
                if m is not None
            ]
            self.container = docker.Container(
                f"{name}-container",
                image=self.image.image_id,
                envs=env,
                ports=[
                    docker.ContainerPortArgs(
                        internal=spec.port,
                        external=args["host_port"],
                        ip=args["bind_address"],
                        protocol="tcp",
                    )
                ],
                networks_advanced=[
                    docker.ContainerNetworksAdvancedArgs(name=self.network.name, aliases=["api"])
                ],
                restart=args["restart"],
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=spec.exec_health_check(spec.readiness),
                    interval=HEALTH_INTERVAL,
                    timeout=HEALTH_TIMEOUT,
                    retries=spec.readiness.failure_threshold + 1,
                    # The startup budget of the cloud targets (startup probe: period x failures).
                    start_period=f"{spec.startup.period_seconds * spec.startup.failure_threshold}s",
                ),
                user=capture["user"]
                if capture is not None
                else f"{spec.run_as_user}:{spec.run_as_group}",
                read_only=True,
                tmpfs={
                    spec.tmp_dir: f"rw,noexec,nosuid,size={parse_memory_bytes(spec.tmp_size_limit)}"
                },
                mounts=mounts or None,
                capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
                security_opts=["no-new-privileges:true"],
                memory=spec.memory_mib,
                memory_swap=spec.memory_mib,  # no swap beyond the limit, as in the cloud
                cpus=f"{spec.cpu_millicores / 1000:g}",
                log_driver="json-file",
                log_opts=LOG_OPTS,
                labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in labels.items()],
                stop_signal="SIGTERM",
                stop_timeout=grace,
                destroy_grace_seconds=grace,
                must_run=True,
                # `up` returns once Docker reports the container healthy (or fails with its logs).
                wait=True,
                wait_timeout=spec.startup.period_seconds * spec.startup.failure_threshold + 30,
                # Every change (new image, new model version) replaces the container, and the
                # new one publishes the same host port: created first, it would fail with "port
                # is already allocated" (pulumi/pulumi-docker#1356, by design). So the old one
                # goes first; a bad version is refused at preview, before anything is deleted.
                opts=child_opts(self, opts, delete_before_replace=True),
            )
        self.register_outputs(
            {
                "network": self.network.name,
                "image_id": self.image_id,
                "container": self.container.name if self.container is not None else None,
            }
        )

"""Build and push the service image (`service/Dockerfile`, repository root as context).

Shared by every target: the target supplies the registry (its address and a login taken from its
own registry resource), this component builds for the configured platform, pushes, and exposes
`ref`, the digest-pinned reference (`name@sha256:...`) that every target deploys. Deploying by
digest is what makes a rebuilt image roll out and an unchanged one leave the workload alone.

Preview-time builds (`build_on_preview`) are off by default: a `pulumi preview` (for example on a
pull request) then needs neither Docker nor registry credentials, and shows the image as
"known after apply". Set `modelship:buildOnPreview true` to catch Dockerfile errors at preview.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

import pulumi
import pulumi_docker_build as docker_build

from infra.core.components import child_opts
from infra.settings import ImageSettings
from infra.stack_file import REPO_ROOT

DOCKERFILE = Path("service") / "Dockerfile"
IMAGE_NAME = "modelship"
# The Dockerfile's `training` stage: the service image plus the training libraries.
TRAINING_IMAGE_NAME = "modelship-training"
TRAINING_TARGET = "training"


def repo_path(relative: Path | str = ".") -> str:
    """A path under the repository root, relative to the working directory Pulumi runs us in.

    Pulumi runs the program (and the docker-build provider) from `main: infra/`, tests run from
    the root; a relative path keeps the declared inputs identical on every machine, so moving a
    checkout does not show up as a change of the image.
    """
    return os.path.relpath(REPO_ROOT / relative, Path.cwd())


class RegistryLogin(TypedDict):
    """A registry login for the build's push: host, user and password/token."""

    address: pulumi.Input[str]
    username: pulumi.Input[str]
    password: pulumi.Input[str]


class ServiceImageArgs(TypedDict):
    """Inputs of `ServiceImage`."""

    image_name: pulumi.Input[str]
    """Full image name without tag, including the registry host (never Docker Hub by accident)."""
    tag: str
    """The mutable tag pushed alongside the digest (the stack name)."""
    registry: NotRequired[RegistryLogin]
    """A login for the push; without one, buildx uses the machine's own (`docker login`).
    Leave out with `push=False`."""
    platform: str
    """`linux/amd64` or `linux/arm64`; "" builds for the machine's own platform."""
    build_on_preview: bool
    labels: Mapping[str, str]
    context: NotRequired[str]
    dockerfile: NotRequired[str]
    push: NotRequired[bool]
    """Push to the registry (default). The local target builds without pushing."""
    load: NotRequired[bool]
    """Also load the image into the local Docker daemon (the local target runs it from there)."""
    target: NotRequired[str]
    """A Dockerfile stage to build instead of the last one (`training`: the training image)."""
    model_dir: NotRequired[Path]
    """An artifact directory to bake in instead of the default model: the Dockerfile's `model`
    build context (`modelship:imageModel`)."""


def training_image_args(
    service: ServiceImageArgs,
    image_name: pulumi.Input[str],
    registry: RegistryLogin | None = None,
) -> ServiceImageArgs:
    """The training image's build: the service image's, for the `training` stage, under its own
    name (and registry login, where it has its own repository)."""
    args: ServiceImageArgs = {**service, "image_name": image_name, "target": TRAINING_TARGET}
    args.pop("model_dir", None)  # the training stage holds no model
    if registry is not None:
        args["registry"] = registry
    return args


def _named_contexts(args: ServiceImageArgs) -> dict[str, docker_build.ContextArgs] | None:
    model_dir = args.get("model_dir")
    if model_dir is None:
        return None
    return {"model": docker_build.ContextArgs(location=repo_path(model_dir))}


class ServiceImage(pulumi.ComponentResource):
    """The service image (or, with `target`, another stage of its Dockerfile), built with buildx
    and pushed; `ref` is pinned by digest."""

    ref: pulumi.Output[str]
    tag: pulumi.Output[str]
    digest: pulumi.Output[str]
    context_hash: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:image:ServiceImage", name, None, opts)
        platforms = [docker_build.Platform(args["platform"])] if args["platform"] else None
        tagged = pulumi.Output.concat(args["image_name"], ":", args["tag"])
        registry = args.get("registry")
        push = args.get("push", True)
        image = docker_build.Image(
            f"{name}-build",
            docker_build.ImageArgs(
                push=push,
                load=args.get("load"),
                tags=[tagged],
                context=docker_build.BuildContextArgs(
                    location=args.get("context", repo_path()), named=_named_contexts(args)
                ),
                dockerfile=docker_build.DockerfileArgs(
                    location=args.get("dockerfile", repo_path(DOCKERFILE))
                ),
                platforms=platforms,
                target=args.get("target"),
                registries=None
                if registry is None
                else [
                    docker_build.RegistryArgs(
                        address=registry["address"],
                        username=registry["username"],
                        password=registry["password"],
                    )
                ],
                build_on_preview=args["build_on_preview"],
                labels={f"org.modelship.{key}": value for key, value in args["labels"].items()},
            ),
            opts=child_opts(self, opts),
        )
        self.tag = tagged
        self.ref = image.ref
        self.digest = image.digest
        self.context_hash = image.context_hash
        self.register_outputs({"ref": self.ref, "tag": self.tag, "digest": self.digest})


@dataclass(frozen=True)
class StackImages:
    """The two images every target builds from `service/Dockerfile`: the service and training."""

    service: ServiceImage
    training: ServiceImage


def build_stack_images(
    name: str,
    image: ImageSettings,
    *,
    labels: Mapping[str, str],
    tag: str,
    service_name: pulumi.Input[str],
    training_name: pulumi.Input[str],
    registry: RegistryLogin | None = None,
    training_registry: RegistryLogin | None = None,
    platform: str | None = None,
    load_locally: bool = False,
    service_opts: pulumi.ResourceOptions | None = None,
    training_opts: pulumi.ResourceOptions | None = None,
) -> StackImages:
    """`{name}-image` and `{name}-training-image`: the same build (platform, labels, preview
    builds, baked model) of two Dockerfile stages, each pushed under its own name.

    `registry` logs the pushes in (`training_registry` when the training image has a repository
    of its own); `load_locally` loads both into the local engine instead of pushing them.
    `platform` overrides the configured one ("" builds for the machine's own).
    """
    args: ServiceImageArgs = {
        "image_name": service_name,
        "tag": tag,
        "platform": image.platform if platform is None else platform,
        "build_on_preview": image.build_on_preview,
        "labels": labels,
    }
    if registry is not None:
        args["registry"] = registry
    if load_locally:
        args["push"] = False
        args["load"] = True
    if image.model_dir is not None:
        args["model_dir"] = image.model_dir
    return StackImages(
        service=ServiceImage(f"{name}-image", args, opts=service_opts),
        training=ServiceImage(
            f"{name}-training-image",
            training_image_args(args, training_name, training_registry),
            opts=service_opts if training_opts is None else training_opts,
        ),
    )

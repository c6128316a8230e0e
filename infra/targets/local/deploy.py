"""Compose the local target: build the images (no push) → network → container on localhost.

The serving image runs as the container; the training image (`--target training` of the same
Dockerfile) is only built and loaded, for the `docker run` line exported as `train_command`.
"""

from __future__ import annotations

import dataclasses
import os

import pulumi

from infra.core.container import container_spec
from infra.core.image import (
    IMAGE_NAME,
    TRAINING_IMAGE_NAME,
    build_stack_images,
)
from infra.core.labels import label_value, standard_labels
from infra.settings import Settings
from infra.targets import TargetOutputs
from infra.targets.local.batch import batch_command
from infra.targets.local.config import LocalSettings
from infra.targets.local.docker_app import (
    CaptureMount,
    LocalService,
    LocalServiceArgs,
    ReadOnlyMount,
)
from infra.targets.local.training import train_command

# Where the service container sees the store: the version at `/store/models/<name>/<sha256>/`,
# the same layout as under a bucket (only that one version directory is mounted).
CONTAINER_STORE_DIR = "/store"


def deploy_local(settings: Settings, local: LocalSettings) -> TargetOutputs:
    """Declare every resource of the local target and return its outputs."""
    name = settings.project
    labels = standard_labels(settings.project, settings.stack)
    model_store = local.model_store
    mount: ReadOnlyMount | None = None
    if model_store.version_dir is not None:
        mount = {
            "source": str(model_store.version_dir),
            "target": f"{CONTAINER_STORE_DIR}/{model_store.version}",
        }
    # The candidate of a rollout is mounted beside it the same way; a new candidate (or none)
    # changes MODELSHIP_CANDIDATE and the mounts, so it replaces the container too.
    candidate: ReadOnlyMount | None = None
    if model_store.candidate_dir is not None:
        candidate = {
            "source": str(model_store.candidate_dir),
            "target": f"{CONTAINER_STORE_DIR}/{model_store.rollout.candidate_uri}",
        }
    capture: CaptureMount | None = None
    if model_store.capture.enabled:
        capture = {
            "source": str(model_store.captures_dir),
            "target": f"{CONTAINER_STORE_DIR}/{model_store.captures_dir.name}",
            "user": f"{os.getuid()}:{os.getgid()}",
        }
        if not pulumi.runtime.is_dry_run():  # Docker refuses to bind-mount a missing directory
            model_store.captures_dir.mkdir(parents=True, exist_ok=True)
    # A new version changes MODELSHIP_MODEL_URI (and the mount): the container is replaced.
    spec = container_spec(
        settings,
        model_uri=None if mount is None else mount["target"] + "/",
        capture=model_store.capture,
        capture_uri=f"file://{CONTAINER_STORE_DIR}",
        rollout=None
        if candidate is None
        else dataclasses.replace(model_store.rollout, candidate_uri=candidate["target"] + "/"),
    )

    # The same build component as the cloud targets, loaded into the local engine instead of
    # pushed. No registry host in the name: nothing is pushed, so nothing can reach Docker Hub.
    images = build_stack_images(
        name,
        settings.image,
        labels=labels,
        tag=label_value(settings.stack),
        service_name=IMAGE_NAME,
        training_name=TRAINING_IMAGE_NAME,
        platform="" if local.native_platform else None,
        load_locally=True,
    )
    image, training_image = images.service, images.training
    args: LocalServiceArgs = {
        "image": image.tag,
        "image_digest": image.digest,
        "image_context_hash": image.context_hash,
        "container": spec,
        "labels": labels,
        "host_port": local.host_port,
        "bind_address": local.bind_address,
        "restart": local.restart,
        "api_key": settings.api_key,
    }
    if mount is not None:
        args["model_mount"] = mount
    if candidate is not None:
        args["candidate_mount"] = candidate
    if capture is not None:
        args["capture_mount"] = capture
    app = LocalService(f"{name}-local", args, opts=pulumi.ResourceOptions(depends_on=[image]))
    running = app.container is not None
    url = f"http://{local.url_host}:{local.host_port}" if running else ""
    extra: dict[str, pulumi.Input[object]] = {
        "network": app.network.name,
        "image_tag": image.tag,
        "model_store": str(model_store.directory),
        "training_image_tag": training_image.tag,
        "train_command": training_image.tag.apply(lambda tag: train_command(model_store, tag)),
        "batch_command": image.tag.apply(
            lambda tag: batch_command(
                model_store, model_store.batch, tag, label_value(f"{name}-{settings.stack}")
            )
        ),
    }
    if app.container is not None:
        extra["container_name"] = app.container.name
    return TargetOutputs(url=pulumi.Output.from_input(url), image=app.image_id, extra=extra)

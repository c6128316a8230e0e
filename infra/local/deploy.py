"""Compose the local target: build the image (no push) → network → container on localhost."""

from __future__ import annotations

import pulumi

from infra.container import container_spec
from infra.image import IMAGE_NAME, ServiceImage
from infra.labels import label_value, standard_labels
from infra.local.config import LocalSettings
from infra.local.docker_app import LocalService
from infra.settings import Settings
from infra.targets import TargetOutputs


def deploy_local(settings: Settings, local: LocalSettings) -> TargetOutputs:
    """Declare every resource of the local target and return its outputs."""
    name = settings.project
    labels = standard_labels(settings.project, settings.stack)
    spec = container_spec(settings)

    # The same build component as the cloud targets, loaded into the local engine instead of
    # pushed. No registry host in the name: nothing is pushed, so nothing can reach Docker Hub.
    image = ServiceImage(
        f"{name}-image",
        {
            "image_name": IMAGE_NAME,
            "tag": label_value(settings.stack),
            "platform": "" if local.native_platform else settings.image.platform,
            "build_on_preview": settings.image.build_on_preview,
            "labels": labels,
            "push": False,
            "load": True,
        },
    )
    app = LocalService(
        f"{name}-local",
        {
            "image": image.tag,
            "image_digest": image.digest,
            "image_context_hash": image.context_hash,
            "container": spec,
            "labels": labels,
            "host_port": local.host_port,
            "bind_address": local.bind_address,
            "restart": local.restart,
            "api_key": settings.api_key,
        },
        opts=pulumi.ResourceOptions(depends_on=[image]),
    )
    running = app.container is not None
    url = f"http://{local.url_host}:{local.host_port}" if running else ""
    extra: dict[str, pulumi.Input[object]] = {
        "network": app.network.name,
        "image_tag": image.tag,
    }
    if app.container is not None:
        extra["container_name"] = app.container.name
    return TargetOutputs(url=pulumi.Output.from_input(url), image=app.image_id, extra=extra)

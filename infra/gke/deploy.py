"""Compose the gke target: APIs → registry + image → network → cluster → Kubernetes objects."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.gke.apis import ProjectApis
from infra.gke.config import GkeSettings
from infra.gke.registry import ArtifactRepository
from infra.image import IMAGE_NAME, ServiceImage
from infra.labels import label_value, standard_labels
from infra.settings import Settings
from infra.targets import TargetOutputs

# The username Artifact Registry accepts with an OAuth access token as password.
ACCESS_TOKEN_USER = "oauth2accesstoken"  # noqa: S105 - a fixed user name, not a secret


def deploy_gke(settings: Settings, gke: GkeSettings) -> TargetOutputs:
    """Declare every resource of the gke target and return its outputs."""
    name = settings.project
    labels = standard_labels(settings.project, settings.stack)

    apis = ProjectApis(f"{name}-apis", {"project": gke.project})
    registry = ArtifactRepository(
        f"{name}-registry",
        {
            "project": gke.project,
            "region": gke.region,
            "repository_id": label_value(f"{settings.project}-{settings.stack}"),
            "keep_images": settings.image.keep_images,
            "labels": labels,
        },
        opts=pulumi.ResourceOptions(depends_on=apis.services),
    )
    # The identity running Pulumi pushes with its own short-lived access token.
    token = gcp.organizations.get_client_config_output().access_token
    image = ServiceImage(
        f"{name}-image",
        {
            "image_name": pulumi.Output.concat(registry.url, "/", IMAGE_NAME),
            "tag": label_value(settings.stack),
            "registry": {
                "address": registry.host,
                "username": ACCESS_TOKEN_USER,
                "password": token,
            },
            "platform": settings.image.platform,
            "build_on_preview": settings.image.build_on_preview,
            "labels": labels,
        },
        opts=pulumi.ResourceOptions(depends_on=[registry]),
    )
    return TargetOutputs(
        url=pulumi.Output.from_input(""),
        image=image.ref,
        extra={"registry": registry.url},
    )

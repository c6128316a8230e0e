"""Artifact Registry Docker repository with a keep-the-last-N cleanup policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_gcp as gcp

from infra.core.components import child_opts


class ArtifactRepositoryArgs(TypedDict):
    project: str
    region: str
    repository_id: str
    keep_images: int
    labels: Mapping[str, str]


class ArtifactRepository(pulumi.ComponentResource):
    """A Docker repository; `url` is `REGION-docker.pkg.dev/PROJECT/REPO`, `host` the registry host.

    Deleting an Artifact Registry repository deletes its images, so `pulumi destroy` needs no
    force flag (unlike ECR, which refuses to delete a repository that holds images).
    """

    repository: gcp.artifactregistry.Repository
    url: pulumi.Output[str]
    host: str

    def __init__(
        self, name: str, args: ArtifactRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:gke:ArtifactRepository", name, None, opts)
        self.repository = gcp.artifactregistry.Repository(
            f"{name}-repo",
            project=args["project"],
            location=args["region"],
            repository_id=args["repository_id"],
            format="DOCKER",
            description="modelship service images (managed by Pulumi)",
            labels=dict(args["labels"]),
            # KEEP wins over DELETE: every version is a deletion candidate except the newest N.
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-old-versions",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="ANY"
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="keep-most-recent",
                    action="KEEP",
                    most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                        keep_count=args["keep_images"],
                    ),
                ),
            ],
            opts=child_opts(self, opts),
        )
        self.host = f"{args['region']}-docker.pkg.dev"
        self.url = pulumi.Output.concat(
            self.host, "/", args["project"], "/", self.repository.repository_id
        )
        self.register_outputs({"url": self.url})


def allow_pull(
    name: str, repository: ArtifactRepository, member: pulumi.Input[str], project: str, region: str
) -> gcp.artifactregistry.RepositoryIamMember:
    """Grant `member` the least role that can pull images: reader on this repository only."""
    return gcp.artifactregistry.RepositoryIamMember(
        name,
        project=project,
        location=region,
        repository=repository.repository.name,
        role="roles/artifactregistry.reader",
        member=member,
        opts=pulumi.ResourceOptions(parent=repository),
    )

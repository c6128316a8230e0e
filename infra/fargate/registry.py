"""ECR repository for the service image: scan on push, immutable tags, keep the last N images,
force-deleted with its images on `pulumi destroy` (CLOUD-PITFALLS 1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from infra.components import child_opts
from infra.image import RegistryLogin


class EcrRepositoryArgs(TypedDict):
    name: str
    keep_images: int
    force_delete: bool
    """Delete the repository with its images on `pulumi destroy` (off for production stacks)."""
    tags: Mapping[str, str]


def lifecycle_policy(keep_images: int) -> dict[str, object]:
    """Expire every image beyond the newest `keep_images` (tagged or not)."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the newest {keep_images} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            }
        ]
    }


class EcrRepository(pulumi.ComponentResource):
    """An ECR repository; `url` is `ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME`."""

    repository: aws.ecr.Repository
    url: pulumi.Output[str]
    login: RegistryLogin

    def __init__(
        self, name: str, args: EcrRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:EcrRepository", name, None, opts)
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            aws.ecr.RepositoryArgs(
                name=args["name"],
                # Tags never move: the stack pushes a content-derived tag and deploys the digest.
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                # `pulumi destroy` deletes the repository even with images in it (CLOUD-PITFALLS 1),
                # except in a production stack, where the images are kept.
                force_delete=args["force_delete"],
                tags=dict(args["tags"]),
            ),
            opts=child_opts(self, opts),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            aws.ecr.LifecyclePolicyArgs(
                repository=self.repository.name,
                policy=pulumi.Output.json_dumps(lifecycle_policy(args["keep_images"])),
            ),
            opts=child_opts(self, opts),
        )
        self.url = self.repository.repository_url
        # The identity running Pulumi pushes with a 12-hour token from ECR (CLOUD-PITFALLS 9);
        # pulumi-docker-build ignores password changes, so a new token does not rebuild.
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        self.login = {
            "address": self.url.apply(lambda url: url.split("/", 1)[0]),
            "username": token.user_name,
            "password": pulumi.Output.secret(token.password),
        }
        self.register_outputs({"url": self.url})

"""ECR repository for the service image: scan on push, keep the last N images, and on `pulumi
destroy` either force-deleted with its images (ECR refuses to delete a repository
that holds images: RepositoryNotEmptyException) or, with `keep`, left in the
account with them, like the model store (one rule for everything that holds data).

Tags are mutable. The stack deploys the digest (`ServiceImage.ref`), never the tag, so tag
immutability protects nothing here, and it breaks `up`: pulumi-docker-build rebuilds when its own
hash of the build context changes, and that hash includes file modes (a checkout with another
umask), which the content tag does not; the rebuilt image then pushes a tag the repository already
has, and an immutable repository refuses it until the sources change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts
from infra.core.image import RegistryLogin


class EcrRepositoryArgs(TypedDict):
    name: str
    keep_images: int
    keep: bool
    """Leave the repository and its images in the account on `pulumi destroy` (production);
    otherwise delete it with its images."""
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
                # The stack deploys by digest; a re-push of a tag must not fail `up` (see above).
                image_tag_mutability="MUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                # `pulumi destroy` deletes the repository even with images in it (ECR refuses
                # otherwise), unless it is kept: then it stays, with its images, and leaves the
                # state.
                force_delete=not args["keep"],
                tags=dict(args["tags"]),
            ),
            opts=child_opts(self, opts, retain_on_delete=args["keep"] or None),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            aws.ecr.LifecyclePolicyArgs(
                repository=self.repository.name,
                policy=pulumi.Output.json_dumps(lifecycle_policy(args["keep_images"])),
            ),
            opts=child_opts(self, opts, retain_on_delete=args["keep"] or None),
        )
        self.url = self.repository.repository_url
        # The identity running Pulumi pushes with a 12-hour token from ECR (a push without
        # credentials for the registry host is refused with 401);
        # pulumi-docker-build ignores password changes, so a new token does not rebuild.
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        self.login = {
            "address": self.url.apply(lambda url: url.split("/", 1)[0]),
            "username": token.user_name,
            "password": pulumi.Output.secret(token.password),
        }
        self.register_outputs({"url": self.url})

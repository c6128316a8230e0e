"""The API key, stored where ECS can inject it as `MODELSHIP_API_KEY` (container `secrets`).

`ssm` (default): an SSM Parameter Store SecureString (standard tier: no charge). `secretsmanager`:
a Secrets Manager secret, deleted without a recovery window on `pulumi destroy`, so a destroy
leaves nothing behind. Both are encrypted with the account's AWS managed key, which the execution
role may use without a KMS grant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts


class ApiKeySecretArgs(TypedDict):
    store: str
    value: pulumi.Input[str]
    path: str
    """SSM parameter name / Secrets Manager name prefix, e.g. `/modelship/fargate/api-key`."""
    tags: Mapping[str, str]


class ApiKeySecret(pulumi.ComponentResource):
    """`arn` is what a container definition's `secrets[].valueFrom` and the IAM grant need."""

    arn: pulumi.Output[str]
    ready: list[pulumi.Resource]
    """What must exist before a task can read the key."""

    def __init__(
        self, name: str, args: ApiKeySecretArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:ApiKeySecret", name, None, opts)
        tags = dict(args["tags"])
        value = pulumi.Output.secret(args["value"])
        description = "modelship API key (managed by Pulumi)"
        if args["store"] == "ssm":
            parameter = aws.ssm.Parameter(
                f"{name}-parameter",
                aws.ssm.ParameterArgs(
                    name=args["path"],
                    type="SecureString",
                    tier="Standard",
                    value=value,
                    description=description,
                    tags=tags,
                ),
                opts=child_opts(self, opts),
            )
            self.arn = parameter.arn
            ready: pulumi.Resource = parameter
        else:
            secret = aws.secretsmanager.Secret(
                f"{name}-secret",
                aws.secretsmanager.SecretArgs(
                    name_prefix=args["path"].strip("/").replace("/", "-") + "-",
                    description=description,
                    recovery_window_in_days=0,
                    tags=tags,
                ),
                opts=child_opts(self, opts),
            )
            ready = aws.secretsmanager.SecretVersion(
                f"{name}-version",
                aws.secretsmanager.SecretVersionArgs(secret_id=secret.id, secret_string=value),
                opts=child_opts(self, opts),
            )
            self.arn = secret.arn
        self.ready = [ready]
        self.register_outputs({"arn": self.arn})

"""The roles of the tasks, least privilege, with policies built from Python data.

execution role: what ECS itself uses to start a task (pull from ECR, write to CloudWatch Logs):
the AWS managed `AmazonECSTaskExecutionRolePolicy` only, plus read access to exactly the one API-key
secret when one is configured (ECS resolves `secrets` with this role); shared by the service and
the training task. task role: what the service's own code may call: read model versions from the
stack's bucket (`models/` only), with `modelship:captureRate` above 0 also create objects under
`captures/` (put only: it cannot read, list or delete them), plus any configured policy ARNs.
training role: what `modelship train` may call: read `data/` and `models/`, create objects
under `models/`. Nobody may delete an object or touch anything but the one bucket.

Each role trusts `ecs-tasks` as AWS documents for it: the task and training roles only for tasks
of this account and region (confused-deputy protection with `aws:SourceAccount` /
`aws:SourceArn`, as in the ECS task IAM role guide); the execution role without conditions, as in
the task execution role guide, because the Fargate agent that assumes it is not documented to send
those keys and a wrong guess would stop every task.

Why the serving role may list `models/`: without `s3:ListBucket` S3 answers 403 (not 404) for a
key that does not exist. Whether S3 applies the `s3:prefix` condition to that implicit check is
not documented, so the service does not depend on it: a 403 is reported as "does not exist or may
not be read" with the URI, and publishing relies on conditional writes, not on 404s
(`modelship.model.store.S3Backend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts
from infra.core.model_store import CAPTURES_PREFIX, DATA_PREFIX, MODELS_PREFIX

POLICY_VERSION = "2012-10-17"
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
EXECUTION_POLICY = "policy/service-role/AmazonECSTaskExecutionRolePolicy"


def execution_trust_policy() -> dict[str, Any]:
    """ECS (the Fargate agent) may assume the execution role."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "EcsTasks",
                "Effect": "Allow",
                "Principal": {"Service": ECS_TASKS_PRINCIPAL},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def task_trust_policy(partition: str, region: str, account_id: str) -> dict[str, Any]:
    """Only ECS tasks started in this account and region may assume the task role."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "EcsTasksOfThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": ECS_TASKS_PRINCIPAL},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": f"arn:{partition}:ecs:{region}:{account_id}:*"},
                },
            }
        ],
    }


def secret_read_policy(secret_arn: str) -> dict[str, Any]:
    """Read exactly one secret: a Secrets Manager secret or an SSM parameter, by its ARN."""
    service = secret_arn.split(":")[2]
    action = "ssm:GetParameters" if service == "ssm" else "secretsmanager:GetSecretValue"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": "ReadTheApiKey", "Effect": "Allow", "Action": [action], "Resource": secret_arn}
        ],
    }


def _list_prefixes(bucket_arn: str, prefixes: Sequence[str]) -> dict[str, Any]:
    """ListBucket on the bucket, only for listings under `prefixes`."""
    return {
        "Sid": "ListOnly" + "And".join(p.rstrip("/").capitalize() for p in prefixes),
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": bucket_arn,
        "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
    }


def serving_store_policy(bucket_arn: str, capture: bool = False) -> dict[str, Any]:
    """The service reads model versions; with `capture` it also writes under `captures/`.
    Nothing else in the bucket."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadModels",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{bucket_arn}/{MODELS_PREFIX}*",
        },
        _list_prefixes(bucket_arn, [MODELS_PREFIX]),
    ]
    if capture:
        statements.append(
            {
                "Sid": "WriteCaptures",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": f"{bucket_arn}/{CAPTURES_PREFIX}*",
            }
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


def training_store_policy(bucket_arn: str) -> dict[str, Any]:
    """Training reads data and models and creates models; it never deletes (and a published
    version is never overwritten: the service writes with `If-None-Match: *`)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "ReadDataAndModels",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{bucket_arn}/{DATA_PREFIX}*", f"{bucket_arn}/{MODELS_PREFIX}*"],
            },
            {
                "Sid": "WriteModels",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": f"{bucket_arn}/{MODELS_PREFIX}*",
            },
            _list_prefixes(bucket_arn, [DATA_PREFIX, MODELS_PREFIX]),
        ],
    }


def managed_policy_arn(partition: str, name: str) -> str:
    return f"arn:{partition}:iam::aws:{name}"


class TaskRolesArgs(TypedDict):
    partition: pulumi.Input[str]
    region: str
    account_id: pulumi.Input[str]
    api_key_secret_arn: pulumi.Input[str] | None
    task_policy_arns: Sequence[str]
    """Extra managed policies for the service's task role (`modelship:taskPolicyArns`)."""
    bucket_arn: pulumi.Input[str]
    """The model store: the service reads `models/`, training reads `data/` and writes `models/`."""
    capture: bool
    """The service also writes `captures/` (`modelship:captureRate` above 0)."""
    tags: dict[str, str]


class TaskRoles(pulumi.ComponentResource):
    """`execution`, `task` (service) and `training` roles; `ready` are the grants the first
    service task needs, `training_ready` those of the first training run."""

    execution: aws.iam.Role
    task: aws.iam.Role
    training: aws.iam.Role
    ready: list[pulumi.Resource]
    training_ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: TaskRolesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:TaskRoles", name, None, opts)
        tags = args["tags"]
        task_trust = pulumi.Output.all(args["partition"], args["account_id"]).apply(
            lambda pa: task_trust_policy(pa[0], args["region"], pa[1])
        )
        self.execution = aws.iam.Role(
            f"{name}-execution",
            aws.iam.RoleArgs(
                description="modelship: lets ECS pull the image, write logs, read the API key",
                assume_role_policy=pulumi.Output.json_dumps(execution_trust_policy()),
                force_detach_policies=True,
                tags=tags,
            ),
            opts=child_opts(self, opts),
        )
        self.ready = [
            aws.iam.RolePolicyAttachment(
                f"{name}-execution-policy",
                aws.iam.RolePolicyAttachmentArgs(
                    role=self.execution.name,
                    policy_arn=pulumi.Output.from_input(args["partition"]).apply(
                        lambda partition: managed_policy_arn(partition, EXECUTION_POLICY)
                    ),
                ),
                opts=child_opts(self, opts),
            )
        ]
        secret = args["api_key_secret_arn"]
        if secret is not None:
            self.ready.append(
                aws.iam.RolePolicy(
                    f"{name}-execution-api-key",
                    aws.iam.RolePolicyArgs(
                        role=self.execution.id,
                        policy=pulumi.Output.json_dumps(
                            pulumi.Output.from_input(secret).apply(secret_read_policy)
                        ),
                    ),
                    opts=child_opts(self, opts),
                )
            )

        def task_role(role: str, description: str) -> aws.iam.Role:
            """A role ECS tasks of this account and region may assume (confused deputy)."""
            return aws.iam.Role(
                f"{name}-{role}",
                aws.iam.RoleArgs(
                    description=description,
                    assume_role_policy=pulumi.Output.json_dumps(task_trust),
                    force_detach_policies=True,
                    tags=tags,
                ),
                opts=child_opts(self, opts),
            )

        self.task = task_role(
            "task", "modelship: the service's own AWS permissions (read model versions)"
        )
        for index, arn in enumerate(args["task_policy_arns"]):
            self.ready.append(
                aws.iam.RolePolicyAttachment(
                    f"{name}-task-policy-{index}",
                    aws.iam.RolePolicyAttachmentArgs(role=self.task.name, policy_arn=arn),
                    opts=child_opts(self, opts),
                )
            )
        bucket_arn = pulumi.Output.from_input(args["bucket_arn"])
        self.ready.append(
            aws.iam.RolePolicy(
                f"{name}-task-models",
                aws.iam.RolePolicyArgs(
                    role=self.task.id,
                    policy=pulumi.Output.json_dumps(
                        bucket_arn.apply(lambda arn: serving_store_policy(arn, args["capture"]))
                    ),
                ),
                opts=child_opts(self, opts),
            )
        )
        self.training = task_role(
            "training", "modelship: the training task reads data/ and publishes to models/"
        )
        self.training_ready = [
            aws.iam.RolePolicy(
                f"{name}-training-store",
                aws.iam.RolePolicyArgs(
                    role=self.training.id,
                    policy=pulumi.Output.json_dumps(bucket_arn.apply(training_store_policy)),
                ),
                opts=child_opts(self, opts),
            )
        ]
        self.register_outputs(
            {
                "execution": self.execution.arn,
                "task": self.task.arn,
                "training": self.training.arn,
            }
        )

"""The training job on Fargate: a task definition that runs `modelship train` once, on demand.

Nothing runs it at `pulumi up`: the stack exports `train_command`, the exact `aws ecs run-task`
line (cluster, task family, the tasks' subnets, the training security group, the container's
command as an override so the data key can be edited) that starts one run. Runs are tagged
`--started-by modelship-train`, so `aws ecs list-tasks --started-by modelship-train` finds them.

The container is the training image (the service image's `training` stage): same user 10001,
read-only root filesystem with the `/tmp` task volume, `awslogs` to the stack's log group under
the stream prefix `train`, no port and no health check (it serves nothing), and the training
task role (read `data/` and `models/`, create under `models/`).

Deadline: ECS has no per-task time limit (`stopTimeout` is only the grace between SIGTERM and
SIGKILL once a task is stopped, at most 120 s on Fargate). So the container's entry point is
coreutils' `timeout` (in the image's Debian base) in front of `modelship`: after
`modelship:trainingTimeoutMinutes` the run gets SIGTERM, then SIGKILL 30 s later, and the task
stops with exit code 124, like the Kubernetes Job's `activeDeadlineSeconds` on gke.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts
from infra.core.container import RUN_AS_GROUP, RUN_AS_USER, TMP_DIR
from infra.core.model_store import TrainingSettings
from infra.targets.fargate.service import (
    TMP_VOLUME,
    fargate_task_definition,
    log_configuration,
    region_env,
)

CONTAINER_NAME = "train"
LOG_STREAM_PREFIX = "train"
STARTED_BY = "modelship-train"
KILL_AFTER_SECONDS = 30


def one_off_container(
    *,
    name: str,
    image: pulumi.Input[str],
    command: Sequence[str],
    timeout_minutes: int,
    log_group: pulumi.Input[str],
    region: str,
    stream_prefix: str,
) -> dict[str, Any]:
    """A run-to-completion container (training, batch) as RegisterTaskDefinition expects it:
    the deadline in front of `modelship`, the service's user and read-only root with /tmp, no
    port, no health check."""
    return {
        "name": name,
        "image": image,
        "essential": True,
        # `timeout` in front of the image's entry point: the run's deadline (see the module doc).
        "entryPoint": [
            "timeout",
            f"--kill-after={KILL_AFTER_SECONDS}s",
            f"{timeout_minutes}m",
            "modelship",
        ],
        "command": list(command),
        "environment": [{"name": k, "value": v} for k, v in sorted(region_env(region).items())],
        "user": f"{RUN_AS_USER}:{RUN_AS_GROUP}",
        "readonlyRootFilesystem": True,
        "mountPoints": [{"sourceVolume": TMP_VOLUME, "containerPath": TMP_DIR, "readOnly": False}],
        "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}},
        "logConfiguration": log_configuration(log_group, region, stream_prefix),
    }


def training_container(
    image: pulumi.Input[str],
    command: Sequence[str],
    training: TrainingSettings,
    log_group: pulumi.Input[str],
    region: str,
) -> dict[str, Any]:
    """The one container of the training task."""
    return one_off_container(
        name=CONTAINER_NAME,
        image=image,
        command=command,
        timeout_minutes=training.timeout_minutes,
        log_group=log_group,
        region=region,
        stream_prefix=LOG_STREAM_PREFIX,
    )


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def network_configuration(
    subnet_ids: Sequence[str], security_group_id: str, assign_public_ip: bool
) -> dict[str, Any]:
    """RunTask's `networkConfiguration` for the stack's task subnets and one security group."""
    return {
        "awsvpcConfiguration": {
            "subnets": list(subnet_ids),
            "securityGroups": [security_group_id],
            "assignPublicIp": "ENABLED" if assign_public_ip else "DISABLED",
        }
    }


def run_task_words(
    *, cluster: str, family: str, network: dict[str, Any], started_by: str, region: str
) -> list[str]:
    """`aws ecs run-task` of the latest ACTIVE revision of `family`, without its overrides."""
    return [
        "aws",
        "ecs",
        "run-task",
        "--cluster",
        cluster,
        # The family without a revision: the latest ACTIVE revision, i.e. what `up` declared.
        "--task-definition",
        family,
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        _compact_json(network),
        "--started-by",
        started_by,
        "--propagate-tags",
        "TASK_DEFINITION",
        "--region",
        region,
    ]


def run_task_command(
    *,
    cluster: str,
    family: str,
    subnet_ids: Sequence[str],
    security_group_id: str,
    assign_public_ip: bool,
    command: Sequence[str],
    region: str,
) -> str:
    """The `aws ecs run-task` line that starts one training run (quoted for a POSIX shell)."""
    network = network_configuration(subnet_ids, security_group_id, assign_public_ip)
    overrides = {"containerOverrides": [{"name": CONTAINER_NAME, "command": list(command)}]}
    words = run_task_words(
        cluster=cluster, family=family, network=network, started_by=STARTED_BY, region=region
    )
    return shlex.join([*words, "--overrides", _compact_json(overrides)])


def logs_command(log_group: str, region: str) -> str:
    """Follow the training runs' log streams."""
    return shlex.join(
        [
            "aws",
            "logs",
            "tail",
            log_group,
            "--log-stream-name-prefix",
            LOG_STREAM_PREFIX,
            "--follow",
            "--region",
            region,
        ]
    )


class TrainingTaskArgs(TypedDict):
    family: str
    region: str
    platform: str
    training: TrainingSettings
    image: pulumi.Input[str]
    command: pulumi.Input[Sequence[str]]
    """The container command (`train --data … --output s3://BUCKET`, infra.core.model_store)."""
    log_group: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    task_role_arn: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    assign_public_ip: bool
    tags: Mapping[str, str]


class TrainingTask(pulumi.ComponentResource):
    """The training task definition; `run_command` / `logs_command` are what a user types."""

    task_definition: aws.ecs.TaskDefinition
    run_command: pulumi.Output[str]
    logs_command: pulumi.Output[str]

    def __init__(
        self, name: str, args: TrainingTaskArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:TrainingTask", name, None, opts)
        training = args["training"]
        region = args["region"]
        command = pulumi.Output.from_input(args["command"])
        definitions = pulumi.Output.all(args["image"], command, args["log_group"]).apply(
            lambda values: [training_container(values[0], values[1], training, values[2], region)]
        )
        self.task_definition = fargate_task_definition(
            f"{name}-task",
            family=args["family"],
            cpu_millicores=training.cpu_millicores,
            memory_mib=training.memory_mib,
            platform=args["platform"],
            execution_role_arn=args["execution_role_arn"],
            task_role_arn=args["task_role_arn"],
            definitions=definitions,
            tags=args["tags"],
            opts=child_opts(self, opts),
        )
        assign_public_ip = args["assign_public_ip"]
        self.run_command = pulumi.Output.all(
            args["cluster_name"],
            self.task_definition.family,
            pulumi.Output.all(*args["subnet_ids"]),
            args["security_group_id"],
            command,
        ).apply(
            lambda values: run_task_command(
                cluster=values[0],
                family=values[1],
                subnet_ids=values[2],
                security_group_id=values[3],
                assign_public_ip=assign_public_ip,
                command=values[4],
                region=region,
            )
        )
        self.logs_command = pulumi.Output.from_input(args["log_group"]).apply(
            lambda group: logs_command(group, region)
        )
        self.register_outputs(
            {"task_definition": self.task_definition.arn, "run_command": self.run_command}
        )

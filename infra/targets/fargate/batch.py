"""The batch transform on Fargate: a task definition and N tasks, one per shard.

Nothing runs at `pulumi up`: `batch_command` (an output) is a shell loop of `aws ecs run-task`
calls, one per shard, each with its own container command as an override
(`predict MODEL $INPUT -o $OUTPUT --shard I/N`), since `run-task --count N` would start N
identical tasks that could not tell their shards apart. Runs are tagged
`--started-by modelship-batch`. ECS does not retry a stopped task: a failed shard is started
again by hand (its line of the loop); its part is replaced, never duplicated, and
`modelship predict ... --merge` names the shards that have not finished.

The container is the service image (ONNX scoring needs nothing more) with the same hardening as
the training task: user 10001, read-only root with the `/tmp` task volume, no port, `awslogs`
under the stream prefix `batch`, and `timeout` in front of the entry point for the deadline.
Its task role may read `data/` and `models/` and write under `outputs/` only (`batch_policy`).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.batch import (
    INPUT_VARIABLE,
    OUTPUT_VARIABLE,
    OUTPUTS_PREFIX,
    RUN_VARIABLE,
    BatchSettings,
    predict_command,
    require_input,
)
from infra.core.components import child_opts
from infra.core.model_store import DATA_PREFIX, MODELS_PREFIX
from infra.targets.fargate.iam import POLICY_VERSION, _list_prefixes
from infra.targets.fargate.service import fargate_task_definition
from infra.targets.fargate.training import network_configuration, one_off_container, run_task_words

CONTAINER_NAME = "batch"
LOG_STREAM_PREFIX = "batch"
STARTED_BY = "modelship-batch"
# Shell placeholders the loop fills in: the shard index, then INPUT and OUTPUT of the run.
SHARD_VARIABLE = "SHARD"


def batch_policy(bucket_arn: str) -> dict[str, Any]:
    """Read the input and the model, write (and replace) results under `outputs/` only."""
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
                "Sid": "WriteOutputs",
                "Effect": "Allow",
                # GetObject: the merge reads the shard manifests; Abort: a failed part upload.
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": f"{bucket_arn}/{OUTPUTS_PREFIX}*",
            },
            _list_prefixes(bucket_arn, [DATA_PREFIX, MODELS_PREFIX, OUTPUTS_PREFIX]),
        ],
    }


def batch_container(
    image: pulumi.Input[str], batch: BatchSettings, log_group: pulumi.Input[str], region: str
) -> dict[str, Any]:
    """The one container of the batch task; each run-task call overrides its command (a task
    started without an override prints the usage and stops)."""
    return one_off_container(
        name=CONTAINER_NAME,
        image=image,
        command=["predict", "--help"],
        timeout_minutes=batch.timeout_minutes,
        log_group=log_group,
        region=region,
        stream_prefix=LOG_STREAM_PREFIX,
    )


def shard_overrides(model: str, shards: int) -> str:
    """The `--overrides` JSON for shard $SHARD of $INPUT into $OUTPUT, double-quoted for the
    shell so that it expands the three variables (S3 URIs hold no quote or backslash)."""
    command = predict_command(
        model,
        f"${INPUT_VARIABLE}",
        f"${OUTPUT_VARIABLE}",
        f"${SHARD_VARIABLE}/{shards}",
    )
    overrides = {"containerOverrides": [{"name": CONTAINER_NAME, "command": command}]}
    text = json.dumps(overrides, separators=(",", ":"))
    return '"' + text.replace('"', '\\"') + '"'


def run_command(
    *,
    cluster: str,
    family: str,
    subnet_ids: Sequence[str],
    security_group_id: str,
    assign_public_ip: bool,
    model: str,
    shards: int,
    store_root: str,
    region: str,
) -> str:
    """Shell lines that start the N shard tasks of one run over $INPUT."""
    network = network_configuration(subnet_ids, security_group_id, assign_public_ip)
    head = shlex.join(
        run_task_words(
            cluster=cluster, family=family, network=network, started_by=STARTED_BY, region=region
        )
    )
    default = f"{store_root}/{OUTPUTS_PREFIX}${RUN_VARIABLE}/"
    return " && ".join(
        [
            require_input(f"{store_root}/{DATA_PREFIX}export.csv"),
            f'{RUN_VARIABLE}="${{{RUN_VARIABLE}:-{family}-$(date +%Y%m%d%H%M%S)}}"',
            f'{OUTPUT_VARIABLE}="${{{OUTPUT_VARIABLE}:-{default}}}"',
            f"for {SHARD_VARIABLE} in $(seq 0 {shards - 1}); do {head} "
            f"--overrides {shard_overrides(model, shards)} "
            "--query 'tasks[0].taskArn' --output text || break; done",
            f'echo "when every task has stopped: ${{{OUTPUT_VARIABLE}}}_manifest.json"',
        ]
    )


class BatchTaskArgs(TypedDict):
    family: str
    region: str
    platform: str
    batch: BatchSettings
    image: pulumi.Input[str]
    model: str
    """What `predict` loads: the configured model version URI, or the image's own artifact."""
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    log_group: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    trust_policy: pulumi.Input[str]
    """The task roles' trust policy (ECS tasks of this account and region)."""
    cluster_name: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    assign_public_ip: bool
    tags: Mapping[str, str]


class BatchTask(pulumi.ComponentResource):
    """The batch task role and task definition; `run_command` starts one run's N shards."""

    role: aws.iam.Role
    task_definition: aws.ecs.TaskDefinition
    run_command: pulumi.Output[str]

    def __init__(
        self, name: str, args: BatchTaskArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:BatchTask", name, None, opts)
        batch = args["batch"]
        region = args["region"]
        model = args["model"]
        tags = dict(args["tags"])
        self.role = aws.iam.Role(
            f"{name}-role",
            aws.iam.RoleArgs(
                description="modelship: the batch task reads data/ and models/, writes outputs/",
                assume_role_policy=args["trust_policy"],
                force_detach_policies=True,
                tags=tags,
            ),
            opts=child_opts(self, opts),
        )
        grant = aws.iam.RolePolicy(
            f"{name}-store",
            aws.iam.RolePolicyArgs(
                role=self.role.id,
                policy=pulumi.Output.json_dumps(
                    pulumi.Output.from_input(args["bucket_arn"]).apply(batch_policy)
                ),
            ),
            opts=child_opts(self, opts),
        )
        definitions = pulumi.Output.all(args["image"], args["log_group"]).apply(
            lambda values: [batch_container(values[0], batch, values[1], region)]
        )
        self.task_definition = fargate_task_definition(
            f"{name}-task",
            family=args["family"],
            cpu_millicores=batch.cpu_millicores,
            memory_mib=batch.memory_mib,
            platform=args["platform"],
            execution_role_arn=args["execution_role_arn"],
            task_role_arn=self.role.arn,
            definitions=definitions,
            tags=tags,
            opts=child_opts(self, opts, depends_on=[grant]),
        )
        assign_public_ip = args["assign_public_ip"]
        self.run_command = pulumi.Output.all(
            args["cluster_name"],
            self.task_definition.family,
            pulumi.Output.all(*args["subnet_ids"]),
            args["security_group_id"],
            args["bucket_name"],
        ).apply(
            lambda values: run_command(
                cluster=values[0],
                family=values[1],
                subnet_ids=values[2],
                security_group_id=values[3],
                assign_public_ip=assign_public_ip,
                model=model,
                shards=batch.shards,
                store_root=f"s3://{values[4]}",
                region=region,
            )
        )
        self.register_outputs(
            {"task_definition": self.task_definition.arn, "run_command": self.run_command}
        )

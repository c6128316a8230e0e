"""The service on Fargate: log group, task definition, ECS service and its autoscaling.

The container comes from the shared `ContainerSpec` (port, environment, probes, user, sizes).
Fargate specifics: task-level CPU/memory from the validated size table, `awsvpc`, read-only root
filesystem with a task volume on `/tmp`, `awslogs` to a log group with retention (a log group
without one keeps logs, and their bill, forever), a rolling deployment that the circuit breaker
rolls back when tasks never get healthy, and Application Auto Scaling on CPU and on requests per
target; when it owns the task count the service ignores `desiredCount` (otherwise every `up` resets
the count the autoscaler chose).

Fargate mounts a task volume root-owned with mode 0755 unless the image declares the path a
VOLUME; `service/Dockerfile` declares `VOLUME ["/tmp"]`, so the volume gets the image's `/tmp`
permissions (1777) and the service, running as UID 10001, can write there with no root helper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts
from infra.core.container import API_KEY_ENV, ContainerSpec
from infra.targets.fargate.alarms import cloudwatch_metrics_env
from infra.targets.fargate.cluster import FARGATE, FARGATE_SPOT, EcsCluster
from infra.targets.fargate.sizes import fargate_cpu_units

TMP_VOLUME = "tmp"
LOG_STREAM_PREFIX = "modelship"
MAX_HEALTH_CHECK_START_PERIOD = 300  # ECS: startPeriod 0-300 s
SERVICE_TIMEOUTS = pulumi.CustomTimeouts(create="20m", update="20m", delete="20m")
SCALE_OUT_COOLDOWN = 60
SCALE_IN_COOLDOWN = 300
ARCHITECTURES = {"linux/amd64": "X86_64", "linux/arm64": "ARM64"}


def log_configuration(
    log_group: pulumi.Input[str], region: str, stream_prefix: str = LOG_STREAM_PREFIX
) -> dict[str, Any]:
    """`awslogs` to the stack's log group; streams are named `PREFIX/CONTAINER/TASK-ID`."""
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": log_group,
            "awslogs-region": region,
            "awslogs-stream-prefix": stream_prefix,
            # A full log buffer drops lines instead of blocking the service's stdout.
            "mode": "non-blocking",
            "max-buffer-size": "25m",
        },
    }


def region_env(region: str) -> dict[str, str]:
    """The stack's region for the AWS SDK in the container (boto3 reads the model store with it)."""
    return {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}


def container_definitions(
    spec: ContainerSpec,
    image: pulumi.Input[str],
    log_group: pulumi.Input[str],
    region: str,
    api_key_arn: pulumi.Input[str] | None,
    *,
    metrics_service: str | None = None,
) -> list[dict[str, Any]]:
    """The task's containers as RegisterTaskDefinition's `containerDefinitions` expects them.

    With `metrics_service`, the service also writes its monitoring signals as CloudWatch metric
    lines under that Service dimension (the alarms of infra/targets/fargate/alarms.py select it).
    """
    tmp_mount = {"sourceVolume": TMP_VOLUME, "containerPath": spec.tmp_dir, "readOnly": False}
    logs = log_configuration(log_group, region)
    env = {**dict(spec.env_with_key_as_variable), **region_env(region)}
    if metrics_service is not None:
        env |= cloudwatch_metrics_env(metrics_service)
    environment = [{"name": key, "value": value} for key, value in sorted(env.items())]
    start_period = spec.startup.period_seconds * spec.startup.failure_threshold
    service: dict[str, Any] = {
        "name": spec.name,
        "image": image,
        "essential": True,
        "portMappings": [
            {
                "name": spec.port_name,
                "containerPort": spec.port,
                "hostPort": spec.port,
                "protocol": "tcp",
                "appProtocol": "http",
            }
        ],
        "environment": environment,
        "user": f"{spec.run_as_user}:{spec.run_as_group}",
        "readonlyRootFilesystem": True,
        "mountPoints": [tmp_mount],
        "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}},
        "healthCheck": {
            "command": spec.exec_health_check(spec.liveness),
            "interval": spec.liveness.period_seconds,
            "timeout": spec.liveness.timeout_seconds,
            "retries": spec.liveness.failure_threshold,
            "startPeriod": min(start_period, MAX_HEALTH_CHECK_START_PERIOD),
        },
        "stopTimeout": spec.termination_grace_seconds,
        "logConfiguration": logs,
    }
    if api_key_arn is not None:
        service["secrets"] = [{"name": API_KEY_ENV, "valueFrom": api_key_arn}]
    return [service]


def fargate_task_definition(
    name: str,
    *,
    family: str,
    cpu_millicores: int,
    memory_mib: int,
    platform: str,
    execution_role_arn: pulumi.Input[str],
    task_role_arn: pulumi.Input[str],
    definitions: pulumi.Input[Any],
    tags: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.ecs.TaskDefinition:
    """A Fargate task definition (service or training) with the `/tmp` task volume."""
    return aws.ecs.TaskDefinition(
        name,
        aws.ecs.TaskDefinitionArgs(
            family=family,
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            # Task-level sizes as strings, from the checked Fargate table (fargate/sizes.py).
            cpu=str(fargate_cpu_units(cpu_millicores)),
            memory=str(memory_mib),
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX",
                cpu_architecture=ARCHITECTURES[platform],
            ),
            execution_role_arn=execution_role_arn,
            task_role_arn=task_role_arn,
            volumes=[aws.ecs.TaskDefinitionVolumeArgs(name=TMP_VOLUME)],
            container_definitions=pulumi.Output.json_dumps(definitions),
            tags=dict(tags),
        ),
        opts=opts,
    )


class FargateServiceArgs(TypedDict):
    family: str
    region: str
    platform: str
    container: ContainerSpec
    image: pulumi.Input[str]
    cluster: EcsCluster
    execution_role_arn: pulumi.Input[str]
    task_role_arn: pulumi.Input[str]
    api_key_arn: pulumi.Input[str] | None
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    assign_public_ip: bool
    target_group_arn: pulumi.Input[str]
    request_count_label: pulumi.Input[str]
    requests_per_target: int
    spot: bool
    health_check_grace_seconds: int
    log_retention_days: int
    depends_on: Sequence[pulumi.Resource]
    """The listeners, IAM grants and routes the first task needs: a service created before its
    listener fails with "target group ... does not have an associated load balancer", and a task
    without a route out cannot pull its image."""
    tags: Mapping[str, str]


class FargateService(pulumi.ComponentResource):
    """Log group, task definition, ECS service and (unless parked at zero) its autoscaling."""

    log_group: aws.cloudwatch.LogGroup
    task_definition: aws.ecs.TaskDefinition
    service: aws.ecs.Service
    scaling_target: aws.appautoscaling.Target | None

    def __init__(
        self, name: str, args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:FargateService", name, None, opts)
        tags = dict(args["tags"])
        spec = args["container"]
        cluster = args["cluster"]

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            aws.cloudwatch.LogGroupArgs(
                name=f"/ecs/{args['family']}",
                retention_in_days=args["log_retention_days"],
                tags=tags,
            ),
            opts=child_opts(self, opts),
        )
        definitions = container_definitions(
            spec,
            args["image"],
            self.log_group.name,
            args["region"],
            args["api_key_arn"],
            metrics_service=args["family"],
        )
        self.task_definition = fargate_task_definition(
            f"{name}-task",
            family=args["family"],
            cpu_millicores=spec.cpu_millicores,
            memory_mib=spec.memory_mib,
            platform=args["platform"],
            execution_role_arn=args["execution_role_arn"],
            task_role_arn=args["task_role_arn"],
            definitions=definitions,
            tags=tags,
            opts=child_opts(self, opts),
        )

        autoscaling = spec.autoscaling
        self.service = aws.ecs.Service(
            f"{name}-service",
            aws.ecs.ServiceArgs(
                cluster=cluster.cluster.arn,
                task_definition=self.task_definition.arn,
                desired_count=spec.desired_replicas,
                capacity_provider_strategies=[
                    aws.ecs.ServiceCapacityProviderStrategyArgs(
                        capacity_provider=FARGATE_SPOT if args["spot"] else FARGATE,
                        weight=1,
                        base=0,
                    )
                ],
                platform_version="LATEST",
                network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                    subnets=list(args["subnet_ids"]),
                    security_groups=[args["security_group_id"]],
                    assign_public_ip=args["assign_public_ip"],
                ),
                load_balancers=[
                    aws.ecs.ServiceLoadBalancerArgs(
                        target_group_arn=args["target_group_arn"],
                        container_name=spec.name,
                        container_port=spec.port,
                    )
                ],
                health_check_grace_period_seconds=args["health_check_grace_seconds"],
                # Rolling: new tasks first, old ones stop once the new ones are healthy; a
                # deployment whose tasks never get healthy is stopped and rolled back.
                deployment_minimum_healthy_percent=100,
                deployment_maximum_percent=200,
                deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(
                    enable=True, rollback=True
                ),
                deployment_controller=aws.ecs.ServiceDeploymentControllerArgs(type="ECS"),
                # A changed capacity provider (spot on/off) applies only with a new deployment.
                force_new_deployment=True,
                # `up` waits until the service is steady. A deployment the circuit breaker rolled
                # back is steady too: the provider counts ROLLBACK_SUCCESSFUL as success, so `up`
                # ends green on the old revision. The deploy workflow compares the service's
                # primary task definition with `task_definition` and fails on a mismatch.
                wait_for_steady_state=True,
                propagate_tags="SERVICE",
                enable_ecs_managed_tags=True,
                tags=tags,
            ),
            opts=child_opts(
                self,
                opts,
                depends_on=[cluster.capacity_providers, *args["depends_on"]],
                custom_timeouts=SERVICE_TIMEOUTS,
                ignore_changes=["desiredCount"] if autoscaling else None,
            ),
        )

        self.scaling_target = None
        if autoscaling:
            self.scaling_target = aws.appautoscaling.Target(
                f"{name}-scaling",
                aws.appautoscaling.TargetArgs(
                    service_namespace="ecs",
                    scalable_dimension="ecs:service:DesiredCount",
                    resource_id=pulumi.Output.concat(
                        "service/", cluster.cluster.name, "/", self.service.name
                    ),
                    min_capacity=spec.min_replicas,
                    max_capacity=spec.max_replicas,
                    tags=tags,
                ),
                opts=child_opts(self, opts),
            )
            metrics = {
                "cpu": (
                    aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type="ECSServiceAverageCPUUtilization"
                    ),
                    spec.cpu_target_percent,
                ),
                "requests": (
                    aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type="ALBRequestCountPerTarget",
                        resource_label=args["request_count_label"],
                    ),
                    args["requests_per_target"],
                ),
            }
            for role, (metric, target) in metrics.items():
                aws.appautoscaling.Policy(
                    f"{name}-scale-{role}",
                    aws.appautoscaling.PolicyArgs(
                        policy_type="TargetTrackingScaling",
                        service_namespace=self.scaling_target.service_namespace,
                        scalable_dimension=self.scaling_target.scalable_dimension,
                        resource_id=self.scaling_target.resource_id,
                        target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                            predefined_metric_specification=metric,
                            target_value=float(target),
                            scale_in_cooldown=SCALE_IN_COOLDOWN,
                            scale_out_cooldown=SCALE_OUT_COOLDOWN,
                        ),
                    ),
                    opts=child_opts(self, opts),
                )
        self.register_outputs(
            {
                "service": self.service.name,
                "task_definition": self.task_definition.arn,
                "log_group": self.log_group.name,
            }
        )

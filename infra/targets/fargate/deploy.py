"""Compose the fargate target: registries + images (service, training) → model store bucket →
network → security groups → load balancer → roles (+ API-key secret) → cluster → service with
autoscaling → training task definition and the command that runs it."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.core.build_context import content_tag
from infra.core.container import ARTIFACT_DIR, container_spec
from infra.core.ids import make_id
from infra.core.image import (
    DOCKERFILE,
    build_stack_images,
)
from infra.core.labels import label_value, standard_labels
from infra.core.model_store import training_command
from infra.settings import Settings
from infra.stack_file import REPO_ROOT
from infra.targets import TargetOutputs
from infra.targets.fargate.alarms import ServiceAlarms
from infra.targets.fargate.batch import BatchTask
from infra.targets.fargate.cluster import EcsCluster
from infra.targets.fargate.config import FargateSettings
from infra.targets.fargate.iam import TaskRoles, task_trust_policy
from infra.targets.fargate.ids import BUCKET_PREFIX, REPOSITORY_NAME, TASK_FAMILY
from infra.targets.fargate.loadbalancer import LoadBalancer
from infra.targets.fargate.model_store import S3ModelStore
from infra.targets.fargate.network import VpcNetwork
from infra.targets.fargate.registry import EcrRepository
from infra.targets.fargate.secrets import ApiKeySecret
from infra.targets.fargate.security import SecurityGroups
from infra.targets.fargate.service import FargateService
from infra.targets.fargate.training import TrainingTask


def image_tag(settings: Settings, fargate: FargateSettings, labels: dict[str, str]) -> str:
    """The configured tag, else one derived from everything that goes into the build."""
    if fargate.image_tag is not None:
        return fargate.image_tag
    build = {
        "platform": settings.image.platform,
        "build_on_preview": settings.image.build_on_preview,
        "labels": labels,
    }
    if settings.image.model_sha256 is not None:  # the baked model is a build input too
        build["model_sha256"] = settings.image.model_sha256
    return content_tag(REPO_ROOT, REPO_ROOT / DOCKERFILE, build)


def deploy_fargate(settings: Settings, fargate: FargateSettings) -> TargetOutputs:
    """Declare every resource of the fargate target and return its outputs."""
    name = settings.project
    stack_names = (settings.project, settings.stack)
    labels = standard_labels(settings.project, settings.stack)
    store_settings = fargate.store
    production = settings.environment == "production"
    tag = image_tag(settings, fargate, labels)

    registry = EcrRepository(
        f"{name}-registry",
        {
            "name": make_id(REPOSITORY_NAME, *stack_names),
            "keep_images": settings.image.keep_images,
            "keep": store_settings.keep,
            "tags": labels,
        },
    )

    # The training image (the Dockerfile's `training` stage) in its own repository, so the
    # serving repository's lifecycle rule counts serving images only.
    training_registry = EcrRepository(
        f"{name}-training-registry",
        {
            "name": make_id(REPOSITORY_NAME, *stack_names, role="training"),
            "keep_images": settings.image.keep_images,
            "keep": store_settings.keep,
            "tags": labels,
        },
    )
    images = build_stack_images(
        name,
        settings.image,
        labels=labels,
        tag=tag,
        service_name=registry.url,
        training_name=training_registry.url,
        registry=registry.login,
        training_registry=training_registry.login,
        service_opts=pulumi.ResourceOptions(depends_on=[registry.repository]),
        training_opts=pulumi.ResourceOptions(depends_on=[training_registry.repository]),
    )
    image, training_image = images.service, images.training
    store = S3ModelStore(
        f"{name}-store",
        {
            "bucket_prefix": make_id(BUCKET_PREFIX, *stack_names, role="models"),
            "keep": store_settings.keep,
            "training_data_days": store_settings.training_data_days,
            "capture_days": store_settings.capture.days,
            "output_days": store_settings.batch.output_days,
            "tags": labels,
        },
    )
    # A new modelship:modelUri changes the container's environment, hence the task definition:
    # the service rolls to it without a new image, under the circuit breaker.
    spec = container_spec(
        settings,
        model_uri=store_settings.model_uri,
        capture=store_settings.capture,
        capture_uri=store.uri,
    )

    public_a, public_b, private_a, private_b = fargate.subnet_cidrs
    network = VpcNetwork(
        f"{name}-network",
        {
            "region": fargate.region,
            "zone_ids": fargate.zone_ids,
            "cidr": fargate.vpc_cidr,
            "public_cidrs": [public_a, public_b],
            "private_cidrs": [private_a, private_b],
            "private": fargate.private_subnets,
            "tags": labels,
        },
    )
    groups = SecurityGroups(
        f"{name}-sg",
        {
            "vpc_id": network.vpc.id,
            "container_port": spec.port,
            "ingress_cidrs": fargate.ingress_cidrs,
            "https": fargate.https,
            "tags": labels,
        },
    )
    balancer = LoadBalancer(
        f"{name}-lb",
        {
            "vpc_id": network.vpc.id,
            "subnet_ids": [s.id for s in network.public_subnets],
            "security_group_id": groups.load_balancer.id,
            "container_port": spec.port,
            "health_check_path": spec.readiness.path,
            "health_check_timeout_seconds": spec.readiness.timeout_seconds,
            "deregistration_delay_seconds": fargate.deregistration_delay_seconds,
            "certificate_arn": fargate.certificate_arn,
            "deletion_protection": production,
            "tags": labels,
        },
        opts=pulumi.ResourceOptions(depends_on=network.internet_ready),
    )

    api_key_arn: pulumi.Input[str] | None = fargate.api_key_secret_arn
    grants: list[pulumi.Resource] = []
    if settings.api_key is not None:
        secret = ApiKeySecret(
            f"{name}-api-key",
            {
                "store": fargate.api_key_store,
                "value": settings.api_key,
                "path": f"/{settings.project}/{label_value(settings.stack)}/api-key",
                "tags": labels,
            },
        )
        api_key_arn = secret.arn
        grants += secret.ready

    identity = aws.get_caller_identity_output()
    roles = TaskRoles(
        f"{name}-roles",
        {
            "partition": identity.arn.apply(lambda arn: arn.split(":")[1]),
            "region": fargate.region,
            "account_id": identity.account_id,
            "api_key_secret_arn": api_key_arn,
            "task_policy_arns": fargate.task_policy_arns,
            "bucket_arn": store.arn,
            "capture": store_settings.capture.enabled,
            "tags": labels,
        },
    )
    cluster = EcsCluster(
        f"{name}-ecs", {"container_insights": fargate.container_insights, "tags": labels}
    )
    app = FargateService(
        f"{name}-app",
        {
            "family": make_id(TASK_FAMILY, *stack_names),
            "region": fargate.region,
            "platform": settings.image.platform,
            "container": spec,
            "image": image.ref,
            "cluster": cluster,
            "execution_role_arn": roles.execution.arn,
            "task_role_arn": roles.task.arn,
            "api_key_arn": api_key_arn,
            "subnet_ids": [s.id for s in network.task_subnets],
            "security_group_id": groups.tasks.id,
            "assign_public_ip": not fargate.private_subnets,
            "target_group_arn": balancer.target_group.arn,
            "request_count_label": balancer.resource_label,
            "requests_per_target": fargate.requests_per_target,
            "spot": fargate.spot,
            "health_check_grace_seconds": fargate.health_check_grace_seconds,
            "log_retention_days": fargate.log_retention_days,
            "depends_on": [
                *balancer.listeners,
                *roles.ready,
                *grants,
                *groups.rules,
                *network.egress_ready,
            ],
            "tags": labels,
        },
    )
    ServiceAlarms(
        f"{name}-alarms",
        {
            "service": make_id(
                TASK_FAMILY, *stack_names
            ),  # the task family: what the service writes as its dimension
            "tags": labels,
            "alarm_actions": [fargate.alarm_topic_arn] if fargate.alarm_topic_arn else [],
        },
    )
    training = TrainingTask(
        f"{name}-train",
        {
            "family": make_id(TASK_FAMILY, *stack_names, role="train"),
            "region": fargate.region,
            "platform": settings.image.platform,
            "training": store_settings.training,
            "image": training_image.ref,
            "command": training_command("s3", store.name, store_settings.training),
            "log_group": app.log_group.name,
            "execution_role_arn": roles.execution.arn,
            "task_role_arn": roles.training.arn,
            "cluster_name": cluster.cluster.name,
            "subnet_ids": [s.id for s in network.task_subnets],
            "security_group_id": groups.training.id,
            "assign_public_ip": not fargate.private_subnets,
            "tags": labels,
        },
        # `train_command` works once `up` is done: grants, bucket settings and routes in place.
        opts=pulumi.ResourceOptions(
            depends_on=[
                *roles.training_ready,
                *store.ready,
                *groups.training_rules,
                *network.egress_ready,
            ]
        ),
    )
    partition = identity.arn.apply(lambda arn: arn.split(":")[1])
    batch = BatchTask(
        f"{name}-batch",
        {
            "family": make_id(TASK_FAMILY, *stack_names, role="batch"),
            "region": fargate.region,
            "platform": settings.image.platform,
            "batch": store_settings.batch,
            "image": image.ref,
            "model": store_settings.model_uri or ARTIFACT_DIR,
            "bucket_name": store.name,
            "bucket_arn": store.arn,
            "log_group": app.log_group.name,
            "execution_role_arn": roles.execution.arn,
            "trust_policy": pulumi.Output.json_dumps(
                pulumi.Output.all(partition, identity.account_id).apply(
                    lambda pa: task_trust_policy(pa[0], fargate.region, pa[1])
                )
            ),
            "cluster_name": cluster.cluster.name,
            "subnet_ids": [s.id for s in network.task_subnets],
            # No ingress, HTTPS out only: what the training task has, and all a worker needs.
            "security_group_id": groups.training.id,
            "assign_public_ip": not fargate.private_subnets,
            "tags": labels,
        },
        opts=pulumi.ResourceOptions(
            depends_on=[*store.ready, *groups.training_rules, *network.egress_ready]
        ),
    )
    extra: dict[str, pulumi.Input[object]] = {
        "cluster_name": cluster.cluster.name,
        "service_name": app.service.name,
        "log_group_name": app.log_group.name,
        # What the service should run; compare with ECS after an `up` (a circuit-breaker rollback
        # still reports success, docs/fargate.md).
        "task_definition": app.task_definition.arn,
        "registry": registry.url,
        "region": fargate.region,
        "model_store": store.uri,
        "model_uri": store_settings.model_uri,
        "training_image": training_image.ref,
        "training_task_definition": training.task_definition.arn,
        # One string for a POSIX shell: run it with `eval "$(pulumi stack output train_command)"`.
        "train_command": training.run_command,
        "logs_command": training.logs_command,
        "batch_task_definition": batch.task_definition.arn,
        "batch_command": batch.run_command,
    }
    return TargetOutputs(url=balancer.url, image=image.ref, extra=extra)

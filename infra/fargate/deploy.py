"""Compose the fargate target: registry + image → network → security groups → load balancer →
roles (+ API-key secret) → cluster → service with autoscaling."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.build_context import content_tag
from infra.container import container_spec
from infra.fargate.cluster import EcsCluster
from infra.fargate.config import FargateSettings
from infra.fargate.iam import TaskRoles
from infra.fargate.loadbalancer import LoadBalancer
from infra.fargate.network import VpcNetwork
from infra.fargate.registry import EcrRepository
from infra.fargate.secrets import ApiKeySecret
from infra.fargate.security import SecurityGroups
from infra.fargate.service import FargateService
from infra.image import DOCKERFILE, REPO_ROOT, ServiceImage
from infra.labels import label_value, standard_labels
from infra.settings import Settings
from infra.targets import TargetOutputs


def image_tag(settings: Settings, fargate: FargateSettings, labels: dict[str, str]) -> str:
    """The configured tag, else one derived from everything that goes into the build."""
    if fargate.image_tag is not None:
        return fargate.image_tag
    build = {
        "platform": settings.image.platform,
        "build_on_preview": settings.image.build_on_preview,
        "labels": labels,
    }
    return content_tag(REPO_ROOT, REPO_ROOT / DOCKERFILE, build)


def deploy_fargate(settings: Settings, fargate: FargateSettings) -> TargetOutputs:
    """Declare every resource of the fargate target and return its outputs."""
    name = settings.project
    stack_id = label_value(f"{settings.project}-{settings.stack}")
    labels = standard_labels(settings.project, settings.stack)
    spec = container_spec(settings)
    production = settings.environment == "production"

    registry = EcrRepository(
        f"{name}-registry",
        {
            "name": stack_id,
            "keep_images": settings.image.keep_images,
            "force_delete": not production,
            "tags": labels,
        },
    )
    image = ServiceImage(
        f"{name}-image",
        {
            "image_name": registry.url,
            "tag": image_tag(settings, fargate, labels),
            "registry": registry.login,
            "platform": settings.image.platform,
            "build_on_preview": settings.image.build_on_preview,
            "labels": labels,
        },
        opts=pulumi.ResourceOptions(depends_on=[registry.repository]),
    )

    public_a, public_b, private_a, private_b = fargate.subnet_cidrs
    network = VpcNetwork(
        f"{name}-network",
        {
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
            "tags": labels,
        },
    )
    cluster = EcsCluster(
        f"{name}-ecs", {"container_insights": fargate.container_insights, "tags": labels}
    )
    app = FargateService(
        f"{name}-app",
        {
            "family": stack_id,
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
    extra: dict[str, pulumi.Input[object]] = {
        "cluster_name": cluster.cluster.name,
        "service_name": app.service.name,
        "log_group_name": app.log_group.name,
        # What the service should run; compare with ECS after an `up` (a circuit-breaker rollback
        # still reports success, docs/fargate.md).
        "task_definition": app.task_definition.arn,
        "registry": registry.url,
        "region": fargate.region,
    }
    return TargetOutputs(url=balancer.url, image=image.ref, extra=extra)

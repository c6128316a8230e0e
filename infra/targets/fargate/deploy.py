"""Compose the fargate target, one named stage per function, in this order: registries + images
(service, training) → model store bucket → network (VPC, security groups, load balancer) →
identity (API-key secret, task roles) → service (cluster, autoscaled service) → alarms →
training task → batch task → outputs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.core.build_context import content_tag
from infra.core.container import ARTIFACT_DIR, ContainerSpec, container_spec
from infra.core.image import DOCKERFILE, ServiceImage, StackImages, build_stack_images
from infra.core.labels import label_value
from infra.core.model_store import training_command
from infra.settings import Settings
from infra.stack_file import REPO_ROOT
from infra.targets import Stack, TargetOutputs
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


@dataclass(frozen=True)
class _Registries:
    """The two ECR repositories and the images pushed to them."""

    service: EcrRepository
    training: EcrRepository
    images: StackImages


@dataclass(frozen=True)
class _Network:
    """The VPC, its security groups and the public load balancer in front of the tasks."""

    vpc: VpcNetwork
    groups: SecurityGroups
    balancer: LoadBalancer


@dataclass(frozen=True)
class _Identity:
    """The task roles, the API key's ARN (None without a key) and the account they live in."""

    roles: TaskRoles
    api_key_arn: pulumi.Input[str] | None
    grants: list[pulumi.Resource]
    """What must exist before a task reads the API key."""
    partition: pulumi.Output[str]
    account_id: pulumi.Output[str]


@dataclass(frozen=True)
class _Service:
    """The ECS cluster and the service in it; the tasks share its cluster and log group."""

    cluster: EcsCluster
    app: FargateService


@dataclass(frozen=True)
class _Platform:
    """What the training and batch tasks run on: the bucket, the network, the roles, and the
    service's cluster and log group."""

    store: S3ModelStore
    network: _Network
    identity: _Identity
    service: _Service


def deploy_fargate(settings: Settings, fargate: FargateSettings) -> TargetOutputs:
    """Declare every resource of the fargate target and return its outputs."""
    stack = Stack(settings, fargate)
    registries = _registries_and_images(stack)
    store = _model_store(stack)
    # A new modelship:modelUri changes the container's environment, hence the task definition:
    # the service rolls to it without a new image, under the circuit breaker.
    spec = container_spec(
        settings,
        model_uri=fargate.store.model_uri,
        capture=fargate.store.capture,
        capture_uri=store.uri,
        rollout=fargate.store.rollout,
    )
    network = _network(stack, spec)
    identity = _identity(stack, store)
    service = _service(stack, spec, registries.images.service, network, identity)
    _alarms(stack)
    platform = _Platform(store, network, identity, service)
    training = _training_task(stack, registries.images.training, platform)
    batch = _batch_task(stack, registries.images.service, platform)
    return _outputs(stack, registries, platform, training, batch)


def _registries_and_images(stack: Stack[FargateSettings]) -> _Registries:
    """The serving and training repositories, and both images built and pushed to them."""
    settings, store_settings, labels = stack.settings, stack.target.store, stack.labels
    registry = EcrRepository(
        f"{stack.name}-registry",
        {
            "name": stack.id(REPOSITORY_NAME),
            "keep_images": settings.image.keep_images,
            "keep": store_settings.keep,
            "tags": labels,
        },
    )
    # The training image (the Dockerfile's `training` stage) in its own repository, so the
    # serving repository's lifecycle rule counts serving images only.
    training_registry = EcrRepository(
        f"{stack.name}-training-registry",
        {
            "name": stack.id(REPOSITORY_NAME, role="training"),
            "keep_images": settings.image.keep_images,
            "keep": store_settings.keep,
            "tags": labels,
        },
    )
    images = build_stack_images(
        stack.name,
        settings.image,
        labels=labels,
        tag=image_tag(settings, stack.target, labels),
        service_name=registry.url,
        training_name=training_registry.url,
        registry=registry.login,
        training_registry=training_registry.login,
        service_opts=pulumi.ResourceOptions(depends_on=[registry.repository]),
        training_opts=pulumi.ResourceOptions(depends_on=[training_registry.repository]),
    )
    return _Registries(registry, training_registry, images)


def _model_store(stack: Stack[FargateSettings]) -> S3ModelStore:
    """The bucket of models, training data, captured requests and batch outputs."""
    store_settings = stack.target.store
    return S3ModelStore(
        f"{stack.name}-store",
        {
            "bucket_prefix": stack.id(BUCKET_PREFIX, role="models"),
            "keep": store_settings.keep,
            "training_data_days": store_settings.training_data_days,
            "capture_days": store_settings.capture.days,
            "output_days": store_settings.batch.output_days,
            "tags": stack.labels,
        },
    )


def _network(stack: Stack[FargateSettings], spec: ContainerSpec) -> _Network:
    """VPC and subnets, the security groups, and the load balancer on the public subnets."""
    fargate, labels = stack.target, stack.labels
    public_a, public_b, private_a, private_b = fargate.subnet_cidrs
    network = VpcNetwork(
        f"{stack.name}-network",
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
        f"{stack.name}-sg",
        {
            "vpc_id": network.vpc.id,
            "container_port": spec.port,
            "ingress_cidrs": fargate.ingress_cidrs,
            "https": fargate.https,
            "tags": labels,
        },
    )
    balancer = LoadBalancer(
        f"{stack.name}-lb",
        {
            "vpc_id": network.vpc.id,
            "subnet_ids": [s.id for s in network.public_subnets],
            "security_group_id": groups.load_balancer.id,
            "container_port": spec.port,
            "health_check_path": spec.readiness.path,
            "health_check_timeout_seconds": spec.readiness.timeout_seconds,
            "deregistration_delay_seconds": fargate.deregistration_delay_seconds,
            "certificate_arn": fargate.certificate_arn,
            "deletion_protection": stack.settings.environment == "production",
            "tags": labels,
        },
        opts=pulumi.ResourceOptions(depends_on=network.internet_ready),
    )
    return _Network(network, groups, balancer)


def _identity(stack: Stack[FargateSettings], store: S3ModelStore) -> _Identity:
    """The API-key secret (when the stack sets a key) and the roles of every task."""
    settings, fargate, labels = stack.settings, stack.target, stack.labels
    api_key_arn: pulumi.Input[str] | None = fargate.api_key_secret_arn
    grants: list[pulumi.Resource] = []
    if settings.api_key is not None:
        secret = ApiKeySecret(
            f"{stack.name}-api-key",
            {
                "store": fargate.api_key_store,
                "value": settings.api_key,
                "path": f"/{settings.project}/{label_value(settings.stack)}/api-key",
                "tags": labels,
            },
        )
        api_key_arn = secret.arn
        grants += secret.ready

    caller = aws.get_caller_identity_output()
    partition = caller.arn.apply(lambda arn: arn.split(":")[1])
    roles = TaskRoles(
        f"{stack.name}-roles",
        {
            "partition": partition,
            "region": fargate.region,
            "account_id": caller.account_id,
            "api_key_secret_arn": api_key_arn,
            "task_policy_arns": fargate.task_policy_arns,
            "bucket_arn": store.arn,
            "capture": fargate.store.capture.enabled,
            "tags": labels,
        },
    )
    return _Identity(roles, api_key_arn, grants, partition, caller.account_id)


def _service(
    stack: Stack[FargateSettings],
    spec: ContainerSpec,
    image: ServiceImage,
    network: _Network,
    identity: _Identity,
) -> _Service:
    """The ECS cluster and the autoscaled service behind the load balancer."""
    settings, fargate, labels = stack.settings, stack.target, stack.labels
    cluster = EcsCluster(
        f"{stack.name}-ecs", {"container_insights": fargate.container_insights, "tags": labels}
    )
    app = FargateService(
        f"{stack.name}-app",
        {
            "family": stack.id(TASK_FAMILY),
            "region": fargate.region,
            "platform": settings.image.platform,
            "container": spec,
            "image": image.ref,
            "cluster": cluster,
            "execution_role_arn": identity.roles.execution.arn,
            "task_role_arn": identity.roles.task.arn,
            "api_key_arn": identity.api_key_arn,
            "subnet_ids": [s.id for s in network.vpc.task_subnets],
            "security_group_id": network.groups.tasks.id,
            "assign_public_ip": not fargate.private_subnets,
            "target_group_arn": network.balancer.target_group.arn,
            "request_count_label": network.balancer.resource_label,
            "requests_per_target": fargate.requests_per_target,
            "spot": fargate.spot,
            "health_check_grace_seconds": fargate.health_check_grace_seconds,
            "log_retention_days": fargate.log_retention_days,
            "depends_on": [
                *network.balancer.listeners,
                *identity.roles.ready,
                *identity.grants,
                *network.groups.rules,
                *network.vpc.egress_ready,
            ],
            "tags": labels,
        },
    )
    return _Service(cluster, app)


def _alarms(stack: Stack[FargateSettings]) -> ServiceAlarms:
    """CloudWatch alarms on the service's errors, drift and (when on) request capture and a
    candidate's rollout."""
    topic = stack.target.alarm_topic_arn
    return ServiceAlarms(
        f"{stack.name}-alarms",
        {
            # The task family: what the service writes as its dimension.
            "service": stack.id(TASK_FAMILY),
            "tags": stack.labels,
            "alarm_actions": [topic] if topic else [],
            "capture": stack.target.store.capture.enabled,
            "rollout": stack.target.store.rollout.enabled,
        },
    )


def _training_task(
    stack: Stack[FargateSettings], image: ServiceImage, platform: _Platform
) -> TrainingTask:
    """The training task definition and the command that runs it once."""
    fargate, training = stack.target, stack.target.store.training
    return TrainingTask(
        f"{stack.name}-train",
        {
            "family": stack.id(TASK_FAMILY, role="train"),
            "region": fargate.region,
            "platform": stack.settings.image.platform,
            "training": training,
            "image": image.ref,
            "command": training_command("s3", platform.store.name, training),
            "log_group": platform.service.app.log_group.name,
            "execution_role_arn": platform.identity.roles.execution.arn,
            "task_role_arn": platform.identity.roles.training.arn,
            "cluster_name": platform.service.cluster.cluster.name,
            "subnet_ids": [s.id for s in platform.network.vpc.task_subnets],
            "security_group_id": platform.network.groups.training.id,
            "assign_public_ip": not fargate.private_subnets,
            "tags": stack.labels,
        },
        # `train_command` works once `up` is done: grants, bucket settings and routes in place.
        opts=pulumi.ResourceOptions(
            depends_on=[
                *platform.identity.roles.training_ready,
                *platform.store.ready,
                *platform.network.groups.training_rules,
                *platform.network.vpc.egress_ready,
            ]
        ),
    )


def _batch_task(
    stack: Stack[FargateSettings], image: ServiceImage, platform: _Platform
) -> BatchTask:
    """The batch-scoring task definition (the service image) and the command that runs it."""
    fargate, store_settings = stack.target, stack.target.store
    return BatchTask(
        f"{stack.name}-batch",
        {
            "family": stack.id(TASK_FAMILY, role="batch"),
            "region": fargate.region,
            "platform": stack.settings.image.platform,
            "batch": store_settings.batch,
            "image": image.ref,
            "model": store_settings.model_uri or ARTIFACT_DIR,
            "bucket_name": platform.store.name,
            "bucket_arn": platform.store.arn,
            "log_group": platform.service.app.log_group.name,
            "execution_role_arn": platform.identity.roles.execution.arn,
            "trust_policy": pulumi.Output.json_dumps(
                pulumi.Output.all(platform.identity.partition, platform.identity.account_id).apply(
                    lambda pa: task_trust_policy(pa[0], fargate.region, pa[1])
                )
            ),
            "cluster_name": platform.service.cluster.cluster.name,
            "subnet_ids": [s.id for s in platform.network.vpc.task_subnets],
            # No ingress, HTTPS out only: what the training task has, and all a worker needs.
            "security_group_id": platform.network.groups.training.id,
            "assign_public_ip": not fargate.private_subnets,
            "tags": stack.labels,
        },
        opts=pulumi.ResourceOptions(
            depends_on=[
                *platform.store.ready,
                *platform.network.groups.training_rules,
                *platform.network.vpc.egress_ready,
            ]
        ),
    )


def _outputs(
    stack: Stack[FargateSettings],
    registries: _Registries,
    platform: _Platform,
    training: TrainingTask,
    batch: BatchTask,
) -> TargetOutputs:
    """The stack outputs: the URL and image, and what the operations commands need."""
    extra: dict[str, pulumi.Input[object]] = {
        "cluster_name": platform.service.cluster.cluster.name,
        "service_name": platform.service.app.service.name,
        "log_group_name": platform.service.app.log_group.name,
        # What the service should run; compare with ECS after an `up` (a circuit-breaker rollback
        # still reports success, docs/fargate.md).
        "task_definition": platform.service.app.task_definition.arn,
        "registry": registries.service.url,
        "region": stack.target.region,
        "model_store": platform.store.uri,
        "model_uri": stack.target.store.model_uri,
        "training_image": registries.images.training.ref,
        "training_task_definition": training.task_definition.arn,
        # One string for a POSIX shell: run it with `eval "$(pulumi stack output train_command)"`.
        "train_command": training.run_command,
        "logs_command": training.logs_command,
        "batch_task_definition": batch.task_definition.arn,
        "batch_command": batch.run_command,
    }
    image = registries.images.service
    return TargetOutputs(url=platform.network.balancer.url, image=image.ref, extra=extra)

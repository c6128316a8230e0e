"""Compose the gke target, one named stage per function, in this order: APIs → registry +
images → cluster (network, cluster, pull grant) → model store (bucket, Google accounts) →
Kubernetes objects (the service, the training and batch job templates) → entry point (HTTPS
Ingress or the LoadBalancer's address) → outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.core.container import ARTIFACT_DIR, ContainerSpec, container_spec
from infra.core.image import (
    IMAGE_NAME,
    TRAINING_IMAGE_NAME,
    ServiceImage,
    StackImages,
    build_stack_images,
)
from infra.core.labels import app_selector, label_value
from infra.core.model_store import training_command
from infra.kubernetes.app import KubernetesApp
from infra.kubernetes.batch import BatchJob
from infra.kubernetes.training import TrainingJob
from infra.settings import Settings
from infra.targets import Stack, TargetOutputs
from infra.targets.gke.apis import ProjectApis
from infra.targets.gke.batch import BatchIdentity
from infra.targets.gke.cluster import GkeCluster
from infra.targets.gke.config import GkeSettings
from infra.targets.gke.https import HttpsIngress, backend_config_name, service_annotations
from infra.targets.gke.ids import REPOSITORY_ID, SERVICE_ACCOUNT_ID
from infra.targets.gke.model_store import ModelStore, workload_identity_annotation
from infra.targets.gke.network import Network
from infra.targets.gke.registry import ArtifactRepository, allow_pull

# The username Artifact Registry accepts with an OAuth access token as password.
ACCESS_TOKEN_USER = "oauth2accesstoken"  # noqa: S105 - a fixed user name, not a secret
# Autopilot requests 1Gi of ephemeral storage per pod unless told otherwise; declaring it
# (requests = limits, like cpu and memory) keeps Autopilot from rewriting the pod
# (a diff on every `up`). Standard clusters get the same value, so both modes run the same pod.
EPHEMERAL_STORAGE = "1Gi"
# Training keeps the downloaded CSV and the new artifact under /tmp.
TRAINING_EPHEMERAL_STORAGE = "2Gi"
TRAINING_TMP_SIZE_LIMIT = "1Gi"


@dataclass(frozen=True)
class _Registry:
    """The Artifact Registry repository and the two images pushed to it."""

    registry: ArtifactRepository
    images: StackImages


@dataclass(frozen=True)
class _Cluster:
    """The network, the cluster on it, the nodes' pull grant, and the options every Kubernetes
    object is declared with (the cluster's provider, after that grant)."""

    network: Network
    cluster: GkeCluster
    k8s_opts: pulumi.ResourceOptions

    def kubernetes_after(self, ready: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
        """Options of a Kubernetes object whose pods use the grants in `ready` as they start."""
        return pulumi.ResourceOptions.merge(self.k8s_opts, pulumi.ResourceOptions(depends_on=ready))


def _training_job_name(stack: Stack[GkeSettings]) -> str:
    return f"{stack.name}-train"


def _batch_job_name(stack: Stack[GkeSettings]) -> str:
    return f"{stack.name}-batch"


def deploy_gke(settings: Settings, gke: GkeSettings) -> TargetOutputs:
    """Declare every resource of the gke target and return its outputs."""
    stack = Stack(settings, gke)
    apis = ProjectApis(f"{stack.name}-apis", {"project": gke.project})
    after_apis = pulumi.ResourceOptions(depends_on=apis.services)
    registry = _registry_and_images(stack, after_apis)
    cluster = _cluster(stack, apis, registry.registry)
    store = _model_store(stack, cluster, after_apis)
    spec = container_spec(
        settings,
        model_uri=gke.store.model_uri,
        capture=gke.store.capture,
        capture_uri=store.uri,
        rollout=gke.store.rollout,
    )
    app = _service(stack, spec, registry.images.service, store, cluster)
    training = _training_job(stack, registry.images.training, store, cluster, app)
    batch_identity, batch = _batch(
        stack, registry.images.service, store, cluster, app, after_apis=after_apis
    )
    extra: dict[str, pulumi.Input[object]] = {
        "cluster_name": cluster.cluster.cluster.name,
        # The destroy workflow sweeps what GKE leaves on this network (docs/cost.md).
        "network": cluster.network.network.name,
        "kubeconfig": cluster.cluster.kubeconfig,
        "namespace": gke.namespace,
        "registry": registry.registry.url,
        "region": gke.region,
        "project_id": gke.project,
        "model_store": store.uri,
        "model_uri": gke.store.model_uri or "",
        "training_image": registry.images.training.ref,
        "train_command": training.run_command,
        "batch_command": batch.run_command,
        "batch_service_account": batch_identity.account.email,
        "serving_service_account": store.serving_account.email,
        "training_service_account": store.training_account.email,
    }
    url = _entry_point(stack, spec, cluster, app, extra)
    return TargetOutputs(url=url, image=registry.images.service.ref, extra=extra)


def _registry_and_images(
    stack: Stack[GkeSettings], after_apis: pulumi.ResourceOptions
) -> _Registry:
    """The repository, and both images pushed to it with the deployer's own access token."""
    gke, settings = stack.target, stack.settings
    registry = ArtifactRepository(
        f"{stack.name}-registry",
        {
            "project": gke.project,
            "region": gke.region,
            "repository_id": stack.id(REPOSITORY_ID),
            "keep_images": settings.image.keep_images,
            "labels": stack.labels,
        },
        opts=after_apis,
    )
    # The identity running Pulumi pushes with its own short-lived OAuth access token.
    token = gcp.organizations.get_client_config_output().access_token

    after_registry = pulumi.ResourceOptions(depends_on=[registry.repository])
    images = build_stack_images(
        stack.name,
        settings.image,
        labels=stack.labels,
        tag=label_value(settings.stack),
        service_name=pulumi.Output.concat(registry.url, "/", IMAGE_NAME),
        training_name=pulumi.Output.concat(registry.url, "/", TRAINING_IMAGE_NAME),
        registry={"address": registry.host, "username": ACCESS_TOKEN_USER, "password": token},
        service_opts=after_registry,
    )
    return _Registry(registry, images)


def _cluster(
    stack: Stack[GkeSettings], apis: ProjectApis, registry: ArtifactRepository
) -> _Cluster:
    """The VPC network, the cluster (Autopilot or Standard) and its nodes' right to pull."""
    gke = stack.target
    network = Network(
        f"{stack.name}-network",
        {
            "project": gke.project,
            "region": gke.region,
            "subnet_cidr": gke.subnet_cidr,
            "pods_cidr": gke.pods_cidr,
            "services_cidr": gke.services_cidr,
        },
        opts=pulumi.ResourceOptions(depends_on=apis.services),
    )
    cluster = GkeCluster(
        f"{stack.name}-gke",
        {
            "project": gke.project,
            "region": gke.region,
            "autopilot": gke.autopilot,
            "release_channel": gke.release_channel,
            "deletion_protection": gke.deletion_protection,
            "network": network,
            "machine_type": gke.machine_type,
            "node_min_count": gke.node_min_count,
            "node_max_count": gke.node_max_count,
            "spot": gke.spot,
            "service_account_id": stack.id(SERVICE_ACCOUNT_ID, role="nodes"),
            "labels": stack.labels,
            "depends_on": apis.services,
        },
    )
    # The nodes pull with the least role that allows it: reader on this one repository.
    pull = allow_pull(
        f"{stack.name}-registry-pull", registry, cluster.node_member, gke.project, gke.region
    )
    # Pods pull their image and (modelship:modelUri, training) read the bucket as their Google
    # account as soon as they start: every grant they use must exist first.
    k8s_opts = pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[pull])
    return _Cluster(network, cluster, k8s_opts)


def _model_store(
    stack: Stack[GkeSettings], cluster: _Cluster, after_apis: pulumi.ResourceOptions
) -> ModelStore:
    """The bucket, and the Google accounts of serving and training bound to their pods."""
    gke = stack.target
    return ModelStore(
        f"{stack.name}-store",
        {
            "project": gke.project,
            "region": gke.region,
            "labels": stack.labels,
            "keep": gke.store.keep,
            "training_data_days": gke.store.training_data_days,
            "capture_days": gke.store.capture.days,
            "capture": gke.store.capture.enabled,
            "output_days": gke.store.batch.output_days,
            "kms_key": gke.kms_key,
            "serving_account_id": stack.id(SERVICE_ACCOUNT_ID, role="serve"),
            "training_account_id": stack.id(SERVICE_ACCOUNT_ID, role="train"),
            "namespace": gke.namespace,
            "serving_kubernetes_account": stack.name,
            "training_kubernetes_account": _training_job_name(stack),
            "cluster": cluster.cluster.cluster,
        },
        opts=after_apis,
    )


def _service(
    stack: Stack[GkeSettings],
    spec: ContainerSpec,
    image: ServiceImage,
    store: ModelStore,
    cluster: _Cluster,
) -> KubernetesApp:
    """The service's Kubernetes objects, behind a LoadBalancer Service or (with a domain) an
    Ingress."""
    settings, gke, name = stack.settings, stack.target, stack.name
    https = gke.domain is not None
    return KubernetesApp(
        f"{name}-app",
        {
            "namespace": gke.namespace,
            "app_name": name,
            "image": image.ref,
            "container": spec,
            "labels": stack.labels,
            "selector": app_selector(settings.project, settings.stack),
            "service_type": "ClusterIP" if https else "LoadBalancer",
            "service_annotations": service_annotations(backend_config_name(name)) if https else {},
            "extra_resources": {"ephemeral-storage": EPHEMERAL_STORAGE},
            "api_key": settings.api_key,
            "service_account_annotations": workload_identity_annotation(store.serving_account),
            "pod_monitor": gke.pod_monitor,
        },
        opts=cluster.kubernetes_after(store.serving_ready),
    )


def _training_job(
    stack: Stack[GkeSettings],
    image: ServiceImage,
    store: ModelStore,
    cluster: _Cluster,
    app: KubernetesApp,
) -> TrainingJob:
    """The training job template (and its schedule, if any) in the service's namespace."""
    gke, training = stack.target, stack.target.store.training
    return TrainingJob(
        f"{stack.name}-training",
        {
            "namespace": app.namespace_name,
            "job_name": _training_job_name(stack),
            "image": image.ref,
            "command": training_command("gs", store.bucket.name, training),
            "cpu": training.cpu,
            "memory": training.memory,
            "timeout_seconds": training.timeout_seconds,
            "labels": stack.labels,
            "schedule": gke.training_schedule,
            "service_account_annotations": workload_identity_annotation(store.training_account),
            "extra_resources": {"ephemeral-storage": TRAINING_EPHEMERAL_STORAGE},
            "tmp_size_limit": TRAINING_TMP_SIZE_LIMIT,
        },
        opts=cluster.kubernetes_after(store.training_ready),
    )


def _batch(
    stack: Stack[GkeSettings],
    image: ServiceImage,
    store: ModelStore,
    cluster: _Cluster,
    app: KubernetesApp,
    *,
    after_apis: pulumi.ResourceOptions,
) -> tuple[BatchIdentity, BatchJob]:
    """The batch-scoring job template (the service image) and the Google account it runs as."""
    gke = stack.target
    batch_identity = BatchIdentity(
        f"{stack.name}-batch-identity",
        {
            "project": gke.project,
            "bucket": store.bucket.name,
            "account_id": stack.id(SERVICE_ACCOUNT_ID, role="batch"),
            "namespace": gke.namespace,
            "kubernetes_account": _batch_job_name(stack),
            "depends_on": [cluster.cluster.cluster],
        },
        opts=after_apis,
    )
    batch = BatchJob(
        f"{stack.name}-batch",
        {
            "namespace": app.namespace_name,
            "job_name": _batch_job_name(stack),
            "image": image.ref,
            "model": gke.store.model_uri or ARTIFACT_DIR,
            "batch": gke.store.batch,
            "labels": stack.labels,
            "store_root": pulumi.Output.concat("gs://", store.bucket.name),
            "service_account_annotations": workload_identity_annotation(batch_identity.account),
            "extra_resources": {"ephemeral-storage": EPHEMERAL_STORAGE},
        },
        opts=cluster.kubernetes_after(batch_identity.ready),
    )
    return batch_identity, batch


def _entry_point(
    stack: Stack[GkeSettings],
    spec: ContainerSpec,
    cluster: _Cluster,
    app: KubernetesApp,
    extra: dict[str, pulumi.Input[object]],
) -> pulumi.Output[str]:
    """The service's URL: the HTTPS Ingress on the domain (its address added to `extra`), or
    the LoadBalancer Service's address."""
    gke, name = stack.target, stack.name
    if gke.domain is None:
        return app.load_balancer_address.apply(
            lambda address: f"http://{address}" if address else ""
        )
    ingress = HttpsIngress(
        f"{name}-https",
        {
            "project": gke.project,
            "app_name": name,
            "domain": gke.domain,
            "namespace": app.namespace_name,
            "service_name": app.service.metadata.name,
            "backend_config_name": backend_config_name(name),
            "health_check_path": spec.readiness.path,
            "container_port": spec.port,
            "labels": stack.labels,
        },
        opts=pulumi.ResourceOptions(providers=[cluster.cluster.provider], depends_on=[app.service]),
    )
    extra["ingress_ip"] = ingress.address
    return pulumi.Output.from_input(f"https://{gke.domain}")

"""Compose the gke target: APIs → registry + images → network → cluster → model store →
Kubernetes objects (the service, and the training job template)."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.core.container import ARTIFACT_DIR, container_spec
from infra.core.ids import make_id
from infra.core.image import (
    IMAGE_NAME,
    TRAINING_IMAGE_NAME,
    build_stack_images,
)
from infra.core.labels import app_selector, label_value, standard_labels
from infra.core.model_store import training_command
from infra.kubernetes.app import KubernetesApp
from infra.kubernetes.batch import BatchJob
from infra.kubernetes.training import TrainingJob
from infra.settings import Settings
from infra.targets import TargetOutputs
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


def deploy_gke(settings: Settings, gke: GkeSettings) -> TargetOutputs:
    """Declare every resource of the gke target and return its outputs."""
    name = settings.project
    stack_names = (settings.project, settings.stack)

    def account_id(role: str) -> str:
        return make_id(SERVICE_ACCOUNT_ID, *stack_names, role=role)

    labels = standard_labels(settings.project, settings.stack)
    training_job_name = f"{name}-train"

    apis = ProjectApis(f"{name}-apis", {"project": gke.project})
    after_apis = pulumi.ResourceOptions(depends_on=apis.services)

    registry = ArtifactRepository(
        f"{name}-registry",
        {
            "project": gke.project,
            "region": gke.region,
            "repository_id": make_id(REPOSITORY_ID, *stack_names),
            "keep_images": settings.image.keep_images,
            "labels": labels,
        },
        opts=after_apis,
    )
    # The identity running Pulumi pushes with its own short-lived OAuth access token.
    token = gcp.organizations.get_client_config_output().access_token

    after_registry = pulumi.ResourceOptions(depends_on=[registry.repository])
    images = build_stack_images(
        name,
        settings.image,
        labels=labels,
        tag=label_value(settings.stack),
        service_name=pulumi.Output.concat(registry.url, "/", IMAGE_NAME),
        training_name=pulumi.Output.concat(registry.url, "/", TRAINING_IMAGE_NAME),
        registry={"address": registry.host, "username": ACCESS_TOKEN_USER, "password": token},
        service_opts=after_registry,
    )
    image, training_image = images.service, images.training

    network = Network(
        f"{name}-network",
        {
            "project": gke.project,
            "region": gke.region,
            "subnet_cidr": gke.subnet_cidr,
            "pods_cidr": gke.pods_cidr,
            "services_cidr": gke.services_cidr,
        },
        opts=after_apis,
    )
    cluster = GkeCluster(
        f"{name}-gke",
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
            "service_account_id": account_id("nodes"),
            "labels": labels,
            "depends_on": apis.services,
        },
    )
    # The nodes pull with the least role that allows it: reader on this one repository.
    pull = allow_pull(
        f"{name}-registry-pull", registry, cluster.node_member, gke.project, gke.region
    )

    store = ModelStore(
        f"{name}-store",
        {
            "project": gke.project,
            "region": gke.region,
            "labels": labels,
            "keep": gke.store.keep,
            "training_data_days": gke.store.training_data_days,
            "capture_days": gke.store.capture.days,
            "capture": gke.store.capture.enabled,
            "output_days": gke.store.batch.output_days,
            "kms_key": gke.kms_key,
            "serving_account_id": account_id("serve"),
            "training_account_id": account_id("train"),
            "namespace": gke.namespace,
            "serving_kubernetes_account": name,
            "training_kubernetes_account": training_job_name,
            "cluster": cluster.cluster,
        },
        opts=after_apis,
    )
    spec = container_spec(
        settings,
        model_uri=gke.store.model_uri,
        capture=gke.store.capture,
        capture_uri=store.uri,
    )

    # Pods pull their image and (modelship:modelUri, training) read the bucket as their Google
    # account as soon as they start: every grant they use must exist first.
    k8s_opts = pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[pull])
    serving_opts = pulumi.ResourceOptions.merge(
        k8s_opts, pulumi.ResourceOptions(depends_on=store.serving_ready)
    )
    training_opts = pulumi.ResourceOptions.merge(
        k8s_opts, pulumi.ResourceOptions(depends_on=store.training_ready)
    )
    https = gke.domain is not None
    app = KubernetesApp(
        f"{name}-app",
        {
            "namespace": gke.namespace,
            "app_name": name,
            "image": image.ref,
            "container": spec,
            "labels": labels,
            "selector": app_selector(settings.project, settings.stack),
            "service_type": "ClusterIP" if https else "LoadBalancer",
            "service_annotations": service_annotations(backend_config_name(name)) if https else {},
            "extra_resources": {"ephemeral-storage": EPHEMERAL_STORAGE},
            "api_key": settings.api_key,
            "service_account_annotations": workload_identity_annotation(store.serving_account),
            "pod_monitor": gke.pod_monitor,
        },
        opts=serving_opts,
    )
    training = TrainingJob(
        f"{name}-training",
        {
            "namespace": app.namespace_name,
            "job_name": training_job_name,
            "image": training_image.ref,
            "command": training_command("gs", store.bucket.name, gke.store.training),
            "cpu": gke.store.training.cpu,
            "memory": gke.store.training.memory,
            "timeout_seconds": gke.store.training.timeout_seconds,
            "labels": labels,
            "schedule": gke.training_schedule,
            "service_account_annotations": workload_identity_annotation(store.training_account),
            "extra_resources": {"ephemeral-storage": TRAINING_EPHEMERAL_STORAGE},
            "tmp_size_limit": TRAINING_TMP_SIZE_LIMIT,
        },
        opts=training_opts,
    )

    batch_job_name = f"{name}-batch"
    batch_identity = BatchIdentity(
        f"{name}-batch-identity",
        {
            "project": gke.project,
            "bucket": store.bucket.name,
            "account_id": account_id("batch"),
            "namespace": gke.namespace,
            "kubernetes_account": batch_job_name,
            "depends_on": [cluster.cluster],
        },
        opts=after_apis,
    )
    batch = BatchJob(
        f"{name}-batch",
        {
            "namespace": app.namespace_name,
            "job_name": batch_job_name,
            "image": image.ref,
            "model": gke.store.model_uri or ARTIFACT_DIR,
            "batch": gke.store.batch,
            "labels": labels,
            "store_root": pulumi.Output.concat("gs://", store.bucket.name),
            "service_account_annotations": workload_identity_annotation(batch_identity.account),
            "extra_resources": {"ephemeral-storage": EPHEMERAL_STORAGE},
        },
        opts=pulumi.ResourceOptions.merge(
            k8s_opts, pulumi.ResourceOptions(depends_on=batch_identity.ready)
        ),
    )

    extra: dict[str, pulumi.Input[object]] = {
        "cluster_name": cluster.cluster.name,
        # The destroy workflow sweeps what GKE leaves on this network (docs/cost.md).
        "network": network.network.name,
        "kubeconfig": cluster.kubeconfig,
        "namespace": gke.namespace,
        "registry": registry.url,
        "region": gke.region,
        "project_id": gke.project,
        "model_store": store.uri,
        "model_uri": gke.store.model_uri or "",
        "training_image": training_image.ref,
        "train_command": training.run_command,
        "batch_command": batch.run_command,
        "batch_service_account": batch_identity.account.email,
        "serving_service_account": store.serving_account.email,
        "training_service_account": store.training_account.email,
    }
    if gke.domain is not None:
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
                "labels": labels,
            },
            opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[app.service]),
        )
        url = pulumi.Output.from_input(f"https://{gke.domain}")
        extra["ingress_ip"] = ingress.address
    else:
        url = app.load_balancer_address.apply(
            lambda address: f"http://{address}" if address else ""
        )
    return TargetOutputs(url=url, image=image.ref, extra=extra)

"""Compose the k8s target: provider for the user's cluster → image → KubernetesApp → exposure.

Nothing here depends on a cloud: the cluster is whatever the kubeconfig context points at
(kubeadm, k3s, a managed cluster run by another team), the image comes from any registry.
With `modelship:renderDir` the provider writes the objects as YAML instead of applying them,
and the program adds the `kustomization.yaml` (see `infra/offline/render.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.core.container import ARTIFACT_DIR, container_spec
from infra.core.image import IMAGE_NAME, ServiceImage, ServiceImageArgs, repo_path
from infra.core.labels import app_selector, label_value, standard_labels
from infra.core.values import plain
from infra.kubernetes.app import SERVICE_PORT, KubernetesApp
from infra.kubernetes.batch import BatchJob
from infra.settings import Settings
from infra.targets import TargetOutputs
from infra.targets.k8s.config import K8sSettings
from infra.targets.k8s.ingress import HttpIngress
from infra.targets.k8s.manifests import kustomization, render_path, write_kustomization


def deploy_k8s(settings: Settings, cfg: K8sSettings) -> TargetOutputs:
    """Declare every resource of the k8s target and return its outputs."""
    name = settings.project
    labels = standard_labels(settings.project, settings.stack)
    with_key = settings.api_key is not None or cfg.api_key_secret is not None
    spec = container_spec(
        settings,
        api_key_file=with_key,
        capture=cfg.capture,
        capture_uri=cfg.capture_uri,
        model_uri=cfg.model_uri,
        rollout=cfg.rollout,
    )
    render_dir = repo_path(cfg.render_dir) if cfg.render_dir is not None else None

    # Render mode and a kubeconfig context exclude each other (the provider refuses both).
    provider = k8s.Provider(
        f"{name}-k8s",
        context=cfg.context if render_dir is None else None,
        render_yaml_to_directory=render_dir,
        # Write every file on every `up`, so the directory is complete even when nothing changed.
        always_render=True if render_dir is not None else None,
    )

    image_ref = _image(settings, cfg, labels)
    app = KubernetesApp(
        f"{name}-app",
        {
            "namespace": cfg.namespace,
            "create_namespace": cfg.create_namespace,
            "app_name": name,
            "image": image_ref,
            "container": spec,
            "labels": labels,
            "selector": app_selector(settings.project, settings.stack),
            "service_type": cfg.service_type,
            "node_port": cfg.node_port,
            "service_annotations": dict(cfg.service_annotations),
            "api_key": settings.api_key,
            "api_key_secret_name": cfg.api_key_secret,
            # A tag can move under the same name: pull it each time a pod starts.
            "image_pull_policy": "IfNotPresent" if cfg.pinned else "Always",
            "image_pull_secrets": [cfg.pull_secret] if cfg.pull_secret else [],
            "patch_force": render_dir is None,
            "pod_monitor": cfg.pod_monitor,
        },
        opts=pulumi.ResourceOptions(providers=[provider]),
    )
    # The batch Job runs as the service's own ServiceAccount: on a cluster of its own, access to
    # a bucket comes from whatever the cluster gives that account (no cloud IAM here).
    batch = BatchJob(
        f"{name}-batch",
        {
            "namespace": app.namespace_name,
            "job_name": f"{name}-batch",
            "image": image_ref,
            "model": cfg.model_uri or ARTIFACT_DIR,
            "batch": cfg.batch,
            "labels": labels,
            "service_account_name": app.service_account.metadata.name,
        },
        opts=pulumi.ResourceOptions(providers=[provider]),
    )
    objects: list[pulumi.CustomResource] = [*app.objects, batch.cron_job]

    extra: dict[str, pulumi.Input[Any]] = {
        "namespace": app.namespace_name,
        "exposure": cfg.exposure,
        "context": cfg.context or "(current context)",
        "batch_command": batch.run_command,
    }
    if cfg.exposure == "Ingress":
        assert cfg.ingress is not None  # read_k8s_settings guarantees it
        ingress = HttpIngress(
            f"{name}-ingress",
            {
                "name": name,
                "namespace": app.namespace_name,
                "service_name": app.service.metadata.name,
                "host": cfg.ingress.host,
                "labels": labels,
                "class_name": cfg.ingress.class_name,
                "tls_secret": cfg.ingress.tls_secret,
                "annotations": dict(cfg.ingress.annotations),
            },
            opts=pulumi.ResourceOptions(providers=[provider], depends_on=[app.service]),
        )
        objects.append(ingress.ingress)
        url: pulumi.Output[str] = ingress.url
    elif cfg.exposure == "NodePort":
        extra["node_port"] = app.node_port
        address = cfg.node_address
        url = app.node_port.apply(
            lambda port: f"http://{address}:{port}" if address and port else ""
        )
    elif cfg.exposure == "ClusterIP":
        url = app.namespace_name.apply(
            lambda namespace: f"http://{name}.{namespace}.svc.cluster.local:{SERVICE_PORT}"
        )
    else:
        url = app.load_balancer_address.apply(
            lambda address: f"http://{address}" if address else ""
        )

    if cfg.render_dir is not None:
        extra["render_dir"] = cfg.render_dir
        extra["rendered_files"] = _kustomization(Path(cfg.render_dir), objects)
    return TargetOutputs(url=url, image=pulumi.Output.from_input(image_ref), extra=extra)


def _image(settings: Settings, cfg: K8sSettings, labels: dict[str, str]) -> pulumi.Input[str]:
    """The image to run: the configured reference, or one this stack builds and pushes."""
    if cfg.image is not None:
        return cfg.image
    assert cfg.registry is not None  # one of the two is required by read_k8s_settings
    password = cfg.registry_password
    args: ServiceImageArgs = {
        "image_name": f"{cfg.registry}/{IMAGE_NAME}",
        "tag": label_value(settings.stack),
        "platform": settings.image.platform,
        "build_on_preview": settings.image.build_on_preview,
        "labels": labels,
    }
    if settings.image.model_dir is not None:
        args["model_dir"] = settings.image.model_dir
    if cfg.registry_username is not None and password is not None:
        args["registry"] = {
            "address": cfg.registry.split("/", 1)[0],
            "username": cfg.registry_username,
            "password": password,
        }
    image = ServiceImage(f"{settings.project}-image", args)
    return image.ref


def _kustomization(
    directory: Path, objects: list[pulumi.CustomResource]
) -> pulumi.Output[list[str]]:
    """Write `kustomization.yaml` listing the files the provider renders (not at preview)."""
    identities = [
        pulumi.Output.all(o.api_version, o.kind, o.metadata)  # type: ignore[attr-defined]
        for o in objects
    ]

    def write(items: list[list[Any]]) -> list[str]:
        manifests = [
            {"apiVersion": api, "kind": kind, "metadata": plain(_name_and_namespace(meta))}
            for api, kind, meta in items
        ]
        if pulumi.runtime.is_dry_run():
            resources: list[str] = kustomization(render_path(m) for m in manifests)["resources"]
            return resources
        return write_kustomization(Path(repo_path(directory)), manifests)

    return pulumi.Output.all(*identities).apply(write)


def _name_and_namespace(meta: Any) -> dict[str, Any]:
    """ObjectMeta output (typed object or dict) → {name, namespace}."""
    if isinstance(meta, dict):
        return {"name": meta.get("name"), "namespace": meta.get("namespace")}
    return {"name": getattr(meta, "name", None), "namespace": getattr(meta, "namespace", None)}

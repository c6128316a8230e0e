"""The k8s target: the service on any existing Kubernetes cluster, or rendered YAML for GitOps."""

from __future__ import annotations

from infra.targets import Target
from infra.targets.k8s.config import K8sSettings, read_k8s_settings
from infra.targets.k8s.cost import k8s_bill
from infra.targets.k8s.deploy import deploy_k8s

TARGET: Target[K8sSettings] = Target(
    read=read_k8s_settings,
    deploy=deploy_k8s,
    bill=k8s_bill,
)

__all__ = ["TARGET", "K8sSettings", "deploy_k8s", "read_k8s_settings"]

"""Helpers to read the Kubernetes objects a stack run declared as plain manifests."""

from __future__ import annotations

from typing import Any

from infra.core.values import plain
from tests.infra.harness import DeclaredResource, StackRun


def manifests(run: StackRun) -> list[tuple[DeclaredResource, dict[str, Any]]]:
    """Every Kubernetes object of the run (not providers), as (resource, manifest)."""
    return [(r, plain(dict(r.inputs))) for r in run.resources if r.type.startswith("kubernetes:")]


def manifest(run: StackRun, type_: str) -> dict[str, Any]:
    found: dict[str, Any] = plain(dict(run.one(type_).inputs))
    return found


DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SECRET = "kubernetes:core/v1:Secret"  # noqa: S105 - a type token
NAMESPACE = "kubernetes:core/v1:Namespace"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
K8S_PROVIDER = "pulumi:providers:kubernetes"

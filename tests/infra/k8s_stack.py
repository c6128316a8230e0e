"""Runs of the k8s stack under mocks, shared by the k8s target and render tests."""

from __future__ import annotations

from typing import Any

from tests.infra.harness import StackRun, run_stack

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"registry.example.com/team/modelship@{DIGEST}"
API_KEY = "k8s-test-api-key"

# name → config overrides (on top of Pulumi.k8s.yaml and IMAGE)
K8S_VARIANTS: dict[str, dict[str, Any]] = {
    "loadbalancer": {},
    "nodeport": {
        "modelship:exposure": "NodePort",
        "modelship:nodePort": 30123,
        "modelship:nodeAddress": "192.0.2.7",
    },
    "nodeport-auto": {"modelship:exposure": "NodePort"},
    "ingress": {
        "modelship:exposure": "Ingress",
        "modelship:ingressHost": "models.example.com",
        "modelship:ingressClass": "nginx",
        "modelship:ingressTlsSecret": "models-example-com-tls",
        "modelship:ingressAnnotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
    },
    "ingress-minimal": {
        "modelship:exposure": "Ingress",
        "modelship:ingressHost": "models.example.com",
    },
    "clusterip": {"modelship:exposure": "ClusterIP"},
    "private": {
        "modelship:image": "registry.internal.example:5000/ml/modelship:1.4.2",
        "modelship:imagePullSecret": "registry-credentials",
        "modelship:apiKeySecret": "modelship-api-key",
        "modelship:createNamespace": False,
        "modelship:namespace": "ml-serving",
        "modelship:kubeContext": "kubernetes-admin@kubeadm",
    },
    "parked": {"modelship:scaleToZero": True},
}
EXPOSURE_VARIANTS = ("loadbalancer", "nodeport", "ingress", "clusterip")


def run_k8s(
    overrides: dict[str, Any] | None = None,
    *,
    secrets: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    preview: bool = False,
) -> StackRun:
    """The k8s stack with IMAGE (unless overridden or unset) plus `overrides`."""
    return run_stack(
        "k8s",
        {"modelship:image": IMAGE, **(overrides or {})},
        secrets=secrets,
        unset=unset,
        preview=preview,
    )


def run_variant(variant: str) -> StackRun:
    return run_k8s(K8S_VARIANTS[variant])

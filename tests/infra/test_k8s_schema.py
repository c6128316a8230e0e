"""Every Kubernetes object the gke stack declares is valid against the official OpenAPI schema.

kubernetes-validate bundles the upstream schemas; strict=True also rejects unknown fields.
Custom resources (GKE's ManagedCertificate, FrontendConfig, BackendConfig) have no bundled schema
and are checked field by field in test_gke.py instead.
"""

from __future__ import annotations

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from infra.targets.gke.config import KUBERNETES_VERSIONS
from tests.infra.harness import StackRun

from .k8s import manifests

CUSTOM_RESOURCE_GROUPS = ("networking.gke.io/", "cloud.google.com/")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_match_the_kubernetes_schema(gke_variant: StackRun, version: str) -> None:
    checked = []
    for resource, manifest in manifests(gke_variant):
        if manifest["apiVersion"].startswith(CUSTOM_RESOURCE_GROUPS):
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = f"{resource.type} {resource.name}"
            pytest.fail(f"{where} is invalid for Kubernetes {version}: {error.message}")
        checked.append(manifest["kind"])
    assert {"Namespace", "Deployment", "Service", "PodDisruptionBudget"} <= set(checked)


def test_the_validator_catches_unknown_fields(gke_run: StackRun) -> None:
    """The schema check is strict: a misspelled field fails it (guards against a silent no-op)."""
    _, deployment = next((r, m) for r, m in manifests(gke_run) if m["kind"] == "Deployment")
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)

"""Fixtures: the gke stack run under mocks in its main variants (each run takes about a second)."""

from __future__ import annotations

import pytest

from tests.infra.harness import StackRun, run_stack

# The one value Pulumi.gke.yaml leaves to the user.
GKE_PROJECT = {"gcp:project": "modelship-test"}
API_KEY = "test-api-key-value"
# The service container's environment by default, the same on every target (infra.core.container).
SERVICE_CONTRACT_ENV = {
    "MODELSHIP_HOST": "0.0.0.0",
    "MODELSHIP_PORT": "8080",
    "MODELSHIP_WORKERS": "1",
    "MODELSHIP_ARTIFACT": "/app/model",
    "MODELSHIP_LOG_LEVEL": "info",
    "MODELSHIP_SHUTDOWN_GRACE_SECONDS": "20",
}

# name → (config overrides, secret config)
GKE_VARIANTS: dict[str, tuple[dict[str, object], dict[str, str]]] = {
    "default": ({}, {}),
    "standard": (
        {
            "modelship:clusterMode": "standard",
            "modelship:spot": True,
            "modelship:captureRate": 0.05,
        },
        {},
    ),
    "https-api-key": ({"modelship:domain": "api.example.com"}, {"modelship:apiKey": API_KEY}),
    "scale-to-zero": ({"modelship:scaleToZero": True}, {}),
}


def run_variant(variant: str) -> StackRun:
    overrides, secrets = GKE_VARIANTS[variant]
    return run_stack("gke", {**GKE_PROJECT, **overrides}, secrets=secrets)


@pytest.fixture(scope="session")
def gke_run() -> StackRun:
    return run_variant("default")


@pytest.fixture(scope="session", params=sorted(GKE_VARIANTS))
def gke_variant(request: pytest.FixtureRequest) -> StackRun:
    return run_variant(str(request.param))


@pytest.fixture(scope="session")
def gke_standard() -> StackRun:
    return run_variant("standard")


@pytest.fixture(scope="session")
def gke_https() -> StackRun:
    return run_variant("https-api-key")


@pytest.fixture(scope="session")
def gke_parked() -> StackRun:
    return run_variant("scale-to-zero")

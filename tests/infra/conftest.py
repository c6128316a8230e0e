"""Fixtures: the gke stack run once under mocks (module-scoped; a run takes about a second)."""

from __future__ import annotations

import pytest

from infra.harness import StackRun, run_stack

# The one value Pulumi.gke.yaml leaves to the user.
GKE_PROJECT = {"gcp:project": "modelship-test"}


@pytest.fixture(scope="session")
def gke_run() -> StackRun:
    return run_stack("gke", GKE_PROJECT)

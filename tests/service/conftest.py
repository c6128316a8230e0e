"""Fixtures for the service: apps built around the session's real models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelship.contracts.settings import Settings
from modelship.model import artifact
from modelship.model.predictor import Predictor
from modelship.serving.compose import build_serving
from modelship.transport.http.app import create_app


def make_client(artifact_path: Path, **settings: object) -> TestClient:
    """A client of an app serving `artifact_path` (and the `candidate` setting's artifact)."""
    predictor = Predictor(artifact.load(artifact_path))
    built = Settings(**settings)  # type: ignore[arg-type]
    candidate = Predictor(artifact.load(Path(built.candidate))) if built.candidate else None
    return TestClient(create_app(build_serving(built, predictor, candidate)))


@pytest.fixture(scope="session")
def regression_predictor(regression_artifact: Path) -> Predictor:
    return Predictor(artifact.load(regression_artifact))


@pytest.fixture(scope="session")
def classification_predictor(classification_artifact: Path) -> Predictor:
    return Predictor(artifact.load(classification_artifact))


@pytest.fixture
def client(regression_artifact: Path) -> Iterator[TestClient]:
    """A client of the insurance (regression) model; the lifespan runs, so it is ready."""
    with make_client(regression_artifact) as test_client:
        yield test_client


@pytest.fixture
def iris_client(classification_artifact: Path) -> Iterator[TestClient]:
    with make_client(classification_artifact) as test_client:
        yield test_client

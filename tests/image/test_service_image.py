"""The service image, run as each stack runs it: the container description is the stack's own
(the resources its plan is made of), executed against the image built from service/Dockerfile."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.image.buildah import build_image, remove_image
from tests.image.checker import check_image
from tests.image.conftest import SESSION
from tests.image.runtime import RunningContainer, run_container
from tests.image.stacks import (
    Deployed,
    deployment,
    docker_container,
    health_command,
    task_container,
)
from tests.infra.conftest import GKE_PROJECT
from tests.infra.harness import run_stack
from tests.infra.k8s_stack import run_k8s

READY_WITHIN = 120  # the stacks' start-up budget (startup probe 2 s x 60, ECS startPeriod 120 s)


def service_container(stack: str) -> Deployed:
    if stack == "gke":
        return deployment(run_stack("gke", GKE_PROJECT))
    if stack == "k8s":
        return deployment(run_k8s())
    if stack == "fargate":
        return task_container(run_stack("fargate"), "api")
    return docker_container(run_stack("local"))


def assert_serves(container: RunningContainer, deployed: Deployed) -> None:
    """The service's own endpoints, the image's health check and the platform's checks."""
    (port,) = deployed.spec.ports
    container.wait_until(port, "/readyz", READY_WITHIN)
    with container.client(port) as client:
        assert client.get("/healthz").status_code == 200
        example = client.get("/model/examples/0").json()
        answer = client.post("/predict", json=example)
        assert answer.status_code == 200, answer.text
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "modelship" in metrics.text
    checks = list(deployed.health_commands)
    image_check = container.config.healthcheck
    assert image_check is not None
    checks.append(health_command(image_check.test, image_check.timeout_seconds))
    for check in checks:
        result = container.exec(check.argv, timeout=check.timeout_seconds)
        assert result.returncode == 0, (check, result.stdout, result.stderr)
    for probe in deployed.http_probes:
        with container.client(probe.port, timeout=probe.timeout_seconds) as client:
            status = client.get(probe.path).status_code
            assert 200 <= status < 400, (probe, status)


@pytest.mark.parametrize("stack", ["gke", "k8s", "fargate", "local"])
def test_the_service_image_runs_as_the_stack_runs_it(service_image: str, stack: str) -> None:
    deployed = service_container(stack)
    assert deployed.spec.read_only_root
    with run_container(service_image, deployed.spec) as container:
        assert_serves(container, deployed)
        rss = container.rss_bytes()
        if deployed.memory_limit_bytes is not None:
            assert rss < deployed.memory_limit_bytes, (rss, deployed.memory_limit_bytes)
        code, seconds = container.stop(grace=deployed.stop_grace_seconds)
        assert code == 0, container.logs()
        assert seconds < deployed.stop_grace_seconds


def test_the_service_image_has_no_training_libraries(service_image: str) -> None:
    deployed = service_container("k8s")
    with run_container(service_image, deployed.spec) as container:
        probe = (
            "import importlib.util as u, modelship.transport.http.app, boto3, google.cloud.storage;"
            "print([m for m in ('sklearn', 'pandas', 'skl2onnx', 'onnx') if u.find_spec(m)])"
        )
        result = container.exec(["python", "-c", probe], timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"


def _coloured_table(path: Path, rows: int = 600) -> None:
    """A small generated table, nothing like the bundled data: a text column with categories."""
    generator = random.Random(7)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["colour", "weight_kg", "grade"])
        for _ in range(rows):
            colour = generator.choice(["red", "green", "blue", "ochre"])
            weight = round(generator.uniform(1, 50), 1)
            grade = "heavy" if weight + (15 if colour == "ochre" else 0) > 30 else "light"
            writer.writerow([colour, weight, grade])


def test_a_model_given_as_build_context_is_the_one_served(
    base_image: str, service_image: str, tmp_path: Path
) -> None:
    """`--build-context model=DIR` replaces the baked-in model: the image serves that one."""
    data, artifact = tmp_path / "colours.csv", tmp_path / "colours-model"
    _coloured_table(data)
    trained = subprocess.run(
        [sys.executable, "-m", "modelship", "train", "--data", str(data), "--target", "grade",
         "--model", "logistic", "--output", str(artifact), "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    expected = json.loads((artifact / "model-card.json").read_text())
    tag = f"localhost/modelship-test:context-{SESSION}"
    build_image(tag, base=base_image, contexts={"model": artifact})
    try:
        check_image(tag, "service")
        deployed = service_container("k8s")
        with run_container(tag, deployed.spec) as container:
            (port,) = deployed.spec.ports
            container.wait_until(port, "/readyz", READY_WITHIN)
            with container.client(port) as client:
                card = client.get("/model").json()
                answer = client.post("/predict", json={"colour": "ochre", "weight_kg": 20.0})
        assert card["name"] == expected["name"] == "colours-grade"
        assert card["artifact"]["onnx_sha256"] == expected["artifact"]["onnx_sha256"]
        assert [f["name"] for f in card["features"]] == ["colour", "weight_kg"]
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"] in ("heavy", "light"), answer.text
    finally:
        remove_image(tag)

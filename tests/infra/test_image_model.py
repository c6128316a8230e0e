"""`modelship:imageModel`: bake your own artifact into the service image, checked at preview.

Every stack that builds the image passes the directory as the Dockerfile's `model` build context
(the training image holds no model and gets none), and refuses at preview an artifact that is not
one, or whose measured serving memory does not fit `modelship:memory`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError
from infra.settings import KEY_IMAGE_MODEL, KEY_MEMORY, KEY_MODEL_URI, KEY_WORKERS
from modelship.model import artifact
from tests.infra.harness import PROGRAM_DIR, REPO_ROOT, StackRun, run_stack

from .conftest import GKE_PROJECT

BUILD = "docker-build:index:Image"
# The k8s stack builds only when it is given a registry rather than an image.
K8S_BUILDS = {"modelship:registry": "registry.example.com/team"}
STACK_CONFIG = {"gke": GKE_PROJECT, "fargate": {}, "local": {}, "k8s": K8S_BUILDS}


def builds(run: StackRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """(service image build, training image build) inputs."""
    (service,) = [r.inputs for r in run.of_type(BUILD) if "target" not in r.inputs]
    training = [r.inputs for r in run.of_type(BUILD) if r.inputs.get("target") == "training"]
    return dict(service), dict(training[0]) if training else {}


def with_model(stack: str, model: Path | str, **more: str) -> StackRun:
    return run_stack(stack, {**STACK_CONFIG[stack], KEY_IMAGE_MODEL: str(model), **more})


def refusal(stack: str, model: Path | str, **more: str) -> str:
    with pytest.raises(ConfigError) as info:
        with_model(stack, model, **more)
    return str(info.value)


@pytest.mark.parametrize("stack", sorted(STACK_CONFIG))
def test_the_artifact_is_the_model_build_context_of_the_service_image_only(
    stack: str, regression_artifact: Path
) -> None:
    service, training = builds(with_model(stack, regression_artifact))
    location = service["context"]["named"]["model"]["location"]
    # Relative to where Pulumi runs the program, like the main context: no checkout path.
    assert not Path(location).is_absolute()
    assert (PROGRAM_DIR / location).resolve() == regression_artifact.resolve()
    assert "named" not in training.get("context", {})


def test_a_relative_path_is_relative_to_the_repository(
    regression_artifact: Path, tmp_path: Path
) -> None:
    inside = REPO_ROOT / ".pytest-image-model" / tmp_path.name
    shutil.copytree(regression_artifact, inside)
    try:
        relative = inside.relative_to(REPO_ROOT)
        service, _ = builds(with_model("gke", relative))
        location = service["context"]["named"]["model"]["location"]
        assert (PROGRAM_DIR / location).resolve() == inside
    finally:
        shutil.rmtree(inside.parent)


@pytest.mark.parametrize("stack", sorted(STACK_CONFIG))
def test_a_model_that_does_not_fit_the_memory_is_refused_at_preview(
    stack: str, regression_artifact: Path
) -> None:
    footprint = artifact.load(regression_artifact).card.footprint
    assert footprint is not None
    # Fargate offers no 128Mi task: its smallest size for the stack's CPU, with more workers.
    memory, workers = ("1Gi", "32") if stack == "fargate" else ("128Mi", "2")
    message = refusal(stack, regression_artifact, **{KEY_MEMORY: memory, KEY_WORKERS: workers})
    assert f"{KEY_MEMORY} = '{memory}': {KEY_MEMORY} (" in message
    assert ") is too small for model insurance" in message
    assert f"{workers} worker(s) x {footprint.serving_rss_mb:.0f} MB measured" in message
    assert f"(the model of {KEY_IMAGE_MODEL})" in message


def test_a_model_uri_serves_instead_so_the_baked_model_is_not_sized(
    regression_artifact: Path,
) -> None:
    uri = "gs://modelship-models/models/insurance/" + "0" * 64 + "/"
    run = with_model("gke", regression_artifact, **{KEY_WORKERS: "32", KEY_MODEL_URI: uri})
    assert builds(run)[0]["context"]["named"]["model"]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("missing", "the directory does not exist"),
        ("no-card", "model-card.json is missing"),
        ("tampered", "does not match its model card"),
    ],
)
def test_a_directory_that_is_not_a_sound_artifact_is_refused(
    breakage: str, expected: str, regression_artifact: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "model"
    if breakage != "missing":
        shutil.copytree(regression_artifact, broken)
    if breakage == "no-card":
        (broken / artifact.CARD_FILE).unlink()
    if breakage == "tampered":
        (broken / artifact.ONNX_FILE).write_bytes(b"not the model")
    message = refusal("local", broken)
    assert f"{KEY_IMAGE_MODEL} = '{broken}':" in message
    assert expected in message
    assert "must be a model artifact directory" in message


def test_the_fargate_tag_names_the_baked_model(
    regression_artifact: Path, classification_artifact: Path
) -> None:
    def tag(run: StackRun) -> str:
        (tagged,) = builds(run)[0]["tags"]
        return str(tagged).rsplit(":", 1)[1]

    insurance = tag(with_model("fargate", regression_artifact))
    iris = tag(with_model("fargate", classification_artifact))
    assert insurance != iris
    assert insurance.startswith("src-")

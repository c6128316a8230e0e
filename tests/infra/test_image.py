"""The shared image build: pushed to the target's registry, for linux/amd64, deployed by digest."""

from __future__ import annotations

from tests.infra.harness import MOCK_ACCESS_TOKEN, StackRun


def test_image_is_pushed_for_amd64_with_a_registry_login(gke_run: StackRun) -> None:
    image = gke_run.named("modelship-image-build")
    inputs = image.inputs
    assert "target" not in inputs  # the Dockerfile's last stage: the service
    assert inputs["push"] is True
    assert inputs["platforms"] == ["linux/amd64"]
    assert inputs["tags"] == [
        "us-central1-docker.pkg.dev/modelship-test/modelship-gke/modelship:gke"
    ]
    assert inputs["context"] == {"location": ".."}
    assert inputs["dockerfile"] == {"location": "../service/Dockerfile"}
    assert inputs["buildOnPreview"] is False
    (registry,) = inputs["registries"]
    assert registry["address"] == "us-central1-docker.pkg.dev"
    assert registry["username"] == "oauth2accesstoken"
    assert registry["password"] == MOCK_ACCESS_TOKEN

    # The training image: same Dockerfile, context and login, its `training` stage, own name.
    training = gke_run.named("modelship-training-image-build").inputs
    assert training["target"] == "training"
    assert training["tags"] == [
        "us-central1-docker.pkg.dev/modelship-test/modelship-gke/modelship-training:gke"
    ]
    same = ("push", "platforms", "context", "dockerfile", "buildOnPreview", "registries")
    assert {k: training[k] for k in same} == {k: inputs[k] for k in same}


def test_image_output_is_pinned_by_digest(gke_run: StackRun) -> None:
    assert "@sha256:" in gke_run.outputs["image"]
    assert gke_run.outputs["image"].startswith(
        "us-central1-docker.pkg.dev/modelship-test/modelship-gke/modelship@"
    )


def test_every_invoke_was_answered(gke_run: StackRun) -> None:
    assert gke_run.invokes == ["gcp:organizations/getClientConfig:getClientConfig"]

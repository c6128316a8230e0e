"""The local stack: the shared image and container description run on the local Docker engine."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import ConfigError
from tests.infra.harness import StackRun, run_stack

from .conftest import API_KEY, SERVICE_CONTRACT_ENV

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BUILD = "docker-build:index:Image"
SERVING_BUILD = "modelship-image-build"  # the other build is the training image
STANDARD_LABELS = {"project": "modelship", "stack": "local", "managed-by": "pulumi"}


@pytest.fixture(scope="module")
def local_run() -> StackRun:
    return run_stack("local")


def container(run: StackRun) -> dict[str, Any]:
    return dict(run.one(CONTAINER).inputs)


def env(run: StackRun) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container(run)["envs"])


def test_image_is_built_with_the_shared_component_and_not_pushed(local_run: StackRun) -> None:
    build = local_run.named(SERVING_BUILD)
    assert "target" not in build.inputs  # the Dockerfile's last stage: the service
    assert build.parent == local_run.named("modelship-image").urn
    assert build.inputs["push"] is False
    assert build.inputs["load"] is True
    assert build.inputs["tags"] == ["modelship:local"]  # no registry host: nothing goes anywhere
    assert "registries" not in build.inputs
    assert "platforms" not in build.inputs  # the machine's own platform unless configured
    assert build.inputs["dockerfile"] == {"location": "../service/Dockerfile"}


def test_platform_can_be_forced() -> None:
    run = run_stack("local", {"modelship:platform": "linux/arm64"})
    # Both images: the training image runs on the same machine as the service.
    assert [r.inputs["platforms"] for r in run.of_type(BUILD)] == [["linux/arm64"]] * 2


def test_container_runs_the_build_by_image_id(local_run: StackRun) -> None:
    resolved = local_run.one(REMOTE_IMAGE)
    assert resolved.inputs["name"] == "modelship:local"
    assert resolved.inputs["keepLocally"] is True
    # A new build digest replaces the resolved image, and with it the container.
    build = local_run.named(SERVING_BUILD).state
    assert resolved.inputs["triggers"] == {
        "digest": build["digest"],
        "context": build["contextHash"],  # also when a loaded build reports no digest
    }
    image = container(local_run)["image"]
    assert image.startswith("sha256:")
    assert image == resolved.state["imageId"] == local_run.outputs["image"]


def test_port_is_published_on_localhost_only(local_run: StackRun) -> None:
    assert container(local_run)["ports"] == [
        {"internal": 8080, "external": 8080, "ip": "127.0.0.1", "protocol": "tcp"}
    ]
    assert local_run.outputs["url"] == "http://localhost:8080"


def test_host_port_and_bind_address_are_config() -> None:
    run = run_stack("local", {"modelship:hostPort": 9000, "modelship:bindAddress": "0.0.0.0"})
    (port,) = container(run)["ports"]
    assert (port["external"], port["ip"]) == (9000, "0.0.0.0")
    assert run.outputs["url"] == "http://localhost:9000"


def test_environment_is_the_cloud_one(local_run: StackRun) -> None:
    assert env(local_run) == SERVICE_CONTRACT_ENV


def test_health_check_restart_and_wait(local_run: StackRun) -> None:
    c = container(local_run)
    assert c["restart"] == "unless-stopped"
    check = c["healthcheck"]
    assert check["tests"][:3] == ["CMD", "python", "-c"]  # the image has no curl
    assert "http://127.0.0.1:8080/readyz" in check["tests"][3]
    assert check["startPeriod"] == "120s"  # the cloud targets' startup budget
    assert c["wait"] is True  # `up` returns only once the service is ready
    assert c["waitTimeout"] > 120


def test_same_limits_and_hardening_as_the_cloud(local_run: StackRun) -> None:
    c = container(local_run)
    assert (c["cpus"], c["memory"], c["memorySwap"]) == ("0.5", 512, 512)
    assert c["user"] == "10001:10001"
    assert c["readOnly"] is True
    assert c["tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=67108864"}
    assert c["capabilities"] == {"drops": ["ALL"]}
    assert c["securityOpts"] == ["no-new-privileges:true"]
    assert c["stopTimeout"] == 30  # shutdown grace + slack, as the pods' termination grace
    assert c["logOpts"] == {"max-size": "10m", "max-file": "3"}


def test_container_is_on_its_own_network(local_run: StackRun) -> None:
    network = local_run.one(NETWORK)
    assert network.inputs["driver"] == "bridge"
    (attached,) = container(local_run)["networksAdvanced"]
    assert attached["name"] == network.state["name"]
    assert local_run.outputs["network"] == network.state["name"]


def test_labels_are_on_everything_that_takes_them(local_run: StackRun) -> None:
    for typ in (CONTAINER, NETWORK):
        labels = {item["label"]: item["value"] for item in local_run.one(typ).inputs["labels"]}
        assert labels == STANDARD_LABELS


def test_api_key_goes_in_as_a_secret_environment_value() -> None:
    run = run_stack("local", secrets={"modelship:apiKey": API_KEY})
    values = env(run)
    assert values["MODELSHIP_API_KEY"] == API_KEY
    assert "MODELSHIP_API_KEY_FILE" not in values  # a read-only container takes no file copy
    resource = run.one(CONTAINER)
    index = container(run)["envs"].index(f"MODELSHIP_API_KEY={API_KEY}")
    assert resource.secret_paths & {"envs", f"envs[{index}]"}  # the engine keeps it encrypted


def test_scale_to_zero_removes_the_container() -> None:
    run = run_stack("local", {"modelship:scaleToZero": True})
    assert run.of_type(CONTAINER) == []
    assert run.outputs["url"] == ""
    assert len(run.of_type(NETWORK)) == 1


def test_preview_needs_no_docker(local_run: StackRun) -> None:
    preview = run_stack("local", preview=True)
    assert sorted((r.type, r.name) for r in preview.resources) == sorted(
        (r.type, r.name) for r in local_run.resources
    )
    assert preview.outputs["image"] is None
    assert preview.outputs["url"] == "http://localhost:8080"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"modelship:maxReplicas": 3}, "modelship:maxReplicas = '3': the local target runs"),
        ({"modelship:hostPort": 80}, "modelship:hostPort = '80': must be an integer from 1024"),
        ({"modelship:bindAddress": "localhost"}, "modelship:bindAddress = 'localhost': an IPv4"),
        ({"modelship:restart": "sometimes"}, "modelship:restart = 'sometimes': must be one of"),
        ({"modelship:environment": "prod"}, "modelship:environment = 'prod': must be one of"),
        ({"modelship:clusterMode": "autopilot"}, "modelship:clusterMode = (not set): unknown key"),
    ],
)
def test_config_problems_name_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        run_stack("local", overrides)
    assert message in str(info.value)

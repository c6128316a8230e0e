"""`modelship:targetRps`: replicas and the CPU target derived from the served model's measured
rate, the preview refusals, and the `capacity` output, on the stacks' resource graphs.

The card is a test double (`tests/infra/capacity_card.py`): one replica of 500m/1Gi serves
100 requests/s at p99 <= 100 ms with 4.5 ms of CPU per request, i.e. 90% of its CPU at that rate.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError
from infra.core.capacity import KEY_HEADROOM, KEY_REPLICA_RPS, KEY_TARGET_RPS
from infra.settings import (
    KEY_CPU,
    KEY_IMAGE_MODEL,
    KEY_MAX_REPLICAS,
    KEY_MEMORY,
    KEY_MIN_REPLICAS,
    KEY_MODEL_URI,
)
from tests.infra.harness import StackRun, run_stack

from .capacity_card import point, with_capacity
from .conftest import GKE_PROJECT
from .fargate import MODEL_URI as FARGATE_MODEL_URI
from .fargate import SCALING_POLICY, SCALING_TARGET, SERVICE, inputs

RATE, CPU_MS = 100.0, 4.5
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
STACK_CONFIG: dict[str, dict[str, str]] = {"gke": GKE_PROJECT, "fargate": {}}
CLOUDS = sorted(STACK_CONFIG)


@pytest.fixture(scope="module")
def measured(regression_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifact with points at the fargate (500m/1Gi) and gke (500m/512Mi) sizes."""
    return with_capacity(
        regression_artifact,
        tmp_path_factory.mktemp("capacity") / "insurance",
        [point("500m", "1Gi", RATE), point("0.5", "512Mi", RATE), point("1", "2Gi", 210.0)],
    )


def run(stack: str, model: Path, **config: Any) -> StackRun:
    return run_stack(stack, {**STACK_CONFIG[stack], KEY_IMAGE_MODEL: str(model), **config})


def refusal(stack: str, model: Path | None, **config: Any) -> str:
    extra = {} if model is None else {KEY_IMAGE_MODEL: str(model)}
    with pytest.raises(ConfigError) as info:
        run_stack(stack, {**STACK_CONFIG.get(stack, {}), **extra, **config})
    return str(info.value)


def fargate_scaling(result: StackRun) -> tuple[int, int, float, int]:
    """(min, max, CPU target, desired count) as the fargate stack declares them."""
    target = inputs(result.one(SCALING_TARGET))
    (cpu_policy,) = [
        inputs(p)
        for p in result.of_type(SCALING_POLICY)
        if "CPU" in str(p.inputs["targetTrackingScalingPolicyConfiguration"])
    ]
    tracking = cpu_policy["targetTrackingScalingPolicyConfiguration"]
    desired = inputs(result.one(SERVICE))["desiredCount"]
    return (
        int(target["minCapacity"]),
        int(target["maxCapacity"]),
        tracking["targetValue"],
        int(desired),
    )


def test_fargate_derives_replicas_and_the_cpu_target_from_the_measured_rate(
    measured: Path,
) -> None:
    result = run("fargate", measured, **{KEY_TARGET_RPS: 500})
    # min: the peak at the measured limit, ceil(500 / 100) = 5; max: with 30% spare,
    # ceil(500 / 70) = 8; CPU target: 70% of the 90% a replica uses at its limit.
    assert fargate_scaling(result) == (5, 8, 63, 5)
    capacity = result.outputs["capacity"]
    assert capacity["replicas"] == {"min": 5, "max": 8, "at_planned_load": 8}
    assert capacity["rps_per_replica"] == RATE
    assert capacity["planned_rps_per_replica"] == 70.0
    assert capacity["headroom"] == 0.3
    assert capacity["target_rps"] == 500
    assert capacity["derived"] == [
        "modelship:minReplicas",
        "modelship:maxReplicas",
        "modelship:cpuTargetPercent",
    ]
    assert str(measured) in capacity["rate_source"]
    assert "Test CPU" in capacity["rate_source"]


def test_gke_derives_the_autoscaler_and_keeps_keys_set_explicitly(measured: Path) -> None:
    result = run("gke", measured, **{KEY_TARGET_RPS: 50, KEY_MEMORY: "512Mi", KEY_HEADROOM: 0.5})
    spec = inputs(result.one(HPA))["spec"]
    utilization = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
    # 50 / 100 -> the 2 replicas kept for availability; with half spare, ceil(50 / 50) = 1 < 2.
    assert (spec["minReplicas"], spec["maxReplicas"], utilization) == (2, 2, 45)

    kept = run("gke", measured, **{KEY_TARGET_RPS: 250, KEY_MEMORY: "512Mi", KEY_MIN_REPLICAS: 3})
    spec = inputs(kept.one(HPA))["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 4)  # 3 kept, ceil(250 / 70) = 4
    assert kept.outputs["capacity"]["derived"] == [
        "modelship:maxReplicas",
        "modelship:cpuTargetPercent",
    ]


def test_preview_fails_when_the_configured_replicas_cannot_carry_the_target(
    measured: Path,
) -> None:
    message = refusal("fargate", measured, **{KEY_TARGET_RPS: 500, KEY_MAX_REPLICAS: 4})
    assert "modelship:maxReplicas = '4'" in message
    assert "4 replica(s) x 100 requests/s measured per replica = 400 requests/s" in message
    assert "below modelship:targetRps (500)" in message
    assert "set modelship:maxReplicas to at least 5 (8 with headroom 0.3" in message
    assert "pulumi config set" in message


def test_carrying_the_target_only_without_headroom_is_a_warning(
    measured: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        result = run("fargate", measured, **{KEY_TARGET_RPS: 500, KEY_MAX_REPLICAS: 6})
    assert fargate_scaling(result)[:2] == (5, 6)
    assert "6 replica(s) carry modelship:targetRps (500) only without the headroom" in caplog.text


@pytest.mark.parametrize("stack", CLOUDS)
def test_a_target_without_a_measurement_fails_and_names_the_command(stack: str) -> None:
    message = refusal(stack, None, **{KEY_TARGET_RPS: 50})
    assert "modelship:targetRps = '50': needs the measured rate of one replica" in message
    assert "the image's default model is trained during the image build" in message
    assert "modelship capacity ARTIFACT --cpu 500m --memory" in message


@pytest.mark.parametrize(
    ("stack", "cpu", "memory"),
    [("fargate", "2", "4Gi"), ("gke", "1", "1Gi")],  # another CPU; less memory than measured
)
def test_a_card_measured_at_another_size_is_no_measurement(
    measured: Path, stack: str, cpu: str, memory: str
) -> None:
    message = refusal(stack, measured, **{KEY_TARGET_RPS: 50, KEY_CPU: cpu, KEY_MEMORY: memory})
    assert f"not measured at modelship:cpu={cpu}, modelship:memory={memory}, 1 worker(s)" in (
        message
    )
    assert "single-row points for 500m/1Gi x1, 0.5/512Mi x1, 1/2Gi x1" in message
    assert f"modelship capacity {measured} --cpu {cpu} --memory {memory}" in message


def test_a_rate_measured_with_less_memory_plans_a_larger_container(
    regression_artifact: Path, tmp_path: Path
) -> None:
    # Fargate offers no 512 MiB task at 0.5 vCPU: the 500m/512Mi point (what training measures)
    # plans the default 500m/1Gi task.
    small = with_capacity(regression_artifact, tmp_path / "small", [point("500m", "512Mi", RATE)])
    result = run("fargate", small, **{KEY_TARGET_RPS: 500})
    assert fargate_scaling(result) == (5, 8, 63, 5)
    source = result.outputs["capacity"]["rate_source"]
    assert "modelship:memory=1Gi, 1 worker(s) (measured at 512Mi)" in source


def test_a_card_without_capacity_is_no_measurement(regression_artifact: Path) -> None:
    message = refusal("fargate", regression_artifact, **{KEY_TARGET_RPS: 50})
    assert f"the model card of modelship:imageModel ({regression_artifact}) has no capacity" in (
        message
    )


def test_without_a_target_nothing_is_derived_and_the_rate_is_shown(measured: Path) -> None:
    result = run("fargate", measured)
    assert fargate_scaling(result) == (2, 4, 70, 2)
    capacity = result.outputs["capacity"]
    assert (capacity["rps_per_replica"], capacity["target_rps"]) == (RATE, None)
    assert capacity["max_rps_at_max_replicas"] == 400
    assert result.outputs["cost_per_million_predictions"] is None


def test_the_local_target_checks_its_one_container(measured: Path) -> None:
    message = refusal("local", measured, **{KEY_TARGET_RPS: 150, KEY_MEMORY: "1Gi"})
    assert "1 replica(s) x 100 requests/s measured per replica = 100 requests/s" in message
    assert "the local target runs one container: lower modelship:targetRps to at most 100" in (
        message
    )
    result = run_stack(
        "local", {KEY_IMAGE_MODEL: str(measured), KEY_TARGET_RPS: 60, KEY_MEMORY: "1Gi"}
    )
    assert result.outputs["capacity"]["replicas"] == {"min": 1, "max": 1, "at_planned_load": 1}
    assert result.outputs["monthly_cost"] == 0


def test_bad_values_are_refused_with_what_is_allowed() -> None:
    message = refusal("fargate", None, **{KEY_TARGET_RPS: "-3", KEY_HEADROOM: "0.95"})
    assert "modelship:targetRps = '-3': a number of requests per second above 0" in message
    assert "modelship:capacityHeadroom = '0.95': a share of the measured rate kept spare" in message


# `modelship:replicaRps`: the rate stated in the config, for a model preview has no card of.
STATED_CONFIG: dict[str, dict[str, str]] = {
    "gke": GKE_PROJECT,
    "fargate": {},
    "k8s": {"modelship:registry": "registry.example.com/team"},
}


@pytest.mark.parametrize("stack", sorted(STATED_CONFIG))
def test_a_stated_rate_plans_the_default_image_model(stack: str) -> None:
    size = "500m/1Gi" if stack == "fargate" else "500m/512Mi"
    result = run_stack(
        stack, {**STATED_CONFIG[stack], KEY_TARGET_RPS: 500, KEY_REPLICA_RPS: f"100@{size}"}
    )
    capacity = result.outputs["capacity"]
    # The same replicas as a card's 100 requests/s; no CPU per request, so the CPU target stays.
    assert capacity["replicas"] == {"min": 5, "max": 8, "at_planned_load": 8}
    assert (capacity["cpu_target_percent"], capacity["p99_target_ms"]) == (70, None)
    assert capacity["derived"] == ["modelship:minReplicas", "modelship:maxReplicas"]
    assert capacity["rate_source"].startswith("modelship:replicaRps in the stack's config: 100")
    assert result.outputs["cost_per_million_predictions"] > 0


def test_a_stated_rate_plans_a_model_in_the_cloud_bucket() -> None:
    config = {KEY_MODEL_URI: FARGATE_MODEL_URI, KEY_TARGET_RPS: 500}
    assert "needs the measured rate of one replica" in refusal("fargate", None, **config)
    result = run_stack("fargate", {**config, KEY_REPLICA_RPS: "100@500m/1Gi"})
    assert fargate_scaling(result) == (5, 8, 70, 5)


def test_a_stated_rate_wins_over_the_card(measured: Path) -> None:
    result = run("fargate", measured, **{KEY_TARGET_RPS: 500, KEY_REPLICA_RPS: "250 @ 0.5/1Gi"})
    assert result.outputs["capacity"]["replicas"] == {"min": 2, "max": 3, "at_planned_load": 3}


def test_the_local_target_checks_a_stated_rate() -> None:
    stated = {KEY_REPLICA_RPS: "100@500m/512Mi"}
    message = refusal("local", None, **{**stated, KEY_TARGET_RPS: 150})
    assert "1 replica(s) x 100 requests/s measured per replica = 100 requests/s" in message
    result = run_stack("local", {**stated, KEY_TARGET_RPS: 60})
    assert result.outputs["capacity"]["replicas"] == {"min": 1, "max": 1, "at_planned_load": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fast", "modelship:replicaRps = 'fast': the requests/s one replica serves, with the CPU"),
        ("100", "as RATE@CPU/MEMORY (what `modelship capacity` prints), e.g. 1100@500m/512Mi"),
        ("0@500m/1Gi", "modelship:replicaRps = '0@500m/1Gi': the requests/s one replica serves"),
        ("100@lots/1Gi", "modelship:replicaRps = '100@lots/1Gi': the requests/s"),
        (
            "100@1/2Gi",
            "modelship:replicaRps = '100@1/2Gi': was measured at 1/2Gi, but the container is "
            "modelship:cpu=500m, modelship:memory=1Gi, 1 worker(s): a rate holds only for the "
            "same CPU quota with at least the memory it was measured at",
        ),
        ("100@500m/2Gi", "was measured at 500m/2Gi, but the container is modelship:cpu=500m"),
    ],
)
def test_a_bad_stated_rate_is_refused_with_what_is_allowed(value: str, expected: str) -> None:
    message = refusal("fargate", None, **{KEY_REPLICA_RPS: value, KEY_TARGET_RPS: 50})
    assert expected in message
    # The key's own problem says what is wrong; targetRps adds no second, vaguer one.
    assert "modelship:targetRps = '50'" not in message

"""The stacks' `monthly_cost`, `cost_per_million_predictions` and `cost_breakdown` outputs equal
figures computed here by hand from the resource graph each stack declared (its resources
counted by type, the task or pod size from their inputs) and the list prices.

The card is the example of docs/cost.md (`tests/infra/cost_doc.py`): 100 requests/s per 500m
replica; at 500 requests/s with the default headroom (0.3) a stack runs ceil(500 / 70) = 8.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError
from infra.core.capacity import KEY_TARGET_RPS
from infra.offline import prices
from infra.settings import KEY_ACCESS_LOG, KEY_IMAGE_MODEL
from tests.infra.harness import StackRun, run_stack

from .cost_doc import STACK_CONFIG, example_artifact
from .fargate import SCALING_POLICY, SCALING_TARGET, containers, inputs, service_task

LOAD = 500.0
MONTH_S = 730 * 3600
REQUESTS = LOAD * MONTH_S
LOG_LINE, CLOUDWATCH_EVENT, WIRE = 262, 26, 602  # bytes per request (docs/cost.md)


@pytest.fixture(scope="module")
def card(regression_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_artifact(regression_artifact, tmp_path_factory.mktemp("cost"))


def run(stack: str, card: Path, **config: Any) -> StackRun:
    return run_stack(stack, {**STACK_CONFIG[stack], KEY_IMAGE_MODEL: str(card), **config})


def lines(result: StackRun) -> dict[str, float]:
    found: dict[str, float] = result.outputs["cost_breakdown"]["lines"]
    return found


def test_fargate_at_a_planned_load(card: Path) -> None:
    result = run("fargate", card, **{KEY_TARGET_RPS: LOAD})
    task = inputs(service_task(result))
    vcpu, gb = int(task["cpu"]) / 1024, int(task["memory"]) / 1024
    tasks = int(inputs(result.one(SCALING_TARGET))["maxCapacity"])
    assert (tasks, vcpu, gb) == (8, 0.5, 1.0)
    zones = len([s for s in result.of_type("aws:ec2/subnet:Subnet") if "-public-" in s.name])
    alarms = len(result.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")) + 2 * len(
        result.of_type(SCALING_POLICY)
    )
    log_gb = REQUESTS * (LOG_LINE + CLOUDWATCH_EVENT) / 1e9
    expected = {
        "tasks": tasks * 730 * (vcpu * 0.04048 + gb * 0.004445),
        "load balancer": 730 * 0.0225 + 730 * 0.008 * (LOAD * 3600 * WIRE / 1e9),
        "public IPv4": 730 * 0.005 * (zones + tasks),
        "logs": log_gb * (0.50 + 14 / 30 * 0.03),
        "alarms": 0.10 * alarms,
        "custom metrics": 0.30 * 5,
        "storage": 2 * 0.10 + 0.023,
    }
    assert lines(result) == {k: round(v, 2) for k, v in expected.items()}
    total = sum(expected.values())
    assert result.outputs["monthly_cost"] == round(total, 2)
    assert result.outputs["cost_per_million_predictions"] == round(total / REQUESTS * 1e6, 4)


def test_fargate_with_a_nat_gateway_prices_it_and_its_address(card: Path) -> None:
    result = run("fargate", card, **{KEY_TARGET_RPS: LOAD, "modelship:privateSubnets": True})
    assert len(result.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert lines(result)["NAT gateway"] == round(730 * 0.045, 2)
    # No public address per task any more: the two of the load balancer and the NAT's own.
    assert lines(result)["public IPv4"] == round(730 * 0.005 * 3, 2)


def test_gke_autopilot_at_a_planned_load(card: Path) -> None:
    result = run("gke", card, **{KEY_TARGET_RPS: LOAD})
    (deployment,) = result.of_type("kubernetes:apps/v1:Deployment")
    (container,) = inputs(deployment)["spec"]["template"]["spec"]["containers"]
    requests = container["resources"]["requests"]
    assert (requests["cpu"], requests["memory"], requests["ephemeral-storage"]) == (
        "500m",
        "512Mi",
        "1Gi",
    )
    pods = 8
    logged_gib = REQUESTS * LOG_LINE / 2**30
    expected = {
        "cluster fee": 730 * 0.10 * len(result.of_type("gcp:container/cluster:Cluster")),
        "pods": pods * 730 * (0.5 * 0.0445 + 0.5 * 0.0049225 + 1 * 0.0000548),
        "load balancer": 730 * (0.025 + 0.005) + REQUESTS * WIRE / 2**30 * 0.008,
        "logs": (logged_gib - 50) * 0.50,
        "storage": 0.5 * 0.10 + 1 * 0.020,
    }
    assert lines(result) == {k: round(v, 2) for k, v in expected.items()}
    assert result.outputs["monthly_cost"] == round(sum(expected.values()), 2)
    notes = result.outputs["cost_breakdown"]["notes"]
    assert any("$74.40 a month per billing account" in note for note in notes)


def test_gke_standard_prices_the_nodes_the_pods_need(card: Path) -> None:
    result = run("gke", card, **{KEY_TARGET_RPS: LOAD, "modelship:clusterMode": "standard"})
    (pool,) = result.of_type("gcp:container/nodePool:NodePool")
    autoscaling = inputs(pool)["autoscaling"]
    # 8 pods of 0.5 vCPU on 2-vCPU e2-standard-2 nodes: 2, within the pool's 1-3.
    nodes = max(int(autoscaling["totalMinNodeCount"]), math.ceil(8 * 0.5 / 2))
    assert lines(result)["nodes"] == round(nodes * 730 * 0.067006, 2)
    assert "pods" not in lines(result)


def test_k8s_prices_the_pods_share_at_the_stated_node_price(card: Path) -> None:
    result = run("k8s", card, **{KEY_TARGET_RPS: LOAD})
    expected = 8 * 730 * (0.5 * prices.E2_VCPU.usd + 0.5 * prices.E2_GB.usd)
    assert lines(result) == {"pods (share of nodes)": round(expected, 2)}
    assert math.isclose(result.outputs["monthly_cost"], expected, abs_tol=0.005)


def test_parked_and_unplanned_stacks(card: Path) -> None:
    parked = run("fargate", card, **{KEY_TARGET_RPS: LOAD, "modelship:scaleToZero": True})
    assert parked.outputs["capacity"]["replicas"]["at_planned_load"] == 0
    assert "tasks" not in lines(parked)
    assert parked.outputs["cost_per_million_predictions"] is None
    local = run_stack("local", {KEY_IMAGE_MODEL: str(card), KEY_TARGET_RPS: 50})
    assert (local.outputs["monthly_cost"], lines(local)) == (0, {})


def test_preview_prints_the_plan_and_the_price(
    card: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO"):
        result = run("fargate", card, **{KEY_TARGET_RPS: LOAD})
    assert (
        "capacity: planned load 500 requests/s; 100 requests/s per replica measured, planned "
        "at 70 (headroom 0.3); replicas 5-8 (8 at the planned load), CPU target 63%"
    ) in caplog.text
    assert f"cost: ${result.outputs['monthly_cost']:,.2f} a month, $" in caplog.text


def test_access_log_off_removes_its_cost_and_its_lines(card: Path) -> None:
    on = run("fargate", card, **{KEY_TARGET_RPS: LOAD})
    logs = lines(on)["logs"]
    assert (
        f"the access log (one line per request) is ${logs:,.2f} of this a month"
        in (on.outputs["cost_breakdown"]["notes"][-1])
    )
    off = run("fargate", card, **{KEY_TARGET_RPS: LOAD, KEY_ACCESS_LOG: False})
    assert "logs" not in lines(off)
    assert off.outputs["monthly_cost"] == round(on.outputs["monthly_cost"] - logs, 2)
    assert off.outputs["cost_breakdown"]["notes"][-1].startswith("modelship:accessLog is false")
    (app,) = [c for c in containers(off).values() if c["name"] == "api"]
    assert {"name": "MODELSHIP_ACCESS_LOG", "value": "false"} in app["environment"]
    assert "MODELSHIP_ACCESS_LOG" not in str(containers(on))
    gke_on, gke_off = (
        run("gke", card, **{KEY_TARGET_RPS: LOAD, KEY_ACCESS_LOG: value}) for value in (True, False)
    )
    assert lines(gke_on)["logs"] > 0 and "logs" not in lines(gke_off)
    assert gke_off.outputs["monthly_cost"] == round(
        gke_on.outputs["monthly_cost"] - lines(gke_on)["logs"], 2
    )


def test_a_bad_access_log_value_is_refused(card: Path) -> None:
    with pytest.raises(
        ConfigError, match="modelship:accessLog = 'sometimes': must be true or false"
    ):
        run("fargate", card, **{KEY_ACCESS_LOG: "sometimes"})

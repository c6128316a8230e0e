"""What the stacks declare so the monitoring signals are collected and alarmed on.

gke and k8s: scrape annotations on every pod, a PodMonitor / PodMonitoring by config (refused
at preview with the allowed values otherwise). fargate: the service writes CloudWatch metric
lines (embedded metric format) and CloudWatch alarms select them, each a valid
PutMetricAlarm request by botocore's CloudWatch model.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import ConfigError
from infra.targets.fargate.alarms import NAMESPACE
from modelship.serving.monitoring.cloudwatch import NAMESPACE as SERVICE_NAMESPACE
from tests.infra.harness import StackRun, run_stack

from .conftest import GKE_PROJECT
from .fargate import containers, fargate_run, inputs
from .k8s import DEPLOYMENT, manifest, manifests
from .k8s_stack import IMAGE, run_k8s
from .test_fargate_references import assert_valid

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
POD_MONITORING = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"
K8S_IMAGE = {"modelship:image": IMAGE}


def _pod_template(run: StackRun) -> dict[str, Any]:
    template: dict[str, Any] = manifest(run, DEPLOYMENT)["spec"]["template"]
    return template


@pytest.mark.parametrize("stack", ["k8s", "gke"])
def test_pods_carry_scrape_annotations_by_default(stack: str, gke_run: StackRun) -> None:
    run = run_k8s() if stack == "k8s" else gke_run
    template = _pod_template(run)
    (container,) = template["spec"]["containers"]
    port = container["ports"][0]["containerPort"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(int(port)),
        "prometheus.io/path": "/metrics",
    }
    kinds = {r.type for r, _ in manifests(run)}
    assert POD_MONITOR not in kinds and POD_MONITORING not in kinds


@pytest.mark.parametrize(
    ("stack", "value", "type_", "endpoints"),
    [
        ("k8s", "prometheus-operator", POD_MONITOR, "podMetricsEndpoints"),
        ("gke", "gke-managed", POD_MONITORING, "endpoints"),
    ],
)
def test_a_pod_monitor_selects_the_pods_and_their_metrics_port(
    stack: str, value: str, type_: str, endpoints: str
) -> None:
    overrides = {"modelship:podMonitor": value}
    run = run_k8s(overrides) if stack == "k8s" else run_stack("gke", {**GKE_PROJECT, **overrides})
    monitor = manifest(run, type_)
    deployment = manifest(run, DEPLOYMENT)
    assert monitor["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert monitor["spec"]["selector"] == deployment["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"][endpoints]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in container["ports"]}
    assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize("stack", ["k8s", "gke"])
def test_an_unknown_pod_monitor_is_refused_at_preview(stack: str) -> None:
    overrides = {"modelship:podMonitor": "servicemonitor"}
    with pytest.raises(ConfigError) as info:
        run_stack(
            stack, {**(GKE_PROJECT if stack == "gke" else K8S_IMAGE), **overrides}, preview=True
        )
    message = str(info.value)
    assert "modelship:podMonitor = 'servicemonitor'" in message
    assert "off, prometheus-operator, gke-managed" in message


# --------------------------------------------------------------------------- fargate


def _alarms(run: StackRun) -> dict[str, dict[str, Any]]:
    return {r.name.rsplit("-alarms-", 1)[-1]: inputs(r) for r in run.of_type(ALARM)}


def test_the_service_writes_cloudwatch_lines_the_alarms_select() -> None:
    run = fargate_run()
    (container,) = [c for c in containers(run).values() if c["essential"]]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["MODELSHIP_CLOUDWATCH_METRICS"] == "true"
    service = env["MODELSHIP_CLOUDWATCH_SERVICE"]
    alarms = _alarms(run)
    assert set(alarms) == {"errors", "feature-drift", "prediction-drift", "quality-below-test"}
    assert NAMESPACE == SERVICE_NAMESPACE
    for name in ("feature-drift", "prediction-drift", "quality-below-test"):
        assert alarms[name]["namespace"] == NAMESPACE
        assert alarms[name]["dimensions"] == {"Service": service}
    queries = {q["id"]: q for q in alarms["errors"]["metricQueries"]}
    for query in ("errors", "requests"):
        assert queries[query]["metric"]["dimensions"] == {"Service": service}
        assert queries[query]["metric"]["namespace"] == NAMESPACE


def _put_metric_alarm(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The PutMetricAlarm request the provider makes from the declared inputs."""
    request: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": spec["alarmDescription"],
        "ComparisonOperator": spec["comparisonOperator"],
        "EvaluationPeriods": int(spec["evaluationPeriods"]),
        "Threshold": float(spec["threshold"]),
        "TreatMissingData": spec["treatMissingData"],
        "AlarmActions": spec.get("alarmActions", []),
        "OKActions": spec.get("okActions", []),
        "Tags": [{"Key": k, "Value": v} for k, v in spec["tags"].items()],
        **(
            {"DatapointsToAlarm": int(spec["datapointsToAlarm"])}
            if "datapointsToAlarm" in spec
            else {}
        ),
    }
    if "metricQueries" in spec:
        request["Metrics"] = [
            {
                "Id": q["id"],
                "ReturnData": q["returnData"],
                **({"Expression": q["expression"]} if "expression" in q else {}),
                **({"Label": q["label"]} if "label" in q else {}),
                **(
                    {
                        "MetricStat": {
                            "Metric": {
                                "Namespace": q["metric"]["namespace"],
                                "MetricName": q["metric"]["metricName"],
                                "Dimensions": [
                                    {"Name": k, "Value": v}
                                    for k, v in q["metric"]["dimensions"].items()
                                ],
                            },
                            "Period": int(q["metric"]["period"]),
                            "Stat": q["metric"]["stat"],
                        }
                    }
                    if "metric" in q
                    else {}
                ),
            }
            for q in spec["metricQueries"]
        ]
    else:
        request |= {
            "Namespace": spec["namespace"],
            "MetricName": spec["metricName"],
            "Dimensions": [{"Name": k, "Value": v} for k, v in spec["dimensions"].items()],
            "Statistic": spec["statistic"],
            "Period": int(spec["period"]),
        }
    return request


def test_alarms_are_valid_put_metric_alarm_requests() -> None:
    for name, spec in _alarms(fargate_run()).items():
        assert_valid("cloudwatch", "PutMetricAlarm", _put_metric_alarm(name, spec))


def test_with_capture_on_an_alarm_watches_the_capture_failures_the_service_writes() -> None:
    run = run_stack("fargate", {"modelship:captureRate": "0.01"})
    (container,) = [c for c in containers(run).values() if c["essential"]]
    service = {e["name"]: e["value"] for e in container["environment"]}[
        "MODELSHIP_CLOUDWATCH_SERVICE"
    ]
    alarms = _alarms(run)
    assert set(alarms) == {
        "errors",
        "feature-drift",
        "prediction-drift",
        "quality-below-test",
        "capture-failing",
    }
    spec = alarms["capture-failing"]
    assert (spec["namespace"], spec["metricName"]) == (NAMESPACE, "CaptureFailures")
    assert spec["dimensions"] == {"Service": service}
    # Failures in each of three 5-minute periods, as the Prometheus alert's `for: 15m`.
    assert (spec["statistic"], spec["period"], spec["datapointsToAlarm"]) == ("Sum", 300, 3)
    assert_valid("cloudwatch", "PutMetricAlarm", _put_metric_alarm("x", spec))


def test_an_alarm_watches_the_live_quality_verdict_the_service_writes() -> None:
    spec = _alarms(fargate_run())["quality-below-test"]
    # The Service-level value of the service's EMF lines (tests/service/serving/test_feedback.py
    # checks the service writes it; the per-version lines add a ModelVersion dimension, which no
    # alarm can name ahead of a deployment).
    assert spec["metricName"] == "QualityBelowTest"
    # Below in each of six 5-minute periods, as the Prometheus alert's `for: 30m`.
    assert (spec["statistic"], spec["period"], spec["datapointsToAlarm"]) == ("Maximum", 300, 6)
    assert spec["evaluationPeriods"] == 6
    assert spec["threshold"] == 1


def test_the_alarm_check_is_real() -> None:
    spec = _alarms(fargate_run())["feature-drift"]
    request = _put_metric_alarm("x", spec) | {"Statistic": "Largest"}
    with pytest.raises(AssertionError, match="Statistic"):
        assert_valid("cloudwatch", "PutMetricAlarm", request)


def test_alarms_notify_the_configured_topic_and_refuse_a_wrong_arn() -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:modelship-alerts"
    run = run_stack("fargate", {"modelship:alarmTopicArn": topic})
    for spec in _alarms(run).values():
        assert spec["alarmActions"] == [topic]
        assert spec["okActions"] == [topic]
    with pytest.raises(ConfigError, match="modelship:alarmTopicArn = 'alerts'"):
        run_stack("fargate", {"modelship:alarmTopicArn": "alerts"}, preview=True)

"""The fargate declarations checked against outside references, not against our own assumptions.

- botocore's AWS API models (the service definitions the AWS SDKs and CLI are generated from):
  the task definitions (service and training) as `RegisterTaskDefinition` requests, the service
  as `CreateService`, the target group / listeners / load balancer as their elbv2 calls, the
  autoscaling target and policies as their application-autoscaling calls. `ParamValidator`
  catches unknown and missing keys and wrong types; the enum values and numeric ranges of the
  model are checked by `model_problems`.
- The Fargate CPU/memory table and the CloudWatch Logs retention periods, parsed from the same
  models' documentation, against `FARGATE_MEMORY_MIB` and `LOG_RETENTION_DAYS`.
- Every IAM policy document with parliament (an IAM linter with AWS's action and resource list).
- The model store's bucket settings, the training task and the `train_command` output: in
  test_fargate_model_store.py (S3 and ECS RunTask models, parliament).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator

from infra.targets.fargate.config import CONTAINER_INSIGHTS, LOG_RETENTION_DAYS
from infra.targets.fargate.sizes import FARGATE_MEMORY_MIB
from tests.infra.harness import StackRun

from .fargate import (
    LISTENER,
    ROLE,
    ROLE_POLICY,
    SCALING_POLICY,
    SCALING_TARGET,
    SERVICE,
    TARGET_GROUP,
    TASK_DEFINITION,
    VARIANTS,
    fargate_run,
    inputs,
    named,
)

SESSION = botocore.session.get_session()


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> StackRun:
    return fargate_run(str(request.param))


def input_shape(service: str, operation: str) -> Shape:
    return SESSION.get_service_model(service).operation_model(operation).input_shape


def model_problems(value: Any, shape: Shape, path: str = "") -> Iterator[str]:
    """Enum and range violations (ParamValidator checks neither)."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                yield from model_problems(item, shape.members[key], f"{path}.{key}")
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            yield from model_problems(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield from model_problems(item, shape.value, f"{path}.{key}")
    elif shape.type_name == "string" and getattr(shape, "enum", None):
        if value not in shape.enum:
            yield f"{path} = {value!r}: not one of {shape.enum}"
    elif shape.type_name in {"integer", "long"}:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            yield f"{path} = {value!r}: outside {low}..{high}"


def assert_valid(service: str, operation: str, params: dict[str, Any]) -> None:
    shape = input_shape(service, operation)
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"{service} {operation}:\n{report.generate_report()}"
    problems = list(model_problems(params, shape))
    assert not problems, f"{service} {operation}: {problems}"


def aws_tags(tags: dict[str, str], key: str = "key", value: str = "value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in tags.items()]


# --------------------------------------------------------------------------- ECS


def register_task_definition(run: StackRun, suffix: str = "-app-task") -> dict[str, Any]:
    """The RegisterTaskDefinition request the provider makes from the declared inputs."""
    task = inputs(named(run, TASK_DEFINITION, suffix))
    return {
        "family": task["family"],
        "taskRoleArn": task["taskRoleArn"],
        "executionRoleArn": task["executionRoleArn"],
        "networkMode": task["networkMode"],
        "containerDefinitions": json.loads(task["containerDefinitions"]),
        "volumes": task["volumes"],
        "requiresCompatibilities": task["requiresCompatibilities"],
        "cpu": task["cpu"],
        "memory": task["memory"],
        "runtimePlatform": task["runtimePlatform"],
        "tags": aws_tags(task["tags"]),
    }


@pytest.mark.parametrize("task", ["-app-task", "-train-task"])
def test_task_definition_is_a_valid_register_task_definition(variant: StackRun, task: str) -> None:
    """The service's and the training job's task definitions."""
    assert_valid("ecs", "RegisterTaskDefinition", register_task_definition(variant, task))


def test_the_model_check_is_real() -> None:
    """A misspelled field and a wrong enum value are caught (the check can fail)."""
    params = register_task_definition(fargate_run())
    params["containerDefinitions"][0]["readOnlyRootFilesystem"] = True
    report = ParamValidator().validate(params, input_shape("ecs", "RegisterTaskDefinition"))
    assert "readOnlyRootFilesystem" in report.generate_report()
    params = register_task_definition(fargate_run())
    params["networkMode"] = "vpc"
    assert list(model_problems(params, input_shape("ecs", "RegisterTaskDefinition")))


def test_fargate_stop_timeout_and_health_check_limits(variant: StackRun) -> None:
    """Limits the model documents in prose: stopTimeout <= 120 on Fargate, health check ranges."""
    docs = input_shape("ecs", "RegisterTaskDefinition").members["containerDefinitions"].member
    stop_doc = docs.members["stopTimeout"].documentation
    assert "the max stop timeout value is 120 seconds" in stop_doc
    health_doc = SESSION.get_service_model("ecs").shape_for("HealthCheck")
    tasks = [register_task_definition(variant, task) for task in ("-app-task", "-train-task")]
    for container in [c for task in tasks for c in task["containerDefinitions"]]:
        assert container.get("stopTimeout", 30) <= 120
        check = container.get("healthCheck")
        if check:
            assert 5 <= check["interval"] <= 300
            assert 2 <= check["timeout"] <= 60
            assert 1 <= check["retries"] <= 10
            assert 0 <= check["startPeriod"] <= 300
            assert check["command"][0] == "CMD"
    documented = health_doc.members["startPeriod"].documentation
    assert "0 and 300" in documented


def create_service(run: StackRun) -> dict[str, Any]:
    """The CreateService request for the declared service (terraform-provider-aws's mapping)."""
    service = inputs(run.one(SERVICE))
    network = service["networkConfiguration"]
    return {
        "cluster": service["cluster"],
        "serviceName": run.one(SERVICE).state["name"],
        "taskDefinition": service["taskDefinition"],
        "loadBalancers": service["loadBalancers"],
        "desiredCount": service["desiredCount"],
        "capacityProviderStrategy": service["capacityProviderStrategies"],
        "platformVersion": service["platformVersion"],
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": service["deploymentCircuitBreaker"],
            "maximumPercent": service["deploymentMaximumPercent"],
            "minimumHealthyPercent": service["deploymentMinimumHealthyPercent"],
        },
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": network["subnets"],
                "securityGroups": network["securityGroups"],
                "assignPublicIp": "ENABLED" if network["assignPublicIp"] else "DISABLED",
            }
        },
        "healthCheckGracePeriodSeconds": service["healthCheckGracePeriodSeconds"],
        "deploymentController": service["deploymentController"],
        "tags": aws_tags(service["tags"]),
        "enableECSManagedTags": service["enableEcsManagedTags"],
        "propagateTags": service["propagateTags"],
    }


def test_service_is_a_valid_create_service(variant: StackRun) -> None:
    assert_valid("ecs", "CreateService", create_service(variant))


def test_capacity_providers_are_fargate_ones(variant: StackRun) -> None:
    doc = input_shape("ecs", "UpdateService").members["capacityProviderStrategy"].documentation
    assert "FARGATE or FARGATE_SPOT" in re.sub(r"<[^>]+>", "", doc)
    # A new strategy does not deploy by itself (same documentation): hence forceNewDeployment.
    assert "doesn't trigger a new service deployment" in doc
    assert inputs(variant.one(SERVICE))["forceNewDeployment"] is True


def test_cluster_settings(variant: StackRun) -> None:
    cluster = inputs(variant.one("aws:ecs/cluster:Cluster"))
    params = {"clusterName": "modelship", "settings": cluster["settings"]}
    assert_valid("ecs", "CreateCluster", params)
    value_doc = SESSION.get_service_model("ecs").shape_for("ClusterSetting").members["value"]
    documented = set(re.findall(r"<code>(\w+)</code>", value_doc.documentation))
    assert set(CONTAINER_INSIGHTS) <= documented


# --------------------------------------------------------------------------- elbv2


def test_target_group_is_a_valid_create_target_group(variant: StackRun) -> None:
    group = inputs(variant.one(TARGET_GROUP))
    check = group["healthCheck"]
    assert_valid(
        "elbv2",
        "CreateTargetGroup",
        {
            "Name": "modelship-tg",
            "Protocol": group["protocol"],
            "ProtocolVersion": group["protocolVersion"],
            "Port": group["port"],
            "VpcId": group["vpcId"],
            "HealthCheckProtocol": check["protocol"],
            "HealthCheckPort": check["port"],
            "HealthCheckEnabled": check["enabled"],
            "HealthCheckPath": check["path"],
            "HealthCheckIntervalSeconds": check["interval"],
            "HealthCheckTimeoutSeconds": check["timeout"],
            "HealthyThresholdCount": check["healthyThreshold"],
            "UnhealthyThresholdCount": check["unhealthyThreshold"],
            "Matcher": {"HttpCode": check["matcher"]},
            "TargetType": group["targetType"],
            "Tags": aws_tags(group["tags"], "Key", "Value"),
        },
    )
    assert check["timeout"] < check["interval"]


def _action(action: dict[str, Any]) -> dict[str, Any]:
    if action["type"] == "forward":
        return {"Type": "forward", "TargetGroupArn": action["targetGroupArn"]}
    redirect = action["redirect"]
    return {
        "Type": action["type"],
        "RedirectConfig": {
            "Protocol": redirect["protocol"],
            "Port": redirect["port"],
            "StatusCode": redirect["statusCode"],
        },
    }


def test_listeners_are_valid_create_listener_calls(variant: StackRun) -> None:
    for listener in variant.of_type(LISTENER):
        spec = inputs(listener)
        params: dict[str, Any] = {
            "LoadBalancerArn": spec["loadBalancerArn"],
            "Protocol": spec["protocol"],
            "Port": spec["port"],
            "DefaultActions": [_action(a) for a in spec["defaultActions"]],
            "Tags": aws_tags(spec["tags"], "Key", "Value"),
        }
        if "certificateArn" in spec:
            params["SslPolicy"] = spec["sslPolicy"]
            params["Certificates"] = [{"CertificateArn": spec["certificateArn"]}]
        assert_valid("elbv2", "CreateListener", params)


def test_load_balancer_is_a_valid_create_load_balancer(variant: StackRun) -> None:
    alb = inputs(variant.one("aws:lb/loadBalancer:LoadBalancer"))
    assert_valid(
        "elbv2",
        "CreateLoadBalancer",
        {
            "Name": "modelship-alb",
            "Subnets": alb["subnets"],
            "SecurityGroups": alb["securityGroups"],
            "Scheme": "internal" if alb["internal"] else "internet-facing",
            "Type": alb["loadBalancerType"],
            "IpAddressType": alb["ipAddressType"],
            "Tags": aws_tags(alb["tags"], "Key", "Value"),
        },
    )


# --------------------------------------------------------------------------- autoscaling


def test_scaling_target_and_policies_are_valid(variant: StackRun) -> None:
    for target in variant.of_type(SCALING_TARGET):
        spec = inputs(target)
        assert_valid(
            "application-autoscaling",
            "RegisterScalableTarget",
            {
                "ServiceNamespace": spec["serviceNamespace"],
                "ResourceId": spec["resourceId"],
                "ScalableDimension": spec["scalableDimension"],
                "MinCapacity": spec["minCapacity"],
                "MaxCapacity": spec["maxCapacity"],
            },
        )
    for policy in variant.of_type(SCALING_POLICY):
        spec = inputs(policy)
        tracking = spec["targetTrackingScalingPolicyConfiguration"]
        metric = tracking["predefinedMetricSpecification"]
        assert_valid(
            "application-autoscaling",
            "PutScalingPolicy",
            {
                "PolicyName": policy.name,
                "ServiceNamespace": spec["serviceNamespace"],
                "ResourceId": spec["resourceId"],
                "ScalableDimension": spec["scalableDimension"],
                "PolicyType": spec["policyType"],
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": float(tracking["targetValue"]),
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": metric["predefinedMetricType"],
                        **(
                            {"ResourceLabel": metric["resourceLabel"]}
                            if "resourceLabel" in metric
                            else {}
                        ),
                    },
                    "ScaleOutCooldown": tracking["scaleOutCooldown"],
                    "ScaleInCooldown": tracking["scaleInCooldown"],
                },
            },
        )


# --------------------------------------------------------------------------- documented tables


def _documented_fargate_table() -> dict[int, set[int]]:
    """vCPU units → memory MiB, parsed from RegisterTaskDefinition's `memory` documentation."""
    doc = input_shape("ecs", "RegisterTaskDefinition").members["memory"].documentation
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", doc))
    table: dict[int, set[int]] = {}
    for chunk, cpu in re.findall(r"((?:(?!Available).)+?) - Available cpu values: (\d+)", text):
        between = re.search(r"Between (\d+) ?(GB|\(\d+ GB\)) and (\d+) ?(GB|\(\d+ GB\))", chunk)
        if between:
            low, high = int(between[1]), int(between[3])
            if between[2] == "GB":
                low, high = low * 1024, high * 1024
            step_match = re.search(r"increments of (\d+)|in (\d+) GB increments", chunk)
            assert step_match, chunk
            step = int(step_match[1]) if step_match[1] else int(step_match[2]) * 1024
            table[int(cpu)] = set(range(low, high + 1, step))
        else:
            table[int(cpu)] = {int(m) for m in re.findall(r"(\d+) \(\d+(?:\.\d+)? GB\)", chunk)}
    return table


def test_fargate_size_table_matches_the_ecs_model() -> None:
    documented = _documented_fargate_table()
    ours = {
        cpu: {m for m in memory if not (cpu == 256 and m == 1536)}
        for cpu, memory in FARGATE_MEMORY_MIB.items()
    }
    assert documented == ours


def test_log_retention_values_match_the_logs_model() -> None:
    doc = SESSION.get_service_model("logs").shape_for("Days").documentation
    values = re.search(r"Possible values are: ([\d, and]+)\.", re.sub(r"<[^>]+>", "", doc))
    assert values
    documented = tuple(int(v) for v in re.findall(r"\d+", values[1]))
    assert documented == LOG_RETENTION_DAYS


# --------------------------------------------------------------------------- IAM (parliament)


def parliament_findings(document: dict[str, Any]) -> list[tuple[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports pkg_resources
        import parliament

    policy = parliament.analyze_policy_string(json.dumps(document))
    return [(f.issue, str(f.detail)) for f in policy.findings]


def test_permission_policies_pass_parliament(variant: StackRun) -> None:
    for policy in variant.of_type(ROLE_POLICY):
        assert parliament_findings(json.loads(policy.inputs["policy"])) == []


def test_trust_policies_pass_parliament(variant: StackRun) -> None:
    """A trust policy has no Resource element; parliament reads it as a resource policy and says
    so, which is the one finding expected. Anything else (condition operators and keys, actions,
    principal format) must be clean."""
    for role in variant.of_type(ROLE):
        findings = parliament_findings(json.loads(role.inputs["assumeRolePolicy"]))
        assert findings == [("MALFORMED", "Statement contains neither Resource nor NotResource")]


def test_parliament_catches_a_wrong_grant() -> None:
    wrong = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": "arn:aws:ssm:us-east-1:123456789012:parameter/x",
            }
        ],
    }
    assert [issue for issue, _ in parliament_findings(wrong)] == ["RESOURCE_MISMATCH"]

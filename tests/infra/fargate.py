"""The fargate stack run under mocks in its main variants (cached: each run takes about a second),
and helpers to read what it declared."""

from __future__ import annotations

import functools
import json
from typing import Any

from infra.core.values import plain
from tests.infra.harness import DeclaredResource, StackRun, run_stack

API_KEY = "test-api-key-value"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
SSM_SECRET = "arn:aws:ssm:us-east-1:123456789012:parameter/shared/modelship-key"  # noqa: S105
TASK_POLICY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
MODEL_URI = "s3://modelship-fargate-models-example/models/insurance/" + "ab" * 32 + "/"

# name → (config overrides, secret config)
VARIANTS: dict[str, tuple[dict[str, object], dict[str, str]]] = {
    "default": ({}, {}),
    "private": ({"modelship:privateSubnets": True}, {}),
    "https-ssm-key": (
        {
            "modelship:certificateArn": CERTIFICATE,
            "modelship:ingressCidrs": ["203.0.113.0/24", "198.51.100.0/24"],
        },
        {"modelship:apiKey": API_KEY},
    ),
    "secretsmanager-key": (
        {"modelship:apiKeyStore": "secretsmanager"},
        {"modelship:apiKey": API_KEY},
    ),
    "own-secret": ({"modelship:apiKeySecretArn": SSM_SECRET}, {}),
    "parked-spot": ({"modelship:scaleToZero": True, "modelship:spot": True}, {}),
    "arm64-policies": (
        {"modelship:platform": "linux/arm64", "modelship:taskPolicyArns": [TASK_POLICY]},
        {},
    ),
    "model-uri-production": (
        {
            "modelship:modelUri": MODEL_URI,
            "modelship:environment": "production",
            "modelship:captureRate": 0.05,
        },
        {},
    ),
}

SERVICE = "aws:ecs/service:Service"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
SCALING_TARGET = "aws:appautoscaling/target:Target"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
IMAGE = "docker-build:index:Image"
REPOSITORY = "aws:ecr/repository:Repository"
BUCKET = "aws:s3/bucket:Bucket"


@functools.cache
def fargate_run(variant: str = "default") -> StackRun:
    overrides, secrets = VARIANTS[variant]
    return run_stack("fargate", overrides, secrets=secrets)


def inputs(resource: DeclaredResource) -> dict[str, Any]:
    result: dict[str, Any] = plain(dict(resource.inputs))
    return result


def named(run: StackRun, type_: str, suffix: str) -> DeclaredResource:
    (found,) = [r for r in run.of_type(type_) if r.name.endswith(suffix)]
    return found


def service_task(run: StackRun) -> DeclaredResource:
    """The service's task definition (the other one is the training task's)."""
    return named(run, TASK_DEFINITION, "-app-task")


def training_task(run: StackRun) -> DeclaredResource:
    return named(run, TASK_DEFINITION, "-train-task")


def service_image(run: StackRun) -> DeclaredResource:
    return run.named("modelship-image-build")


def training_image(run: StackRun) -> DeclaredResource:
    return run.named("modelship-training-image-build")


def definitions(task: DeclaredResource) -> dict[str, dict[str, Any]]:
    """A task definition's container definitions by name."""
    return {c["name"]: c for c in json.loads(task.inputs["containerDefinitions"])}


def containers(run: StackRun) -> dict[str, dict[str, Any]]:
    """The service task definition's container definitions by name."""
    return definitions(service_task(run))

"""The policy pack over every stack's resource graph, and over broken variants of those graphs.

Stacks are found from `Pulumi.<stack>.yaml` at the repository root, so a stack that lands later
(fargate, k8s) is checked without touching this file. Each broken variant mutates the recorded
resources of one type; a stack without that type skips the variant.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from policy.rules import labels_of
from policy.stack_config import declared_environment

from .conftest import STACKS, stack_run
from .evaluate import Resource, evaluate, mutate, resources_of

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
CONTAINER = "docker:index/container:Container"
CLUSTER = "gcp:container/cluster:Cluster"
AR_REPO = "gcp:artifactregistry/repository:Repository"
ECR_REPO = "aws:ecr/repository:Repository"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
ALB = "aws:lb/loadBalancer:LoadBalancer"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
CRON_JOB = "kubernetes:batch/v1:CronJob"
GCS_BUCKET = "gcp:storage/bucket:Bucket"
# Advisory rules a stack may trip on purpose (documented in docs/policy.md).
KNOWN_ADVISORIES = {"registry-scanning-api", "local-port-on-loopback"}


def _pod(props: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = props["spec"]["template"]["spec"]
    return pod


def _root_pod(props: dict[str, Any]) -> None:
    pod = _pod(props)
    pod.get("securityContext", {}).pop("runAsNonRoot", None)
    for c in pod["containers"]:
        c.get("securityContext", {}).pop("runAsNonRoot", None)


def _no_limits(props: dict[str, Any]) -> None:
    for c in _pod(props)["containers"]:
        c.get("resources", {}).pop("limits", None)


def _no_readiness(props: dict[str, Any]) -> None:
    for c in _pod(props)["containers"]:
        c.pop("readinessProbe", None)


def _cron(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Apply a pod change to the pod template inside a CronJob's job template."""
    return lambda props: change({"spec": props["spec"]["jobTemplate"]["spec"]})


def _tagged_image(props: dict[str, Any]) -> None:
    for c in _pod(props)["containers"]:
        c["image"] = "example.com/modelship:latest"


def _service_port(props: dict[str, Any]) -> None:
    props["spec"]["type"] = "LoadBalancer"
    props["spec"]["ports"][0]["port"] = 8080.0


def _node_port(props: dict[str, Any]) -> None:
    props["spec"]["type"] = "NodePort"


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda props: props.__setitem__(key, value)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda props: props.pop(key, None)


def _task_definitions(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(props: dict[str, Any]) -> None:
        raw = props["containerDefinitions"]
        containers = json.loads(raw) if isinstance(raw, str) else raw
        for c in containers:
            change(c)
        props["containerDefinitions"] = json.dumps(containers)

    return apply


def _world_ingress(props: dict[str, Any]) -> None:
    props.update({"cidrIpv4": "0.0.0.0/0", "fromPort": 8080.0, "toPort": 8080.0})
    props.pop("referencedSecurityGroupId", None)


# name → (type, mutation, policy that must fire, words its message must contain)
BROKEN: dict[str, tuple[str, Callable[[dict[str, Any]], None], str, str]] = {
    "pod-runs-as-root": (DEPLOYMENT, _root_pod, "containers-hardened", "runs as root"),
    "pod-without-limits": (DEPLOYMENT, _no_limits, "containers-hardened", "no cpu or memory limit"),
    "pod-without-readiness": (DEPLOYMENT, _no_readiness, "containers-hardened", "readinessProbe"),
    "pod-image-by-tag": (DEPLOYMENT, _tagged_image, "image-by-digest", "by tag"),
    "training-job-runs-as-root": (
        CRON_JOB,
        _cron(_root_pod),
        "containers-hardened",
        "runs as root",
    ),
    "training-job-without-limits": (
        CRON_JOB,
        _cron(_no_limits),
        "containers-hardened",
        "no cpu or memory limit",
    ),
    "training-job-image-by-tag": (CRON_JOB, _cron(_tagged_image), "image-by-digest", "by tag"),
    "bucket-public-access-inherited": (
        GCS_BUCKET,
        _set("publicAccessPrevention", "inherited"),
        "gcs-bucket-private",
        "public_access_prevention='enforced'",
    ),
    "bucket-object-acls": (
        GCS_BUCKET,
        _set("uniformBucketLevelAccess", False),
        "gcs-bucket-private",
        "uniform_bucket_level_access=True",
    ),
    "bucket-unversioned": (
        GCS_BUCKET,
        _drop("versioning"),
        "gcs-bucket-private",
        "enable versioning",
    ),
    "service-on-8080": (SERVICE, _service_port, "no-open-ingress", "exposes port 8080"),
    "service-nodeport": (SERVICE, _node_port, "no-open-ingress", "NodePort"),
    "docker-as-root": (CONTAINER, _drop("user"), "containers-hardened", "runs as root"),
    "docker-no-memory": (CONTAINER, _drop("memory"), "containers-hardened", "no memory limit"),
    "docker-no-cpu": (CONTAINER, _drop("cpus"), "containers-hardened", "no CPU limit"),
    "docker-no-health": (CONTAINER, _drop("healthcheck"), "containers-hardened", "health check"),
    "docker-image-by-tag": (
        CONTAINER,
        _set("image", "modelship:local"),
        "image-by-digest",
        "'modelship:local' by tag",
    ),
    "docker-logs-unbounded": (CONTAINER, _drop("logOpts"), "log-retention", "max-size"),
    "docker-on-all-addresses": (
        CONTAINER,
        lambda p: p["ports"][0].__setitem__("ip", "0.0.0.0"),
        "local-port-on-loopback",
        "published on 0.0.0.0",
    ),
    "cluster-protected-in-development": (
        CLUSTER,
        _set("deletionProtection", True),
        "deletion-protection-matches-environment",
        "must be off so `pulumi destroy` works",
    ),
    "cluster-protection-by-provider-default": (
        CLUSTER,
        _drop("deletionProtection"),
        "deletion-protection-matches-environment",
        "deletion_protection must be off",
    ),
    "registry-scanning-disabled": (
        AR_REPO,
        _set("vulnerabilityScanningConfig", {"enablementConfig": "DISABLED"}),
        "registry-scans-images",
        "INHERITED",
    ),
    # AWS types: exercised as soon as a stack declares them (fargate), and by hand in test_aws.py.
    "ecr-no-scan": (
        ECR_REPO,
        _set("imageScanningConfiguration", {"scanOnPush": False}),
        "registry-scans-images",
        "scan_on_push=True",
    ),
    "ecr-not-force-deleted": (
        ECR_REPO,
        _set("forceDelete", False),
        "deletion-protection-matches-environment",
        "force_delete=True",
    ),
    "logs-forever": (LOG_GROUP, _drop("retentionInDays"), "log-retention", "retention_in_days"),
    "task-as-root": (
        TASK,
        _task_definitions(lambda c: c.__setitem__("user", "0")),
        "containers-hardened",
        "runs as root",
    ),
    "task-image-by-tag": (
        TASK,
        _task_definitions(
            lambda c: c.__setitem__("image", "x.dkr.ecr.us-east-1.amazonaws.com/m:1")
        ),
        "image-by-digest",
        "by tag",
    ),
    "alb-protected-in-development": (
        ALB,
        _set("enableDeletionProtection", True),
        "deletion-protection-matches-environment",
        "enable_deletion_protection must be off",
    ),
    "task-sg-open-to-world": (SG_INGRESS, _world_ingress, "no-open-ingress", "port 8080"),
    "sg-inline-open-to-world": (
        SG,
        _set(
            "ingress",
            [{"protocol": "tcp", "fromPort": 0.0, "toPort": 65535.0, "cidrBlocks": ["0.0.0.0/0"]}],
        ),
        "no-open-ingress",
        "port 0-65535",
    ),
}


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_the_mandatory_rules(stack: str) -> None:
    outcome = evaluate(resources_of(stack_run(stack)), declared_environment(stack))
    assert outcome.mandatory == [], "\n".join(f"{v.policy}: {v.message}" for v in outcome.mandatory)
    assert {v.policy for v in outcome.advisory} <= KNOWN_ADVISORIES


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_each_rule_fires_on_a_broken_variant(stack: str, variant: str) -> None:
    type_, change, policy, words = BROKEN[variant]
    resources = resources_of(stack_run(stack))
    targets = [r.urn for r in resources if r.type == type_]
    if not targets:
        pytest.skip(f"stack {stack} declares no {type_}")
    outcome = evaluate(mutate(resources, type_, change), declared_environment(stack))
    fired = outcome.of(policy)
    assert {v.urn for v in fired} >= set(targets), f"{policy} did not fire on {targets}"
    assert all(words in v.message for v in fired), [v.message for v in fired]


@pytest.mark.parametrize("stack", STACKS)
def test_required_labels_fire_on_every_labelled_resource(stack: str) -> None:
    resources = resources_of(stack_run(stack))
    labelled = [r for r in resources if labels_of(r.type, r.props, None) is not None]
    assert labelled, f"stack {stack} has no labelled resource"
    for resource in labelled:
        broken = [
            _without_stack_label(copy.deepcopy(r)) if r.urn == resource.urn else r
            for r in resources
        ]
        fired = evaluate(broken).of("required-labels")
        assert [v.urn for v in fired] == [resource.urn], resource.type
        assert "missing label(s)/tag(s) stack" in fired[0].message


def _without_stack_label(resource: Resource) -> Resource:
    props = resource.props
    if resource.type.startswith("kubernetes:"):
        props["metadata"]["labels"].pop("stack")
    elif resource.type.startswith("aws:"):
        props.get("tags", {}).pop("stack", None)
        default_tags = (resource.provider_props or {}).get("defaultTags") or {}
        (default_tags.get("tags") or {}).pop("stack", None)
    elif resource.type.startswith("docker:"):
        props["labels"] = [item for item in props["labels"] if item["label"] != "stack"]
    elif resource.type.startswith("docker-build:"):
        props["labels"].pop("org.modelship.stack")
    else:
        field = "resourceLabels" if "resourceLabels" in props else "labels"
        props[field].pop("stack")
    return resource


@pytest.mark.parametrize("stack", STACKS)
def test_production_requires_deletion_protection(stack: str) -> None:
    resources = resources_of(stack_run(stack))
    protectable = [r for r in resources if r.type in (CLUSTER, ALB)]
    if not protectable:
        pytest.skip(f"stack {stack} declares nothing with deletion protection")
    fired = evaluate(resources, "production").of("deletion-protection-matches-environment")
    assert {v.urn for v in fired} == {r.urn for r in protectable}
    assert all("environment is production" in v.message for v in fired)

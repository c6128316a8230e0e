"""The AWS rules on hand-built resources shaped like a Fargate stack's (camelCase wire names).

These run whether or not a fargate stack exists yet; once `Pulumi.fargate.yaml` lands, the same
rules also run over its recorded graph in test_stacks.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from .evaluate import Resource, evaluate

TAGS = {"project": "modelship", "stack": "fargate", "managed-by": "pulumi"}
DIGEST = "sha256:" + "a" * 64
IMAGE = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/modelship-fargate/modelship@{DIGEST}"


def fargate_like() -> list[Resource]:
    """A compliant Fargate service: ALB open on 80/443, tasks open only to the ALB."""
    container = {
        "name": "api",
        "image": IMAGE,
        "user": "10001:10001",
        "essential": True,
        "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
        "healthCheck": {
            "command": ["CMD", "python", "-c", "import urllib.request; ..."],
            "interval": 10,
        },
        "logConfiguration": {"logDriver": "awslogs", "options": {}},
        "readonlyRootFilesystem": True,
    }
    return [
        Resource("aws:ecr/repository:Repository", "registry", {
            "imageScanningConfiguration": {"scanOnPush": True},
            "forceDelete": True,
            "tags": dict(TAGS),
        }),
        Resource("aws:cloudwatch/logGroup:LogGroup", "logs", {
            "retentionInDays": 14.0, "tags": dict(TAGS),
        }),
        Resource("aws:ecs/taskDefinition:TaskDefinition", "task", {
            "cpu": "512",
            "memory": "1024",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "containerDefinitions": json.dumps([container]),
            "tags": dict(TAGS),
        }),
        Resource("aws:lb/loadBalancer:LoadBalancer", "alb", {
            "loadBalancerType": "application",
            "enableDeletionProtection": False,
            "tags": dict(TAGS),
        }),
        Resource("aws:lb/targetGroup:TargetGroup", "tg", {
            "targetType": "ip",
            "port": 8080.0,
            "healthCheck": {"path": "/readyz"},
            "tags": dict(TAGS),
        }),
        Resource("aws:ec2/securityGroup:SecurityGroup", "alb-sg", {"tags": dict(TAGS)}),
        Resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "alb-https", {
            "cidrIpv4": "0.0.0.0/0", "fromPort": 443.0, "toPort": 443.0, "ipProtocol": "tcp",
            "tags": dict(TAGS),
        }),
        Resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "alb-http", {
            "cidrIpv6": "::/0", "fromPort": 80.0, "toPort": 80.0, "ipProtocol": "tcp",
            "tags": dict(TAGS),
        }),
        Resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "task-from-alb", {
            "referencedSecurityGroupId": "sg-alb", "fromPort": 8080.0, "toPort": 8080.0,
            "ipProtocol": "tcp", "tags": dict(TAGS),
        }),
        Resource("aws:ec2/securityGroupRule:SecurityGroupRule", "egress", {
            "type": "egress", "cidrBlocks": ["0.0.0.0/0"], "fromPort": 0.0, "toPort": 0.0,
            "protocol": "-1",
        }),
        Resource("aws:s3/bucket:Bucket", "store", {"forceDestroy": True, "tags": dict(TAGS)}),
        Resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "store-block", {
            "bucket": "store-1234", "blockPublicAcls": True, "blockPublicPolicy": True,
            "ignorePublicAcls": True, "restrictPublicBuckets": True,
        }),
        Resource("aws:s3/bucketVersioning:BucketVersioning", "store-versioning", {
            "bucket": "store-1234", "versioningConfiguration": {"status": "Enabled"},
        }),
        Resource(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "store-encryption",
            {"bucket": "store-1234", "rules": [
                {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
            ]},
        ),
    ]  # fmt: skip


def _change(name: str, edit: Callable[[dict[str, Any]], object]) -> list[Resource]:
    resources = copy.deepcopy(fargate_like())
    for r in resources:
        if r.name == name:
            edit(r.props)
    return resources


def _containers(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(props: dict[str, Any]) -> None:
        containers = json.loads(props["containerDefinitions"])
        for c in containers:
            edit(c)
        props["containerDefinitions"] = json.dumps(containers)

    return apply


def test_a_compliant_fargate_graph_passes() -> None:
    outcome = evaluate(fargate_like())
    assert outcome.violations == []


def test_provider_default_tags_count() -> None:
    resources = fargate_like()
    for r in resources:
        r.props.pop("tags", None)
        r.provider_props = {"defaultTags": {"tags": TAGS}}
        r.provider_type = "pulumi:providers:aws"
    assert evaluate(resources).of("required-labels") == []


BROKEN: dict[str, tuple[str, Callable[[dict[str, Any]], object], str, str]] = {
    "ecr-no-scan": (
        "registry",
        lambda p: p.pop("imageScanningConfiguration"),
        "registry-scans-images",
        "scan_on_push=True",
    ),
    "ecr-not-force-deleted": (
        "registry",
        lambda p: p.pop("forceDelete"),
        "deletion-protection-matches-environment",
        "RepositoryNotEmptyException",
    ),
    "logs-forever": ("logs", lambda p: p.pop("retentionInDays"), "log-retention", "forever"),
    "logs-zero-days": ("logs", lambda p: p.update(retentionInDays=0.0), "log-retention", "forever"),
    "task-root": (
        "task",
        _containers(lambda c: c.update(user="root")),
        "containers-hardened",
        "runs as root",
    ),
    "task-user-unset": (
        "task",
        _containers(lambda c: c.pop("user")),
        "containers-hardened",
        "runs as root",
    ),
    "task-no-size": (
        "task",
        lambda p: (p.pop("cpu"), p.pop("memory")),
        "containers-hardened",
        "no CPU/memory size",
    ),
    "task-image-tag": (
        "task",
        _containers(lambda c: c.update(image="modelship:latest")),
        "image-by-digest",
        "'modelship:latest' by tag",
    ),
    "alb-protected-in-dev": (
        "alb",
        lambda p: p.update(enableDeletionProtection=True),
        "deletion-protection-matches-environment",
        "must be off",
    ),
    "task-port-to-world": (
        "task-from-alb",
        lambda p: (p.pop("referencedSecurityGroupId"), p.update(cidrIpv4="0.0.0.0/0")),
        "no-open-ingress",
        "opens port 8080 to 0.0.0.0/0",
    ),
    "all-traffic-to-world": (
        "alb-https",
        lambda p: p.update(ipProtocol="-1", fromPort=None, toPort=None),
        "no-open-ingress",
        "port 0-65535",
    ),
    "inline-ssh": (
        "alb-sg",
        lambda p: p.update(
            ingress=[
                {"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}
            ]
        ),
        "no-open-ingress",
        "opens port 22",
    ),
    "untagged": (
        "tg",
        lambda p: p["tags"].pop("managed-by"),
        "required-labels",
        "missing label(s)/tag(s) managed-by",
    ),
}


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_each_aws_rule_fires(variant: str) -> None:
    name, edit, policy, words = BROKEN[variant]
    outcome = evaluate(_change(name, edit))
    fired = outcome.of(policy)
    assert fired, f"{policy} did not fire"
    assert all(v.urn and v.urn.endswith(f"::{name}") for v in fired), fired
    assert any(words in v.message for v in fired), [v.message for v in fired]


def test_security_group_rule_resource_ingress() -> None:
    rule = Resource("aws:ec2/securityGroupRule:SecurityGroupRule", "open", {
        "type": "ingress", "cidrBlocks": ["0.0.0.0/0"], "fromPort": 8080.0, "toPort": 8080.0,
        "protocol": "tcp",
    })  # fmt: skip
    assert [v.policy for v in evaluate([rule]).violations] == ["no-open-ingress"]


def test_task_probes_from_the_target_group_are_enough() -> None:
    resources = _change("task", _containers(lambda c: c.pop("healthCheck")))
    assert evaluate(resources).violations == []
    without_tg = [r for r in resources if r.name != "tg"]
    fired = evaluate(without_tg).of("containers-hardened")
    assert len(fired) == 1
    assert "no health check" in fired[0].message


def test_production_wants_the_load_balancer_protected() -> None:
    fired = evaluate(fargate_like(), "production").of("deletion-protection-matches-environment")
    assert [v.urn.rsplit("::", 1)[-1] for v in fired if v.urn] == ["alb"]
    protected = _change("alb", lambda p: p.update(enableDeletionProtection=True))
    assert evaluate(protected, "production").violations == []


@pytest.mark.parametrize(
    ("name", "edit", "words"),
    [
        ("store-block", lambda p: p.__setitem__("blockPublicPolicy", False), "public access block"),
        ("store-block", lambda p: p.clear(), "public access block"),
        (
            "store-versioning",
            lambda p: p.__setitem__("versioningConfiguration", {"status": "Suspended"}),
            "versioning with status Enabled",
        ),
        (
            "store-encryption",
            lambda p: p.__setitem__("rules", []),
            "default server-side encryption",
        ),
    ],
)
def test_s3_buckets_stay_private_versioned_and_encrypted(
    name: str, edit: Callable[[dict[str, Any]], object], words: str
) -> None:
    fired = evaluate(_change(name, edit)).of("s3-bucket-private")
    assert [v.urn for v in fired] == ["urn:pulumi:test::modelship::aws:s3/bucket:Bucket::store"]
    assert words in fired[0].message

"""The pack's tables against the provider SDKs, the pack files, and the per-stack config tool."""

from __future__ import annotations

import importlib
import inspect
import json
import re

import pytest
import yaml

from policy import rules, stack_config
from tests.infra.harness import REPO_ROOT

from .evaluate import Resource, evaluate


def _resource_class(token: str) -> type:
    """pulumi_<provider>.<module>.<Type> for a type token `<provider>:<module>/<x>:<Type>`."""
    provider, module, name = token.split(":")
    package = importlib.import_module(f"pulumi_{provider}.{module.split('/')[0]}")
    cls: type = getattr(package, name)
    return cls


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.mark.parametrize("token", sorted(rules.AWS_TAGGED))
def test_aws_tagged_types_exist_and_take_tags(token: str) -> None:
    cls = _resource_class(token)
    assert f'"{token}"' in inspect.getsource(cls), f"{token} is not {cls.__name__}'s type token"
    assert "tags" in inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]


@pytest.mark.parametrize(("token", "field"), sorted(rules.GCP_LABELS.items()))
def test_gcp_label_fields_exist(token: str, field: str) -> None:
    cls = _resource_class(token)
    assert f'"{token}"' in inspect.getsource(cls)
    assert _snake(field) in inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "token",
    [
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:ecs/taskDefinition:TaskDefinition",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "gcp:compute/firewall:Firewall",
        "gcp:projects/service:Service",
        rules.GCS_BUCKET,
        rules.S3_BUCKET,
        rules.S3_PUBLIC_ACCESS_BLOCK,
        *rules.S3_VERSIONING,
        *rules.S3_ENCRYPTION,
    ],
)
def test_other_rule_types_exist(token: str) -> None:
    assert f'"{token}"' in inspect.getsource(_resource_class(token))


def test_every_policy_has_a_unique_name_and_a_level() -> None:
    names = [p.name for p in rules.POLICIES]
    assert len(names) == len(set(names))
    assert all(p.enforcement_level is not None for p in rules.POLICIES)
    assert {p.name for p in rules.POLICIES if p.enforcement_level == rules.ADVISORY} == {
        "registry-scanning-api",
        "local-port-on-loopback",
    }


def test_pack_files() -> None:
    pack = yaml.safe_load((REPO_ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    requirements = (REPO_ROOT / "policy" / "requirements.txt").read_text()
    assert "pulumi-policy" in requirements
    main = (REPO_ROOT / "policy" / "__main__.py").read_text()
    assert "PolicyPack(" in main
    # Only the entry point constructs the pack (the constructor starts a server and blocks).
    for path in (REPO_ROOT / "policy").glob("*.py"):
        if path.name != "__main__.py":
            assert "PolicyPack(" not in path.read_text(), path


def test_environment_config_per_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert stack_config.main(["local"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config == {"deletion-protection-matches-environment": {"environment": "development"}}
    assert stack_config.declared_environment("gke") == "development"


def test_unknown_environment_falls_back_to_development() -> None:
    cluster = Resource("gcp:container/cluster:Cluster", "c", {"deletionProtection": False})
    assert evaluate([cluster], "nonsense").of("deletion-protection-matches-environment") == []
    assert rules.environment_of({}) == "development"
    assert rules.environment_of({"environment": "production"}) == "production"


def test_firewall_rules() -> None:
    open_ssh = Resource("gcp:compute/firewall:Firewall", "fw", {
        "sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["22", "80"]}],
    })  # fmt: skip
    messages = [v.message for v in evaluate([open_ssh]).of("no-open-ingress")]
    assert len(messages) == 1
    assert "opens port 22 to 0.0.0.0/0" in messages[0]
    web = Resource("gcp:compute/firewall:Firewall", "web", {
        "sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["80", "443"]}],
    })  # fmt: skip
    assert evaluate([web]).of("no-open-ingress") == []


def test_gke_advisory_names_the_scanning_api() -> None:
    repo = Resource("gcp:artifactregistry/repository:Repository", "r", {"labels": {}})
    fired = evaluate([repo]).of("registry-scanning-api")
    assert "containerscanning.googleapis.com" in fired[0].message
    api = Resource(
        "gcp:projects/service:Service", "s", {"service": "containerscanning.googleapis.com"}
    )
    assert evaluate([repo, api]).of("registry-scanning-api") == []

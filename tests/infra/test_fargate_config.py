"""Each fargate config rule fails `pulumi preview` with the key, the value and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import ConfigError
from infra.targets.fargate.config import FargateSettings
from tests.infra.harness import load_stack_config, run_stack

from .fargate import CERTIFICATE, SSM_SECRET


def config_error(
    overrides: dict[str, Any], *, secrets: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> str:
    with pytest.raises(ConfigError) as info:
        run_stack("fargate", overrides, secrets=secrets, unset=unset)
    return str(info.value)


def test_stack_file_has_defaults_for_everything() -> None:
    config = load_stack_config("fargate")
    assert config["modelship:target"] == "fargate"
    assert config["aws:region"] == "us-east-1"
    # Besides the task size (the shared 512Mi default is not a Fargate size, see below), every
    # key has a working default.
    kept = {"modelship:target", "modelship:memory"}
    run = run_stack("fargate", unset=tuple(k for k in config if k not in kept))
    assert run.one("aws:ecs/service:Service")


def test_default_size_fits_fargate() -> None:
    # The shared default (500m / 512Mi) is not a Fargate size; without the stack file's 1Gi:
    message = config_error({}, unset=("modelship:memory",))
    assert (
        "modelship:memory = '512Mi': on Fargate with 500m CPU must be "
        "1024Mi, 2048Mi, 3072Mi, 4096Mi" in message
    )


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("300m", "1Gi", "modelship:cpu = '300m': on Fargate must be 250m, 500m, 1, 2, 4, 8 or 16"),
        ("1", "1Gi", "modelship:memory = '1024Mi': on Fargate with 1000m CPU must be 2048Mi"),
        ("250m", "1536Mi", "with 250m CPU must be 512Mi, 1024Mi, 2048Mi"),
        ("16", "20Gi", "32768Mi to 122880Mi in steps of 8192Mi"),
    ],
)
def test_fargate_sizes(cpu: str, memory: str, expected: str) -> None:
    assert expected in config_error({"modelship:cpu": cpu, "modelship:memory": memory})


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("3", "8Gi", "modelship:trainingCpu = '3000m': on Fargate must be 250m, 500m, 1, 2, 4"),
        ("1", "1Gi", "modelship:trainingMemory = '1024Mi': on Fargate with 1000m CPU must be"),
        ("1", "2.5G", "modelship:trainingMemory = '2.5G': on Fargate must be whole MiB"),
    ],
)
def test_training_sizes_are_fargate_sizes(cpu: str, memory: str, expected: str) -> None:
    """The training task is checked against the same table, reported on the training keys."""
    message = config_error({"modelship:trainingCpu": cpu, "modelship:trainingMemory": memory})
    assert expected in message
    assert "modelship:cpu " not in message and "modelship:memory " not in message


@pytest.mark.parametrize(
    "uri",
    [
        "gs://bucket/models/insurance/" + "ab" * 32 + "/",  # another cloud's store
        "s3://bucket/models/insurance/latest/",  # not a content-addressed version
        "s3://bucket/data/insurance.csv",
    ],
)
def test_model_uri_is_an_s3_version(uri: str) -> None:
    message = config_error({"modelship:modelUri": uri})
    assert f"modelship:modelUri = '{uri}': a model version in this stack's bucket: s3://" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("modelship:keepModelStore", "maybe", "must be true or false"),
        ("modelship:trainingDataDays", 0, "must be an integer from 1 to 3650"),
        ("modelship:trainingTimeoutMinutes", 2, "must be an integer from 5 to 1440"),
        ("modelship:trainingData", "insurance.csv", "a CSV file under data/"),
    ],
)
def test_model_store_keys(key: str, value: object, expected: str) -> None:
    assert f"{key} = '{value}': {expected}" in config_error({key: value})


def test_memory_in_whole_mib() -> None:
    message = config_error({"modelship:cpu": "1", "modelship:memory": "2G"})
    assert "modelship:memory = '2G': on Fargate must be whole MiB" in message


@pytest.mark.parametrize("region", ["us-east", "US-EAST-1", "useast1", "eu-west-3a"])
def test_region_format(region: str) -> None:
    message = config_error({"aws:region": region})
    assert f"aws:region = '{region}': an AWS region such as us-east-1" in message


@pytest.mark.parametrize(
    ("region", "zones", "expected"),
    [
        (
            "us-west-1",
            ["us-west-1a", "us-west-1b"],
            "two different availability zone ids of us-west-1, like usw1-az1",
        ),
        ("us-west-1", ["usw1-az1"], "two different availability zone ids"),
        ("us-west-1", ["usw1-az1", "usw1-az1"], "two different availability zone ids"),
        ("us-west-1", ["use1-az1", "use1-az2"], "two different availability zone ids of us-west-1"),
        (
            "us-west-1",
            ["usw1-az1", "usw1-az2"],
            "Fargate runs in us-west-1 only in usw1-az1, usw1-az3 (usw1-az2 is not one of them)",
        ),
        (
            "ap-northeast-1",
            "apne1-az3,apne1-az1",
            "Fargate runs in ap-northeast-1 only in apne1-az1, apne1-az2, apne1-az4",
        ),
    ],
)
def test_availability_zone_ids(region: str, zones: object, expected: str) -> None:
    message = config_error({"aws:region": region, "modelship:availabilityZoneIds": zones})
    assert "modelship:availabilityZoneIds = " in message
    assert expected in message


def test_vpc_cidr_format() -> None:
    message = config_error({"modelship:vpcCidr": "10.0.0.1/16"})
    assert "modelship:vpcCidr = '10.0.0.1/16': an IPv4 CIDR block without host bits" in message


def test_vpc_cidr_private() -> None:
    message = config_error({"modelship:vpcCidr": "8.8.0.0/16"})
    assert "modelship:vpcCidr = '8.8.0.0/16': must be a private (RFC 1918) range" in message


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.0.0.0/24"])
def test_vpc_cidr_size(cidr: str) -> None:
    message = config_error({"modelship:vpcCidr": cidr})
    assert f"modelship:vpcCidr = '{cidr}': must be a /16 to /22 block" in message


def test_vpc_cidr_is_split_into_four_subnets() -> None:
    settings = FargateSettings(vpc_cidr="172.20.0.0/20")
    assert settings.subnet_cidrs == (
        "172.20.0.0/24",
        "172.20.1.0/24",
        "172.20.2.0/24",
        "172.20.3.0/24",
    )


@pytest.mark.parametrize("value", ["anywhere", "[1.2.3.4/8]", "[]", "[1]"])
def test_ingress_cidrs(value: str) -> None:
    message = config_error({"modelship:ingressCidrs": value})
    assert f"modelship:ingressCidrs = '{value}': a list of IPv4 CIDR blocks" in message


def test_ingress_cidrs_as_comma_separated_string() -> None:
    run = run_stack("fargate", {"modelship:ingressCidrs": "203.0.113.0/24, 198.51.100.7/32"})
    cidrs = {
        r.inputs["cidrIpv4"]
        for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if "cidrIpv4" in r.inputs
    }
    assert cidrs == {"203.0.113.0/24", "198.51.100.7/32"}


def test_certificate_arn_format() -> None:
    message = config_error({"modelship:certificateArn": "my-cert"})
    assert "modelship:certificateArn = 'my-cert': an ACM certificate ARN" in message


def test_certificate_must_be_in_the_stack_region() -> None:
    message = config_error({"modelship:certificateArn": CERTIFICATE, "aws:region": "eu-west-1"})
    assert "must be an ACM certificate in the stack's region eu-west-1" in message


def test_container_insights_choice() -> None:
    message = config_error({"modelship:containerInsights": "on"})
    assert (
        "modelship:containerInsights = 'on': must be one of disabled, enabled, enhanced" in message
    )


@pytest.mark.parametrize("days", ["10", "forever", "0"])
def test_log_retention(days: str) -> None:
    message = config_error({"modelship:logRetentionDays": days})
    assert f"modelship:logRetentionDays = '{days}': must be one of 1, 3, 5, 7, 14, 30" in message


def test_spot_needs_x86() -> None:
    message = config_error({"modelship:spot": True, "modelship:platform": "linux/arm64"})
    assert "modelship:spot = 'true': Fargate Spot runs only X86_64 tasks" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("modelship:healthCheckGraceSeconds", -1, "must be an integer from 0 to 3600"),
        ("modelship:deregistrationDelaySeconds", 4000, "must be an integer from 0 to 3600"),
        ("modelship:requestsPerTarget", 0, "must be an integer from 1 to 1000000"),
        ("modelship:privateSubnets", "sometimes", "must be true or false"),
        ("modelship:apiKeyStore", "vault", "must be one of ssm, secretsmanager"),
    ],
)
def test_ranges_and_choices(key: str, value: object, expected: str) -> None:
    assert f"{key} = '{value}': {expected}" in config_error({key: value})


def test_stop_timeout_limit() -> None:
    message = config_error({"modelship:shutdownGraceSeconds": 115})
    assert "modelship:shutdownGraceSeconds = '115': on Fargate must be at most 110" in message


def test_task_policy_arns() -> None:
    message = config_error({"modelship:taskPolicyArns": "AmazonS3ReadOnlyAccess"})
    assert (
        "modelship:taskPolicyArns = 'AmazonS3ReadOnlyAccess': a list of IAM policy ARNs" in message
    )


def test_api_key_secret_arn_format() -> None:
    message = config_error({"modelship:apiKeySecretArn": "my-secret"})
    assert (
        "modelship:apiKeySecretArn = 'my-secret': the full ARN of a Secrets Manager secret"
        in message
    )


def test_only_one_api_key_source() -> None:
    message = config_error(
        {"modelship:apiKeySecretArn": SSM_SECRET}, secrets={"modelship:apiKey": "k"}
    )
    assert (
        f"modelship:apiKeySecretArn = '{SSM_SECRET}': set only one of modelship:apiKey" in message
    )


def test_image_tag_format() -> None:
    message = config_error({"modelship:imageTag": "-latest"})
    assert "modelship:imageTag = '-latest': a Docker tag" in message


def test_keys_of_other_targets_are_rejected() -> None:
    message = config_error({"modelship:clusterMode": "autopilot"})
    assert "modelship:clusterMode = (not set): unknown key for this target" in message


def test_all_problems_at_once() -> None:
    message = config_error(
        {"aws:region": "mars", "modelship:vpcCidr": "1.0.0.0/16", "modelship:logRetentionDays": 2}
    )
    assert message.count("\n  - ") == 3
    assert "pulumi config set <key> <value> -s fargate" in message


def test_every_key_is_documented() -> None:
    from infra import settings
    from infra.core import model_store
    from infra.targets.fargate import config
    from tests.infra.harness import REPO_ROOT

    doc = (REPO_ROOT / "docs" / "fargate.md").read_text()
    keys = {
        value
        for module in (settings, config, model_store)
        for name, value in vars(module).items()
        if name.startswith("KEY_") and isinstance(value, str)
    } - {settings.KEY_TARGET}
    missing = sorted(key for key in keys if f"`{key}`" not in doc)
    assert not missing, f"docs/fargate.md does not describe {missing}"

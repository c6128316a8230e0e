"""Config validation: each rule fails `pulumi preview` with the key, the value, what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import (
    ConfigError,
    ConfigReader,
    parse_cpu_millicores,
    parse_memory_bytes,
    parse_quantity,
)
from infra.targets.fargate.config import AWS_REGION
from infra.targets.fargate.sizes import check_fargate_size
from tests.infra.harness import run_stack

from .conftest import GKE_PROJECT


def config_error(overrides: dict[str, Any], unset: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        run_stack("gke", {**GKE_PROJECT, **overrides}, unset=unset)
    return str(info.value)


@pytest.mark.parametrize(
    ("value", "millicores"),
    [("500m", 500), ("0.5", 500), ("1", 1000), ("2", 2000), ("250m", 250), ("1.5", 1500)],
)
def test_cpu_quantities(value: str, millicores: int) -> None:
    assert parse_cpu_millicores(value) == millicores


@pytest.mark.parametrize(
    ("value", "size"), [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("536870912", 2**29)]
)
def test_memory_quantities(value: str, size: int) -> None:
    assert parse_memory_bytes(value) == size


@pytest.mark.parametrize("value", ["", "abc", "1.2.3", "500 m", "-1", "1x", "Mi", " 1"])
def test_invalid_quantities_are_rejected(value: str) -> None:
    with pytest.raises(ValueError, match=r".*"):
        parse_quantity(value)


@pytest.mark.parametrize("value", ["0", "0.0001", "100u", "half"])
def test_invalid_cpu_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match=r".*"):
        parse_cpu_millicores(value)


@pytest.mark.parametrize("value", ["512m", "1Ki", "0.5Mi", "lots"])
def test_invalid_memory_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match=r".*"):
        parse_memory_bytes(value)


def test_unknown_target_lists_the_allowed_targets() -> None:
    message = config_error({"modelship:target": "azure"})
    assert "modelship:target = 'azure': must be one of gke" in message


def test_missing_target() -> None:
    assert "modelship:target = (not set): must be one of gke" in config_error(
        {}, unset=("modelship:target",)
    )


def test_replicas_below_one() -> None:
    assert "modelship:minReplicas = '0': must be an integer from 1 to 100" in config_error(
        {"modelship:minReplicas": 0}
    )


def test_max_below_min() -> None:
    message = config_error({"modelship:minReplicas": 3, "modelship:maxReplicas": 2})
    assert "modelship:maxReplicas = '2': must be >= modelship:minReplicas (3)" in message


def test_replicas_not_a_number() -> None:
    assert "modelship:maxReplicas = 'many': must be an integer" in config_error(
        {"modelship:maxReplicas": "many"}
    )


def test_bad_cpu_string() -> None:
    message = config_error({"modelship:cpu": "half"})
    assert "modelship:cpu = 'half': a Kubernetes CPU quantity" in message


def test_bad_memory_string() -> None:
    message = config_error({"modelship:memory": "512MB"})
    assert "modelship:memory = '512MB': a Kubernetes memory quantity" in message


def test_all_problems_are_reported_at_once() -> None:
    message = config_error(
        {"modelship:minReplicas": 0, "modelship:cpu": "x", "modelship:logLevel": "loud"}
    )
    assert "modelship:minReplicas" in message
    assert "modelship:cpu" in message
    assert (
        "modelship:logLevel = 'loud': must be one of critical, error, warning, info, debug"
        in message
    )
    assert "pulumi config set <key> <value> -s gke" in message


def test_misspelled_key_is_rejected() -> None:
    message = config_error({"modelship:minReplica": 1})
    assert "modelship:minReplica = (not set): unknown key for this target; known keys:" in message
    assert "modelship:minReplicas" in message


def test_boolean_key() -> None:
    assert "modelship:scaleToZero = 'maybe': must be true or false" in config_error(
        {"modelship:scaleToZero": "maybe"}
    )


def test_cpu_target_range() -> None:
    message = config_error({"modelship:cpuTargetPercent": 150})
    assert "modelship:cpuTargetPercent = '150': must be an integer from 10 to 100" in message


def test_platform_choice() -> None:
    message = config_error({"modelship:platform": "windows/amd64"})
    assert (
        "modelship:platform = 'windows/amd64': must be one of linux/amd64, linux/arm64" in message
    )


# --------------------------------------------------------------------------- gke section


def test_project_is_required() -> None:
    message = config_error({}, unset=("gcp:project",))
    assert "gcp:project = (not set): required; a Google Cloud project id" in message
    assert "pulumi config set gcp:project <id>" in message


def test_project_id_format() -> None:
    assert "gcp:project = 'My_Project': a Google Cloud project id" in config_error(
        {"gcp:project": "My_Project"}
    )


@pytest.mark.parametrize(
    "region", ["us-central", "US-CENTRAL1", "uscentral1", "us-central1-a", "europe_west4"]
)
def test_region_format(region: str) -> None:
    message = config_error({"gcp:region": region})
    assert f"gcp:region = '{region}': a Google Cloud region such as us-central1" in message


def test_cluster_mode() -> None:
    message = config_error({"modelship:clusterMode": "serverless"})
    assert "modelship:clusterMode = 'serverless': must be one of autopilot, standard" in message


def test_release_channel() -> None:
    message = config_error({"modelship:releaseChannel": "regular"})
    assert (
        "modelship:releaseChannel = 'regular': must be one of RAPID, REGULAR, STABLE, EXTENDED"
        in message
    )


def test_node_max_below_min() -> None:
    message = config_error(
        {
            "modelship:clusterMode": "standard",
            "modelship:nodeMinCount": 4,
            "modelship:nodeMaxCount": 2,
        }
    )
    assert "modelship:nodeMaxCount = '2': must be >= modelship:nodeMinCount (4)" in message


def test_machine_type() -> None:
    message = config_error({"modelship:machineType": "big box"})
    assert "modelship:machineType = 'big box': a Compute Engine machine type" in message


def test_domain() -> None:
    message = config_error({"modelship:domain": "https://api.example.com"})
    assert (
        "modelship:domain = 'https://api.example.com': a fully qualified lowercase domain name"
        in message
    )


def test_namespace() -> None:
    message = config_error({"modelship:namespace": "Model_Ship"})
    assert "modelship:namespace = 'Model_Ship': a DNS-1123 label" in message


def test_cidr_format() -> None:
    message = config_error({"modelship:subnetCidr": "10.10.0.1/20"})
    assert "modelship:subnetCidr = '10.10.0.1/20': an IPv4 CIDR block without host bits" in message


def test_cidrs_must_not_overlap() -> None:
    message = config_error({"modelship:servicesCidr": "10.16.0.0/20"})
    assert (
        "modelship:servicesCidr = '10.16.0.0/20': "
        "must not overlap modelship:podsCidr (10.16.0.0/14)" in message
    )


def test_cidrs_must_be_private() -> None:
    message = config_error({"modelship:subnetCidr": "8.8.0.0/20"})
    assert "modelship:subnetCidr = '8.8.0.0/20': must be a private (RFC 1918) range" in message


def test_autopilot_minimum_cpu() -> None:
    message = config_error({"modelship:cpu": "100m", "modelship:memory": "512Mi"})
    assert "modelship:cpu = '100m': on Autopilot must be from 250m to 30" in message


def test_autopilot_memory_ratio() -> None:
    message = config_error({"modelship:cpu": "2", "modelship:memory": "1Gi"})
    assert (
        "modelship:memory = '1Gi': on Autopilot must be 1 to 6.5 GiB per vCPU of modelship:cpu (2)"
        in message
    )


def test_standard_mode_accepts_small_pods() -> None:
    run = run_stack(
        "gke", {**GKE_PROJECT, "modelship:clusterMode": "standard", "modelship:cpu": "100m"}
    )
    assert run.one("gcp:container/nodePool:NodePool")


def test_keys_of_other_targets_are_rejected() -> None:
    message = config_error({"modelship:vpcCidr": "10.0.0.0/16"})
    assert "modelship:vpcCidr = (not set): unknown key for this target" in message


# ------------------------------------------------------------------ shared with other targets


def fargate_problems(cpu_millicores: int, memory_mib: int) -> list[str]:
    reader = ConfigReader("fargate", all_keys=[])
    check_fargate_size(reader, "modelship:cpu", "modelship:memory", cpu_millicores, memory_mib)
    return [p.render() for p in reader.problems]


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [
        (250, 512),
        (250, 2048),
        (500, 1024),
        (1000, 8192),
        (4000, 30720),
        (8000, 20480),
        (16000, 122880),
    ],
)
def test_fargate_sizes_offered(cpu: int, memory: int) -> None:
    assert fargate_problems(cpu, memory) == []


def test_fargate_size_messages() -> None:
    assert fargate_problems(500, 512) == [
        "modelship:memory = '512Mi': on Fargate with 500m CPU must be "
        "1024Mi, 2048Mi, 3072Mi, 4096Mi"
    ]
    assert fargate_problems(250, 1536) == [
        "modelship:memory = '1536Mi': on Fargate with 250m CPU must be 512Mi, 1024Mi, 2048Mi"
    ]
    assert fargate_problems(300, 1024) == [
        "modelship:cpu = '300m': on Fargate must be 250m, 500m, 1, 2, 4, 8 or 16"
    ]
    (message,) = fargate_problems(8000, 18000)
    assert "16384Mi to 61440Mi in steps of 4096Mi" in message


@pytest.mark.parametrize(
    ("region", "ok"),
    [
        ("us-east-1", True),
        ("eu-west-3", True),
        ("us-gov-west-1", True),
        ("us-east1", False),
        ("useast-1", False),
    ],
)
def test_aws_region_format(region: str, ok: bool) -> None:
    assert bool(AWS_REGION.fullmatch(region)) is ok

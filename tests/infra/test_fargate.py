"""What matters in the fargate stack's resource graph, checked on the declarations under mocks."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.core.build_context import content_tag
from infra.targets.fargate.iam import EXECUTION_POLICY
from tests.infra.harness import MOCK_AWS_ACCOUNT, MOCK_ECR_PASSWORD, REPO_ROOT, StackRun, run_stack

from .conftest import SERVICE_CONTRACT_ENV
from .fargate import (
    API_KEY,
    ATTACHMENT,
    BUCKET,
    CERTIFICATE,
    EGRESS_RULE,
    INGRESS_RULE,
    LISTENER,
    REPOSITORY,
    ROLE,
    ROLE_POLICY,
    SCALING_POLICY,
    SCALING_TARGET,
    SECURITY_GROUP,
    SERVICE,
    SSM_SECRET,
    TARGET_GROUP,
    TASK_DEFINITION,
    TASK_POLICY,
    VARIANTS,
    containers,
    fargate_run,
    inputs,
    named,
    service_image,
    service_task,
    training_task,
)

STANDARD_TAGS = {"project": "modelship", "stack": "fargate", "managed-by": "pulumi"}
REGISTRY = f"{MOCK_AWS_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
HEALTH_CHECK = [
    "CMD",
    "python",
    "-c",
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)",
]


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> StackRun:
    return fargate_run(str(request.param))


@pytest.fixture(scope="module")
def run() -> StackRun:
    return fargate_run()


# --------------------------------------------------------------------------- image and registry


def test_task_runs_the_image_by_digest(variant: StackRun) -> None:
    ref = service_image(variant).state["ref"]
    assert ref.startswith(f"{REGISTRY}/modelship-fargate@sha256:")
    assert {c["image"] for c in containers(variant).values()} == {ref}
    assert variant.outputs["image"] == ref


def test_image_is_pushed_to_ecr_with_a_content_tag(run: StackRun) -> None:
    image = inputs(service_image(run))
    assert image["push"] is True
    assert image["platforms"] == ["linux/amd64"]
    (tag,) = image["tags"]
    repository, _, name = tag.rpartition(":")
    assert repository == f"{REGISTRY}/modelship-fargate"  # never Docker Hub
    assert re.fullmatch(r"src-[0-9a-f]{16}", name), "a fixed tag is refused by immutable ECR"
    (login,) = image["registries"]
    assert login == {"address": REGISTRY, "username": "AWS", "password": MOCK_ECR_PASSWORD}
    assert "registries" in service_image(run).secret_paths


def test_content_tag_follows_the_build_settings() -> None:
    amd = inputs(service_image(fargate_run()))["tags"][0]
    arm = inputs(service_image(fargate_run("arm64-policies")))["tags"][0]
    assert amd != arm
    pinned = run_stack("fargate", {"modelship:imageTag": "v1.2.3"})
    assert inputs(service_image(pinned))["tags"][0].endswith(":v1.2.3")


@pytest.mark.parametrize(
    ("registry", "repository"),
    [("-registry", "modelship-fargate"), ("-training-registry", "modelship-fargate-training")],
)
def test_registry_is_mutable_scanned_and_force_deleted(
    run: StackRun, registry: str, repository: str
) -> None:
    """The service's and the training image's repository, from the same component."""
    repo = inputs(run.named(f"modelship{registry}-repo"))
    assert repo["name"] == repository
    assert repo["imageTagMutability"] == "MUTABLE"  # see the test below
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["forceDelete"] is True
    lifecycle = run.named(f"modelship{registry}-lifecycle")
    policy = json.loads(inputs(lifecycle)["policy"])
    (rule,) = policy["rules"]
    assert rule["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": 10,
    }
    assert rule["action"] == {"type": "expire"}


# --------------------------------------------------------------------------- task definition


def test_task_definition_is_fargate_sized_and_linux_x86(run: StackRun) -> None:
    task = inputs(service_task(run))
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert (task["cpu"], task["memory"]) == ("512", "1024")  # strings, a pair Fargate offers
    assert task["runtimePlatform"] == {
        "operatingSystemFamily": "LINUX",
        "cpuArchitecture": "X86_64",
    }
    assert task["volumes"] == [{"name": "tmp"}]


def test_arm64_builds_and_runs_arm64() -> None:
    run = fargate_run("arm64-policies")
    assert inputs(service_task(run))["runtimePlatform"]["cpuArchitecture"] == "ARM64"
    assert inputs(service_image(run))["platforms"] == ["linux/arm64"]


def test_service_container_follows_the_contract(run: StackRun) -> None:
    api = containers(run)["api"]
    assert api["essential"] is True
    assert api["portMappings"][0]["containerPort"] == 8080
    assert api["user"] == "10001:10001"
    assert api["readonlyRootFilesystem"] is True
    assert api["mountPoints"] == [
        {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}
    ]
    assert api["healthCheck"]["command"] == HEALTH_CHECK
    assert api["stopTimeout"] <= 120
    assert api["linuxParameters"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e["value"] for e in api["environment"]}
    assert env == {
        **SERVICE_CONTRACT_ENV,
        # For boto3 when the service fetches a model version from S3.
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        # The monitoring signals as CloudWatch embedded-metric lines, by the task family.
        "MODELSHIP_CLOUDWATCH_METRICS": "true",
        "MODELSHIP_CLOUDWATCH_SERVICE": "modelship-fargate",
    }
    assert "secrets" not in api


def test_tmp_is_a_task_volume_the_image_declares(run: StackRun) -> None:
    """Fargate copies the image's /tmp permissions onto the volume only if the image declares
    the path a VOLUME; then UID 10001 can write there and no root helper container is needed."""
    by_name = containers(run)
    assert list(by_name) == ["api"]
    assert by_name["api"]["mountPoints"] == [
        {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}
    ]
    dockerfile = (REPO_ROOT / "service" / "Dockerfile").read_text()
    # Both images (service and training) inherit it from their shared base stage.
    base = dockerfile[dockerfile.index("AS runtime-base\n") : dockerfile.index("AS training\n")]
    assert 'VOLUME ["/tmp"]' in base
    assert "FROM runtime-base AS runtime\n" in dockerfile


def test_logs_go_to_the_log_group_with_retention(variant: StackRun) -> None:
    group = inputs(variant.one("aws:cloudwatch/logGroup:LogGroup"))
    assert group["retentionInDays"] == 14
    for container in containers(variant).values():
        log = container["logConfiguration"]
        assert log["logDriver"] == "awslogs"
        assert log["options"]["awslogs-group"] == group["name"]
        assert log["options"]["awslogs-region"] == "us-east-1"
    assert variant.outputs["log_group_name"] == group["name"]


# --------------------------------------------------------------------------- load balancer


def test_target_group_is_ip_with_the_readiness_check(variant: StackRun) -> None:
    group = inputs(variant.one(TARGET_GROUP))
    assert group["targetType"] == "ip"
    assert group["port"] == 8080
    assert group["deregistrationDelay"] == 30
    check = group["healthCheck"]
    assert (check["path"], check["port"], check["matcher"]) == ("/readyz", "traffic-port", "200")


def test_http_listener_forwards_without_a_certificate(run: StackRun) -> None:
    (listener,) = run.of_type(LISTENER)
    (action,) = inputs(listener)["defaultActions"]
    assert action["type"] == "forward"
    assert action["targetGroupArn"] == run.one(TARGET_GROUP).state["arn"]
    assert run.outputs["url"].startswith("http://")
    assert run.outputs["url"].endswith(".elb.amazonaws.com")


def test_https_with_a_certificate_and_redirect() -> None:
    run = fargate_run("https-ssm-key")
    http = inputs(named(run, LISTENER, "-http"))
    https = inputs(named(run, LISTENER, "-https"))
    (redirect,) = http["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}
    assert https["certificateArn"] == CERTIFICATE
    assert https["sslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    assert https["defaultActions"][0]["type"] == "forward"
    assert run.outputs["url"].startswith("https://")


def test_load_balancer_can_be_destroyed(run: StackRun) -> None:
    alb = inputs(run.one("aws:lb/loadBalancer:LoadBalancer"))
    assert alb["enableDeletionProtection"] is False
    assert alb["internal"] is False
    assert alb["dropInvalidHeaderFields"] is True
    public = {s.state["name"]: s for s in run.of_type("aws:ec2/subnet:Subnet")}
    assert len(alb["subnets"]) == 2
    assert all(name.startswith("modelship-network-public") for name in public)


# --------------------------------------------------------------------------- security groups


def _rules(run: StackRun, type_: str, group_suffix: str) -> list[dict[str, object]]:
    group = named(run, SECURITY_GROUP, group_suffix)
    ident = f"{group.state['name']}-id"
    return [inputs(r) for r in run.of_type(type_) if r.inputs["securityGroupId"] == ident]


def test_tasks_admit_only_the_load_balancer(variant: StackRun) -> None:
    alb_id = f"{named(variant, SECURITY_GROUP, '-alb').state['name']}-id"
    (ingress,) = _rules(variant, INGRESS_RULE, "-tasks")
    assert ingress["referencedSecurityGroupId"] == alb_id
    assert (ingress["fromPort"], ingress["toPort"], ingress["ipProtocol"]) == (8080, 8080, "tcp")
    assert "cidrIpv4" not in ingress and "cidrIpv6" not in ingress
    (egress,) = _rules(variant, EGRESS_RULE, "-tasks")
    assert (egress["fromPort"], egress["toPort"], egress["ipProtocol"]) == (443, 443, "tcp")


def test_load_balancer_talks_only_to_the_tasks(variant: StackRun) -> None:
    tasks_id = f"{named(variant, SECURITY_GROUP, '-tasks').state['name']}-id"
    (egress,) = _rules(variant, EGRESS_RULE, "-alb")
    assert egress["referencedSecurityGroupId"] == tasks_id
    assert (egress["fromPort"], egress["toPort"]) == (8080, 8080)


def test_load_balancer_ingress_from_the_configured_cidrs() -> None:
    default = {(r["fromPort"], r["cidrIpv4"]) for r in _rules(fargate_run(), INGRESS_RULE, "-alb")}
    assert default == {(80, "0.0.0.0/0")}
    https = {
        (r["fromPort"], r["cidrIpv4"])
        for r in _rules(fargate_run("https-ssm-key"), INGRESS_RULE, "-alb")
    }
    assert https == {
        (port, cidr) for port in (80, 443) for cidr in ("203.0.113.0/24", "198.51.100.0/24")
    }


def test_security_groups_have_no_inline_rules(variant: StackRun) -> None:
    for group in variant.of_type(SECURITY_GROUP):
        assert "ingress" not in group.inputs and "egress" not in group.inputs
        assert group.inputs["revokeRulesOnDelete"] is True


# --------------------------------------------------------------------------- ECS service


def test_service_rolls_back_a_failed_deployment(variant: StackRun) -> None:
    service = inputs(variant.one(SERVICE))
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["deploymentMinimumHealthyPercent"] == 100
    assert service["deploymentMaximumPercent"] == 200
    assert service["healthCheckGracePeriodSeconds"] == 60
    assert service["waitForSteadyState"] is True


def test_service_waits_for_the_listeners(variant: StackRun) -> None:
    service = variant.one(SERVICE)
    listeners = {r.urn for r in variant.of_type(LISTENER)}
    assert listeners and listeners <= set(service.dependencies)  # no service before its listener


def test_service_waits_for_the_execution_grants(variant: StackRun) -> None:
    service = variant.one(SERVICE)
    grants = {r.urn for r in variant.of_type(ATTACHMENT) if "execution" in r.name}
    # The service's own grants: not the training or batch tasks' (run later, by hand).
    grants |= {
        r.urn
        for r in variant.of_type(ROLE_POLICY)
        if "training" not in r.name and "batch" not in r.name
    }
    assert grants and grants <= set(service.dependencies)


def test_service_behind_the_target_group_in_public_subnets(run: StackRun) -> None:
    service = inputs(run.one(SERVICE))
    (lb,) = service["loadBalancers"]
    assert lb == {
        "targetGroupArn": run.one(TARGET_GROUP).state["arn"],
        "containerName": "api",
        "containerPort": 8080,
    }
    network = service["networkConfiguration"]
    assert network["assignPublicIp"] is True
    tasks_id = f"{named(run, SECURITY_GROUP, '-tasks').state['name']}-id"
    assert network["securityGroups"] == [tasks_id]
    public = {
        a.inputs["subnetId"]
        for a in run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
        if "-public-" in a.name
    }
    assert set(network["subnets"]) == public
    assert len(public) == 2
    assert service["capacityProviderStrategies"] == [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 0}
    ]
    assert run.outputs["service_name"] == run.one(SERVICE).state["name"]
    assert run.outputs["cluster_name"] == run.one("aws:ecs/cluster:Cluster").state["name"]


def test_autoscaling_owns_the_task_count(run: StackRun) -> None:
    service = run.one(SERVICE)
    assert service.ignore_changes == ("desiredCount",)  # the autoscaler owns the count
    assert service.inputs["desiredCount"] == 2
    target = inputs(run.one(SCALING_TARGET))
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 4)
    cluster = run.one("aws:ecs/cluster:Cluster").state["name"]
    assert target["resourceId"] == f"service/{cluster}/{service.state['name']}"
    policies = {
        p.inputs["targetTrackingScalingPolicyConfiguration"]["predefinedMetricSpecification"][
            "predefinedMetricType"
        ]: inputs(p)["targetTrackingScalingPolicyConfiguration"]
        for p in run.of_type(SCALING_POLICY)
    }
    assert set(policies) == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}
    assert policies["ECSServiceAverageCPUUtilization"]["targetValue"] == 70
    label = policies["ALBRequestCountPerTarget"]["predefinedMetricSpecification"]["resourceLabel"]
    alb = run.one("aws:lb/loadBalancer:LoadBalancer").state["arnSuffix"]
    group = run.one(TARGET_GROUP).state["arnSuffix"]
    assert label == f"{alb}/{group}"


def test_scale_to_zero_parks_the_service_and_keeps_the_rest() -> None:
    run = fargate_run("parked-spot")
    service = run.one(SERVICE)
    assert service.inputs["desiredCount"] == 0
    assert service.ignore_changes == ()
    assert run.of_type(SCALING_TARGET) == []
    assert run.of_type(SCALING_POLICY) == []
    assert len(run.of_type("aws:lb/loadBalancer:LoadBalancer")) == 1
    assert len(run.of_type("aws:ecs/cluster:Cluster")) == 1


def test_spot_is_a_capacity_provider_switch() -> None:
    strategy = inputs(fargate_run("parked-spot").one(SERVICE))["capacityProviderStrategies"]
    assert strategy == [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    providers = inputs(
        fargate_run().one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    )
    assert providers["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]


# --------------------------------------------------------------------------- network


def test_dedicated_vpc_over_two_zones(run: StackRun) -> None:
    vpc = inputs(run.one("aws:ec2/vpc:Vpc"))
    assert vpc["cidrBlock"] == "10.0.0.0/16"
    assert vpc["enableDnsHostnames"] is True
    subnets = [inputs(s) for s in run.of_type("aws:ec2/subnet:Subnet")]
    # By zone id (the same place in every account), the first two sorted: not by zone name.
    assert sorted(s["availabilityZoneId"] for s in subnets) == ["use1-az1", "use1-az2"]
    assert not any("availabilityZone" in s for s in subnets)
    assert all(s["mapPublicIpOnLaunch"] is False for s in subnets)
    assert "aws:index/getAvailabilityZones:getAvailabilityZones" in run.invokes
    (route,) = run.of_type("aws:ec2/route:Route")
    assert route.inputs["destinationCidrBlock"] == "0.0.0.0/0"
    assert "gatewayId" in route.inputs
    assert run.of_type("aws:ec2/natGateway:NatGateway") == []


# Where Fargate (Linux) runs, per AWS's "Supported Regions for Amazon ECS on AWS Fargate" table
# (read for this test; the harness's account also has the zone without Fargate in each region).
FARGATE_ZONES_FROM_AWS_TABLE = {
    "us-west-1": {"usw1-az1", "usw1-az3"},
    "ap-northeast-1": {"apne1-az1", "apne1-az2", "apne1-az4"},
}


@pytest.mark.parametrize("region", sorted(FARGATE_ZONES_FROM_AWS_TABLE))
def test_subnets_are_in_zones_where_fargate_runs(region: str) -> None:
    run = run_stack("fargate", {"aws:region": region, "modelship:privateSubnets": True})
    zones = [str(s.inputs["availabilityZoneId"]) for s in run.of_type("aws:ec2/subnet:Subnet")]
    assert len(zones) == 4 and len(set(zones)) == 2
    assert set(zones) <= FARGATE_ZONES_FROM_AWS_TABLE[region]


def test_configured_zone_ids_are_used_and_must_exist_in_the_account() -> None:
    run = run_stack("fargate", {"modelship:availabilityZoneIds": ["use1-az6", "use1-az4"]})
    subnets = {s.name: s.inputs["availabilityZoneId"] for s in run.of_type("aws:ec2/subnet:Subnet")}
    assert subnets == {
        "modelship-network-public-a": "use1-az6",
        "modelship-network-public-b": "use1-az4",
    }
    # In a process of its own: the error is raised inside an Output, and a program run that
    # fails there leaves outputs pending in the mock runtime that break the next run in the
    # same process (seen as this error in an unrelated fargate test).
    failing = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.infra.harness import run_stack; "
            "run_stack('fargate', {'modelship:availabilityZoneIds': ['use1-az1', 'use1-az9']})",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert failing.returncode != 0
    assert "use1-az9 not available to this account in us-east-1" in failing.stderr


def test_private_subnets_go_out_through_one_nat_gateway() -> None:
    run = fargate_run("private")
    nat = run.one("aws:ec2/natGateway:NatGateway")
    public_a = named(run, "aws:ec2/routeTableAssociation:RouteTableAssociation", "-public-a-rt")
    assert nat.inputs["subnetId"] == public_a.inputs["subnetId"]
    private = named(run, "aws:ec2/route:Route", "-private-default")
    assert private.inputs["natGatewayId"]
    service = run.one(SERVICE)
    network = inputs(service)["networkConfiguration"]
    assert network["assignPublicIp"] is False
    private_subnets = [s for s in run.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name]
    assert len(private_subnets) == 2
    assert {private.urn, nat.urn} <= set(service.dependencies)
    private_ids = {
        a.inputs["subnetId"]
        for a in run.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
        if "-private-" in a.name
    }
    assert set(network["subnets"]) == private_ids
    cidrs = sorted(s.inputs["cidrBlock"] for s in private_subnets)
    assert cidrs == ["10.0.32.0/20", "10.0.48.0/20"]


# --------------------------------------------------------------------------- IAM and secrets


def test_roles_are_least_privilege_by_default(run: StackRun) -> None:
    (attachment,) = run.of_type(ATTACHMENT)
    execution = named(run, ROLE, "-execution")
    assert attachment.inputs["role"] == execution.state["name"]
    assert attachment.inputs["policyArn"] == f"arn:aws:iam::aws:{EXECUTION_POLICY}"
    # Inline policies only for the model store (their content: test_model_store_access_*).
    policies = {p.name: p.inputs["role"] for p in run.of_type(ROLE_POLICY)}
    assert policies == {
        "modelship-roles-task-models": f"{named(run, ROLE, '-task').state['name']}-id",
        "modelship-roles-training-store": f"{named(run, ROLE, '-training').state['name']}-id",
        "modelship-batch-store": f"{named(run, ROLE, '-batch-role').state['name']}-id",
    }
    assert len(run.of_type(ROLE)) == 4
    for role in run.of_type(ROLE):
        assert "managedPolicyArns" not in role.inputs and "inlinePolicies" not in role.inputs
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Action"] == "sts:AssumeRole"
    for own_role in ("-task", "-training"):
        trust = json.loads(named(run, ROLE, own_role).inputs["assumeRolePolicy"])
        (statement,) = trust["Statement"]
        assert statement["Condition"] == {
            "StringEquals": {"aws:SourceAccount": MOCK_AWS_ACCOUNT},
            "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:us-east-1:{MOCK_AWS_ACCOUNT}:*"},
        }
    task = inputs(service_task(run))
    assert task["executionRoleArn"] == execution.state["arn"]
    assert task["taskRoleArn"] == named(run, ROLE, "-task").state["arn"]
    training = inputs(training_task(run))
    assert training["executionRoleArn"] == execution.state["arn"]
    assert training["taskRoleArn"] == named(run, ROLE, "-training").state["arn"]


def test_task_policies_go_to_the_task_role_only() -> None:
    run = fargate_run("arm64-policies")
    task_role = named(run, ROLE, "-task").state["name"]
    attached = {(a.inputs["role"], a.inputs["policyArn"]) for a in run.of_type(ATTACHMENT)}
    assert (task_role, TASK_POLICY) in attached
    assert len(attached) == 2


def test_api_key_in_ssm_reaches_the_container_as_a_secret() -> None:
    run = fargate_run("https-ssm-key")
    parameter = run.one("aws:ssm/parameter:Parameter")
    assert parameter.inputs["type"] == "SecureString"
    assert parameter.inputs["value"] == API_KEY
    assert "value" in parameter.secret_paths
    api = containers(run)["api"]
    assert api["secrets"] == [{"name": "MODELSHIP_API_KEY", "valueFrom": parameter.state["arn"]}]
    assert "MODELSHIP_API_KEY_FILE" not in {e["name"] for e in api["environment"]}
    assert API_KEY not in service_task(run).inputs["containerDefinitions"]
    policy = named(run, ROLE_POLICY, "-execution-api-key")
    document = json.loads(policy.inputs["policy"])
    (statement,) = document["Statement"]
    assert statement["Action"] == ["ssm:GetParameters"]
    assert statement["Resource"] == parameter.state["arn"]
    assert policy.inputs["role"] == f"{named(run, ROLE, '-execution').state['name']}-id"


def test_api_key_in_secrets_manager_is_deleted_without_recovery_window() -> None:
    run = fargate_run("secretsmanager-key")
    secret = run.one("aws:secretsmanager/secret:Secret")
    assert secret.inputs["recoveryWindowInDays"] == 0
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.inputs["secretString"] == API_KEY
    assert "secretString" in version.secret_paths
    (statement,) = json.loads(named(run, ROLE_POLICY, "-execution-api-key").inputs["policy"])[
        "Statement"
    ]
    assert statement == {
        "Sid": "ReadTheApiKey",
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": secret.state["arn"],
    }
    assert version.urn in run.one(SERVICE).dependencies


def test_a_secret_of_your_own() -> None:
    run = fargate_run("own-secret")
    assert run.of_type("aws:ssm/parameter:Parameter") == []
    assert containers(run)["api"]["secrets"] == [
        {"name": "MODELSHIP_API_KEY", "valueFrom": SSM_SECRET}
    ]
    (statement,) = json.loads(named(run, ROLE_POLICY, "-execution-api-key").inputs["policy"])[
        "Statement"
    ]
    assert statement["Resource"] == SSM_SECRET


# --------------------------------------------------------------------------- tags, names, invokes


def _takes_tags(type_: str) -> bool:
    """Whether the pulumi_aws resource class of `type_` has a `tags` argument."""
    _, path, name = type_.split(":")
    package, module = path.split("/")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", module).lower()
    cls = getattr(importlib.import_module(f"pulumi_aws.{package}.{snake}"), name)
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_every_resource_that_takes_tags_is_tagged(variant: StackRun) -> None:
    checked = 0
    for r in variant.resources:
        if r.type.startswith("aws:") and _takes_tags(r.type):
            assert STANDARD_TAGS.items() <= r.inputs.get("tags", {}).items(), r.name
            checked += 1
        elif r.type == "docker-build:index:Image":
            labels = {k.removeprefix("org.modelship."): v for k, v in r.inputs["labels"].items()}
            assert STANDARD_TAGS.items() <= labels.items()
    assert checked >= 20


def test_components_follow_the_naming_convention(run: StackRun) -> None:
    for r in run.resources:
        if r.type.startswith("modelship:"):
            assert r.type.split(":")[1] in {"fargate", "image"}
            assert r.name.startswith("modelship-")
        else:
            parent = run.by_urn(r.parent)
            assert r.name.startswith(parent.name + "-"), r.name


def test_every_invoke_was_answered(variant: StackRun) -> None:
    assert set(variant.invokes) == {
        "aws:index/getAvailabilityZones:getAvailabilityZones",
        "aws:index/getCallerIdentity:getCallerIdentity",
        "aws:ecr/getAuthorizationToken:getAuthorizationToken",
    }


def test_outputs(run: StackRun) -> None:
    assert set(run.outputs) >= {"url", "image", "cluster_name", "service_name", "log_group_name"}
    assert set(run.outputs) >= {"model_store", "training_image", "train_command", "logs_command"}
    assert run.outputs["task_definition"] == run.one(SERVICE).inputs["taskDefinition"]


def test_preview_needs_no_docker() -> None:
    preview = run_stack("fargate", preview=True)
    assert preview.outputs.get("image") is None
    assert preview.of_type(TASK_DEFINITION)


def test_plan_masks_the_registry_password_and_pins_the_tag() -> None:
    from tests.infra import plan

    text = plan.render(plan.run_for_plan("fargate"))
    assert MOCK_ECR_PASSWORD not in text
    assert "registries[0].password = [secret]" in text
    assert "/modelship-fargate:plan" in text  # a fixed tag: source edits do not touch the plan


@pytest.mark.parametrize(
    ("environment", "protected"), [("development", False), ("production", True)]
)
def test_deletion_follows_the_stack_environment(environment: str, protected: bool) -> None:
    run = run_stack("fargate", {"modelship:environment": environment})
    alb = inputs(run.one("aws:lb/loadBalancer:LoadBalancer"))
    assert alb["enableDeletionProtection"] is protected
    for repository in run.of_type(REPOSITORY):
        assert inputs(repository)["forceDelete"] is not protected


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"modelship:environment": "production"},
        {"modelship:environment": "production", "modelship:keepModelStore": False},
        {"modelship:keepModelStore": True},
    ],
    ids=["development", "production", "production-not-kept", "kept"],
)
def test_destroy_treats_everything_that_holds_data_alike(overrides: dict[str, object]) -> None:
    """A `pulumi destroy` neither fails on a non-empty store nor deletes one store and fails on
    the other: the bucket and both ECR repositories are all force-deleted, or all kept (left in
    the account, out of the state)."""
    run = run_stack("fargate", overrides)
    holders = [*run.of_type(REPOSITORY), *run.of_type(BUCKET)]
    assert len(holders) == 3
    force = {"forceDelete", "forceDestroy"}
    outcomes = set()
    for holder in holders:
        forced = any(inputs(holder).get(key) is True for key in force)
        assert forced != holder.retain_on_delete, holder.name  # deletable, or kept: never stuck
        outcomes.add(holder.retain_on_delete)
    assert len(outcomes) == 1, "one behaviour for everything that holds data"
    lifecycles = run.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert {r.retain_on_delete for r in lifecycles} == outcomes


def test_a_rebuild_the_content_tag_cannot_see_can_push_its_tag_again(tmp_path: Path) -> None:
    """pulumi-docker-build rebuilds when its context hash changes, and that hash includes file
    modes (provider/internal/context.go, hashFile writes `fileMode.String()`); the content tag
    hashes paths and bytes only. The same sources with another umask (a laptop, then CI) are a
    rebuild under the same tag, so the repository must accept a tag pushed again."""
    (tmp_path / "app.py").write_text("print('hello')\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    (tmp_path / "app.py").chmod(0o644)
    before = content_tag(tmp_path, dockerfile, {})
    (tmp_path / "app.py").chmod(0o664)
    assert content_tag(tmp_path, dockerfile, {}) == before  # the builder's hash differs here
    for repository in fargate_run().of_type(REPOSITORY):
        assert inputs(repository)["imageTagMutability"] == "MUTABLE", repository.name

"""The fargate model store and training job: the S3 bucket, the IAM split between serving and
training, the training task definition and the `aws ecs run-task` line a user runs.

Outside references: botocore's S3 and ECS API models (every bucket setting as its S3 call, the
training task as RegisterTaskDefinition, the exported command's parameters as RunTask) and
parliament for the bucket policy. The role policies are linted with parliament for every variant
in test_fargate_references.py.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from botocore.validate import ParamValidator

from infra.core.model_store import NONCURRENT_VERSION_DAYS
from tests.infra.harness import MOCK_AWS_ACCOUNT, StackRun, run_stack

from .fargate import (
    BUCKET,
    EGRESS_RULE,
    IMAGE,
    INGRESS_RULE,
    MODEL_URI,
    REPOSITORY,
    ROLE,
    ROLE_POLICY,
    SECURITY_GROUP,
    SERVICE,
    definitions,
    fargate_run,
    inputs,
    named,
    service_task,
    training_image,
    training_task,
)
from .test_fargate_references import assert_valid, input_shape, model_problems, parliament_findings

VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_SETTINGS = (VERSIONING, ENCRYPTION, PUBLIC_ACCESS, OWNERSHIP, BUCKET_POLICY, LIFECYCLE)


@pytest.fixture(scope="module")
def run() -> StackRun:
    return fargate_run()


def bucket_name(run: StackRun) -> str:
    return str(run.one(BUCKET).state["bucket"])


def bucket_arn(run: StackRun) -> str:
    return str(run.one(BUCKET).state["arn"])


def api_params(value: Any) -> Any:
    """Pulumi's camelCase inputs as the S3 API's PascalCase members (`id` → `ID`, ...)."""
    special = {"id": "ID", "sseAlgorithm": "SSEAlgorithm", "kmsMasterKeyId": "KMSMasterKeyID"}
    if isinstance(value, dict):
        return {special.get(k, k[:1].upper() + k[1:]): api_params(v) for k, v in value.items()}
    if isinstance(value, list):
        return [api_params(v) for v in value]
    return value


# --------------------------------------------------------------------------- the bucket


def test_bucket_is_named_from_the_stack_and_emptied_on_destroy(run: StackRun) -> None:
    bucket = run.one(BUCKET)
    assert inputs(bucket)["bucketPrefix"] == "modelship-fargate-models-"
    assert bucket_name(run).startswith("modelship-fargate-models-")
    assert inputs(bucket)["forceDestroy"] is True
    assert not any(r.retain_on_delete for r in run.resources)
    assert run.outputs["model_store"] == f"s3://{bucket_name(run)}"


@pytest.mark.parametrize(
    ("overrides", "kept"),
    [
        ({"modelship:environment": "production"}, True),
        ({"modelship:environment": "production", "modelship:keepModelStore": False}, False),
        ({"modelship:keepModelStore": True}, True),
    ],
)
def test_keep_model_store_retains_the_bucket_and_its_settings(
    overrides: dict[str, object], kept: bool
) -> None:
    """Kept: no force-destroy, and `pulumi destroy` leaves the bucket *and* its settings (deleting
    the versioning resource would suspend versioning, the public access block would reopen it)."""
    run = run_stack("fargate", overrides)
    assert inputs(run.one(BUCKET))["forceDestroy"] is not kept
    for type_ in (BUCKET, *BUCKET_SETTINGS):
        assert run.one(type_).retain_on_delete is kept, type_
    # What else holds data (the ECR repositories) follows the same rule; nothing else is kept.
    kept_elsewhere = {
        r.type for r in run.resources if r.retain_on_delete and not r.type.startswith("aws:s3")
    }
    assert kept_elsewhere == (
        {"aws:ecr/repository:Repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy"}
        if kept
        else set()
    )


def test_bucket_settings_apply_to_the_bucket(run: StackRun) -> None:
    for type_ in BUCKET_SETTINGS:
        assert inputs(run.one(type_))["bucket"] == bucket_name(run), type_


def test_versioning_encryption_ownership_and_no_public_access(run: StackRun) -> None:
    assert inputs(run.one(VERSIONING))["versioningConfiguration"] == {"status": "Enabled"}
    (rule,) = inputs(run.one(ENCRYPTION))["rules"]
    assert rule == {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
    block = inputs(run.one(PUBLIC_ACCESS))
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert {flag: block[flag] for flag in flags} == dict.fromkeys(flags, True)
    assert inputs(run.one(OWNERSHIP))["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_bucket_policy_refuses_plain_http(run: StackRun) -> None:
    policy = json.loads(inputs(run.one(BUCKET_POLICY))["policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [bucket_arn(run), f"{bucket_arn(run)}/*"]
    # A deny-only policy is not "public": it does not fight the public access block.
    assert parliament_findings(policy) == []
    policy_urn = run.one(BUCKET_POLICY).urn
    assert run.one(PUBLIC_ACCESS).urn in run.by_urn(policy_urn).dependencies


def test_lifecycle_expires_old_data_versions_and_uploads(run: StackRun) -> None:
    rules = {r["id"]: r for r in inputs(run.one(LIFECYCLE))["rules"]}
    assert rules["expire-training-data"]["filter"] == {"prefix": "data/"}
    assert rules["expire-training-data"]["expiration"] == {"days": 90}
    noncurrent = rules["expire-noncurrent-versions"]
    assert noncurrent["noncurrentVersionExpiration"] == {"noncurrentDays": NONCURRENT_VERSION_DAYS}
    assert rules["abort-incomplete-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 1
    }
    assert {r["status"] for r in rules.values()} == {"Enabled"}
    # Nothing ever expires under models/ by age: a deployed version must not vanish.
    assert all(r["filter"].get("prefix") != "models/" for r in rules.values())
    assert rules["expire-batch-outputs"]["filter"] == {"prefix": "outputs/"}
    assert rules["expire-batch-outputs"]["expiration"] == {"days": 30}
    days = run_stack("fargate", {"modelship:trainingDataDays": 30, "modelship:batchOutputDays": 7})
    (data_rule,) = [r for r in inputs(days.one(LIFECYCLE))["rules"] if r["id"].endswith("data")]
    assert data_rule["expiration"] == {"days": 30}
    (outputs_rule,) = [
        r for r in inputs(days.one(LIFECYCLE))["rules"] if r["id"].endswith("outputs")
    ]
    assert outputs_rule["expiration"] == {"days": 7}


def test_bucket_settings_are_valid_s3_calls(run: StackRun) -> None:
    name = bucket_name(run)
    calls: dict[str, dict[str, Any]] = {
        "PutBucketVersioning": {
            "Bucket": name,
            "VersioningConfiguration": api_params(
                inputs(run.one(VERSIONING))["versioningConfiguration"]
            ),
        },
        "PutBucketEncryption": {
            "Bucket": name,
            "ServerSideEncryptionConfiguration": {
                "Rules": api_params(inputs(run.one(ENCRYPTION))["rules"])
            },
        },
        "PutPublicAccessBlock": {
            "Bucket": name,
            "PublicAccessBlockConfiguration": api_params(
                {k: v for k, v in inputs(run.one(PUBLIC_ACCESS)).items() if k != "bucket"}
            ),
        },
        "PutBucketOwnershipControls": {
            "Bucket": name,
            "OwnershipControls": {"Rules": [api_params(inputs(run.one(OWNERSHIP))["rule"])]},
        },
        "PutBucketLifecycleConfiguration": {
            "Bucket": name,
            "LifecycleConfiguration": {"Rules": api_params(inputs(run.one(LIFECYCLE))["rules"])},
        },
        "PutBucketPolicy": {"Bucket": name, "Policy": inputs(run.one(BUCKET_POLICY))["policy"]},
        "CreateBucket": {"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"},
    }
    for operation, params in calls.items():
        assert_valid("s3", operation, params)


def test_the_s3_check_is_real(run: StackRun) -> None:
    """A wrong member name and a wrong enum value are caught."""
    shape = input_shape("s3", "PutBucketLifecycleConfiguration")
    rules = api_params(inputs(run.one(LIFECYCLE))["rules"])
    rules[0]["Expiration"]["Day"] = 3
    params = {"Bucket": "b", "LifecycleConfiguration": {"Rules": rules}}
    assert "Day" in ParamValidator().validate(params, shape).generate_report()
    encryption = {
        "Bucket": "b",
        "ServerSideEncryptionConfiguration": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES-256"}}]
        },
    }
    assert list(model_problems(encryption, input_shape("s3", "PutBucketEncryption")))


# --------------------------------------------------------------------------- IAM


def test_serving_role_reads_only_model_versions(run: StackRun) -> None:
    arn = bucket_arn(run)
    policy = named(run, ROLE_POLICY, "-task-models")
    assert policy.inputs["role"] == f"{named(run, ROLE, '-task').state['name']}-id"
    assert json.loads(policy.inputs["policy"])["Statement"] == [
        {
            "Sid": "ReadModels",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{arn}/models/*",
        },
        {
            # Without ListBucket a missing version is a 403, not "does not exist".
            "Sid": "ListOnlyModels",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": arn,
            "Condition": {"StringLike": {"s3:prefix": ["models/*"]}},
        },
    ]
    # The service's first task needs the grant: the service waits for it.
    assert policy.urn in run.one(SERVICE).dependencies


def test_training_role_reads_data_and_models_and_writes_models_only(run: StackRun) -> None:
    arn = bucket_arn(run)
    policy = named(run, ROLE_POLICY, "-training-store")
    assert policy.inputs["role"] == f"{named(run, ROLE, '-training').state['name']}-id"
    assert json.loads(policy.inputs["policy"])["Statement"] == [
        {
            "Sid": "ReadDataAndModels",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{arn}/data/*", f"{arn}/models/*"],
        },
        {
            "Sid": "WriteModels",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": f"{arn}/models/*",
        },
        {
            "Sid": "ListOnlyDataAndModels",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": arn,
            "Condition": {"StringLike": {"s3:prefix": ["data/*", "models/*"]}},
        },
    ]


@pytest.mark.parametrize("variant", ["default", "arm64-policies", "https-ssm-key"])
def test_no_policy_deletes_or_grants_everything(variant: str) -> None:
    run = fargate_run(variant)
    for policy in run.of_type(ROLE_POLICY):
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                assert "*" not in action and "Delete" not in action, (policy.name, action)
            for resource in [resources] if isinstance(resources, str) else resources:
                assert resource != "*" and not resource.endswith(":*"), (policy.name, resource)


def test_configured_task_policies_stay_with_the_service_role() -> None:
    run = fargate_run("arm64-policies")
    training_role = named(run, ROLE, "-training").state["name"]
    assert all(
        a.inputs["role"] != training_role
        for a in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    )


# --------------------------------------------------------------------------- training task


def test_training_image_is_the_training_stage_in_its_own_repository(run: StackRun) -> None:
    image = inputs(training_image(run))
    assert image["target"] == "training"
    assert image["push"] is True
    (tag,) = image["tags"]
    repository = run.named("modelship-training-registry-repo")
    assert tag.rpartition(":")[0] == repository.state["repositoryUrl"]
    assert (
        image["registries"][0]["address"] == f"{MOCK_AWS_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    )
    ref = training_image(run).state["ref"]
    assert ref.startswith(repository.state["repositoryUrl"] + "@sha256:")
    assert run.outputs["training_image"] == ref
    assert len(run.of_type(IMAGE)) == len(run.of_type(REPOSITORY)) == 2
    # The serving image is unchanged: the default (last) stage.
    assert "target" not in inputs(run.named("modelship-image-build"))


def test_training_task_definition(run: StackRun) -> None:
    task = inputs(training_task(run))
    assert task["family"] == "modelship-fargate-train"
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert (task["cpu"], task["memory"]) == ("1024", "2048")  # trainingCpu 1, trainingMemory 2Gi
    assert task["runtimePlatform"]["cpuArchitecture"] == "X86_64"
    assert task["volumes"] == [{"name": "tmp"}]
    assert task["executionRoleArn"] == inputs(service_task(run))["executionRoleArn"]

    (train,) = definitions(training_task(run)).values()
    bucket = bucket_name(run)
    assert train["name"] == "train"
    assert train["image"] == training_image(run).state["ref"]
    assert train["entryPoint"] == ["timeout", "--kill-after=30s", "60m", "modelship"]
    assert train["command"] == [
        "train",
        "--data",
        f"s3://{bucket}/data/insurance.csv",
        "--target",
        "charges",
        "--output",
        f"s3://{bucket}",
    ]
    assert {e["name"]: e["value"] for e in train["environment"]} == {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    assert train["user"] == "10001:10001"
    assert train["readonlyRootFilesystem"] is True
    assert train["mountPoints"] == [
        {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}
    ]
    assert train["linuxParameters"]["capabilities"] == {"drop": ["ALL"]}
    # It serves nothing: no port, no health check.
    assert "portMappings" not in train and "healthCheck" not in train
    options = train["logConfiguration"]["options"]
    assert options["awslogs-group"] == run.outputs["log_group_name"]
    assert options["awslogs-stream-prefix"] == "train"
    assert run.outputs["training_task_definition"] == training_task(run).state["arn"]


def test_training_settings_reach_the_task() -> None:
    run = run_stack(
        "fargate",
        {
            "modelship:trainingCpu": "2",
            "modelship:trainingMemory": "8Gi",
            "modelship:trainingData": "data/2026/november.csv",
            "modelship:trainingTarget": "price",
            "modelship:trainingTimeoutMinutes": 15,
            "modelship:trainingTimeBudgetSeconds": 450,
        },
    )
    task = inputs(training_task(run))
    assert (task["cpu"], task["memory"]) == ("2048", "8192")
    (train,) = definitions(training_task(run)).values()
    assert train["entryPoint"][2] == "15m"
    assert train["command"][1:4] == [
        "--data",
        f"s3://{bucket_name(run)}/data/2026/november.csv",
        "--target",
    ]
    assert train["command"][4] == "price"
    assert train["command"][-2:] == ["--time-budget", "450s"]


def test_training_image_has_the_timeout_binary() -> None:
    """The deadline relies on coreutils' `timeout`, which every Debian image has (an Essential
    package): the training stage must stay on the Debian-based python image."""
    from tests.infra.harness import REPO_ROOT

    dockerfile = (REPO_ROOT / "service" / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.\d+\.\d+-slim-(bookworm|trixie)", base[1])
    assert "FROM ${PYTHON_IMAGE} AS runtime-base\n" in dockerfile
    assert "FROM runtime-base AS training\n" in dockerfile


def test_training_security_group_has_no_ingress_and_only_https_out(run: StackRun) -> None:
    group = named(run, SECURITY_GROUP, "-training")
    group_id = f"{group.state['name']}-id"
    assert not [r for r in run.of_type(INGRESS_RULE) if r.inputs["securityGroupId"] == group_id]
    (egress,) = [r for r in run.of_type(EGRESS_RULE) if r.inputs["securityGroupId"] == group_id]
    assert (egress.inputs["fromPort"], egress.inputs["toPort"]) == (443, 443)
    assert egress.inputs["ipProtocol"] == "tcp"


# --------------------------------------------------------------------------- the run-task line


def parse_run_task(command: str) -> dict[str, Any]:
    """The exported line as the AWS CLI reads it: `--kebab-case` options → RunTask parameters."""
    words = shlex.split(command)
    assert words[:3] == ["aws", "ecs", "run-task"]
    options = words[3:]
    assert len(options) % 2 == 0, options
    cli: dict[str, str] = {}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        assert flag.startswith("--"), flag
        cli[flag[2:]] = value
    region = cli.pop("region")
    assert region == "us-east-1"
    params: dict[str, Any] = {}
    for name, value in cli.items():
        first, *rest = name.split("-")
        key = first + "".join(p.capitalize() for p in rest)
        params[key] = json.loads(value) if value.startswith("{") else value
    return params


@pytest.mark.parametrize("variant", ["default", "private"])
def test_train_command_is_a_valid_run_task(variant: str) -> None:
    run = fargate_run(variant)
    params = parse_run_task(run.outputs["train_command"])
    assert_valid("ecs", "RunTask", params)
    assert params["cluster"] == run.outputs["cluster_name"]
    assert params["taskDefinition"] == inputs(training_task(run))["family"]
    assert params["launchType"] == "FARGATE"
    assert params["startedBy"] == "modelship-train"
    network = params["networkConfiguration"]["awsvpcConfiguration"]
    # The same subnets as the service's tasks, and the training group.
    service_network = inputs(run.one(SERVICE))["networkConfiguration"]
    assert network["subnets"] == service_network["subnets"]
    assert network["securityGroups"] == [
        f"{named(run, SECURITY_GROUP, '-training').state['name']}-id"
    ]
    public = variant == "default"
    assert network["assignPublicIp"] == ("ENABLED" if public else "DISABLED")
    assert service_network["assignPublicIp"] is public
    # Public subnets are the load balancer's; a private stack trains in the private ones.
    balancer_subnets = inputs(run.one("aws:lb/loadBalancer:LoadBalancer"))["subnets"]
    assert (set(network["subnets"]) == set(balancer_subnets)) is public
    assert public or not set(network["subnets"]) & set(balancer_subnets)
    # The override repeats the task's command, so a user can edit the data key in place.
    (override,) = params["overrides"]["containerOverrides"]
    (train,) = definitions(training_task(run)).values()
    assert override == {"name": train["name"], "command": train["command"]}


def test_the_run_task_check_is_real() -> None:
    params = parse_run_task(fargate_run().outputs["train_command"])
    params["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] = "YES"
    assert list(model_problems(params, input_shape("ecs", "RunTask")))
    params = parse_run_task(fargate_run().outputs["train_command"])
    params["overrides"]["containerOverrides"][0]["cmd"] = ["train"]
    report = ParamValidator().validate(params, input_shape("ecs", "RunTask"))
    assert "cmd" in report.generate_report()


def test_logs_command_follows_the_training_streams(run: StackRun) -> None:
    words = shlex.split(run.outputs["logs_command"])
    assert words == [
        "aws",
        "logs",
        "tail",
        run.outputs["log_group_name"],
        "--log-stream-name-prefix",
        "train",
        "--follow",
        "--region",
        "us-east-1",
    ]


# --------------------------------------------------------------------------- deploying a version


def test_model_uri_changes_only_the_service_environment(run: StackRun) -> None:
    """Deploying a version is one config value: it changes the service's task definition (its
    environment), which rolls the service; nothing else, and no image is rebuilt."""
    deployed = run_stack("fargate", {"modelship:modelUri": MODEL_URI})
    before = {r.urn: inputs(r) for r in run.resources}
    after = {r.urn: inputs(r) for r in deployed.resources}
    assert before.keys() == after.keys()
    changed = {urn for urn in before if before[urn] != after[urn]}
    assert changed == {service_task(run).urn}
    old_task, new_task = inputs(service_task(run)), inputs(service_task(deployed))
    assert {k for k in old_task if old_task[k] != new_task[k]} == {"containerDefinitions"}
    old_api, new_api = (
        definitions(service_task(run))["api"],
        definitions(service_task(deployed))["api"],
    )
    assert {k for k in old_api if old_api[k] != new_api[k]} == {"environment"}
    env = {e["name"]: e["value"] for e in new_api["environment"]}
    assert env.items() - {(e["name"], e["value"]) for e in old_api["environment"]} == {
        ("MODELSHIP_MODEL_URI", MODEL_URI)
    }
    assert deployed.outputs["model_uri"] == MODEL_URI
    # A version that never gets ready is stopped and rolled back by ECS.
    service = inputs(deployed.one(SERVICE))
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["waitForSteadyState"] is True
    assert service["taskDefinition"] == service_task(deployed).state["arn"]


def test_model_uri_is_spelled_one_way() -> None:
    """With or without the trailing slash: the same version, the same task definition."""
    bare = run_stack("fargate", {"modelship:modelUri": MODEL_URI.rstrip("/")})
    env = {e["name"]: e["value"] for e in definitions(service_task(bare))["api"]["environment"]}
    assert env["MODELSHIP_MODEL_URI"] == MODEL_URI

"""The gke model store, Workload Identity and training job, checked on the declared graph.

Outside references: the bucket and the IAM bindings are translated to the GCS JSON API and
validated against Google's own discovery document for storage/v1 (shipped with
google-api-python-client); the IAM Conditions are evaluated with a CEL interpreter (cel-python)
on object names, so "serving reads only models/" is tested, not just asserted as a string.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import celpy
import googleapiclient  # type: ignore[import-untyped]
import pytest
from celpy.adapter import json_to_cel

from infra.config import ConfigError
from infra.core.values import plain
from tests.infra.harness import StackRun, run_stack

from .conftest import GKE_PROJECT
from .k8s import DEPLOYMENT, manifest

BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_GRANT = "gcp:storage/bucketIAMMember:BucketIAMMember"
ACCOUNT = "gcp:serviceaccount/account:Account"
ACCOUNT_GRANT = "gcp:serviceaccount/iAMMember:IAMMember"
CRON_JOB = "kubernetes:batch/v1:CronJob"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
VERSION = "a" * 64
MODEL_URI = f"gs://models-bucket/models/insurance-charges/{VERSION}/"

DISCOVERY = json.loads(
    (
        Path(googleapiclient.__file__).parent / "discovery_cache/documents/storage.v1.json"
    ).read_text()
)


def training_cron(run: StackRun) -> dict[str, Any]:
    """The training job's CronJob (the batch job has one too)."""
    (found,) = [r for r in run.of_type(CRON_JOB) if r.name.endswith("-training-cronjob")]
    cron: dict[str, Any] = plain(dict(found.inputs))
    return cron


def bucket_of(run: StackRun) -> dict[str, Any]:
    inputs: dict[str, Any] = plain(dict(run.one(BUCKET).inputs))
    return inputs


def bucket_name(run: StackRun) -> str:
    return str(run.one(BUCKET).state["name"])


# --------------------------------------------------------------------------- GCS JSON API


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        resolved: dict[str, Any] = DISCOVERY["schemas"][schema["$ref"]]
        return resolved
    return schema


def validate(value: Any, schema: dict[str, Any], where: str) -> None:
    """Check a JSON value against a discovery-document schema: names, types, nesting."""
    schema = _resolve(schema)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        assert isinstance(value, dict), f"{where}: expected an object"
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], f"{where}.{key}")
            elif "additionalProperties" in schema:
                validate(item, schema["additionalProperties"], f"{where}.{key}")
            else:
                pytest.fail(f"{where}.{key} is not a field of the GCS API")
    elif kind == "array":
        assert isinstance(value, list), f"{where}: expected a list"
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{i}]")
    elif kind == "string":
        assert isinstance(value, str), f"{where}: expected a string"
        if schema.get("format") == "int64":
            int(value)
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: not an integer"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{where}: expected a boolean"


# Inputs that are the provider's own behaviour or addressing, not fields of the API's Bucket.
PROVIDER_ONLY = {"forceDestroy", "project", "name"}


def bucket_as_api(inputs: dict[str, Any]) -> dict[str, Any]:
    """pulumi-gcp's Bucket inputs → the GCS JSON API `Bucket` resource they configure."""
    unknown = (
        set(inputs)
        - PROVIDER_ONLY
        - {
            "location",
            "storageClass",
            "versioning",
            "uniformBucketLevelAccess",
            "publicAccessPrevention",
            "encryption",
            "softDeletePolicy",
            "lifecycleRules",
            "labels",
        }
    )
    assert not unknown, f"map these inputs to the API before trusting the check: {unknown}"

    def rule(r: dict[str, Any]) -> dict[str, Any]:
        condition = dict(r["condition"])
        api: dict[str, Any] = {}
        for key, value in condition.items():
            if key == "withState":
                if value != "ANY":
                    api["isLive"] = value == "LIVE"
            elif key == "matchesPrefixes":
                api["matchesPrefix"] = value
            else:
                api[key] = int(value) if isinstance(value, float) else value
        return {"action": r["action"], "condition": api}

    api: dict[str, Any] = {
        "location": inputs["location"],
        "storageClass": inputs["storageClass"],
        "versioning": inputs["versioning"],
        "iamConfiguration": {
            "uniformBucketLevelAccess": {"enabled": inputs["uniformBucketLevelAccess"]},
            "publicAccessPrevention": inputs["publicAccessPrevention"],
        },
        "softDeletePolicy": {
            "retentionDurationSeconds": str(inputs["softDeletePolicy"]["retentionDurationSeconds"])
        },
        "lifecycle": {"rule": [rule(r) for r in inputs["lifecycleRules"]]},
        "labels": inputs["labels"],
    }
    if "encryption" in inputs:
        api["encryption"] = inputs["encryption"]
    return api


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "modelship:modelStoreKmsKey": "projects/keys/locations/us-central1/keyRings/r/"
            "cryptoKeys/models"
        },
    ],
    ids=["google-managed-key", "cmek"],
)
def test_the_bucket_is_a_valid_gcs_bucket(overrides: dict[str, str]) -> None:
    run = run_stack("gke", {**GKE_PROJECT, **overrides})
    api = bucket_as_api(bucket_of(run))
    validate(api, {"$ref": "Bucket"}, "Bucket")
    properties = DISCOVERY["schemas"]["Bucket"]["properties"]
    # The enumerations the discovery document states in prose.
    prevention = properties["iamConfiguration"]["properties"]["publicAccessPrevention"]
    assert f"'{api['iamConfiguration']['publicAccessPrevention']}'" in prevention["description"]
    action_doc = properties["lifecycle"]["properties"]["rule"]["items"]["properties"]["action"]
    for r in api["lifecycle"]["rule"]:
        assert r["action"]["type"] in action_doc["properties"]["type"]["description"]


def test_the_bucket_is_private_versioned_and_cleans_up_old_data(gke_run: StackRun) -> None:
    bucket = bucket_of(gke_run)
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["versioning"] == {"enabled": True}
    assert bucket["location"] == "US-CENTRAL1"
    assert "encryption" not in bucket  # Google-managed keys: GCS encrypts every object at rest
    rules = {
        (r["action"]["type"], json.dumps(r["condition"], sort_keys=True))
        for r in bucket["lifecycleRules"]
    }
    assert rules == {
        (
            "Delete",
            json.dumps(
                {"age": 90, "matchesPrefixes": ["data/"], "withState": "LIVE"}, sort_keys=True
            ),
        ),
        (
            "Delete",
            json.dumps(
                {"age": 30, "matchesPrefixes": ["captures/"], "withState": "LIVE"}, sort_keys=True
            ),
        ),
        (
            "Delete",
            json.dumps(
                {"age": 30, "matchesPrefixes": ["outputs/"], "withState": "LIVE"}, sort_keys=True
            ),
        ),
        (
            "Delete",
            json.dumps({"daysSinceNoncurrentTime": 30, "withState": "ARCHIVED"}, sort_keys=True),
        ),
        ("AbortIncompleteMultipartUpload", json.dumps({"age": 1}, sort_keys=True)),
    }
    assert bucket["labels"] == {"project": "modelship", "stack": "gke", "managed-by": "pulumi"}
    assert gke_run.outputs["model_store"] == f"gs://{bucket_name(gke_run)}"


def test_destroy_empties_the_bucket_unless_it_is_kept() -> None:
    development = run_stack("gke", GKE_PROJECT).one(BUCKET)
    assert development.inputs["forceDestroy"] is True
    assert not development.retain_on_delete
    for overrides in (
        {"modelship:keepModelStore": True},
        {"modelship:environment": "production", "modelship:deletionProtection": True},
    ):
        kept = run_stack("gke", {**GKE_PROJECT, **overrides}).one(BUCKET)
        assert kept.inputs["forceDestroy"] is False
        assert kept.retain_on_delete  # `pulumi destroy` leaves it (and the models) in place
    days = run_stack("gke", {**GKE_PROJECT, "modelship:trainingDataDays": 7})
    (data_rule,) = [
        r
        for r in bucket_of(days)["lifecycleRules"]
        if r["condition"].get("matchesPrefixes") == ["data/"] and r["action"]["type"] == "Delete"
    ]
    assert data_rule["condition"]["age"] == 7


def test_a_customer_managed_key_is_usable_by_the_storage_agent() -> None:
    key = "projects/keys/locations/us-central1/keyRings/r/cryptoKeys/models"
    run = run_stack("gke", {**GKE_PROJECT, "modelship:modelStoreKmsKey": key})
    assert bucket_of(run)["encryption"] == {"defaultKmsKeyName": key}
    grant = run.one("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
    assert grant.inputs["cryptoKeyId"] == key
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant.inputs["member"].startswith("serviceAccount:service-")
    assert grant.urn in run.one(BUCKET).dependencies  # the key works before the bucket uses it


def test_the_grant_on_the_users_key_survives_destroy() -> None:
    """Deleting a CryptoKeyIAMMember removes the member from the key's binding whoever added it
    (terraform-provider-google resourceIamMemberDelete): the project's storage agent would lose
    the key for every other bucket on it, and for this bucket when it is kept."""
    key = "projects/keys/locations/us-central1/keyRings/r/cryptoKeys/models"
    for keep in (False, True):
        config = {
            **GKE_PROJECT,
            "modelship:modelStoreKmsKey": key,
            "modelship:keepModelStore": keep,
        }
        grant = run_stack("gke", config).one("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
        assert grant.retain_on_delete


# --------------------------------------------------------------------------- IAM


def grants_of(run: StackRun) -> dict[str, list[dict[str, Any]]]:
    """Bucket grants by the Google account they are for (`serving`, `training`)."""
    accounts = {
        r.state["email"]: r.name.rsplit("-", 1)[-1]
        for r in run.of_type(ACCOUNT)
        if r.name.endswith(("-serving", "-training"))
    } | {
        r.state["email"]: "batch"
        for r in run.of_type(ACCOUNT)
        if r.name.endswith("-batch-identity-account")
    }
    found: dict[str, list[dict[str, Any]]] = {}
    for grant in run.of_type(BUCKET_GRANT):
        email = grant.inputs["member"].removeprefix("serviceAccount:")
        found.setdefault(accounts[email], []).append(plain(dict(grant.inputs)))
    return found


def allowed(grants: list[dict[str, Any]], role: str, object_name: str, bucket: str) -> bool:
    """Whether any grant of `role` applies to `object_name`, evaluating its condition in CEL."""
    env = celpy.Environment()
    resource = json_to_cel(
        {
            "name": f"projects/_/buckets/{bucket}/objects/{object_name}",
            "type": "storage.googleapis.com/Object",
        }
    )
    for grant in grants:
        if grant["role"] != role:
            continue
        program = env.program(env.compile(grant["condition"]["expression"]))
        if bool(program.evaluate({"resource": resource})):
            return True
    return False


def test_serving_reads_models_only_and_training_reads_data_and_creates_models(
    gke_run: StackRun,
) -> None:
    bucket = bucket_name(gke_run)
    grants = grants_of(gke_run)
    viewer, creator = "roles/storage.objectViewer", "roles/storage.objectCreator"
    model = f"models/insurance-charges/{VERSION}/model.onnx"
    data = "data/insurance.csv"
    other = "elsewhere/secret.csv"

    serving = grants["serving"]
    assert allowed(serving, viewer, model, bucket)
    assert not allowed(serving, viewer, data, bucket)
    assert not allowed(serving, viewer, other, bucket)
    assert {g["role"] for g in serving} == {viewer}

    training = grants["training"]
    assert allowed(training, viewer, data, bucket)
    assert allowed(training, viewer, model, bucket)
    assert allowed(training, creator, model, bucket)
    assert not allowed(training, creator, data, bucket)
    assert not allowed(training, viewer, other, bucket)
    # Create only: no role with delete (objectAdmin, objectUser, admin), so no overwrites.
    assert {g["role"] for g in training} == {viewer, creator}
    # A prefix that merely starts like the bucket's name does not match another bucket.
    assert not allowed(serving, viewer, model, bucket + "-other")


def test_every_grant_is_conditional_valid_and_names_no_wildcard(gke_variant: StackRun) -> None:
    policy = DISCOVERY["schemas"]["Policy"]["properties"]["bindings"]["items"]
    for grant in gke_variant.of_type(BUCKET_GRANT):
        inputs = plain(dict(grant.inputs))
        assert "*" not in inputs["member"] and "allUsers" not in inputs["member"]
        assert inputs["bucket"] == bucket_name(gke_variant)
        binding = {
            "role": inputs["role"],
            "members": [inputs["member"]],
            "condition": inputs["condition"],
        }
        validate(binding, policy, "Policy.bindings[]")
        assert len(inputs["condition"]["title"]) <= 100


def test_workload_identity_binds_each_kubernetes_account_to_its_google_account(
    gke_run: StackRun,
) -> None:
    kubernetes_accounts = {
        plain(dict(r.inputs))["metadata"]["name"]: plain(dict(r.inputs))["metadata"]
        for r in gke_run.of_type(SERVICE_ACCOUNT)
    }
    google = {r.name.rsplit("-", 1)[-1]: r for r in gke_run.of_type(ACCOUNT)}
    bindings = {r.name: plain(dict(r.inputs)) for r in gke_run.of_type(ACCOUNT_GRANT)}
    pod_accounts = {
        "serving": manifest(gke_run, DEPLOYMENT)["spec"]["template"]["spec"]["serviceAccountName"],
        "training": training_cron(gke_run)["spec"]["jobTemplate"]["spec"]["template"]["spec"][
            "serviceAccountName"
        ],
    }
    assert pod_accounts == {"serving": "modelship", "training": "modelship-train"}
    for role, kubernetes_account in pod_accounts.items():
        account = google[role]
        metadata = kubernetes_accounts[kubernetes_account]
        assert metadata["annotations"] == {"iam.gke.io/gcp-service-account": account.state["email"]}
        (binding,) = [
            b for b in bindings.values() if b["serviceAccountId"] == account.state["name"]
        ]
        assert binding["role"] == "roles/iam.workloadIdentityUser"
        assert binding["member"] == (
            f"serviceAccount:modelship-test.svc.id.goog[modelship/{kubernetes_account}]"
        )
    assert gke_run.outputs["serving_service_account"] == google["serving"].state["email"]
    assert gke_run.outputs["training_service_account"] == google["training"].state["email"]
    apis = {r.inputs["service"] for r in gke_run.of_type("gcp:projects/service:Service")}
    assert {"iamcredentials.googleapis.com", "storage.googleapis.com"} <= apis


# --------------------------------------------------------------------------- training job


def training_pod(run: StackRun) -> dict[str, Any]:
    pod: dict[str, Any] = training_cron(run)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod


def test_the_training_job_runs_modelship_train_in_the_training_image(gke_run: StackRun) -> None:
    cron = training_cron(gke_run)["spec"]
    assert cron["suspend"] is True  # a template: runs start with `kubectl create job --from`
    assert cron["concurrencyPolicy"] == "Forbid"
    job = cron["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 1
    assert job["activeDeadlineSeconds"] == 3600
    assert job["ttlSecondsAfterFinished"] == 86400
    pod = training_pod(gke_run)
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    images = {r.name: r.state["ref"] for r in gke_run.of_type("docker-build:index:Image")}
    assert container["image"] == images["modelship-training-image-build"]
    assert container["image"] == gke_run.outputs["training_image"]
    assert "/modelship-training@sha256:" in container["image"]
    build = gke_run.named("modelship-training-image-build").inputs
    assert build["target"] == "training"
    root = f"gs://{bucket_name(gke_run)}"
    assert container["args"] == [
        "train", "--data", f"{root}/data/insurance.csv", "--target", "charges", "--output", root,
    ]  # fmt: skip
    resources = {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "2Gi"}
    assert container["resources"] == {"requests": resources, "limits": resources}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True


def test_a_schedule_retrains_on_its_own() -> None:
    run = run_stack(
        "gke",
        {
            **GKE_PROJECT,
            "modelship:trainingSchedule": "0 3 * * 1",
            "modelship:trainingData": "data/2026/week-48.csv",
            "modelship:trainingTarget": "expenses",
            "modelship:trainingTimeoutMinutes": 30,
            "modelship:trainingTimeBudgetSeconds": 300,
        },
    )
    cron = training_cron(run)["spec"]
    assert (cron["schedule"], cron["suspend"], cron["timeZone"]) == ("0 3 * * 1", False, "Etc/UTC")
    assert cron["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 1800
    args = training_pod(run)["containers"][0]["args"]
    assert args[1:5] == [
        "--data",
        f"gs://{bucket_name(run)}/data/2026/week-48.csv",
        "--target",
        "expenses",
    ]
    assert args[-2:] == ["--time-budget", "300s"]


@pytest.mark.parametrize("budget", ["4", "901", "1.5", "1m"])
def test_a_search_budget_outside_the_job_deadline_is_refused(budget: str) -> None:
    """Half of the 30-minute deadline at most: the full fit, export and report follow it."""
    overrides = {
        **GKE_PROJECT,
        "modelship:trainingTimeoutMinutes": 30,
        "modelship:trainingTimeBudgetSeconds": budget,
    }
    with pytest.raises(ConfigError) as info:
        run_stack("gke", overrides)
    assert (
        f"modelship:trainingTimeBudgetSeconds = '{budget}': a whole number of seconds from 5 to "
        "900 (half of modelship:trainingTimeoutMinutes)"
    ) in str(info.value)


def test_the_train_command_output_starts_one_run_and_follows_it(
    gke_run: StackRun, tmp_path: Path
) -> None:
    """Run the exported command in bash against a recording `kubectl`."""
    log = tmp_path / "calls"
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\n')
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    command = gke_run.outputs["train_command"]
    shlex.split(command)  # a well-formed shell line
    result = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    create, logs = log.read_text().splitlines()
    verb, run_name = create.rsplit(" ", 1)
    assert verb == "-n modelship create job --from=cronjob/modelship-train"
    assert run_name.startswith("modelship-train-20") and len(run_name) <= 63
    assert logs == f"-n modelship logs -f job/{run_name} --pod-running-timeout=10m"


# --------------------------------------------------------------------------- deploying a version


def test_a_model_uri_rolls_the_deployment_and_nothing_else(gke_run: StackRun) -> None:
    chosen = run_stack("gke", {**GKE_PROJECT, "modelship:modelUri": MODEL_URI})
    env = {
        e["name"]: e.get("value")
        for e in manifest(chosen, DEPLOYMENT)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELSHIP_MODEL_URI"] == MODEL_URI
    before = {r.urn: plain(dict(r.inputs)) for r in gke_run.resources}
    after = {r.urn: plain(dict(r.inputs)) for r in chosen.resources}
    assert before.keys() == after.keys()
    changed = {urn.rsplit("::", 1)[-1] for urn in before if before[urn] != after[urn]}
    # The batch Job template scores with the version the service serves.
    assert changed == {"modelship-app-deployment", "modelship-batch-cronjob"}
    assert chosen.outputs["model_uri"] == MODEL_URI
    assert chosen.outputs["image"] == gke_run.outputs["image"]  # the image is not touched
    # Without a URI the service serves the model baked into the image.
    assert "MODELSHIP_MODEL_URI" not in str(manifest(gke_run, DEPLOYMENT))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "modelship:modelUri",
            "s3://bucket/models/x/" + VERSION + "/",
            "gs://BUCKET/models/NAME/SHA256/",
        ),
        ("modelship:modelUri", "gs://bucket/models/x/latest/", "gs://BUCKET/models/NAME/SHA256/"),
        ("modelship:trainingData", "insurance.csv", "a CSV file under data/"),
        ("modelship:trainingSchedule", "every monday", "a cron schedule in UTC"),
        ("modelship:trainingCpu", "100m", "on Autopilot must be from 250m to 30"),
        ("modelship:trainingTimeoutMinutes", 0, "an integer from 5 to 1440"),
        ("modelship:trainingDataDays", 0, "an integer from 1 to 3650"),
        ("modelship:keepModelStore", "maybe", "must be true or false"),
        (
            "modelship:modelStoreKmsKey",
            "projects/k/locations/europe-west4/keyRings/r/cryptoKeys/k",
            "must be in the bucket's location us-central1",
        ),
        ("modelship:modelStoreKmsKey", "my-key", "a Cloud KMS key name"),
    ],
)
def test_bad_store_and_training_config_fails_before_any_resource(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        run_stack("gke", {**GKE_PROJECT, key: value})
    text = str(caught.value)
    assert f"{key} = " in text
    assert message in text


def test_the_api_check_catches_misspelled_fields(gke_run: StackRun) -> None:
    """Guards against a check that cannot fail: a wrong field name or type is refused."""
    api = bucket_as_api(bucket_of(gke_run))
    api["lifecycle"]["rule"][0]["condition"]["matchesPrefixes"] = ["data/"]
    with pytest.raises(pytest.fail.Exception, match="matchesPrefixes is not a field"):
        validate(api, {"$ref": "Bucket"}, "Bucket")
    with pytest.raises(AssertionError, match="expected a boolean"):
        validate({"versioning": {"enabled": "yes"}}, {"$ref": "Bucket"}, "Bucket")


# --------------------------------------------------------------------------- fresh project order


def _transitive(run: StackRun, urn: str) -> set[str]:
    seen: set[str] = set()
    pending = [urn]
    while pending:
        for dep in run.by_urn(pending.pop()).dependencies:
            if dep not in seen:
                seen.add(dep)
                pending.append(dep)
    return seen


def _workload_identity_bindings(run: StackRun) -> list[Any]:
    return [
        r
        for r in run.of_type(ACCOUNT_GRANT)
        if r.inputs["role"] == "roles/iam.workloadIdentityUser"
    ]


def test_workload_identity_bindings_wait_for_the_cluster(gke_variant: StackRun) -> None:
    """`PROJECT.svc.id.goog` exists only once the project's first Workload Identity cluster does:
    a binding declared before it fails with `Identity Pool does not exist` on a fresh project."""
    cluster = gke_variant.one("gcp:container/cluster:Cluster")
    bindings = _workload_identity_bindings(gke_variant)
    assert len(bindings) == 3  # serving, training, batch
    for binding in bindings:
        assert cluster.urn in _transitive(gke_variant, binding.urn), binding.name


@pytest.mark.parametrize(
    ("workload", "role"),
    [(DEPLOYMENT, "serving"), (CRON_JOB, "training"), (CRON_JOB, "batch")],
)
def test_pods_wait_for_their_identity_and_bucket_grants(
    gke_variant: StackRun, workload: str, role: str
) -> None:
    """With modelship:modelUri (and always for training) the pods read the bucket as their Google
    account at start: their Workload Identity binding and bucket grants must exist before them."""
    needed = {
        r.urn
        for r in [*_workload_identity_bindings(gke_variant), *gke_variant.of_type(BUCKET_GRANT)]
        if r.name.startswith(
            "modelship-batch-identity-" if role == "batch" else f"modelship-store-{role}-"
        )
    }
    # serving: its binding and read grant, plus the captures/ grant where it captures
    (deployment,) = gke_variant.of_type(DEPLOYMENT)
    env = deployment.inputs["spec"]["template"]["spec"]["containers"][0].get("env", [])
    captures = any(e["name"] == "MODELSHIP_CAPTURE_RATE" for e in env)
    assert len(needed) == {"serving": 2 + captures, "training": 3, "batch": 4}[role]
    (pods,) = [
        r
        for r in gke_variant.of_type(workload)
        if workload == DEPLOYMENT or r.name.endswith(f"-{role}-cronjob")
    ]
    missing = needed - _transitive(gke_variant, pods.urn)
    assert not missing, sorted(gke_variant.by_urn(u).name for u in missing)

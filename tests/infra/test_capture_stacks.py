"""Request capture on every stack: the service's environment, the one permission it needs
(create objects under captures/, nothing more), the lifecycle rule that expires captures, and
config errors caught at preview with the key and the allowed values.

Outside references: the S3 lifecycle and the role policies are checked with botocore and
parliament in test_fargate_model_store.py / test_fargate_references.py (the
`model-uri-production` variant captures); the GCS bucket and grants against Google's discovery
document in test_gke_model_store.py (the `standard` variant captures); here the GCS conditions
are evaluated in CEL on object names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError
from infra.core.values import plain
from infra.targets.local.config import KEY_MODEL_STORE_DIR
from tests.infra.harness import StackRun, run_stack

from .conftest import GKE_PROJECT
from .fargate import BUCKET as S3_BUCKET
from .fargate import ROLE_POLICY, containers, fargate_run, named
from .k8s import DEPLOYMENT, manifest
from .k8s_stack import run_k8s
from .test_fargate_model_store import LIFECYCLE
from .test_gke_model_store import allowed, bucket_name, grants_of
from .test_local import container as local_container
from .test_local import env as local_env

CAPTURE_FILE = "captures/0123456789ab/2026-12-01/120000-a1b2c3d4-000001.csv"
MODEL_FILE = "models/insurance-charges/" + "a" * 64 + "/model.onnx"


def fargate_env(run: StackRun) -> dict[str, str]:
    return {e["name"]: e["value"] for e in containers(run)["api"]["environment"]}


def k8s_env(run: StackRun) -> dict[str, Any]:
    (container,) = manifest(run, DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


# --------------------------------------------------------------------------- fargate


def test_fargate_capture_writes_captures_only_and_they_expire() -> None:
    run = fargate_run("model-uri-production")
    bucket = run.one(S3_BUCKET).state
    env = fargate_env(run)
    assert env["MODELSHIP_CAPTURE_RATE"] == "0.05"
    assert env["MODELSHIP_CAPTURE_URI"] == f"s3://{bucket['bucket']}"
    statements = json.loads(named(run, ROLE_POLICY, "-task-models").inputs["policy"])["Statement"]
    assert statements[-1] == {
        "Sid": "WriteCaptures",
        "Effect": "Allow",
        "Action": ["s3:PutObject"],
        "Resource": f"{bucket['arn']}/captures/*",
    }
    # Still no read, list or delete of captures: a leaked service identity cannot harvest them.
    for statement in statements[:-1]:
        resources = statement["Resource"]
        assert "captures" not in json.dumps(resources)
        assert "captures" not in json.dumps(statement.get("Condition", {}))
    (rule,) = [r for r in plain(run.one(LIFECYCLE).inputs)["rules"] if r["id"] == "expire-captures"]
    assert rule == {
        "id": "expire-captures",
        "status": "Enabled",
        "filter": {"prefix": "captures/"},
        "expiration": {"days": 30},
    }


def test_fargate_without_capture_has_no_capture_permission_or_environment() -> None:
    run = fargate_run()
    assert not any(k.startswith("MODELSHIP_CAPTURE") for k in fargate_env(run))
    policy = named(run, ROLE_POLICY, "-task-models").inputs["policy"]
    assert "captures" not in policy and "PutObject" not in policy
    # The rule is there either way: captures of an earlier rate still expire.
    rules = plain(run.one(LIFECYCLE).inputs)["rules"]
    assert any(r["id"] == "expire-captures" for r in rules)


def test_capture_days_set_the_retention() -> None:
    run = run_stack("fargate", {"modelship:captureDays": 7})
    (rule,) = [r for r in plain(run.one(LIFECYCLE).inputs)["rules"] if r["id"] == "expire-captures"]
    assert rule["expiration"] == {"days": 7}


# --------------------------------------------------------------------------- gke


def test_gke_serving_account_may_create_captures_only(gke_standard: StackRun) -> None:
    bucket = bucket_name(gke_standard)
    serving = grants_of(gke_standard)["serving"]
    viewer, creator = "roles/storage.objectViewer", "roles/storage.objectCreator"
    assert allowed(serving, creator, CAPTURE_FILE, bucket)
    assert not allowed(serving, creator, MODEL_FILE, bucket)
    assert not allowed(serving, creator, "data/insurance.csv", bucket)
    assert not allowed(serving, viewer, CAPTURE_FILE, bucket)
    assert {g["role"] for g in serving} == {viewer, creator}
    env = k8s_env(gke_standard)
    assert env["MODELSHIP_CAPTURE_RATE"] == "0.05"
    assert env["MODELSHIP_CAPTURE_URI"] == f"gs://{bucket}"
    # The pods start only once they may write (the grant is among what they wait for).
    deployment = gke_standard.one(DEPLOYMENT)
    capture_grant = [
        r
        for r in gke_standard.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
        if r.name.endswith("-serving-capture")
    ]
    assert len(capture_grant) == 1 and capture_grant[0].urn in deployment.dependencies


def test_gke_without_capture_cannot_write(gke_run: StackRun) -> None:
    """The captures/ rule is in test_gke_model_store.py's lifecycle test (always declared)."""
    serving = grants_of(gke_run)["serving"]
    assert {g["role"] for g in serving} == {"roles/storage.objectViewer"}
    assert not any(k.startswith("MODELSHIP_CAPTURE") for k in k8s_env(gke_run))


# --------------------------------------------------------------------------- k8s and local


def test_k8s_captures_to_the_store_it_is_given() -> None:
    run = run_k8s({"modelship:captureRate": 0.5, "modelship:captureUri": "s3://team-ml/prod"})
    env = k8s_env(run)
    assert env["MODELSHIP_CAPTURE_RATE"] == "0.5"
    assert env["MODELSHIP_CAPTURE_URI"] == "s3://team-ml/prod"


def test_local_captures_into_the_store_directory_as_the_caller(tmp_path: Path) -> None:
    run = run_stack("local", {KEY_MODEL_STORE_DIR: str(tmp_path), "modelship:captureRate": 1})
    assert local_container(run)["mounts"] == [
        {
            "type": "bind",
            "source": str(tmp_path / "captures"),
            "target": "/store/captures",
            "readOnly": False,
        }
    ]
    assert local_container(run)["user"] == f"{os.getuid()}:{os.getgid()}"
    assert (local_env(run)["MODELSHIP_CAPTURE_URI"], local_env(run)["MODELSHIP_CAPTURE_RATE"]) == (
        "file:///store",
        "1",
    )
    assert (tmp_path / "captures").is_dir()  # Docker refuses to bind-mount a missing directory


# --------------------------------------------------------------------------- config errors

RATE_ALLOWED = "a number from 0 (off) to 1 (every row)"


@pytest.mark.parametrize(
    ("stack", "overrides", "key", "message"),
    [
        ("fargate", {"modelship:captureRate": "often"}, "modelship:captureRate", RATE_ALLOWED),
        ("fargate", {"modelship:captureRate": 1.5}, "modelship:captureRate", RATE_ALLOWED),
        ("fargate", {"modelship:captureDays": 0}, "modelship:captureDays", "from 1 to 3650"),
        (
            "gke",
            {**GKE_PROJECT, "modelship:captureRate": -0.1},
            "modelship:captureRate",
            RATE_ALLOWED,
        ),
        (
            "gke",
            {**GKE_PROJECT, "modelship:captureRate": "nan"},
            "modelship:captureRate",
            RATE_ALLOWED,
        ),
        ("local", {"modelship:captureDays": 7}, "modelship:captureDays", "unknown key"),
    ],
)
def test_bad_capture_config_fails_at_preview(
    stack: str, overrides: dict[str, object], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        run_stack(stack, overrides, preview=True)
    text = str(caught.value)
    assert f"{key} = " in text and message in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"modelship:captureRate": 0.1}, "modelship:captureUri = (not set): required when"),
        (
            {"modelship:captureRate": 0.1, "modelship:captureUri": "ftp://bucket"},
            "modelship:captureUri = 'ftp://bucket': required when",
        ),
    ],
)
def test_k8s_capture_needs_a_store(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        run_k8s(overrides, preview=True)
    assert message in str(caught.value)
    assert "s3://BUCKET[/PREFIX] or gs://BUCKET[/PREFIX]" in str(caught.value)

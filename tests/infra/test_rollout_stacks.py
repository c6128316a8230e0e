"""A rollout on every target: `modelship:candidateModelUri` and `modelship:candidateTraffic` reach
the service container as `MODELSHIP_CANDIDATE(_TRAFFIC)`, are checked at preview (the local target
on disk, with both models' measured memory), the candidate is readable by the service's identity,
and the fargate stack alarms on `RolloutAborted` while a candidate is declared.

Real stacks under mocks; the local store is made by publishing models trained in this session
(`modelship.model.store.publish`, what `modelship train --output file://…` does).
"""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import ConfigError
from infra.core.rollout import KEY_CANDIDATE_MODEL_URI, KEY_CANDIDATE_TRAFFIC
from infra.offline import render
from infra.settings import KEY_IMAGE_MODEL, KEY_MEMORY, KEY_MODEL_URI
from infra.targets.local.config import KEY_MODEL_STORE_DIR
from modelship.build.training.options import TrainOptions
from modelship.build.training.train import train
from modelship.contracts.settings import Settings as ServiceSettings
from modelship.model import artifact, store
from tests.infra.fargate import MODEL_URI, containers, fargate_run, inputs
from tests.infra.harness import StackRun, run_stack
from tests.infra.k8s import DEPLOYMENT, manifest
from tests.infra.k8s_stack import IMAGE, run_k8s
from tests.infra.test_fargate_references import assert_valid
from tests.infra.test_monitoring_stacks import ALARM as ALARM_TYPE
from tests.infra.test_monitoring_stacks import _put_metric_alarm

from .conftest import GKE_PROJECT
from .test_local import container as local_container
from .test_local import env as local_env

SHA_A, SHA_B = "ab" * 32, "cd" * 32
CANDIDATE = {"MODELSHIP_CANDIDATE", "MODELSHIP_CANDIDATE_TRAFFIC"}


def _k8s_env(run: StackRun) -> dict[str, str]:
    (only,) = manifest(run, DEPLOYMENT)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in only["env"] if "value" in e}


def _fargate_env(run: StackRun) -> dict[str, str]:
    (service,) = [c for c in containers(run).values() if c["essential"]]
    return {e["name"]: e["value"] for e in service["environment"]}


def _bucket(run: StackRun) -> str:
    return str(run.outputs["model_store"]).split("://", 1)[1]


def _run(stack: str, overrides: dict[str, Any]) -> StackRun:
    if stack == "k8s":
        return run_k8s(overrides)
    return run_stack(stack, {**GKE_PROJECT, **overrides} if stack == "gke" else overrides)


def _problems(stack: str, overrides: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        _run(stack, overrides)
    return str(info.value)


# --------------------------------------------------------------------------- cloud targets


def test_the_variable_names_are_the_service_settings() -> None:
    prefix = ServiceSettings.model_config["env_prefix"]
    assert {f"{prefix}{name.upper()}" for name in ServiceSettings.model_fields} >= CANDIDATE


def test_no_candidate_by_default_on_any_target() -> None:
    runs = {
        "gke": _k8s_env(run_stack("gke", GKE_PROJECT)),
        "k8s": _k8s_env(run_k8s()),
        "fargate": _fargate_env(fargate_run()),
        "local": local_env(run_stack("local")),
    }
    for target, env in runs.items():
        assert not CANDIDATE & set(env), target


def test_gke_serves_the_candidate_from_its_bucket_which_the_pods_may_read() -> None:
    bucket = _bucket(run_stack("gke", GKE_PROJECT))
    primary = f"gs://{bucket}/models/insurance/{SHA_A}/"
    candidate = f"gs://{bucket}/models/insurance/{SHA_B}"  # the trailing slash is added
    run = run_stack(
        "gke",
        {
            **GKE_PROJECT,
            KEY_MODEL_URI: primary,
            KEY_CANDIDATE_MODEL_URI: candidate,
            KEY_CANDIDATE_TRAFFIC: 10,
        },
    )
    env = _k8s_env(run)
    assert env["MODELSHIP_MODEL_URI"] == primary
    assert env["MODELSHIP_CANDIDATE"] == candidate + "/"
    assert env["MODELSHIP_CANDIDATE_TRAFFIC"] == "10"
    # The pods read the bucket as the serving account, granted objects under models/ only.
    (grant,) = [r for r in run.resources if r.name.endswith("-serving-read")]
    expression = grant.inputs["condition"]["expression"]
    granted = expression.split('startsWith("', 1)[1].split('")', 1)[0]
    assert f"projects/_/buckets/{bucket}/objects/models/insurance/{SHA_B}/model.onnx".startswith(
        granted
    )


def test_fargate_serves_the_candidate_its_task_role_may_read_and_alarms_on_an_abort() -> None:
    bucket = _bucket(fargate_run())
    candidate = f"s3://{bucket}/models/insurance/{SHA_B}/"
    run = run_stack("fargate", {KEY_MODEL_URI: MODEL_URI, KEY_CANDIDATE_MODEL_URI: candidate})
    env = _fargate_env(run)
    assert (env["MODELSHIP_CANDIDATE"], env["MODELSHIP_CANDIDATE_TRAFFIC"]) == (
        candidate,
        "shadow",  # unset: the candidate answers no one
    )
    (policy,) = [r for r in run.resources if r.name.endswith("-task-models")]
    document = json.loads(policy.inputs["policy"])
    (read,) = [s for s in document["Statement"] if s["Action"] == ["s3:GetObject"]]
    assert fnmatch.fnmatchcase(
        f"arn:aws:s3:::{bucket}/models/insurance/{SHA_B}/model.onnx", read["Resource"]
    )

    alarms = {r.name.rsplit("-alarms-", 1)[-1]: inputs(r) for r in run.of_type(ALARM_TYPE)}
    aborted = alarms["rollout-aborted"]
    assert (aborted["metricName"], aborted["namespace"]) == ("RolloutAborted", "modelship")
    assert aborted["dimensions"] == {"Service": env["MODELSHIP_CLOUDWATCH_SERVICE"]}
    # One period at 1 fires it: the verdict is final, there is nothing to wait out.
    assert (aborted["evaluationPeriods"], aborted["threshold"]) == (1, 1)
    assert aborted["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert_valid("cloudwatch", "PutMetricAlarm", _put_metric_alarm("rollout-aborted", aborted))
    # Without a candidate there is nothing to abort, and no alarm.
    assert not any(r.name.endswith("rollout-aborted") for r in fargate_run().of_type(ALARM_TYPE))


def test_setting_a_candidate_changes_only_the_service_container() -> None:
    """On every target the candidate is environment only: `up` rolls the service like a new
    model version, and nothing else (image, cluster, bucket) changes."""
    before = run_stack("gke", GKE_PROJECT)
    bucket = _bucket(before)
    after = run_stack(
        "gke", {**GKE_PROJECT, KEY_CANDIDATE_MODEL_URI: f"gs://{bucket}/models/m/{SHA_B}/"}
    )
    changed = {
        r.name
        for r in after.resources
        if r.inputs != next((b.inputs for b in before.resources if b.urn == r.urn), None)
    }
    assert changed == {"modelship-app-deployment"}, changed


def test_k8s_sets_the_candidate_in_the_applied_and_the_rendered_deployment(tmp_path: Path) -> None:
    candidate = f"s3://team-models/models/insurance/{SHA_B}/"
    overrides = {KEY_CANDIDATE_MODEL_URI: candidate, KEY_CANDIDATE_TRAFFIC: "shadow"}
    env = _k8s_env(run_k8s(overrides))
    assert (env["MODELSHIP_CANDIDATE"], env["MODELSHIP_CANDIDATE_TRAFFIC"]) == (candidate, "shadow")
    render.render_offline("k8s", tmp_path, {"modelship:image": IMAGE, **overrides})
    objects = [yaml.safe_load(path.read_text()) for path in tmp_path.rglob("*.yaml")]
    (deployment,) = [o for o in objects if o.get("kind") == "Deployment"]
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    rendered = {e["name"]: e.get("value") for e in only["env"]}
    assert rendered["MODELSHIP_CANDIDATE"] == candidate
    # The fetched candidate is cached under /tmp, as a served version is.
    (tmp,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "emptyDir" in v]
    assert tmp["emptyDir"]["sizeLimit"] == "512Mi"


@pytest.mark.parametrize(
    ("stack", "overrides", "message"),
    [
        (
            "gke",
            {KEY_CANDIDATE_TRAFFIC: 10},
            f"{KEY_CANDIDATE_TRAFFIC} = '10': only used with {KEY_CANDIDATE_MODEL_URI}",
        ),
        (
            "fargate",
            {KEY_CANDIDATE_MODEL_URI: "gs://b/models/m/" + SHA_B + "/"},
            "a model version in this stack's bucket: s3://BUCKET/models/NAME/SHA256/",
        ),
        (
            "fargate",
            {KEY_MODEL_URI: MODEL_URI, KEY_CANDIDATE_MODEL_URI: MODEL_URI.rstrip("/")},
            "is the model already served (the same sha256 as the primary)",
        ),
        ("k8s", {KEY_CANDIDATE_MODEL_URI: "file:///models/m/" + SHA_B}, "s3://BUCKET/models/"),
        ("k8s", {KEY_CANDIDATE_MODEL_URI: "s3://b/models/m/latest/"}, "s3://BUCKET/models/"),
    ],
)
def test_preview_refuses_a_wrong_candidate(
    stack: str, overrides: dict[str, Any], message: str
) -> None:
    assert message in _problems(stack, overrides)


@pytest.mark.parametrize(
    "traffic", ["101", "-1", "10 %", "%", "0.5", "Shadow", "canary", "\u0661\u0660"]
)
def test_preview_refuses_a_traffic_that_is_not_shadow_or_a_percent(traffic: str) -> None:
    candidate = f"s3://team-models/models/m/{SHA_B}/"
    message = _problems("k8s", {KEY_CANDIDATE_MODEL_URI: candidate, KEY_CANDIDATE_TRAFFIC: traffic})
    assert f"{KEY_CANDIDATE_TRAFFIC} = {traffic!r}: shadow (" in message
    assert "or the whole percent of requests the candidate answers, from 0 to 100" in message


@pytest.mark.parametrize(
    ("traffic", "expected"), [("0", "0"), ("010", "10"), ("10%", "10"), ("100", "100")]
)
def test_traffic_is_spelled_one_way(traffic: str, expected: str) -> None:
    candidate = f"s3://team-models/models/m/{SHA_B}/"
    env = _k8s_env(run_k8s({KEY_CANDIDATE_MODEL_URI: candidate, KEY_CANDIDATE_TRAFFIC: traffic}))
    assert env["MODELSHIP_CANDIDATE_TRAFFIC"] == expected


# --------------------------------------------------------------------------- local target


@pytest.fixture(scope="module")
def ridge_artifact(tmp_path_factory: pytest.TempPathFactory, insurance_csv: Path) -> Path:
    """Another model of the same data: what a retrained candidate is."""
    out = tmp_path_factory.mktemp("models") / "insurance-ridge"
    train(
        TrainOptions(data=insurance_csv, target="charges", output=out, model="ridge"),
        lambda _message: None,
    )
    return out


@pytest.fixture(scope="module")
def versions(
    tmp_path_factory: pytest.TempPathFactory,
    regression_artifact: Path,
    ridge_artifact: Path,
    classification_artifact: Path,
) -> dict[str, str]:
    """A store with three versions, by role: primary, candidate, other (another task)."""
    root = (tmp_path_factory.mktemp("rollout-store") / "model-store").resolve()
    paths = {}
    for role, directory in (
        ("primary", regression_artifact),
        ("candidate", ridge_artifact),
        ("other", classification_artifact),
    ):
        store.publish(directory, f"file://{root}")
        card = artifact.load(directory).card
        paths[role] = f"models/{card.name}/{card.artifact.onnx_sha256}"
    paths["root"] = str(root)
    return paths


def _local(versions: dict[str, str], **more: object) -> StackRun:
    return run_stack("local", {KEY_MODEL_STORE_DIR: versions["root"], **more})


def test_local_mounts_the_candidate_read_only_beside_the_served_version(
    versions: dict[str, str],
) -> None:
    run = _local(
        versions,
        **{KEY_MODEL_URI: versions["primary"], KEY_CANDIDATE_MODEL_URI: versions["candidate"]},
    )
    mounts = {m["target"]: m for m in local_container(run)["mounts"]}
    candidate = mounts[f"/store/{versions['candidate']}"]
    assert candidate["source"] == f"{versions['root']}/{versions['candidate']}"
    assert candidate["readOnly"] is True
    env = local_env(run)
    assert env["MODELSHIP_MODEL_URI"] == f"/store/{versions['primary']}/"
    assert env["MODELSHIP_CANDIDATE"] == f"/store/{versions['candidate']}/"
    assert env["MODELSHIP_CANDIDATE_TRAFFIC"] == "shadow"


def test_local_preview_checks_the_candidate_on_disk(
    versions: dict[str, str], tmp_path: Path
) -> None:
    missing = "models/insurance-charges/" + SHA_B
    with pytest.raises(ConfigError) as info:
        _local(versions, **{KEY_CANDIDATE_MODEL_URI: missing})
    assert f"{KEY_CANDIDATE_MODEL_URI} = {missing!r}:" in str(info.value)
    with pytest.raises(ConfigError, match="is the model already served"):
        _local(
            versions,
            **{KEY_MODEL_URI: versions["primary"], KEY_CANDIDATE_MODEL_URI: versions["primary"]},
        )
    with pytest.raises(ConfigError, match="a candidate must do the primary's task"):
        _local(
            versions,
            **{KEY_MODEL_URI: versions["primary"], KEY_CANDIDATE_MODEL_URI: versions["other"]},
        )


def test_local_preview_checks_that_both_models_fit_the_memory_per_worker(
    versions: dict[str, str], regression_artifact: Path, ridge_artifact: Path
) -> None:
    primary = artifact.load(regression_artifact).card.footprint
    candidate = artifact.load(ridge_artifact).card.footprint
    assert primary is not None and candidate is not None
    # Enough for the primary alone, not for the pair.
    memory = f"{math.ceil(primary.serving_rss_mb + candidate.serving_rss_mb / 2)}Mi"
    alone = _local(versions, **{KEY_MODEL_URI: versions["primary"], KEY_MEMORY: memory})
    assert alone.outputs
    with pytest.raises(ConfigError) as info:
        _local(
            versions,
            **{
                KEY_MODEL_URI: versions["primary"],
                KEY_CANDIDATE_MODEL_URI: versions["candidate"],
                KEY_MEMORY: memory,
            },
        )
    message = str(info.value)
    assert f"{KEY_MEMORY} = {memory!r}:" in message
    assert (
        "with candidate" in message
        and "(the model of modelship:modelUri and its candidate)" in message
    )
    assert (
        f"{primary.serving_rss_mb + candidate.serving_rss_mb:.0f} MB measured per worker" in message
    )


def test_local_checks_a_candidate_against_the_image_model(
    versions: dict[str, str], regression_artifact: Path
) -> None:
    """With no modelUri the image's model (modelship:imageModel) is the primary."""
    with pytest.raises(ConfigError, match="is the model already served"):
        _local(
            versions,
            **{
                KEY_IMAGE_MODEL: str(regression_artifact),
                KEY_CANDIDATE_MODEL_URI: versions["primary"],
            },
        )
    run = _local(
        versions,
        **{
            KEY_IMAGE_MODEL: str(regression_artifact),
            KEY_CANDIDATE_MODEL_URI: versions["candidate"],
        },
    )
    assert "MODELSHIP_MODEL_URI" not in local_env(run)
    assert local_env(run)["MODELSHIP_CANDIDATE"] == f"/store/{versions['candidate']}/"


def test_k8s_promotes_to_a_served_version_from_a_store() -> None:
    """What `infra.offline.rollout promote` leaves in the stack file is a stack the k8s target
    takes: the promoted candidate as `modelship:modelUri`, fetched by the pods and the batch Job."""
    served = f"gs://team-models/models/insurance/{SHA_B}/"
    run = run_k8s({KEY_MODEL_URI: served})
    assert _k8s_env(run)["MODELSHIP_MODEL_URI"] == served
    assert not CANDIDATE & set(_k8s_env(run))
    assert "is the model already served" in _problems(
        "k8s", {KEY_MODEL_URI: served, KEY_CANDIDATE_MODEL_URI: served}
    )
    assert "the image's model)" in _problems("k8s", {KEY_MODEL_URI: "models/x/"})

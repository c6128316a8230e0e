"""Who installs what: `uv run modelship serve` gets no dev tool and no Pulumi SDK; the Pulumi
program's environment (what Pulumi's uv toolchain installs: a bare `uv sync` in infra/, the
program's directory) holds the SDKs and no dev tool, and the program imports nothing beyond it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.harness import PROGRAM_DIR, REPO_ROOT

STACKS = sorted(p.name.split(".")[1] for p in REPO_ROOT.glob("Pulumi.*.yaml"))
PULUMI_SDKS = {
    "pulumi",
    "pulumi-aws",
    "pulumi-gcp",
    "pulumi-kubernetes",
    "pulumi-docker",
    "pulumi-docker-build",
}
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def _installed_by(*args: str, cwd: Path = REPO_ROOT) -> set[str]:
    """What a `uv sync` with these arguments, run in `cwd`, installs (read from the lock)."""
    exported = subprocess.run(
        ["uv", "export", "--frozen", "--no-hashes", "--no-header", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return {
        match.group(1).lower().replace("_", "-")
        for line in exported.splitlines()
        if (match := REQUIREMENT.match(line))
    }


@pytest.fixture(scope="module")
def program_environment() -> set[str]:
    return _installed_by(cwd=PROGRAM_DIR)


@pytest.fixture(scope="module")
def dev_only(program_environment: set[str]) -> set[str]:
    """What only the check suite installs: every member and group, less the program's."""
    everything = _installed_by("--all-packages", "--all-groups")
    return everything - program_environment - _installed_by()


def test_serving_installs_neither_dev_tools_nor_pulumi(
    program_environment: set[str], dev_only: set[str]
) -> None:
    serving = _installed_by()  # `uv run modelship serve` at the root syncs this
    assert {"fastapi", "onnxruntime", "scikit-learn", "boto3"} <= serving
    assert not serving & PULUMI_SDKS
    assert not serving & {"ruff", "mypy", "pytest", "playwright", "moto", "schemathesis"}
    assert not serving & dev_only


def test_the_program_environment_has_the_sdks_and_no_dev_tool(
    program_environment: set[str], dev_only: set[str]
) -> None:
    assert program_environment >= PULUMI_SDKS | {"pyyaml", "docker", "onnxruntime"}
    assert not program_environment & {"ruff", "mypy", "pytest", "playwright", "pulumi-policy"}
    assert dev_only >= {"ruff", "mypy", "pytest", "pulumi-policy", "kubernetes-validate"}


# Run in a fresh interpreter: a finder refuses every module that only a dev-only distribution
# provides, so an import the program needs fails the run, while an optional one (a library's
# `try: import brotli`) takes its fallback, as it would in the program's environment.
PROGRAM_RUN = """
import importlib.abc, importlib.metadata, sys
from tests.infra.plan import run_for_plan

dev_only = set(sys.argv[1:])
owners = importlib.metadata.packages_distributions()
refused = {
    module for module, dists in owners.items()
    if {d.lower().replace("_", "-") for d in dists} <= dev_only
}

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in refused:
            raise ModuleNotFoundError(f"{name}: not in the program's environment", name=name)
        return None

sys.meta_path.insert(0, Refuse())
try:
    import pytest
except ModuleNotFoundError:
    pass
else:
    sys.exit("the finder let pytest through")
for stack in STACKS:
    run_for_plan(stack)
print("ran", *STACKS)
"""


@pytest.mark.slow
def test_every_stack_runs_without_any_dev_only_package(dev_only: set[str]) -> None:
    """Each stack's program, run under mocks (the plan tool's runner, with the placeholders a
    user would set) where no dev-only package can be imported."""
    script = PROGRAM_RUN.replace("STACKS", repr(STACKS))
    run = subprocess.run(
        [sys.executable, "-c", script, *sorted(dev_only)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["ran", *STACKS]

"""The committed plan of each stack matches what the program declares now."""

from __future__ import annotations

import pytest

from tests.infra import plan
from tests.infra.harness import REPO_ROOT

STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in REPO_ROOT.glob("Pulumi.*.yaml")
)


@pytest.mark.parametrize("stack", STACKS)
def test_committed_plan_is_up_to_date(stack: str) -> None:
    path = plan.plan_path(stack)
    current = plan.render(plan.run_for_plan(stack))
    if not path.exists() or path.read_text() != current:
        pytest.fail(
            f"{path.relative_to(REPO_ROOT)} does not match the program; review, then run:\n"
            f"    {plan.update_command(stack)}",
            pytrace=False,
        )


def test_plan_is_sorted_and_masks_secrets() -> None:
    text = plan.render(plan.run_for_plan("gke"))
    headers = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    assert headers == sorted(headers)
    assert "kubeconfig = [secret]" in text
    assert "mock-access-token" not in text


def test_plan_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["gke", "--check"]) == 0
    assert "is up to date" in capsys.readouterr().out


def test_plan_cli_unknown_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["nosuchstack"]) == 2
    assert "no Pulumi.nosuchstack.yaml" in capsys.readouterr().out

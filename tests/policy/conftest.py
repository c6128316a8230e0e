"""Each stack's recorded resources (one mock run per stack per session) for the policy tests."""

from __future__ import annotations

import functools

from tests.infra import plan
from tests.infra.harness import REPO_ROOT, StackRun

STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in REPO_ROOT.glob("Pulumi.*.yaml")
)


@functools.cache
def stack_run(stack: str) -> StackRun:
    """The stack as its plan records it (committed config plus the plan's placeholders)."""
    return plan.run_for_plan(stack)

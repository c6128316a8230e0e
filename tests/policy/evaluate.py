"""Run the policy pack's rules over recorded resource graphs, without the Pulumi CLI.

Each policy's `validate(args, report_violation)` is called the way the CLI's analyzer would:
resource policies once per custom resource (`ResourceValidationArgs`), stack policies once with
every resource (`StackValidationArgs`). Never constructs `PolicyPack` (that starts a server).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.rules import POLICIES
from tests.infra.harness import StackRun, load_stack_config


@dataclass
class Resource:
    """One resource as the analyzer sees it: type, name, urn, input properties, provider."""

    type: str
    name: str
    props: dict[str, Any]
    urn: str = ""
    provider_props: dict[str, Any] | None = None
    provider_type: str = ""

    def __post_init__(self) -> None:
        self.urn = self.urn or f"urn:pulumi:test::modelship::{self.type}::{self.name}"


@dataclass(frozen=True)
class Violation:
    policy: str
    level: EnforcementLevel
    urn: str | None
    message: str


@dataclass
class Outcome:
    violations: list[Violation] = field(default_factory=list)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == EnforcementLevel.MANDATORY]

    @property
    def advisory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == EnforcementLevel.ADVISORY]

    def of(self, policy: str) -> list[Violation]:
        return [v for v in self.violations if v.policy == policy]


def resources_of(run: StackRun) -> list[Resource]:
    """The custom resources of a run (deep copies: tests mutate them into broken variants)."""
    by_urn = {r.urn: r for r in run.resources}
    # The default AWS provider (no explicit provider) is configured from the stack's `aws:*` keys;
    # the CLI shows the policy its inputs, so `aws:defaultTags` counts as it does there.
    config = load_stack_config(run.stack)
    tags = config.get("aws:defaultTags")
    if isinstance(tags, str):
        tags = json.loads(tags)
    default_aws = {"defaultTags": tags} if tags else None
    found = []
    for r in run.resources:
        if not r.custom or r.type.startswith("pulumi:providers:"):
            continue
        provider = by_urn.get(r.provider_urn)
        props = dict(provider.inputs) if provider else None
        if provider is None and r.type.startswith("aws:") and default_aws is not None:
            props = default_aws
        found.append(
            Resource(
                type=r.type,
                name=r.name,
                props=copy.deepcopy(dict(r.inputs)),
                urn=r.urn,
                provider_props=copy.deepcopy(props),
                provider_type=provider.type
                if provider
                else ("pulumi:providers:aws" if props else ""),
            )
        )
    return found


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def _provider(resource: Resource) -> PolicyProviderResource | None:
    if resource.provider_props is None:
        return None
    return PolicyProviderResource(
        resource.provider_type, resource.provider_props, f"{resource.urn}-provider", "provider"
    )


def evaluate(
    resources: Iterable[Resource],
    environment: str = "development",
    policies: Sequence[Policy] = POLICIES,
) -> Outcome:
    """Every violation the policies report for these resources."""
    resources = list(resources)
    outcome = Outcome()
    config: Mapping[str, Any] = {"environment": environment}

    def reporter(policy: Policy, urn: str | None) -> Any:
        level = policy.enforcement_level or EnforcementLevel.MANDATORY

        def report(message: str, reported_urn: str | None = None) -> None:
            outcome.violations.append(Violation(policy.name, level, reported_urn or urn, message))

        return report

    for policy in policies:
        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(
                    r.type, r.props, r.urn, r.name, _options(), _provider(r), config
                )
                policy.validate(args, reporter(policy, r.urn))
        elif isinstance(policy, StackValidationPolicy):
            policy_resources = [
                PolicyResource(
                    r.type, r.props, r.urn, r.name, _options(), _provider(r), None, [], {}
                )
                for r in resources
            ]
            policy.validate(StackValidationArgs(policy_resources, config), reporter(policy, None))
    return outcome


def mutate(
    resources: list[Resource], type_: str, change: Callable[[dict[str, Any]], None]
) -> list[Resource]:
    """A broken variant: `change` applied to the props of every resource of `type_`."""
    variant = copy.deepcopy(resources)
    for r in variant:
        if r.type == type_:
            change(r.props)
    return variant

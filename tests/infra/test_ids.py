"""Ids made from awkward stack names, checked against each cloud's published constraint.

The constraints below are written from the APIs' own documentation (not from `infra.core.ids`),
lengths included, and every stack-derived id the gke and fargate stacks declare is checked against
them for stack names Pulumi accepts but the clouds do not (`_`, uppercase, `.`, digits first, 100
characters).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.config import ConfigError
from infra.core.ids import IdRule, make_id
from infra.targets.fargate.ids import BUCKET_PREFIX, REPOSITORY_NAME, TASK_FAMILY
from infra.targets.gke.ids import REPOSITORY_ID, SERVICE_ACCOUNT_ID
from tests.infra.harness import StackRun, run_stack

from .conftest import GKE_PROJECT

# What Pulumi accepts as a stack name: letters, digits, `-`, `_`, `.`, at most 100 characters.
STACK_NAME = st.from_regex(r"[A-Za-z0-9_.-]{1,100}", fullmatch=True)
# An underscore; and digits first, uppercase, `.`, `__` and 100 characters at once.
AWKWARD = ["gke_prod", "9Prod.V2__" + "x" * 90]


def _gcp_service_account(value: str) -> bool:
    # IAM accounts.create: accountId must be 6-30 characters, [a-z]([-a-z0-9]*[a-z0-9]).
    return 6 <= len(value) <= 30 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])", value) is not None


def _artifact_registry_repository(value: str) -> bool:
    # Lowercase letters, digits, hyphens; starts with a letter, ends with a letter or digit; <= 63.
    return len(value) <= 63 and re.fullmatch(r"[a-z]([a-z0-9-]*[a-z0-9])?", value) is not None


def _ecr_repository(value: str) -> bool:
    # CreateRepository: 2-256, (?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*
    pattern = r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"
    return 2 <= len(value) <= 256 and re.fullmatch(pattern, value) is not None


def _s3_bucket(value: str) -> bool:
    # 3-63 lowercase letters, digits, `.`, `-`; letter or digit at both ends; no `..`.
    return (
        3 <= len(value) <= 63
        and re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", value) is not None
        and ".." not in value
        and not value.startswith("xn--")
    )


def _s3_bucket_prefix(value: str) -> bool:
    # The provider's bucket_prefix: at most 37 characters, a bucket name once 26 are appended.
    return len(value) <= 37 and _s3_bucket(value + "a" * 26)


def _ecs_family(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_-]{1,255}", value) is not None


def _docker_tag(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", value) is not None


CONSTRAINTS: dict[IdRule, Callable[[str], bool]] = {
    SERVICE_ACCOUNT_ID: _gcp_service_account,
    REPOSITORY_ID: _artifact_registry_repository,
    REPOSITORY_NAME: _ecr_repository,
    BUCKET_PREFIX: _s3_bucket_prefix,
    TASK_FAMILY: _ecs_family,
}


@pytest.mark.parametrize("rule", list(CONSTRAINTS), ids=lambda r: r.what)
@given(stack=STACK_NAME, role=st.sampled_from(["", "nodes", "serve", "training", "models"]))
def test_every_stack_name_makes_an_id_the_cloud_accepts(
    rule: IdRule, stack: str, role: str
) -> None:
    made = make_id(rule, "modelship", stack, role=role)
    assert CONSTRAINTS[rule](made), made
    if role:
        assert made.rstrip("-").endswith(role)


@pytest.mark.parametrize("rule", list(CONSTRAINTS), ids=lambda r: r.what)
def test_names_that_fit_keep_their_ids_and_changed_ones_stay_distinct(rule: IdRule) -> None:
    assert make_id(rule, "modelship", "fargate").rstrip("-") == "modelship-fargate"
    variants = ["gke_prod", "gke-prod", "GKE-prod", "gke.prod"]
    assert len({make_id(rule, "modelship", v, role="x") for v in variants}) == len(variants)
    long = ["a" * 99 + "1", "a" * 99 + "2"]
    assert make_id(rule, "modelship", long[0]) != make_id(rule, "modelship", long[1])


Checked = list[tuple[str, str, Callable[[str], bool]]]


def _gke_ids(run: StackRun) -> Checked:
    ids: Checked = [
        (r.name, str(r.inputs["accountId"]), _gcp_service_account)
        for r in run.of_type("gcp:serviceaccount/account:Account")
    ]
    ids += [
        (r.name, str(r.inputs["repositoryId"]), _artifact_registry_repository)
        for r in run.of_type("gcp:artifactregistry/repository:Repository")
    ]
    return ids


def _fargate_ids(run: StackRun) -> Checked:
    ids: Checked = [
        (r.name, str(r.inputs["name"]), _ecr_repository)
        for r in run.of_type("aws:ecr/repository:Repository")
    ]
    for bucket in run.of_type("aws:s3/bucket:Bucket"):
        ids.append((bucket.name, str(bucket.inputs["bucketPrefix"]), _s3_bucket_prefix))
        ids.append((bucket.name, str(bucket.state["bucket"]), _s3_bucket))
    ids += [
        (r.name, str(r.inputs["family"]), _ecs_family)
        for r in run.of_type("aws:ecs/taskDefinition:TaskDefinition")
    ]
    return ids


@pytest.mark.parametrize("stack_name", AWKWARD)
@pytest.mark.parametrize("target", ["gke", "fargate"])
def test_stacks_with_awkward_names_declare_only_valid_ids(target: str, stack_name: str) -> None:
    if target == "gke":
        run = run_stack("gke", GKE_PROJECT, stack_name=stack_name)
        ids = _gke_ids(run)
    else:
        run = run_stack("fargate", {"modelship:imageTag": "plan"}, stack_name=stack_name)
        ids = _fargate_ids(run)
    assert len(ids) >= 4
    bad = [(name, value) for name, value, valid in ids if not valid(value)]
    assert not bad
    for image in run.of_type("docker-build:index:Image"):
        tag = str(image.inputs["tags"][0]).rsplit(":", 1)[1]
        assert _docker_tag(tag), tag


# Names the stacks leave to Pulumi's auto-naming (logical name, `-`, 7 random characters) whose
# cloud caps their length: Elastic Load Balancing 32, GKE clusters 40.
AUTO_NAME_LIMITS = {
    "fargate": {"aws:lb/loadBalancer:LoadBalancer": 32, "aws:lb/targetGroup:TargetGroup": 32},
    "gke": {"gcp:container/cluster:Cluster": 40},
}


@pytest.mark.parametrize("stack", sorted(AUTO_NAME_LIMITS))
def test_a_project_name_too_long_for_an_auto_name_fails_at_preview_naming_it(stack: str) -> None:
    """The project name is the prefix of every logical name: renamed to something long, the
    first `up` would stop at the load balancer or the cluster. Preview says so first."""
    config = GKE_PROJECT if stack == "gke" else {}
    default = run_stack(stack, config)
    longest = min(
        limit - (len(r.name) - len("modelship") + 8)
        for type_, limit in AUTO_NAME_LIMITS[stack].items()
        for r in default.of_type(type_)
    )
    fits = "p" * longest
    run = run_stack(stack, config, project=fits)
    for type_, limit in AUTO_NAME_LIMITS[stack].items():
        assert max(len(r.name) + 8 for r in run.of_type(type_)) <= limit
    with pytest.raises(ConfigError) as info:
        run_stack(stack, config, project=fits + "p")
    assert f"name (Pulumi.yaml) = '{fits}p': at most {longest} characters" in str(info.value)

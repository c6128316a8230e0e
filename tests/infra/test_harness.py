"""The mock harness itself: it must fail loudly rather than hide a gap in the mocks."""

from __future__ import annotations

import pulumi
import pytest

from tests.infra.harness import ModelshipMocks, load_stack_config


def test_unanswered_invokes_fail_loudly() -> None:
    mocks = ModelshipMocks("gke")
    for token in ("aws:ec2/getVpc:getVpc", "gcp:compute/getZones:getZones"):
        with pytest.raises(NotImplementedError, match=token):
            mocks.call(pulumi.runtime.MockCallArgs(token, {}, ""))


def test_image_ref_is_pinned_by_digest_and_stable() -> None:
    mocks = ModelshipMocks("gke")
    args = pulumi.runtime.MockResourceArgs(
        "docker-build:index:Image", "img", {"tags": ["r.example/p/modelship:gke"], "push": True}
    )
    _, first = mocks.new_resource(args)
    _, again = mocks.new_resource(args)
    assert first["ref"].startswith("r.example/p/modelship@sha256:")
    assert first["ref"] == again["ref"]


def test_stack_config_keys_are_fully_qualified() -> None:
    config = load_stack_config("gke")
    assert config["modelship:target"] == "gke"
    assert all(":" in key for key in config)
    assert "gcp:project" not in config  # the one value a user must set

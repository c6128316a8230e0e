"""The shared core: labels, container description, entry point, preview behaviour."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from infra.core.container import container_spec
from infra.core.labels import label_value, standard_labels
from infra.kubernetes.app import _ingress_address
from infra.settings import ContainerSettings, ImageSettings, ScalingSettings, Settings
from tests.infra.harness import PROGRAM_DIR, StackRun, run_stack

from .conftest import GKE_PROJECT


def settings(**scaling: object) -> Settings:
    return Settings(
        project="modelship",
        stack="gke",
        target="gke",
        image=ImageSettings(),
        container=ContainerSettings(),
        scaling=ScalingSettings(**scaling),  # type: ignore[arg-type]
    )


def test_standard_labels() -> None:
    assert standard_labels("modelship", "Prod.EU") == {
        "project": "modelship",
        "stack": "prod-eu",
        "managed-by": "pulumi",
    }


@pytest.mark.parametrize(
    ("raw", "clean"), [("My Stack", "my-stack"), ("a" * 80, "a" * 63), ("--x--", "x"), ("", "none")]
)
def test_label_values_are_valid_everywhere(raw: str, clean: str) -> None:
    assert label_value(raw) == clean


def test_container_spec_serves_the_contract() -> None:
    spec = container_spec(settings())
    assert (spec.port, spec.port_name) == (8080, "http")
    assert (spec.liveness.path, spec.readiness.path, spec.startup.path) == (
        "/healthz",
        "/readyz",
        "/healthz",
    )
    assert (spec.run_as_user, spec.run_as_group) == (10001, 10001)
    assert dict(spec.env)["MODELSHIP_PORT"] == "8080"
    assert "MODELSHIP_API_KEY_FILE" not in dict(spec.env)
    assert spec.api_key_dir is None
    assert (spec.cpu_millicores, spec.memory_mib) == (500, 512)
    assert spec.termination_grace_seconds > spec.shutdown_grace_seconds


def test_scale_to_zero_turns_autoscaling_off() -> None:
    assert container_spec(settings()).desired_replicas == 2
    assert container_spec(settings()).autoscaling
    parked = container_spec(settings(scale_to_zero=True))
    assert parked.desired_replicas == 0
    assert not parked.autoscaling


@pytest.mark.parametrize(
    "status",
    [
        None,
        SimpleNamespace(load_balancer=None),
        SimpleNamespace(load_balancer=SimpleNamespace(ingress=None)),
        SimpleNamespace(load_balancer=SimpleNamespace(ingress=[])),
        {"loadBalancer": {}},
    ],
)
def test_url_is_none_safe_while_the_load_balancer_is_pending(status: object) -> None:
    assert _ingress_address(status) == ""


def test_ingress_address_from_ip_or_hostname() -> None:
    ip = SimpleNamespace(
        load_balancer=SimpleNamespace(ingress=[SimpleNamespace(ip="1.2.3.4", hostname=None)])
    )
    assert _ingress_address(ip) == "1.2.3.4"
    assert (
        _ingress_address({"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}})
        == "lb.example"
    )


def test_preview_needs_no_build_and_declares_the_same_resources(gke_run: StackRun) -> None:
    preview = run_stack("gke", GKE_PROJECT, preview=True)
    assert sorted((r.type, r.name) for r in preview.resources) == sorted(
        (r.type, r.name) for r in gke_run.resources
    )
    # build_on_preview is off: the image (and so the URL) is unknown at preview, nothing crashes.
    assert preview.outputs["image"] is None
    assert preview.outputs["url"] is None


def test_entry_point_imports_work_as_pulumi_runs_them() -> None:
    """Pulumi runs `runpy.run_path("infra/")` with only infra/ on sys.path; imports must resolve.

    Without config the program must stop at validation, before declaring anything.
    """
    script = (
        "import runpy, sys, pulumi\n"
        "class M(pulumi.runtime.Mocks):\n"
        "    def new_resource(self, args): raise AssertionError('declared ' + args.name)\n"
        "    def call(self, args): raise AssertionError('invoked ' + args.token)\n"
        "pulumi.runtime.set_mocks(M(), project='modelship', stack='gke')\n"
        "try:\n"
        "    runpy.run_path('.', run_name='__main__')\n"
        "except Exception as e:\n"
        "    print(type(e).__name__); print(e)\n"
    )
    # -I: no current directory, PYTHONPATH or user site on sys.path (only the venv's packages).
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=PROGRAM_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "ConfigError" in result.stdout, result.stdout + result.stderr
    assert "modelship:target = (not set): must be one of gke" in result.stdout
    assert "gcp:project" not in result.stdout  # the target section is read only for a known target

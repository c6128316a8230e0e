"""Kubernetes objects as files: the render layout, the Kustomize base, and the YAML itself.

Used by both ways of rendering a k8s stack (see `infra/offline/render.py`): the program (render
mode, `modelship:renderDir`) writes `kustomization.yaml` with `write_kustomization`, and the offline
command writes the objects with `write_manifests` (in render mode the provider does that). The
directory holds `1-manifest/<apiVersion>-<kind>-<namespace>-<name>.yaml`, the provider's
`renderYamlToDirectory` layout (`render_path` repeats its naming rule), and `kustomization.yaml`
listing every file, so `kubectl apply -k DIR` or an Argo CD / Flux application deploys it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from infra.core.values import plain

MANIFEST_DIR = "1-manifest"
CRD_DIR = "0-crd"
KUSTOMIZATION = "kustomization.yaml"
KUSTOMIZE_API_VERSION = "kustomize.config.k8s.io/v1beta1"
HEADER = (
    "# Rendered by modelship (infra/offline/render.py) from the Pulumi program; do not edit by "
    "hand.\n"
    "# Re-render after a change: uv run python -m infra.offline.render <stack> --out <dir>\n"
)


def render_path(manifest: Mapping[str, Any]) -> PurePosixPath:
    """Where pulumi-kubernetes' render mode writes an object, relative to the render directory.

    The provider's `renderPathForResource`: `<apiVersion with / and : as _>-<kind lowercased>-
    <namespace or "default">-<name>.yaml` under `1-manifest/` (CustomResourceDefinitions go to
    `0-crd/`, which this program never declares).
    """
    metadata = manifest.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        raise ValueError(f"{manifest.get('kind')} has no metadata.name; rendering needs one")
    api_version = str(manifest["apiVersion"]).replace("/", "_").replace(":", "_")
    namespace = metadata.get("namespace") or "default"
    folder = CRD_DIR if manifest["kind"] == "CustomResourceDefinition" else MANIFEST_DIR
    return (
        PurePosixPath(folder)
        / f"{api_version}-{str(manifest['kind']).lower()}-{namespace}-{name}.yaml"
    )


def kustomization(paths: Iterable[PurePosixPath | str]) -> dict[str, Any]:
    """A Kustomize base listing the rendered files (CRDs first, as the provider orders them)."""
    return {
        "apiVersion": KUSTOMIZE_API_VERSION,
        "kind": "Kustomization",
        "resources": sorted({str(p) for p in paths}),
    }


def write_kustomization(directory: Path, manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    """Write `kustomization.yaml` for the objects in `manifests`; returns the listed files."""
    document = kustomization(render_path(m) for m in manifests)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / KUSTOMIZATION).write_text(HEADER + yaml.safe_dump(document, sort_keys=False))
    resources: list[str] = document["resources"]
    return resources


def manifest_yaml(manifest: Mapping[str, Any]) -> str:
    """One object as the provider writes it (JSON → YAML, keys sorted, as sigs.k8s.io/yaml)."""
    return yaml.safe_dump(plain(dict(manifest)), sort_keys=True, default_flow_style=False)


def write_manifests(directory: Path, manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    """Write each object where the provider would; old rendered files are removed first."""
    for folder in (MANIFEST_DIR, CRD_DIR):
        shutil.rmtree(directory / folder, ignore_errors=True)
    written = []
    for manifest in manifests:
        relative = render_path(manifest)
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(manifest_yaml(manifest))
        written.append(str(relative))
    return sorted(written)

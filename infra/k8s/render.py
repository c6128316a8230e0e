"""Render the k8s stack's Kubernetes objects as a Kustomize base, for GitOps (Argo CD, Flux).

Two ways, same objects, same files:

    # offline: no Pulumi CLI, state, Docker or cluster; the program runs under the mocks
    uv run python -m infra.k8s.render k8s --out deploy/modelship \\
        --set modelship:image=registry.example.com/modelship@sha256:<digest>

    # with Pulumi: the Kubernetes provider writes the files instead of applying them
    pulumi config set modelship:renderDir deploy/modelship -s k8s-gitops && pulumi up -s k8s-gitops

Either way the directory holds `1-manifest/<apiVersion>-<kind>-<namespace>-<name>.yaml` (the
provider's `renderYamlToDirectory` layout; `render_path` repeats its naming rule) and a
`kustomization.yaml` listing every file, written by the program itself (`write_kustomization`),
so `kubectl apply -k DIR` or an Argo CD / Flux application deploys it. No Secret is ever rendered:
the API key is referenced by name (`modelship:apiKeySecret`), the config refuses `modelship:apiKey`
with a render directory.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

MANIFEST_DIR = "1-manifest"
CRD_DIR = "0-crd"
KUSTOMIZATION = "kustomization.yaml"
KUSTOMIZE_API_VERSION = "kustomize.config.k8s.io/v1beta1"
HEADER = (
    "# Rendered by modelship (infra/k8s/render.py) from the Pulumi program; do not edit by hand.\n"
    "# Re-render after a change: uv run python -m infra.k8s.render <stack> --out <dir>\n"
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


def plain(value: Any) -> Any:
    """Inputs as Kubernetes receives them: integral floats (the engine's numbers) as ints."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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


# --------------------------------------------------------------------------- offline command


def _parse_sets(values: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or ":" not in key:
            raise SystemExit(f"--set takes namespace:key=value, got {item!r}")
        overrides[key] = value
    return overrides


def render_offline(stack: str, out: Path, overrides: Mapping[str, str]) -> list[str]:
    """Run the stack's program under the mocks with `renderDir=out`; write its objects there."""
    from infra.harness import load_stack_config, run_stack, stack_config_path
    from infra.k8s.config import KEY_IMAGE, KEY_RENDER_DIR

    config = {**load_stack_config(stack), **overrides}
    raw = yaml.safe_load(stack_config_path(stack).read_text()) or {}
    raw_keys = {k if ":" in k else f"modelship:{k}" for k in (raw.get("config") or {})}
    if config.get("modelship:target") != "k8s":
        raise SystemExit(f"stack {stack!r} is not a k8s stack (modelship:target must be k8s)")
    if "modelship:apiKey" in raw_keys:
        raise SystemExit(
            "modelship:apiKey is set: rendered YAML would carry it in clear text; create the "
            "Secret with your secret manager and set modelship:apiKeySecret to its name"
        )
    if not config.get(KEY_IMAGE):
        raise SystemExit(
            f"the offline render cannot build images: set {KEY_IMAGE} to a pushed image, "
            "ideally by digest (--set modelship:image=REGISTRY/modelship@sha256:...)"
        )
    out = out.resolve()
    run = run_stack(stack, {**overrides, KEY_RENDER_DIR: str(out)})
    objects = [plain(dict(r.inputs)) for r in run.resources if r.type.startswith("kubernetes:")]
    written = write_manifests(out, objects)
    listed = list(run.outputs.get("rendered_files") or [])
    if written != listed:  # pragma: no cover - the program and this writer share render_path
        raise SystemExit(f"kustomization lists {listed}, rendered {written}")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.k8s.render",
        description="Render a k8s stack's Kubernetes objects as a Kustomize base (no cluster).",
    )
    parser.add_argument("stack", help="stack name, e.g. k8s (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="directory to write")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. modelship:image=REGISTRY/modelship@sha256:...",
    )
    args = parser.parse_args(argv)
    from infra.harness import stack_config_path
    from infra.settings import ConfigError

    if not stack_config_path(args.stack).exists():
        print(f"no Pulumi.{args.stack}.yaml at the repository root", file=sys.stderr)
        return 2
    try:
        written = render_offline(args.stack, args.out, _parse_sets(args.set))
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"wrote {len(written)} objects and {KUSTOMIZATION} to {args.out}")
    for path in written:
        print(f"  {path}")
    print(f"deploy with: kubectl apply -k {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

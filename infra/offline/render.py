"""Render a k8s stack's Kubernetes objects as a Kustomize base, for GitOps (Argo CD, Flux).

    uv run python -m infra.offline.render k8s --out deploy/modelship \\
        --set modelship:image=registry.example.com/team/modelship@sha256:<digest>

Offline: no Pulumi CLI, state, Docker, cluster or cloud. The real program runs with the offline
runner (`infra.offline.runner`, no cloud answers) with `modelship:renderDir` set, exactly as
`pulumi up` would run it in render mode: the program writes `kustomization.yaml`, and this command
writes each declared object where pulumi-kubernetes' `renderYamlToDirectory` would
(`infra.targets.k8s.manifests.render_path`).
The same directory comes out of `pulumi up` on a stack with `modelship:renderDir` set (the
provider then writes the objects). See docs/k8s.md ("GitOps").

No Secret is ever rendered: the API key is referenced by name (`modelship:apiKeySecret`) and a
render refuses `modelship:apiKey`. The image must already be pushed (`modelship:image`): this
command cannot build.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from infra.config import ConfigError
from infra.core.values import plain
from infra.offline.runner import OfflineMocks, run_program
from infra.settings import KEY_API_KEY
from infra.stack_file import read_stack_file, stack_file_path
from infra.targets.k8s.config import KEY_IMAGE, KEY_RENDER_DIR
from infra.targets.k8s.manifests import KUSTOMIZATION, write_manifests


class RenderError(Exception):
    """A stack that cannot be rendered offline, with what to do instead."""


def _parse_sets(values: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or ":" not in key:
            raise RenderError(f"--set takes namespace:key=value, got {item!r}")
        overrides[key] = value
    return overrides


def render_offline(stack: str, out: Path, overrides: Mapping[str, str]) -> list[str]:
    """Run the stack's program under the mocks with `renderDir=out`; write its objects there."""
    stack_file = read_stack_file(stack)
    config = {**stack_file.plain, **overrides}
    if config.get("modelship:target") != "k8s":
        raise RenderError(f"stack {stack!r} is not a k8s stack (modelship:target must be k8s)")
    if KEY_API_KEY in stack_file.config or KEY_API_KEY in overrides:
        raise RenderError(
            f"{KEY_API_KEY} is set: rendered YAML would carry it in clear text; create the "
            "Secret with your secret manager and set modelship:apiKeySecret to its name"
        )
    if not config.get(KEY_IMAGE):
        raise RenderError(
            f"the offline render cannot build images: set {KEY_IMAGE} to a pushed image, "
            "ideally by digest (--set modelship:image=REGISTRY/modelship@sha256:...)"
        )
    out = out.resolve()
    run = run_program(stack, {**config, KEY_RENDER_DIR: str(out)}, OfflineMocks(stack))
    objects = [plain(dict(r.inputs)) for r in run.resources if r.type.startswith("kubernetes:")]
    written = write_manifests(out, objects)
    listed = list(run.outputs.get("rendered_files") or [])
    if written != listed:  # pragma: no cover - the program and this writer share render_path
        raise RenderError(f"kustomization lists {listed}, rendered {written}")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.offline.render",
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
    if not stack_file_path(args.stack).exists():
        print(f"no Pulumi.{args.stack}.yaml at the repository root", file=sys.stderr)
        return 2
    try:
        written = render_offline(args.stack, args.out, _parse_sets(args.set))
    except (RenderError, ConfigError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"wrote {len(written)} objects and {KUSTOMIZATION} to {args.out}")
    for path in written:
        print(f"  {path}")
    print(f"deploy with: kubectl apply -k {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

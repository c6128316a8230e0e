"""A readable, reviewable plan of a stack, made without cloud credentials or the Pulumi CLI.

    uv run python -m tests.infra.plan gke           # print the plan of the gke stack
    uv run python -m tests.infra.plan gke --write   # update tests/infra/plans/gke.txt
    uv run python -m tests.infra.plan gke --check   # exit 1 if the committed plan is out of date

The program runs under the tests' mocks (`tests.infra.harness`) with the stack's
`Pulumi.<stack>.yaml`. Each resource is one line (type, name, parent, provider, dependencies),
followed by its inputs, one `path = value` per line; resources and properties are sorted, so any
change to the declared infrastructure shows up as a small diff. Secret-looking values are masked,
and the checkout's own path (the local stack's model store is a host directory) is shown as
`<repo>`, so the plan is the same on every machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.infra.harness import (
    REPO_ROOT,
    DeclaredResource,
    StackRun,
    load_stack_config,
    run_stack,
    stack_file_path,
)

PLANS_DIR = REPO_ROOT / "tests" / "infra" / "plans"
# Values a user must set before a real `up` (not in Pulumi.<stack>.yaml); the plan uses these.
PLACEHOLDERS: dict[str, str] = {"gcp:project": "example-project"}
# The same, for one stack only (a `modelship:*` placeholder would be an unknown key elsewhere),
# and values that would otherwise change the plan on every unrelated commit (the fargate image
# tag is a hash of the service sources; the plan shows a fixed tag instead).
STACK_PLACEHOLDERS: dict[str, dict[str, str]] = {
    "k8s": {"modelship:image": "registry.example.com/team/modelship@sha256:" + "0" * 64},
    "fargate": {"modelship:imageTag": "plan"},
}
# Input keys whose values are masked even when not marked secret (compared case-insensitively).
SECRET_KEYS = frozenset({"password", "stringdata", "kubeconfig", "token", "accesstoken"})
REPO_PLACEHOLDER = "<repo>"


def plan_path(stack: str) -> Path:
    return PLANS_DIR / f"{stack}.txt"


def update_command(stack: str) -> str:
    return f"uv run python -m tests.infra.plan {stack} --write"


def run_for_plan(stack: str) -> StackRun:
    """Run the stack with its own config plus placeholders for values only a user can set."""
    config = load_stack_config(stack)
    missing = {key: value for key, value in PLACEHOLDERS.items() if key not in config}
    relevant = {k: v for k, v in missing.items() if k.split(":")[0] in _namespaces(config)}
    relevant |= {k: v for k, v in STACK_PLACEHOLDERS.get(stack, {}).items() if k not in config}
    return run_stack(stack, relevant)


def _namespaces(config: Mapping[str, Any]) -> set[str]:
    return {key.split(":")[0] for key in config}


def render(run: StackRun) -> str:
    """The plan text of one stack run."""
    names = {r.urn: r.name for r in run.resources}
    lines = [
        f"# Plan of stack '{run.stack}' (made under mocks; update: {update_command(run.stack)})",
        f"# {len(run.resources)} resources",
    ]
    for resource in sorted(run.resources, key=lambda r: (r.type, r.name)):
        lines.append(_header(resource, names))
        for path, value in sorted(_flatten(resource.inputs)):
            secret = any(
                path == s or path.startswith((f"{s}.", f"{s}[")) for s in resource.secret_paths
            )
            lines.append(f"    {path} = {'[secret]' if secret else value}")
    lines.append("# outputs")
    for name, value in sorted(run.outputs.items()):
        shown = "[secret]" if name in run.secret_outputs else json.dumps(value, sort_keys=True)
        lines.append(f"    {name} = {shown}")
    return "\n".join(lines).replace(str(REPO_ROOT), REPO_PLACEHOLDER) + "\n"


def _header(resource: DeclaredResource, names: Mapping[str, str]) -> str:
    parts = [resource.type, resource.name]
    if resource.parent and resource.parent in names:
        parts.append(f"parent={names[resource.parent]}")
    if resource.provider_urn:
        parts.append(f"provider={names.get(resource.provider_urn, resource.provider_urn)}")
    deps = sorted({names.get(urn, urn) for urn in resource.dependencies if urn != resource.parent})
    if deps:
        parts.append("deps=[" + ", ".join(deps) + "]")
    if resource.delete_before_replace:
        parts.append("deleteBeforeReplace")
    if resource.ignore_changes:
        parts.append("ignoreChanges=[" + ", ".join(sorted(resource.ignore_changes)) + "]")
    if resource.custom_timeouts:
        parts.append(
            "timeouts=" + ",".join(f"{k}:{v}" for k, v in sorted(resource.custom_timeouts.items()))
        )
    return " ".join(parts)


def _flatten(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if any(part.lower() in SECRET_KEYS for part in re.split(r"[.\[\]]", path)):
        yield path, "[secret]"
    elif isinstance(value, Mapping):
        if not value:
            yield path, "{}"
        for key, item in value.items():
            yield from _flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            yield path, "[]"
        for index, item in enumerate(value):
            yield from _flatten(item, f"{path}[{index}]")
    elif isinstance(value, float) and value.is_integer():
        yield path, str(int(value))  # the engine sends every number as a float
    else:
        yield path, json.dumps(value, sort_keys=True, default=str)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.infra.plan", description=__doc__.split("\n")[0]
    )
    parser.add_argument("stack", help="stack name, e.g. gke (reads Pulumi.<stack>.yaml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update the committed plan file")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if the committed plan is out of date"
    )
    args = parser.parse_args(argv)

    if not stack_file_path(args.stack).exists():
        known = sorted(p.name for p in REPO_ROOT.glob("Pulumi.*.yaml"))
        print(f"no Pulumi.{args.stack}.yaml at the repository root; stacks: {', '.join(known)}")
        return 2
    text = render(run_for_plan(args.stack))
    path = plan_path(args.stack)
    if args.write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO_ROOT)}")
        return 0
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(
                f"{path.relative_to(REPO_ROOT)} is out of date; run: {update_command(args.stack)}"
            )
            return 1
        print(f"{path.relative_to(REPO_ROOT)} is up to date")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

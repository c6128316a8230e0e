"""Run the real `infra/` program for a stack without the Pulumi CLI, and record what it declares.

`run_program(stack, config, mocks)` sets `config` as the program's config, runs `infra/` exactly
as Pulumi's Python host does (`runpy.run_path` on the program directory, working directory
`infra/`), and returns every declared resource with its type, name, inputs, parent, provider and
dependencies, plus the stack outputs. No cloud is called: `mocks` answers the engine's side.

`OfflineMocks` is what a cloud-free run needs and nothing more: each resource's state is its
inputs, with the name Pulumi would give it; an invoke (a cloud read) fails loudly. That is
enough for the k8s render (`infra.offline.render`), which declares plain Kubernetes objects.
The tests' mocks (`tests/infra/mocks.py`) add the cloud answers the other stacks read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi.runtime.settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.stack_file import PROGRAM_DIR, PROJECT, config_string

# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class DeclaredResource:
    """One resource registration, as the engine would have received it."""

    urn: str
    type: str
    name: str
    custom: bool
    inputs: Mapping[str, Any]
    state: Mapping[str, Any]
    parent: str
    provider: str
    dependencies: tuple[str, ...]
    ignore_changes: tuple[str, ...]
    delete_before_replace: bool
    custom_timeouts: Mapping[str, str]
    secret_paths: frozenset[str] = frozenset()
    """Input paths (`stringData.api-key` style) whose values the program marked secret."""
    retain_on_delete: bool = False
    """`pulumi destroy` drops it from the state and leaves it in the cloud (kept model stores)."""

    @property
    def provider_urn(self) -> str:
        """The URN part of the provider reference (`urn::id`), or "" for the default provider."""
        return self.provider.rsplit("::", 1)[0] if self.provider else ""


@dataclass
class StackRun:
    """Everything one run of the program declared."""

    stack: str
    resources: list[DeclaredResource]
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)
    invokes: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> DeclaredResource:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {[r.name for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> DeclaredResource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise KeyError(urn)

    def named(self, name: str) -> DeclaredResource:
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise KeyError(name)


# --------------------------------------------------------------------------- mocks


def physical_name(name: str) -> str:
    """A stable stand-in for the random suffix Pulumi's auto-naming adds to a logical name."""
    return f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:7]}"


class OfflineMocks(pulumi.runtime.Mocks):
    """The engine's side of a run that calls no cloud: state = inputs, auto-named."""

    def __init__(self, stack: str, preview: bool = False) -> None:
        self.stack = stack
        self.preview = preview
        self.invokes: list[str] = []

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.invokes.append(args.token)
        raise NotImplementedError(f"an offline run cannot answer invoke {args.token}")

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider-id", state
        if args.typ.startswith("kubernetes:"):
            metadata = dict(state.get("metadata") or {})
            metadata.setdefault("name", physical_name(args.name))
            state["metadata"] = metadata
            namespace = metadata.get("namespace")
            return (f"{namespace}/{metadata['name']}" if namespace else metadata["name"]), state
        state.setdefault("name", physical_name(args.name))
        return f"{state['name']}-id", state


class RecordingMonitor(MockMonitor):
    """A mock monitor that also records parent, provider and dependencies of every registration."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.records: list[DeclaredResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        registration = self.resources[response.urn]
        timeouts = request.customTimeouts
        secret_paths: set[str] = set()
        inputs = _unwrap_secrets(_deserialize(request.object), "", secret_paths)
        self.records.append(
            DeclaredResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                inputs=inputs,
                state=dict(registration.state),
                parent=request.parent,
                provider=request.provider,
                dependencies=tuple(request.dependencies),
                ignore_changes=tuple(request.ignoreChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                retain_on_delete=bool(request.retainOnDelete),
                custom_timeouts={
                    k: v
                    for k, v in {
                        "create": timeouts.create,
                        "update": timeouts.update,
                        "delete": timeouts.delete,
                    }.items()
                    if v
                },
                secret_paths=frozenset(secret_paths),
            )
        )
        return response


# How the SDK marks a secret value on the wire when the monitor does not unwrap it.
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a wire marker
_SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a wire marker


def _unwrap_secrets(value: Any, path: str, secret_paths: set[str]) -> Any:
    """Replace secret wrappers by their values, remembering where they were."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG_VALUE:
            secret_paths.add(path)
            return _unwrap_secrets(value.get("value"), path, secret_paths)
        return {
            key: _unwrap_secrets(item, f"{path}.{key}" if path else str(key), secret_paths)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_unwrap_secrets(item, f"{path}[{i}]", secret_paths) for i, item in enumerate(value)]
    return value


def _deserialize(obj: Any) -> dict[str, Any]:
    from pulumi.runtime import rpc

    return cast("dict[str, Any]", rpc.deserialize_properties(obj))


# --------------------------------------------------------------------------- running


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_program(
    stack: str,
    config: Mapping[str, Any],
    mocks: OfflineMocks,
    *,
    secret_keys: tuple[str, ...] = (),
    project: str = PROJECT,
) -> StackRun:
    """Run `infra/` as stack `stack` of `project` with `config` (keys fully qualified) against
    `mocks`.

    Exceptions the program raises (e.g. `ConfigError`) propagate.
    """
    monitor = RecordingMonitor(mocks)
    runtime_settings.set_root_resource(cast("Any", None))  # a fresh Stack resource per run
    pulumi.runtime.set_mocks(
        mocks, project=project, stack=stack, preview=mocks.preview, monitor=monitor
    )
    pulumi.runtime.set_all_config(
        {key: config_string(value) for key, value in config.items()},
        secret_keys=list(secret_keys),
    )

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    def program() -> None:
        runpy.run_path(str(PROGRAM_DIR), run_name="__main__")
        root = runtime_settings.get_root_resource()
        exported: dict[str, Any] = dict(getattr(root, "outputs", {}))
        for name, value in exported.items():
            output = pulumi.Output.from_input(value)
            outputs[name] = _sync_await(output.future())
            if _sync_await(output.is_secret()):
                secret_outputs.add(name)

    with _working_directory(PROGRAM_DIR):
        _sync_await(run_pulumi_func(program))
    return StackRun(
        stack=stack,
        resources=sorted(monitor.records, key=lambda r: r.urn),
        outputs=outputs,
        secret_outputs=secret_outputs,
        invokes=list(mocks.invokes),
    )

"""Run the real `infra/` program for a stack under Pulumi's mocks and record what it declares.

No Pulumi CLI, cloud account or Docker is needed: `run_stack("gke")` loads `Pulumi.gke.yaml`,
sets it as the program's config, runs `infra/__main__.py` exactly as Pulumi's Python host does
(`runpy.run_path` on the program directory, working directory `infra/`), and returns every
declared resource with its type, name, inputs, parent, provider and dependencies, plus the stack
outputs. Used by the tests (`tests/infra/`) and by the plan tool (`python -m infra.plan`).

The mocks answer every invoke the program makes and supply the computed outputs the program
reads (image `ref`, cluster endpoint, LoadBalancer ingress IP, ...). An invoke without an answer
fails loudly instead of silently yielding None fields.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi.runtime.settings as runtime_settings
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO_ROOT = Path(__file__).resolve().parent.parent
PROGRAM_DIR = REPO_ROOT / "infra"
PROJECT = "modelship"

# Fixed, documentation-range values the mocks hand out for computed outputs.
MOCK_LB_IP = "203.0.113.10"
MOCK_ENDPOINT = "198.51.100.1"
MOCK_NODE_PORT = 30080  # what Kubernetes would pick from 30000-32767 when none is given
MOCK_ACCESS_TOKEN = "mock-access-token"  # noqa: S105 - not a credential; a fixed mock value
MOCK_AWS_ACCOUNT = "123456789012"
MOCK_ECR_PASSWORD = "mock-ecr-password"  # noqa: S105 - not a credential; a fixed mock value
MOCK_CA = base64.b64encode(
    b"-----BEGIN CERTIFICATE-----\nmock\n-----END CERTIFICATE-----\n"
).decode()


def stack_config_path(stack: str) -> Path:
    return REPO_ROOT / f"Pulumi.{stack}.yaml"


def load_stack_config(stack: str) -> dict[str, Any]:
    """The plain (non-secure) config of `Pulumi.<stack>.yaml`, keys fully qualified."""
    path = stack_config_path(stack)
    if not path.exists():
        raise FileNotFoundError(f"no stack config {path.name} at the repository root")
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path.name}: `config` must be a mapping")
    plain: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            continue  # encrypted with the stack's key; tests pass secrets as overrides instead
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        plain[full_key] = value
    return plain


def _config_string(value: Any) -> str:
    """Config values as the engine hands them to the program: strings, JSON for the rest."""
    return value if isinstance(value, str) else json.dumps(value)


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


def fake_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


class ModelshipMocks(pulumi.runtime.Mocks):
    """Answers the program's invokes and computes the outputs it reads."""

    def __init__(self, stack: str, preview: bool = False) -> None:
        self.stack = stack
        self.preview = preview
        self.invokes: list[str] = []

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.invokes.append(args.token)
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":  # noqa: S105
            return {
                "accessToken": MOCK_ACCESS_TOKEN,
                "id": "mock-client",
                "project": "mock-project",
                "region": "us-central1",
                "zone": "us-central1-a",
            }, []
        if args.token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":  # noqa: S105
            project = args.args.get("project", "mock-project")
            return {
                "id": project,
                "project": project,
                "emailAddress": f"service-123456789012@gs-project-accounts.{project}.iam",
                "member": f"serviceAccount:service-123456789012@gs-project-accounts.{project}.iam",
            }, []
        if args.token.startswith("aws:"):
            return _aws_invoke(args.token, dict(args.args)), []
        raise NotImplementedError(
            f"the test mocks do not answer invoke {args.token}; add it to ModelshipMocks.call"
        )

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        physical = f"{args.name}-{hashlib.sha256(args.name.encode()).hexdigest()[:7]}"
        typ = args.typ
        if typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider-id", state
        if typ.startswith("kubernetes:"):
            metadata = dict(state.get("metadata") or {})
            metadata.setdefault("name", physical)
            state["metadata"] = metadata
            if typ == "kubernetes:core/v1:Service" and not self.preview:
                _service_status(state)
            namespace = metadata.get("namespace")
            return (f"{namespace}/{metadata['name']}" if namespace else metadata["name"]), state
        if typ == "docker-build:index:Image":
            if self.preview and not state.get("buildOnPreview"):
                return f"{args.name}-id", state  # not built at preview: ref stays unknown
            tags = list(state.get("tags") or [])
            repository = tags[0].rsplit(":", 1)[0] if tags else "unknown"
            # Same inputs, same digest (as with a real, reproducible build): changes show in plans.
            digest = fake_digest(json.dumps(state, sort_keys=True, default=str))
            # Not pushed (local target): `ref` is one of the tags, as the provider documents.
            ref = f"{repository}@{digest}" if state.get("push") else (tags[0] if tags else "")
            context = fake_digest(json.dumps(state.get("context"), sort_keys=True))
            state.update({"digest": digest, "ref": ref, "contextHash": context})
            return f"{args.name}-id", state
        if typ.startswith("docker:"):
            return self._docker(args.name, typ, state)
        state.setdefault("name", physical)
        if typ == "gcp:container/cluster:Cluster":
            state.update(
                {
                    "endpoint": MOCK_ENDPOINT,
                    "masterAuth": {"clusterCaCertificate": MOCK_CA},
                    "selfLink": f"https://container.googleapis.com/v1/{state['name']}",
                }
            )
        elif typ == "gcp:serviceaccount/account:Account":
            account = state.get("accountId", physical)
            project = state.get("project", "mock-project")
            state["email"] = f"{account}@{project}.iam.gserviceaccount.com"
            state["name"] = f"projects/{project}/serviceAccounts/{state['email']}"
        elif typ == "gcp:compute/globalAddress:GlobalAddress":
            state["address"] = MOCK_LB_IP
        elif typ.startswith("aws:"):
            return _aws_outputs(typ, args.name, state)
        return f"{state['name']}-id", state

    def _docker(self, name: str, typ: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Local target: the Docker engine's computed fields the program reads."""
        state.setdefault("name", f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:7]}")
        if typ == "docker:index/remoteImage:RemoteImage":
            if self.preview:
                return f"{name}-id", state  # the build it resolves has not run
            image_id = fake_digest(json.dumps(state, sort_keys=True, default=str))
            state.update({"imageId": image_id, "repoDigest": ""})
            return f"{image_id}{state['name']}", state
        return f"{state['name']}-id", state


def _service_status(state: dict[str, Any]) -> None:
    """What Kubernetes fills in for a Service: a node port (NodePort, LoadBalancer) and, for a
    LoadBalancer, the address of its load balancer."""
    spec = dict(state.get("spec") or {})
    kind = spec.get("type", "ClusterIP")
    if kind in ("NodePort", "LoadBalancer"):
        spec["ports"] = [
            {"nodePort": MOCK_NODE_PORT + i, **dict(port)}
            for i, port in enumerate(spec.get("ports") or [])
        ]
        state["spec"] = spec
    if kind == "LoadBalancer":
        state["status"] = {"loadBalancer": {"ingress": [{"ip": MOCK_LB_IP}]}}


# --------------------------------------------------------------------------- AWS answers


# What DescribeAvailabilityZones answers a (made-up, older) account: zone names map to zone ids
# per account, so names in order do not give ids in order; us-west-1 and ap-northeast-1 include
# the zone id where Fargate does not run (usw1-az2, apne1-az3), as older accounts have it.
MOCK_ZONES: dict[str, list[tuple[str, str]]] = {
    "us-east-1": [("a", "use1-az4"), ("b", "use1-az6"), ("c", "use1-az1"), ("d", "use1-az2"),
                  ("e", "use1-az3"), ("f", "use1-az5")],
    "us-west-1": [("a", "usw1-az2"), ("b", "usw1-az3"), ("c", "usw1-az1")],
    "ap-northeast-1": [("a", "apne1-az4"), ("b", "apne1-az3"), ("c", "apne1-az1"),
                       ("d", "apne1-az2")],
}  # fmt: skip


def _aws_region() -> str:
    return pulumi.Config("aws").get("region") or "us-east-1"


def _aws_invoke(invoke: str, args: dict[str, Any]) -> dict[str, Any]:
    """The AWS data sources the fargate target reads."""
    region = _aws_region()
    account = MOCK_AWS_ACCOUNT
    if invoke == "aws:index/getAvailabilityZones:getAvailabilityZones":
        country, *words, number = region.split("-")
        code = country + "".join(word[0] for word in words) + number
        zones = MOCK_ZONES.get(
            region, [(letter, f"{code}-az{i}") for i, letter in enumerate("abc", 1)]
        )
        return {
            "id": region,
            "names": [f"{region}{letter}" for letter, _ in zones],
            "zoneIds": [zone_id for _, zone_id in zones],
            "groupNames": [region] * len(zones),
            "state": args.get("state"),
        }
    if invoke == "aws:index/getCallerIdentity:getCallerIdentity":
        return {
            "id": account,
            "accountId": account,
            "arn": f"arn:aws:iam::{account}:user/modelship-deployer",
            "userId": "AIDAMOCKUSERID",
        }
    if invoke == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
        return {
            "id": region,
            "authorizationToken": base64.b64encode(f"AWS:{MOCK_ECR_PASSWORD}".encode()).decode(),
            "expiresAt": "2026-11-26T11:00:00Z",
            "password": MOCK_ECR_PASSWORD,
            "proxyEndpoint": f"https://{account}.dkr.ecr.{region}.amazonaws.com",
            "registryId": args.get("registryId", account),
            "userName": "AWS",
        }
    raise NotImplementedError(
        f"the test mocks do not answer invoke {invoke}; add it to ModelshipMocks.call"
    )


def _aws_outputs(typ: str, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Computed outputs of AWS resources: ARNs, ids, DNS names, the ECR URL."""
    region, account = _aws_region(), MOCK_AWS_ACCOUNT
    physical = str(state["name"])
    service = typ.split(":")[1].split("/", maxsplit=1)[0]
    kind = typ.rsplit(":", 1)[1].lower()
    short = hashlib.sha256(name.encode()).hexdigest()
    state.setdefault("arn", f"arn:aws:{service}:{region}:{account}:{kind}/{physical}")
    if typ == "aws:ecr/repository:Repository":
        state["registryId"] = account
        state["repositoryUrl"] = f"{account}.dkr.ecr.{region}.amazonaws.com/{physical}"
    elif typ == "aws:lb/loadBalancer:LoadBalancer":
        state["arnSuffix"] = f"app/{physical[:32]}/{short[:16]}"
        state["dnsName"] = f"{physical[:32]}-{int(short[:8], 16)}.{region}.elb.amazonaws.com"
    elif typ == "aws:lb/targetGroup:TargetGroup":
        state["arnSuffix"] = f"targetgroup/{physical[:32]}/{short[:16]}"
    elif typ == "aws:iam/role:Role":
        state["arn"] = f"arn:aws:iam::{account}:role/{physical}"
    elif typ == "aws:ssm/parameter:Parameter":
        state["arn"] = f"arn:aws:ssm:{region}:{account}:parameter{physical}"
    elif typ == "aws:secretsmanager/secret:Secret":
        prefix = state.get("namePrefix") or f"{physical}-"
        state["arn"] = f"arn:aws:secretsmanager:{region}:{account}:secret:{prefix}AbCdEf"
    elif typ == "aws:s3/bucket:Bucket":
        # Named from bucket_prefix plus a 26-character suffix, as the provider does; id = name.
        bucket = state.get("bucket") or f"{state.get('bucketPrefix') or 'bucket-'}{short[:26]}"
        state.update({"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"})
        return bucket, state
    elif typ == "aws:ecs/taskDefinition:TaskDefinition":
        state["arn"] = f"arn:aws:ecs:{region}:{account}:task-definition/{state['family']}:1"
        state["revision"] = 1
    prefix = {"aws:ec2/vpc:Vpc": "vpc", "aws:ec2/subnet:Subnet": "subnet"}.get(typ)
    resource_id = f"{prefix}-{short[:17]}" if prefix else f"{physical}-id"
    return resource_id, state


class RecordingMonitor(MockMonitor):
    """A mock monitor that also records parent, provider and dependencies of every registration."""

    def __init__(self, mocks: ModelshipMocks) -> None:
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


def run_stack(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    secrets: Mapping[str, str] | None = None,
    unset: tuple[str, ...] = (),
    preview: bool = False,
    stack_name: str | None = None,
) -> StackRun:
    """Run `infra/` for `stack` with its `Pulumi.<stack>.yaml` (plus overrides) under mocks.

    `overrides` replace or add config keys, `secrets` add secret config keys, `unset` removes keys.
    `stack_name` is the name the program sees (default `stack`): a stack named `gke_prod` with
    the gke stack's config. Exceptions the program raises (e.g. `ConfigError`) propagate.
    """
    name = stack_name or stack
    config = {**load_stack_config(stack), **(overrides or {}), **(secrets or {})}
    for key in unset:
        config.pop(key, None)

    mocks = ModelshipMocks(name, preview=preview)
    monitor = RecordingMonitor(mocks)
    runtime_settings.set_root_resource(cast("Any", None))  # a fresh Stack resource per run
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=name, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(
        {key: _config_string(value) for key, value in config.items()},
        secret_keys=list(secrets or {}),
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
        stack=name,
        resources=sorted(monitor.records, key=lambda r: r.urn),
        outputs=outputs,
        secret_outputs=secret_outputs,
        invokes=list(mocks.invokes),
    )

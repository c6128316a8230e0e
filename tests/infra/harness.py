"""The tests' stand-in for the clouds: `run_stack(stack)` runs the real program under mocks.

`run_stack("gke")` loads `Pulumi.gke.yaml` (plus overrides), runs `infra/` through the offline
runner (`infra.offline.runner`) and returns every declared resource and the stack outputs. Used
by the tests (`tests/infra/`, `tests/policy/`, `tests/image/`) and by the plan tool
(`python -m tests.infra.plan`).

`ModelshipMocks` answers every invoke the program makes and supplies the computed outputs the
program reads (image `ref`, cluster endpoint, LoadBalancer ingress IP, ARNs, ...), all fixed,
documentation-range values. An invoke without an answer fails loudly instead of silently
yielding None fields.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pulumi

from infra.offline.runner import (
    DeclaredResource,
    OfflineMocks,
    StackRun,
    physical_name,
    run_program,
)
from infra.stack_file import PROGRAM_DIR, PROJECT, REPO_ROOT, load_stack_config, stack_file_path

__all__ = [
    "MOCK_ACCESS_TOKEN",
    "MOCK_AWS_ACCOUNT",
    "MOCK_ECR_PASSWORD",
    "MOCK_LB_IP",
    "MOCK_NODE_PORT",
    "PROGRAM_DIR",
    "REPO_ROOT",
    "DeclaredResource",
    "ModelshipMocks",
    "StackRun",
    "load_stack_config",
    "run_stack",
    "stack_file_path",
]

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


def fake_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


class ModelshipMocks(OfflineMocks):
    """Answers the program's invokes and computes the outputs it reads."""

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
        typ = args.typ
        if typ.startswith(("pulumi:providers:", "kubernetes:")):
            resource_id, state = super().new_resource(args)
            if typ == "kubernetes:core/v1:Service" and not self.preview:
                _service_status(state)
            return resource_id, state
        state = dict(args.inputs)
        physical = physical_name(args.name)
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
        state.setdefault("name", physical_name(name))
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


def run_stack(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    secrets: Mapping[str, str] | None = None,
    unset: tuple[str, ...] = (),
    preview: bool = False,
    stack_name: str | None = None,
    project: str = PROJECT,
) -> StackRun:
    """Run `infra/` for `stack` with its `Pulumi.<stack>.yaml` (plus overrides) under mocks.

    `overrides` replace or add config keys, `secrets` add secret config keys, `unset` removes keys.
    `stack_name` is the name the program sees (default `stack`): a stack named `gke_prod` with
    the gke stack's config; `project` the project's name (Pulumi.yaml). Exceptions the program
    raises (e.g. `ConfigError`) propagate.
    """
    name = stack_name or stack
    config = {**load_stack_config(stack), **(overrides or {}), **(secrets or {})}
    for key in unset:
        config.pop(key, None)

    mocks = ModelshipMocks(name, preview=preview)
    return run_program(name, config, mocks, secret_keys=tuple(secrets or {}), project=project)

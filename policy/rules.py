"""The rules of modelship's policy pack, importable without starting the pack.

Each rule is a plain function over one resource (type + camelCase input properties, as the engine
sends them, not the SDK's snake_case) or over the whole stack, wrapped into a
`ResourceValidationPolicy` or `StackValidationPolicy` in `POLICIES`. The rules cover the resource
types every target declares or will declare: GKE/GCP, ECS Fargate/AWS (security groups and their
rule resources, ECR, CloudWatch logs, task definitions, load balancers), Kubernetes objects on any
cluster, and local Docker.

Mandatory rules block `pulumi preview`/`up`; advisory ones print a warning. Values unknown during
a preview (an image digest before the build) make `pulumi_policy` skip the check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyProviderResource,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

REQUIRED_LABELS = ("project", "stack", "managed-by")
ENVIRONMENTS = ("development", "staging", "production")
DEFAULT_ENVIRONMENT = "development"
# The only ports a load balancer listens on; nothing else may be open to the internet.
LISTENER_PORTS = frozenset({80, 443})
WORLD = frozenset({"0.0.0.0/0", "::/0"})
DIGEST_REF = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
ROOT_USERS = frozenset({"0", "root"})

K8S_WORKLOADS = {
    "kubernetes:apps/v1:Deployment": "spec.template.spec",
    "kubernetes:apps/v1:StatefulSet": "spec.template.spec",
    "kubernetes:apps/v1:DaemonSet": "spec.template.spec",
    "kubernetes:core/v1:Pod": "spec",
    "kubernetes:batch/v1:Job": "spec.template.spec",
    "kubernetes:batch/v1:CronJob": "spec.jobTemplate.spec.template.spec",
}
# Run-to-completion workloads: no traffic to be ready for, nothing to keep alive, so no probes.
K8S_BATCH = frozenset({"kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob"})
ECS_TASK = "aws:ecs/taskDefinition:TaskDefinition"
DOCKER_CONTAINER = "docker:index/container:Container"

# AWS types that take `tags` (checked against pulumi_aws in tests/policy). Rule resources like
# aws:ec2/securityGroupRule and IAM attachments take none and are not listed.
AWS_TAGGED = frozenset(
    {
        "aws:appautoscaling/target:Target",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:ec2/eip:Eip",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:ecr/repository:Repository",
        "aws:ecs/cluster:Cluster",
        "aws:ecs/service:Service",
        "aws:ecs/taskDefinition:TaskDefinition",
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:lb/listener:Listener",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:s3/bucket:Bucket",
        "aws:secretsmanager/secret:Secret",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    }
)
# GCP types that take labels, and the field (checked against pulumi_gcp in tests/policy).
GCP_LABELS = {
    "gcp:artifactregistry/repository:Repository": "labels",
    "gcp:compute/address:Address": "labels",
    "gcp:compute/globalAddress:GlobalAddress": "labels",
    "gcp:container/cluster:Cluster": "resourceLabels",
    "gcp:secretmanager/secret:Secret": "labels",
    "gcp:storage/bucket:Bucket": "labels",
}
GCS_BUCKET = "gcp:storage/bucket:Bucket"
S3_BUCKET = "aws:s3/bucket:Bucket"
# pulumi-aws 7 names; the V2 names are the deprecated aliases of the same resources.
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_VERSIONING = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)
S3_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
S3_BLOCK_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
DOCKER_LABELLED = frozenset(
    {DOCKER_CONTAINER, "docker:index/network:Network", "docker:index/volume:Volume"}
)
BUILD_IMAGE = "docker-build:index:Image"
BUILD_LABEL_PREFIX = "org.modelship."


# --------------------------------------------------------------------------- helpers


def get(props: Any, path: str, default: Any = None) -> Any:
    """`props["a"]["b"]` for path `a.b`, or `default` when any level is missing."""
    value = props
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _port_span(from_port: Any, to_port: Any, protocol: Any) -> tuple[int, int]:
    """The port range a rule opens; all ports for protocol -1/all or a missing range."""
    if str(protocol).lower() in ("-1", "all") or from_port is None:
        return 0, 65535
    low = int(from_port)
    high = int(to_port) if to_port is not None else low
    return (0, 65535) if low < 0 else (low, high)


def _beyond_listeners(span: tuple[int, int]) -> bool:
    low, high = span
    return high - low > 1 or not {low, high} <= LISTENER_PORTS


def _span_text(span: tuple[int, int]) -> str:
    return str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"


def _open_message(what: str, span: tuple[int, int], cidrs: Iterable[str]) -> str:
    return (
        f"{what} opens port {_span_text(span)} to {', '.join(sorted(cidrs))}: only the load "
        "balancer's listeners (80, 443) may face the internet; let the tasks/pods accept traffic "
        "from the load balancer's security group (or the cluster's load balancer) only"
    )


def _is_root(user: Any) -> bool:
    return str(user).split(":", 1)[0].strip() in ROOT_USERS


# --------------------------------------------------------------------------- rules (one resource)


def _aws_group_ingress(props: Mapping[str, Any]) -> Iterator[str]:
    for rule in _items(props.get("ingress")):
        cidrs = WORLD & {*_items(rule.get("cidrBlocks")), *_items(rule.get("ipv6CidrBlocks"))}
        span = _port_span(rule.get("fromPort"), rule.get("toPort"), rule.get("protocol"))
        if cidrs and _beyond_listeners(span):
            yield _open_message("an inline ingress rule of this security group", span, cidrs)


def _aws_ingress_rule(props: Mapping[str, Any]) -> Iterator[str]:
    cidrs = WORLD & {props.get("cidrIpv4"), props.get("cidrIpv6")}
    span = _port_span(props.get("fromPort"), props.get("toPort"), props.get("ipProtocol"))
    if cidrs and _beyond_listeners(span):
        yield _open_message("this ingress rule", span, cidrs)


def _aws_group_rule(props: Mapping[str, Any]) -> Iterator[str]:
    cidrs = WORLD & {*_items(props.get("cidrBlocks")), *_items(props.get("ipv6CidrBlocks"))}
    span = _port_span(props.get("fromPort"), props.get("toPort"), props.get("protocol"))
    if props.get("type") == "ingress" and cidrs and _beyond_listeners(span):
        yield _open_message("this ingress rule", span, cidrs)


def _gcp_firewall(props: Mapping[str, Any]) -> Iterator[str]:
    cidrs = WORLD & set(_items(props.get("sourceRanges")))
    if props.get("direction", "INGRESS") != "INGRESS" or not cidrs:
        return
    for allow in _items(props.get("allows")):
        for port in _items(allow.get("ports")) or ["0-65535"]:
            low, _, high = str(port).partition("-")
            span = (int(low), int(high or low))
            if _beyond_listeners(span):
                yield _open_message("this firewall rule", span, cidrs)


def _k8s_service(props: Mapping[str, Any]) -> Iterator[str]:
    kind = get(props, "spec.type", "ClusterIP")
    if kind == "NodePort":
        yield (
            "a NodePort Service opens its port on every node: use ClusterIP behind an "
            "Ingress, or a LoadBalancer Service on port 80/443"
        )
    if kind != "LoadBalancer":
        return
    for port in _items(get(props, "spec.ports")):
        number = int(port.get("port", 0))
        if number not in LISTENER_PORTS:
            yield (
                f"this LoadBalancer Service exposes port {number} to the internet: "
                "expose only 80/443 and map them to the container port with targetPort"
            )


_INGRESS_CHECKS: dict[str, Callable[[Mapping[str, Any]], Iterator[str]]] = {
    "aws:ec2/securityGroup:SecurityGroup": _aws_group_ingress,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _aws_ingress_rule,
    "aws:ec2/securityGroupRule:SecurityGroupRule": _aws_group_rule,
    "gcp:compute/firewall:Firewall": _gcp_firewall,
    "kubernetes:core/v1:Service": _k8s_service,
}


def check_open_ingress(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    """Security groups, firewall rules and Services open nothing beyond the listener ports."""
    check = _INGRESS_CHECKS.get(resource_type)
    if check is not None:
        yield from check(props)


def check_registry_scanning(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    """Registries scan what is pushed to them."""
    if resource_type == "aws:ecr/repository:Repository":
        if get(props, "imageScanningConfiguration.scanOnPush") is not True:
            yield (
                "this ECR repository does not scan images on push: set "
                "image_scanning_configuration=RepositoryImageScanningConfigurationArgs("
                "scan_on_push=True)"
            )
    elif (
        resource_type == "gcp:artifactregistry/repository:Repository"
        and get(props, "vulnerabilityScanningConfig.enablementConfig") == "DISABLED"
    ):
        yield (
            "vulnerability scanning is disabled on this Artifact Registry repository: "
            "leave vulnerability_scanning_config at INHERITED"
        )


def check_log_retention(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    """Logs expire: a log group without retention keeps (and bills) logs forever."""
    if resource_type == "aws:cloudwatch/logGroup:LogGroup":
        days = props.get("retentionInDays")
        if days is None or int(days) <= 0:
            yield (
                "this log group keeps logs forever: set retention_in_days (modelship uses 14 by "
                "default)"
            )
    elif resource_type == DOCKER_CONTAINER:
        driver = props.get("logDriver") or "json-file"
        if driver == "json-file" and not get(props, "logOpts.max-size"):
            yield (
                "this container's json-file logs grow without limit: set "
                "log_opts={'max-size': '10m', 'max-file': '3'}"
            )


def check_deletion_protection(
    resource_type: str, props: Mapping[str, Any], environment: str
) -> Iterator[str]:
    """Production is protected from deletion; every other stack can be destroyed cleanly."""
    production = environment == "production"
    protected: bool | None = None
    what = ""
    if resource_type == "gcp:container/cluster:Cluster":
        protected = props.get("deletionProtection", True) is not False  # pulumi-gcp: on by default
        what = "deletion_protection"
    elif resource_type == "aws:lb/loadBalancer:LoadBalancer":
        protected = props.get("enableDeletionProtection") is True
        what = "enable_deletion_protection"
    elif resource_type == "aws:ecr/repository:Repository" and not production:
        if props.get("forceDelete") is not True:
            yield (
                f"in a {environment} stack this ECR repository must be deletable with its images "
                "(force_delete=True), or `pulumi destroy` fails with RepositoryNotEmptyException"
            )
        return
    if protected is None or protected == production:
        return
    if production:
        yield f"the stack's environment is production: set {what}=True on this resource"
    else:
        yield (
            f"the stack's environment is {environment}: {what} must be off so `pulumi destroy` "
            "works (set modelship:environment production for a protected stack)"
        )


def labels_of(
    resource_type: str, props: Mapping[str, Any], provider: PolicyProviderResource | None
) -> dict[str, Any] | None:
    """The labels/tags a resource carries, or None when its type takes none."""
    if resource_type.startswith("pulumi:providers:"):
        return None
    if resource_type.startswith("kubernetes:"):
        return dict(get(props, "metadata.labels") or {})
    if resource_type.startswith("aws:"):
        if resource_type not in AWS_TAGGED and "tags" not in props:
            return None
        defaults = get(provider.props, "defaultTags.tags") if provider is not None else None
        return {**dict(defaults or {}), **dict(props.get("tags") or {})}
    if resource_type in GCP_LABELS:
        return dict(props.get(GCP_LABELS[resource_type]) or {})
    if resource_type in DOCKER_LABELLED:
        return {item.get("label"): item.get("value") for item in _items(props.get("labels"))}
    if resource_type == BUILD_IMAGE:
        labels = dict(props.get("labels") or {})
        return {
            k.removeprefix(BUILD_LABEL_PREFIX): v
            for k, v in labels.items()
            if k.startswith(BUILD_LABEL_PREFIX)
        }
    return None


def check_required_labels(
    resource_type: str, props: Mapping[str, Any], provider: PolicyProviderResource | None
) -> Iterator[str]:
    """Every resource that takes labels/tags carries project, stack and managed-by."""
    labels = labels_of(resource_type, props, provider)
    if labels is None:
        return
    missing = [key for key in REQUIRED_LABELS if not labels.get(key)]
    if missing:
        yield (
            f"missing label(s)/tag(s) {', '.join(missing)}: every resource carries "
            f"{', '.join(REQUIRED_LABELS)} (infra.core.labels.standard_labels)"
        )


def container_images(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(container name, image) of every container a resource runs."""
    if resource_type in K8S_WORKLOADS:
        pod = get(props, K8S_WORKLOADS[resource_type], {})
        for container in [*_items(pod.get("initContainers")), *_items(pod.get("containers"))]:
            yield str(container.get("name")), container.get("image")
    elif resource_type == ECS_TASK:
        for container in ecs_containers(props):
            yield str(container.get("name")), container.get("image")
    elif resource_type == DOCKER_CONTAINER:
        yield "container", props.get("image")


def check_image_digest(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    """Images are referenced by digest (or local image id), never by a movable tag."""
    for name, image in container_images(resource_type, props):
        if image is None:
            continue
        pinned = DIGEST_REF.fullmatch(str(image)) or (
            resource_type == DOCKER_CONTAINER and IMAGE_ID.fullmatch(str(image))
        )
        if not pinned:
            yield (
                f"container {name} runs image {image!r} by tag: deploy the build's digest "
                "(ServiceImage.ref, name@sha256:...) so a rebuild rolls out and nothing else does"
            )


def check_local_loopback(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    """Advisory: a local container is published on the loopback address only."""
    if resource_type != DOCKER_CONTAINER:
        return
    for port in _items(props.get("ports")):
        address = port.get("ip") or "0.0.0.0"  # noqa: S104 - Docker's default, which we flag
        if address != "127.0.0.1":
            yield (
                f"port {int(port.get('external') or 0)} is published on {address}, reachable from "
                "your network: use modelship:bindAddress 127.0.0.1 unless you mean to share it"
            )


# --------------------------------------------------------------------------- rules (whole stack)


def ecs_containers(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The container definitions of a task definition (a JSON string on the wire)."""
    raw = props.get("containerDefinitions")
    if isinstance(raw, str):
        raw = json.loads(raw)
    return [c for c in _items(raw) if isinstance(c, Mapping)]


def _k8s_container_problems(
    pod: Mapping[str, Any], container: Mapping[str, Any], probes: bool = True
) -> list[str]:
    pod_ctx = pod.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True
    user = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    problems = []
    if not non_root or (user is not None and int(user) == 0):
        problems.append(
            "runs as root (set securityContext.runAsNonRoot true and a non-zero runAsUser)"
        )
    limits = get(container, "resources.limits") or {}
    missing = [k for k in ("cpu", "memory") if not limits.get(k)]
    if missing:
        problems.append(f"has no {' or '.join(missing)} limit")
    for probe in ("livenessProbe", "readinessProbe") if probes else ():
        if not container.get(probe):
            problems.append(f"has no {probe}")
    return problems


def _ecs_container_problems(
    task: Mapping[str, Any], container: Mapping[str, Any], balancer_checks: bool
) -> list[str]:
    problems = []
    user = container.get("user")
    if user is None or _is_root(user):
        problems.append("runs as root (set user to the image's non-root UID:GID, 10001:10001)")
    has_memory = task.get("memory") or container.get("memory") or container.get("memoryReservation")
    if not (task.get("cpu") or container.get("cpu")) or not has_memory:
        problems.append("has no CPU/memory size (set the task's cpu and memory)")
    if not container.get("healthCheck") and not balancer_checks:
        problems.append(
            "has no health check (container healthCheck or a target-group health check)"
        )
    return problems


def _docker_container_problems(props: Mapping[str, Any]) -> list[str]:
    problems = []
    user = props.get("user")
    if user is None or _is_root(user):
        problems.append("runs as root (set user to 10001:10001)")
    if not props.get("memory"):
        problems.append("has no memory limit")
    if not (props.get("cpus") or props.get("cpuShares") or props.get("cpuQuota")):
        problems.append("has no CPU limit")
    tests = _items(get(props, "healthcheck.tests"))
    if not tests or tests[0] == "NONE":
        problems.append("has no health check")
    return problems


def check_containers(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    """(urn, message) for every container that runs as root, unbounded or unprobed."""
    balancer_checks = any(
        r.resource_type == "aws:lb/targetGroup:TargetGroup" and get(r.props, "healthCheck.path")
        for r in resources
    )
    for r in resources:
        found: list[tuple[str, list[str]]] = []
        if r.resource_type in K8S_WORKLOADS:
            pod = get(r.props, K8S_WORKLOADS[r.resource_type], {})
            for c in _items(pod.get("containers")):
                probes = r.resource_type not in K8S_BATCH
                found.append((str(c.get("name")), _k8s_container_problems(pod, c, probes)))
        elif r.resource_type == ECS_TASK:
            for c in ecs_containers(r.props):
                found.append(
                    (str(c.get("name")), _ecs_container_problems(r.props, c, balancer_checks))
                )
        elif r.resource_type == DOCKER_CONTAINER:
            found.append((r.name, _docker_container_problems(r.props)))
        for name, problems in found:
            if problems:
                yield r.urn, f"container {name} " + "; ".join(problems)


def check_gcs_bucket(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    """A GCS bucket is private (IAM only, public access prevented) and keeps object versions."""
    if resource_type != GCS_BUCKET:
        return
    if props.get("publicAccessPrevention") != "enforced":
        yield "set public_access_prevention='enforced': nothing in this bucket may become public"
    if props.get("uniformBucketLevelAccess") is not True:
        yield "set uniform_bucket_level_access=True: access by IAM only, no per-object ACLs"
    if get(props, "versioning.enabled") is not True:
        yield "enable versioning: an overwritten or deleted object must stay recoverable"


def check_s3_buckets(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    """Every S3 bucket has its public access blocked, versioning and default encryption.

    pulumi-aws 7 declares these as separate resources naming the bucket; their number must match
    the buckets' (the link itself is an output, unknown at preview for a new bucket).
    """
    buckets = [r for r in resources if r.resource_type == S3_BUCKET]
    if not buckets:
        return
    blocks = [
        r
        for r in resources
        if r.resource_type == S3_PUBLIC_ACCESS_BLOCK
        and all(r.props.get(flag) is True for flag in S3_BLOCK_FLAGS)
    ]
    versioned = [
        r
        for r in resources
        if r.resource_type in S3_VERSIONING
        and get(r.props, "versioningConfiguration.status") == "Enabled"
    ]
    encrypted = [
        r
        for r in resources
        if r.resource_type in S3_ENCRYPTION
        and any(
            get(rule, "applyServerSideEncryptionByDefault.sseAlgorithm")
            for rule in _items(r.props.get("rules"))
        )
    ]
    missing = [
        what
        for what, found in (
            ("a public access block with all four flags true", blocks),
            ("versioning with status Enabled", versioned),
            ("default server-side encryption", encrypted),
        )
        if len(found) < len(buckets)
    ]
    if missing:
        for bucket in buckets:
            yield bucket.urn, "every S3 bucket needs " + ", ".join(missing)


def check_scanning_api(resources: Sequence[PolicyResource]) -> Iterator[tuple[str, str]]:
    """Advisory: Artifact Registry scans only once the Container Scanning API is enabled."""
    repositories = [
        r for r in resources if r.resource_type == "gcp:artifactregistry/repository:Repository"
    ]
    enabled = {
        r.props.get("service")
        for r in resources
        if r.resource_type == "gcp:projects/service:Service"
    }
    if repositories and "containerscanning.googleapis.com" not in enabled:
        for r in repositories:
            yield (
                r.urn,
                (
                    "Artifact Registry scans pushed images only with "
                    "containerscanning.googleapis.com enabled in the project (billed per image "
                    "scanned): enable it, or accept unscanned images"
                ),
            )


# --------------------------------------------------------------------------- policies

ResourceCheck = Callable[[ResourceValidationArgs], Iterator[str]]
StackCheck = Callable[[Sequence[PolicyResource]], Iterator[tuple[str, str]]]

ENVIRONMENT_SCHEMA = PolicyConfigSchema(
    properties={
        "environment": {
            "type": "string",
            "enum": list(ENVIRONMENTS),
            "default": DEFAULT_ENVIRONMENT,
        }
    }
)


def environment_of(config: Mapping[str, Any]) -> str:
    """The stack's declared environment from the policy config (`python -m policy.stack_config`)."""
    value = config.get("environment") or DEFAULT_ENVIRONMENT
    return str(value) if value in ENVIRONMENTS else DEFAULT_ENVIRONMENT


def _resource_policy(
    name: str,
    description: str,
    level: EnforcementLevel,
    check: ResourceCheck,
    config_schema: PolicyConfigSchema | None = None,
) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in check(args):
            report(message, None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        enforcement_level=level,
        validate=validate,
        config_schema=config_schema,
    )


def _stack_policy(
    name: str, description: str, level: EnforcementLevel, check: StackCheck
) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for urn, message in check(args.resources):
            report(message, urn)

    return StackValidationPolicy(
        name=name, description=description, enforcement_level=level, validate=validate
    )


MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

POLICIES: list[Policy] = [
    _resource_policy(
        "no-open-ingress",
        "Security groups, firewalls and Services open only 80/443 (the load balancer) to all.",
        MANDATORY,
        lambda a: check_open_ingress(a.resource_type, a.props),
    ),
    _stack_policy(
        "containers-hardened",
        "Containers run as non-root, with CPU/memory limits and health probes.",
        MANDATORY,
        check_containers,
    ),
    _resource_policy(
        "registry-scans-images",
        "Container registries scan pushed images for vulnerabilities.",
        MANDATORY,
        lambda a: check_registry_scanning(a.resource_type, a.props),
    ),
    _stack_policy(
        "registry-scanning-api",
        "Artifact Registry's scanning API is enabled where repositories exist.",
        ADVISORY,
        check_scanning_api,
    ),
    _resource_policy(
        "log-retention",
        "Log groups and container logs have a retention limit.",
        MANDATORY,
        lambda a: check_log_retention(a.resource_type, a.props),
    ),
    _resource_policy(
        "deletion-protection-matches-environment",
        "Deletion protection on in production, off elsewhere so destroy works.",
        MANDATORY,
        lambda a: check_deletion_protection(
            a.resource_type, a.props, environment_of(a.get_config())
        ),
        ENVIRONMENT_SCHEMA,
    ),
    _resource_policy(
        "required-labels",
        "Every resource that takes labels/tags carries project, stack and managed-by.",
        MANDATORY,
        lambda a: check_required_labels(a.resource_type, a.props, a.provider),
    ),
    _resource_policy(
        "image-by-digest",
        "Containers run images by digest, never by a movable tag.",
        MANDATORY,
        lambda a: check_image_digest(a.resource_type, a.props),
    ),
    _resource_policy(
        "gcs-bucket-private",
        "GCS buckets enforce public access prevention, uniform access and versioning.",
        MANDATORY,
        lambda a: check_gcs_bucket(a.resource_type, a.props),
    ),
    _stack_policy(
        "s3-bucket-private",
        "S3 buckets block public access and have versioning and default encryption.",
        MANDATORY,
        check_s3_buckets,
    ),
    _resource_policy(
        "local-port-on-loopback",
        "Local containers are published on 127.0.0.1 only.",
        ADVISORY,
        lambda a: check_local_loopback(a.resource_type, a.props),
    ),
]

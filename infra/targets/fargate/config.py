"""The fargate section of the settings: region, network, load balancer, ECS and IAM knobs.

Everything has a default (`Pulumi.fargate.yaml` repeats the important ones); `aws:region` is the
one value a user has to think about. Every rule reports the key, the value and what is allowed,
before any resource is declared (the Fargate task size among them: AWS itself would only refuse
it at `up`, with "No Fargate configuration exists for given values").
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

from infra.config import ConfigReader, parse_cidr
from infra.core.batch import KEY_BATCH_CPU, KEY_BATCH_MEMORY
from infra.core.container import TERMINATION_SLACK_SECONDS
from infra.core.model_store import (
    KEY_TRAINING_CPU,
    KEY_TRAINING_MEMORY,
    ModelStoreSettings,
    read_model_store,
)
from infra.settings import (
    KEY_API_KEY,
    KEY_CPU,
    KEY_MEMORY,
    KEY_PLATFORM,
    KEY_SHUTDOWN_GRACE,
    Settings,
)
from infra.targets.fargate.network import FARGATE_ZONE_IDS, ZONES
from infra.targets.fargate.sizes import check_fargate_size

AWS_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[1-9]")
AWS_REGION_ALLOWED = "an AWS region such as us-east-1, eu-west-3, ap-southeast-2"

KEY_REGION = "aws:region"
KEY_VPC_CIDR = "modelship:vpcCidr"
KEY_PRIVATE_SUBNETS = "modelship:privateSubnets"
KEY_INGRESS_CIDRS = "modelship:ingressCidrs"
KEY_CERTIFICATE_ARN = "modelship:certificateArn"
KEY_CONTAINER_INSIGHTS = "modelship:containerInsights"
KEY_LOG_RETENTION = "modelship:logRetentionDays"
KEY_SPOT = "modelship:spot"
KEY_HEALTH_CHECK_GRACE = "modelship:healthCheckGraceSeconds"
KEY_DEREGISTRATION_DELAY = "modelship:deregistrationDelaySeconds"
KEY_REQUESTS_PER_TARGET = "modelship:requestsPerTarget"
KEY_TASK_POLICY_ARNS = "modelship:taskPolicyArns"
KEY_API_KEY_STORE = "modelship:apiKeyStore"
KEY_API_KEY_SECRET_ARN = "modelship:apiKeySecretArn"  # noqa: S105 - a key name
KEY_IMAGE_TAG = "modelship:imageTag"
KEY_ZONE_IDS = "modelship:availabilityZoneIds"
KEY_ALARM_TOPIC_ARN = "modelship:alarmTopicArn"

DEFAULT_REGION = "us-east-1"
CONTAINER_INSIGHTS = ("disabled", "enabled", "enhanced")
API_KEY_STORES = ("ssm", "secretsmanager")
# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy; checked against the
# botocore model's documentation in tests/infra/test_fargate_references.py).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
# Fargate kills a container at most 120 s after SIGTERM (ContainerDefinition.stopTimeout).
FARGATE_MAX_STOP_TIMEOUT = 120
# A VPC between /16 and /22 leaves four subnets of /20 to /26: an ALB needs at least /27.
VPC_PREFIX_RANGE = (16, 22)

_PARTITION = r"arn:aws(-[a-z]+)*"
_ACCOUNT = r"\d{12}"
CERTIFICATE_ARN = re.compile(
    _PARTITION + r":acm:(?P<region>[a-z0-9-]+):" + _ACCOUNT + r":certificate/[0-9a-f-]{36}"
)
SECRET_ARN = re.compile(
    _PARTITION
    + r":(?P<service>secretsmanager|ssm):[a-z0-9-]+:"
    + _ACCOUNT
    + r":(secret:[A-Za-z0-9/_+=.@-]+|parameter/[A-Za-z0-9/_.-]+)"
)
POLICY_ARN = re.compile(_PARTITION + r":iam::(aws|" + _ACCOUNT + r"):policy/[A-Za-z0-9/_+=,.@-]+")
SNS_TOPIC_ARN = re.compile(_PARTITION + r":sns:[a-z0-9-]+:" + _ACCOUNT + r":[A-Za-z0-9_-]{1,256}")
IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
ZONE_ID = re.compile(r"(?P<code>[a-z]+[0-9])-az[0-9]+")
# Zone ids start with a code of the region: us-west-1 → usw1, ap-northeast-1 → apne1.
_DIRECTION_CODES = {
    "north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
    "northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw", "gov": "g",
}  # fmt: skip


def zone_id_code(region: str) -> str | None:
    """The zone id prefix of `region` (`usw1` for us-west-1), or None if it cannot be derived."""
    country, *words, number = region.split("-")
    codes = [_DIRECTION_CODES.get(word) for word in words]
    if any(code is None for code in codes):
        return None
    return country + "".join(code for code in codes if code) + number


@dataclass(frozen=True)
class FargateSettings:
    """Validated settings of the fargate target."""

    region: str = DEFAULT_REGION
    vpc_cidr: str = "10.0.0.0/16"
    private_subnets: bool = False
    ingress_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    certificate_arn: str | None = None
    container_insights: str = "disabled"
    log_retention_days: int = 14
    spot: bool = False
    health_check_grace_seconds: int = 60
    deregistration_delay_seconds: int = 30
    requests_per_target: int = 1000
    task_policy_arns: tuple[str, ...] = field(default_factory=tuple)
    api_key_store: str = "ssm"
    api_key_secret_arn: str | None = None
    image_tag: str | None = None
    zone_ids: tuple[str, ...] = ()
    """The two availability zone ids of the subnets; empty: chosen at deploy time."""
    alarm_topic_arn: str | None = None
    """SNS topic the CloudWatch alarms notify (none: they only show in the console)."""
    store: ModelStoreSettings = field(default_factory=ModelStoreSettings)
    """The S3 model store, the version to serve (`s3://…`) and the training task."""

    @property
    def https(self) -> bool:
        return self.certificate_arn is not None

    @property
    def subnet_cidrs(self) -> tuple[str, str, str, str]:
        """Public a, public b, private a, private b: the first four sixteenths of the VPC."""
        vpc = ipaddress.ip_network(self.vpc_cidr)
        blocks = vpc.subnets(prefixlen_diff=4)
        a, b, c, d = (str(next(blocks)) for _ in range(4))
        return a, b, c, d


def _parse_list(value: str) -> tuple[str, ...]:
    """A JSON list (what a YAML list in the stack file becomes) or a comma-separated string."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(value) from exc
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(value)
    else:
        items = text.split(",")
    cleaned = tuple(i.strip() for i in items if i.strip())
    if not cleaned:
        raise ValueError(value)
    return cleaned


def read_fargate_settings(reader: ConfigReader, settings: Settings) -> FargateSettings:
    """Read and check the fargate keys; problems go to `reader`."""
    defaults = FargateSettings()
    region = reader.matching(KEY_REGION, DEFAULT_REGION, AWS_REGION, AWS_REGION_ALLOWED)

    vpc = reader.parse(
        KEY_VPC_CIDR,
        parse_cidr(defaults.vpc_cidr),
        parse_cidr,
        "an IPv4 CIDR block without host bits, e.g. 10.0.0.0/16",
    )
    low, high = VPC_PREFIX_RANGE
    if not vpc.is_private:
        reader.problem(KEY_VPC_CIDR, str(vpc), "must be a private (RFC 1918) range")
        vpc = parse_cidr(defaults.vpc_cidr)
    elif not low <= vpc.prefixlen <= high:
        reader.problem(
            KEY_VPC_CIDR,
            str(vpc),
            f"must be a /{low} to /{high} block (it is split into four subnets)",
        )
        vpc = parse_cidr(defaults.vpc_cidr)

    ingress = _read_ingress_cidrs(reader)
    certificate = _read_certificate(reader, region)

    retention = reader.parse(
        KEY_LOG_RETENTION,
        defaults.log_retention_days,
        int,
        "must be one of " + ", ".join(map(str, LOG_RETENTION_DAYS)),
    )
    if retention not in LOG_RETENTION_DAYS:
        reader.problem(
            KEY_LOG_RETENTION,
            str(retention),
            "must be one of " + ", ".join(map(str, LOG_RETENTION_DAYS)),
        )
        retention = defaults.log_retention_days

    spot = reader.boolean(KEY_SPOT, defaults.spot)
    if spot and settings.image.platform == "linux/arm64":
        reader.problem(
            KEY_SPOT,
            "true",
            f"Fargate Spot runs only X86_64 tasks; set {KEY_PLATFORM} linux/amd64 or spot false",
        )

    policy_arns: tuple[str, ...] = ()
    raw_policies = reader.raw(KEY_TASK_POLICY_ARNS)
    if raw_policies is not None:
        try:
            policy_arns = _parse_list(raw_policies)
        except ValueError:
            policy_arns = ()
        if not policy_arns or not all(POLICY_ARN.fullmatch(a) for a in policy_arns):
            reader.problem(
                KEY_TASK_POLICY_ARNS,
                raw_policies,
                "a list of IAM policy ARNs, e.g. [arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess]",
            )
            policy_arns = ()

    secret_arn = reader.optional_string(KEY_API_KEY_SECRET_ARN)
    if secret_arn is not None and not SECRET_ARN.fullmatch(secret_arn):
        reader.problem(
            KEY_API_KEY_SECRET_ARN,
            secret_arn,
            "the full ARN of a Secrets Manager secret "
            "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-xxxxxx) "
            "or of an SSM parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)",
        )
        secret_arn = None
    if secret_arn is not None and settings.api_key is not None:
        reader.problem(
            KEY_API_KEY_SECRET_ARN,
            secret_arn,
            f"set only one of {KEY_API_KEY} (the key, stored by the stack) or "
            f"{KEY_API_KEY_SECRET_ARN} (a secret you manage)",
        )

    _check_stop_timeout(reader, settings)
    check_fargate_size(
        reader,
        KEY_CPU,
        KEY_MEMORY,
        settings.container.cpu_millicores,
        settings.container.memory_bytes // 2**20,
    )
    if settings.container.memory_bytes % 2**20:
        reader.problem(KEY_MEMORY, settings.container.memory, "on Fargate must be whole MiB")

    store = read_model_store(reader, settings, "s3")
    _check_task_sizes(reader, store)

    image_tag = reader.optional_string(KEY_IMAGE_TAG)
    if image_tag is not None and not IMAGE_TAG.fullmatch(image_tag):
        reader.problem(
            KEY_IMAGE_TAG,
            image_tag,
            "a Docker tag: up to 128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'",
        )
        image_tag = None

    return FargateSettings(
        region=region,
        zone_ids=_read_zone_ids(reader, region),
        vpc_cidr=str(vpc),
        private_subnets=reader.boolean(KEY_PRIVATE_SUBNETS, defaults.private_subnets),
        ingress_cidrs=ingress,
        certificate_arn=certificate,
        container_insights=reader.choice(
            KEY_CONTAINER_INSIGHTS, defaults.container_insights, CONTAINER_INSIGHTS
        ),
        log_retention_days=retention,
        spot=spot,
        health_check_grace_seconds=reader.integer(
            KEY_HEALTH_CHECK_GRACE, defaults.health_check_grace_seconds, 0, 3600
        ),
        deregistration_delay_seconds=reader.integer(
            KEY_DEREGISTRATION_DELAY, defaults.deregistration_delay_seconds, 0, 3600
        ),
        requests_per_target=reader.integer(
            KEY_REQUESTS_PER_TARGET, defaults.requests_per_target, 1, 1_000_000
        ),
        task_policy_arns=policy_arns,
        api_key_store=reader.choice(KEY_API_KEY_STORE, defaults.api_key_store, API_KEY_STORES),
        api_key_secret_arn=secret_arn,
        image_tag=image_tag,
        alarm_topic_arn=reader.matching(
            KEY_ALARM_TOPIC_ARN,
            "",
            SNS_TOPIC_ARN,
            "an SNS topic ARN: arn:aws:sns:REGION:ACCOUNT:NAME",
        )
        or None,
        store=store,
    )


def _read_zone_ids(reader: ConfigReader, region: str) -> tuple[str, ...]:
    raw = reader.raw(KEY_ZONE_IDS)
    if raw is None:
        return ()
    code = zone_id_code(region)
    example = f"{code}-az1" if code else "use1-az1"
    allowed = (
        f"two different availability zone ids of {region}, like {example} (ids, not zone names "
        f"like {region}a: each account maps a name to a zone of its own)"
    )
    try:
        zone_ids = _parse_list(raw)
    except ValueError:
        reader.problem(KEY_ZONE_IDS, raw, allowed)
        return ()
    matches = [ZONE_ID.fullmatch(zone) for zone in zone_ids]
    if (
        len(set(zone_ids)) != len(zone_ids)
        or len(zone_ids) != ZONES
        or not all(m is not None and (code is None or m["code"] == code) for m in matches)
    ):
        reader.problem(KEY_ZONE_IDS, raw, allowed)
        return ()
    supported = FARGATE_ZONE_IDS.get(region)
    unsupported = [zone for zone in zone_ids if supported is not None and zone not in supported]
    if supported is not None and unsupported:
        reader.problem(
            KEY_ZONE_IDS,
            raw,
            f"Fargate runs in {region} only in {', '.join(sorted(supported))} "
            f"({', '.join(unsupported)} is not one of them)",
        )
        return ()
    return zone_ids


def _check_task_sizes(reader: ConfigReader, store: ModelStoreSettings) -> None:
    """The training and batch tasks are Fargate tasks too: same size table, on their own keys."""
    for cpu_key, memory_key, size in (
        (KEY_TRAINING_CPU, KEY_TRAINING_MEMORY, store.training),
        (KEY_BATCH_CPU, KEY_BATCH_MEMORY, store.batch),
    ):
        check_fargate_size(reader, cpu_key, memory_key, size.cpu_millicores, size.memory_mib)
        if size.memory_bytes % 2**20:
            reader.problem(memory_key, size.memory, "on Fargate must be whole MiB")


def _read_ingress_cidrs(reader: ConfigReader) -> tuple[str, ...]:
    raw = reader.raw(KEY_INGRESS_CIDRS)
    if raw is None:
        return FargateSettings.ingress_cidrs
    allowed = "a list of IPv4 CIDR blocks without host bits, e.g. [203.0.113.0/24] or 0.0.0.0/0"
    try:
        cidrs = tuple(str(parse_cidr(c)) for c in _parse_list(raw))
    except ValueError:
        reader.problem(KEY_INGRESS_CIDRS, raw, allowed)
        return FargateSettings.ingress_cidrs
    return tuple(dict.fromkeys(cidrs))


def _read_certificate(reader: ConfigReader, region: str) -> str | None:
    arn = reader.optional_string(KEY_CERTIFICATE_ARN)
    if arn is None:
        return None
    match = CERTIFICATE_ARN.fullmatch(arn)
    if match is None:
        reader.problem(
            KEY_CERTIFICATE_ARN,
            arn,
            "an ACM certificate ARN: arn:aws:acm:REGION:ACCOUNT:certificate/UUID",
        )
        return None
    if match["region"] != region:
        reader.problem(
            KEY_CERTIFICATE_ARN,
            arn,
            f"must be an ACM certificate in the stack's region {region} (a load balancer "
            "can only use certificates of its own region)",
        )
        return None
    return arn


def _check_stop_timeout(reader: ConfigReader, settings: Settings) -> None:
    limit = FARGATE_MAX_STOP_TIMEOUT - TERMINATION_SLACK_SECONDS
    grace = settings.container.shutdown_grace_seconds
    if grace > limit:
        reader.problem(
            KEY_SHUTDOWN_GRACE,
            str(grace),
            f"on Fargate must be at most {limit} (Fargate stops a container at most "
            f"{FARGATE_MAX_STOP_TIMEOUT} s after SIGTERM)",
        )

"""The cloud list prices every cost figure is computed with: one table, each price with its source.

The stacks read it at `pulumi preview` to price what they declare (`infra/core/cost.py`, each
target's `cost.py`: the `monthly_cost` and `cost_per_million_predictions` outputs), and
`tests/infra/cost_doc.py` generates docs/cost.md's planned-load tables from it, so a changed price
changes the outputs, the plans and the doc together.

Prices change. `read` says how each price was taken down:
- `READ` prices were re-read on that day from a stored copy of a public page quoting the price
  list (the machine that wrote this module reaches no cloud pricing page): the page named in
  `seen_on`, which quotes the provider's list price for the region;
- `NOT_REREAD` prices are written from the provider's published on-demand list as known to the
  author on that day, without a page to re-read them from here. Check the `source` page before
  relying on them.
AWS prices are on-demand list prices for us-east-1, Google's for us-central1.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730
"""The month the cost tables use (AWS and Google both bill by the hour; 8,760 h / 12)."""
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class Price:
    """One list price: USD per `unit`, from `source`, taken down on `written` (see `read`)."""

    usd: float
    unit: str
    source: str
    written: str
    read: str = "not re-read"
    """`READ` (re-read from `seen_on`, a stored copy of a page quoting it) or `NOT_REREAD`."""
    seen_on: str = ""

    def monthly(self, quantity: float = 1.0) -> float:
        """USD for `quantity` units running all month (hourly prices times `HOURS_PER_MONTH`)."""
        hours = HOURS_PER_MONTH if self.unit.split(" (")[0].endswith("-hour") else 1
        return self.usd * quantity * hours


READ = "re-read"
NOT_REREAD = "not re-read"

_FARGATE = "https://aws.amazon.com/fargate/pricing/"
_ELB = "https://aws.amazon.com/elasticloadbalancing/pricing/"
_VPC = "https://aws.amazon.com/vpc/pricing/"
_CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"
_ECR = "https://aws.amazon.com/ecr/pricing/"
_S3 = "https://aws.amazon.com/s3/pricing/"
_SAGEMAKER = "https://aws.amazon.com/sagemaker/pricing/"
_GKE = "https://cloud.google.com/kubernetes-engine/pricing"
_GCP_NETWORK = "https://cloud.google.com/vpc/network-pricing"
_GCP_LOAD_BALANCING = "https://cloud.google.com/load-balancing/pricing"
_GCE = "https://cloud.google.com/compute/vm-instance-pricing"
_LOGGING = "https://cloud.google.com/stackdriver/pricing"
_ARTIFACT_REGISTRY = "https://cloud.google.com/artifact-registry/pricing"
_GCS = "https://cloud.google.com/storage/pricing"
_WRITTEN = "2026-11-25"
_REREAD = "2026-12-07"
# Stored copies of pages quoting the list prices (the search tool's page store), re-read on _REREAD.
_VANTAGE_FARGATE = "https://www.vantage.sh/blog/fargate-pricing (us-east-1 Linux/x86 table)"
_GKE_PAGE = "https://cloud.google.com/kubernetes-engine/pricing (cluster management fee section)"
_TOOLSTAC_GKE = (
    "https://toolstac.com/tool/gke-enterprise/enterprise-transition-guide (Autopilot rates)"
)
_ALB_PAGE = (
    "https://cloud-horizons.com/blog/alb-the-line-item-nobody-watches/ (hourly base and "
    "LCU-hour; the page names no region)"
)
_IPV4_PAGE = "https://www.doit.com/aws-public-ipv4-price-increase-the-complete-guide/"
_NAT_PAGE = "https://basavytix.com/blog/aws-nat-gateway-pricing (us-east-1 rates)"
_ALARM_PAGE = (
    "https://c3x.dev/resources/aws/aws_cloudwatch_metric_alarm (standard resolution; the page "
    "names no region)"
)
_METRIC_PAGE = "https://signoz.io/guides/cloudwatch-pricing (custom metrics, first 10,000)"
_LOGS_PAGE = "https://c3x.dev/blog/cloudwatch-logs-cost-optimization (us-east-1, June 2026)"
_ECR_PAGE = "https://cloudburn.io/blog/amazon-ecr-pricing (US East, March 2026)"
_LB_PAGE = (
    "http://mobile.dudasite.com/site/google8/default?url=https%3A%2F%2Fcloud.google.com"
    "%2Fload-balancing%2Fpricing (a stored copy of Google's page)"
)
_LOGGING_PAGE = (
    "http://movatter.jp/mt/?dark=on&url=https%3A%2F%2Fcloud.google.com%2Fstackdriver%2Fpricing"
    " (a stored copy of Google's page, Cloud Logging pricing summary)"
)
_ARTIFACT_REGISTRY_PAGE = "https://cloud.google.com/artifact-registry/pricing?hl=id (storage)"
_GCS_PAGE = (
    "http://retrosearch.org/browse?url=https%3A%2F%2Fcloud.google.com%2Fstorage%2Fpricing "
    "(a stored copy of Google's page, us-central1 Standard storage)"
)

# --- AWS -------------------------------------------------------------------------------------
FARGATE_VCPU = Price(0.04048, "vCPU-hour", _FARGATE, _REREAD, READ, _VANTAGE_FARGATE)
FARGATE_GB = Price(0.004445, "GB-hour", _FARGATE, _REREAD, READ, _VANTAGE_FARGATE)
ALB = Price(0.0225, "load-balancer-hour", _ELB, _REREAD, READ, _ALB_PAGE)
ALB_LCU = Price(0.008, "LCU-hour", _ELB, _REREAD, READ, _ALB_PAGE)
PUBLIC_IPV4 = Price(0.005, "address-hour", _VPC, _REREAD, READ, _IPV4_PAGE)
NAT_GATEWAY = Price(0.045, "gateway-hour", _VPC, _REREAD, READ, _NAT_PAGE)
NAT_GB = Price(0.045, "GB processed", _VPC, _REREAD, READ, _NAT_PAGE)
CLOUDWATCH_ALARM = Price(
    0.10, "standard-resolution alarm-month", _CLOUDWATCH, _REREAD, READ, _ALARM_PAGE
)
CLOUDWATCH_METRIC = Price(
    0.30, "custom metric-month (first 10,000)", _CLOUDWATCH, _REREAD, READ, _METRIC_PAGE
)
LOGS_INGESTED = Price(0.50, "GB ingested", _CLOUDWATCH, _REREAD, READ, _LOGS_PAGE)
LOGS_STORED = Price(0.03, "GB-month stored", _CLOUDWATCH, _REREAD, READ, _LOGS_PAGE)
ECR_STORAGE = Price(0.10, "GB-month", _ECR, _REREAD, READ, _ECR_PAGE)
S3_STORAGE = Price(0.023, "GB-month (S3 Standard, first 50 TB)", _S3, _WRITTEN)
# SageMaker real-time inference: an always-on instance per replica. ml.c5.large is 2 vCPU and
# 4 GiB, the smallest compute-optimised hosting instance.
SAGEMAKER_C5_LARGE = Price(
    0.102, "ml.c5.large instance-hour (real-time hosting)", _SAGEMAKER, _WRITTEN
)
SAGEMAKER_C5_LARGE_VCPU = 2
SAGEMAKER_DATA_GB = Price(
    0.016, "GB processed in + out (real-time and serverless)", _SAGEMAKER, _WRITTEN
)
# SageMaker serverless inference: billed per second of inference duration, by the memory size
# chosen; the per-second price scales linearly with it (0.0000200 per second at 1 GB).
SAGEMAKER_SERVERLESS_GB_SECOND = Price(
    0.0000200, "GB-second of inference duration", _SAGEMAKER, _WRITTEN
)

# --- Google Cloud ------------------------------------------------------------------------------
GKE_CLUSTER = Price(0.10, "cluster-hour", _GKE, _REREAD, READ, _GKE_PAGE)
GKE_FREE_TIER_CREDIT = Price(74.40, "USD-month per billing account", _GKE, _REREAD, READ, _GKE_PAGE)
AUTOPILOT_VCPU = Price(0.0445, "vCPU-hour", _GKE, _REREAD, READ, _TOOLSTAC_GKE)
AUTOPILOT_GIB = Price(0.0049225, "GiB-hour", _GKE, _REREAD, READ, _TOOLSTAC_GKE)
AUTOPILOT_EPHEMERAL_GIB = Price(0.0000548, "GiB-hour (ephemeral storage)", _GKE, _WRITTEN)
FORWARDING_RULE = Price(
    0.025, "forwarding-rule-hour (first 5)", _GCP_LOAD_BALANCING, _REREAD, READ, _LB_PAGE
)
# Per GiB, in and out: the stored page corrected the "GB" written on 2026-11-25.
LB_DATA_GIB = Price(
    0.008,
    "GiB processed by the load balancer (inbound and outbound)",
    _GCP_LOAD_BALANCING,
    _REREAD,
    READ,
    _LB_PAGE,
)
STATIC_IP = Price(0.005, "in-use external IP-hour", _GCP_NETWORK, _WRITTEN)
CLOUD_LOGGING_GIB = Price(
    0.50,
    "GiB ingested beyond 50 GiB per project-month",
    _LOGGING,
    _REREAD,
    READ,
    _LOGGING_PAGE,
)
CLOUD_LOGGING_FREE_GIB = 50.0
ARTIFACT_REGISTRY_STORAGE = Price(
    0.10, "GB-month beyond 0.5 GB", _ARTIFACT_REGISTRY, _REREAD, READ, _ARTIFACT_REGISTRY_PAGE
)
GCS_STORAGE = Price(0.020, "GB-month (Standard, regional)", _GCS, _REREAD, READ, _GCS_PAGE)
# The node price the k8s target quotes a pod at (a cluster someone else pays for): Compute
# Engine E2 on-demand resource prices, the general-purpose family GKE Standard defaults to.
E2_VCPU = Price(0.021811, "vCPU-hour (E2 on-demand)", _GCE, _WRITTEN)
E2_GB = Price(0.002923, "GB-hour (E2 on-demand)", _GCE, _WRITTEN)
E2_STANDARD_2 = Price(0.067006, "e2-standard-2 node-hour (2 vCPU, 8 GB)", _GCE, _WRITTEN)


def table() -> dict[str, Price]:
    """Every price of this module by its name (docs/cost.md lists them all)."""
    return {name: value for name, value in globals().items() if isinstance(value, Price)}

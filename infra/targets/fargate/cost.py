"""What the fargate stack costs a month at its planned load (see `infra.core.cost`).

Priced: the tasks the plan runs at that load (vCPU and memory of the task definition), the
Application Load Balancer (hours, and the LCUs its processed bytes use), public IPv4 addresses
(one per load balancer zone, one per task in public subnets), the NAT gateway and its Elastic IP
when declared, CloudWatch alarms (the stack's, and the two Application Auto Scaling creates per
target-tracking policy), the service's custom metrics, log ingestion and storage at that load,
and the repositories' and bucket's storage. Traffic leaving AWS is not priced.
"""

from __future__ import annotations

from infra.core.capacity import CapacityPlan
from infra.core.cost import (
    ACCESS_LOG_BYTES,
    GB,
    WIRE_BYTES,
    Bill,
    Ledger,
    Line,
    access_log_note,
    bill,
    logged_requests,
)
from infra.core.cost import requests_per_month as monthly_requests
from infra.offline import prices
from infra.settings import Settings
from infra.targets.fargate.config import FargateSettings
from infra.targets.fargate.sizes import fargate_cpu_units

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:appautoscaling/policy:Policy"
# Application Auto Scaling creates two alarms per target-tracking policy (scale out and in) and
# bills them as ordinary alarms.
ALARMS_PER_TARGET_TRACKING = 2
# The service's embedded-metric counts the tasks share (Requests, Errors5xx, CaptureFailures,
# FeaturesInDrift, PredictionDrift); more appear only with drift or labels (docs/cost.md).
SERVICE_METRICS = 5
# CloudWatch Logs bills each event's message plus 26 bytes.
LOG_EVENT_OVERHEAD_BYTES = 26
# Images (about ten of ~100 MiB, layers shared) and a few model versions and training CSVs.
STORED_GB = 1.0


def fargate_bill(
    settings: Settings, fargate: FargateSettings, plan: CapacityPlan, ledger: Ledger
) -> Bill:
    """The fargate stack's monthly bill at the planned load."""
    tasks = plan.planned_replicas
    vcpu = fargate_cpu_units(settings.container.cpu_millicores) / 1024
    gb = settings.container.memory_bytes / 2**30
    per_task = prices.FARGATE_VCPU.monthly(vcpu) + prices.FARGATE_GB.monthly(gb)
    requests = monthly_requests(plan)
    zones = ledger.count("aws:ec2/subnet:Subnet", "-public-")
    task_ips = 0 if fargate.private_subnets else tasks
    # LCUs: processed bytes (1 GB an hour each) with clients that keep connections alive; a
    # client opening a connection per request pays a new-connection LCU per 25 requests/s.
    lcus = requests * WIRE_BYTES / GB / prices.HOURS_PER_MONTH
    log_gb = logged_requests(settings, plan) * (ACCESS_LOG_BYTES + LOG_EVENT_OVERHEAD_BYTES) / GB
    kept = min(fargate.log_retention_days / 30, 1.0)
    logs = log_gb * (prices.LOGS_INGESTED.usd + kept * prices.LOGS_STORED.usd)
    alarms = ledger.count(ALARM) + ALARMS_PER_TARGET_TRACKING * ledger.count(POLICY)
    metrics = SERVICE_METRICS if tasks else 0
    nat = ledger.count("aws:ec2/natGateway:NatGateway")
    eips = ledger.count("aws:ec2/eip:Eip")
    balancers = ledger.count("aws:lb/loadBalancer:LoadBalancer")
    repositories = ledger.count("aws:ecr/repository:Repository")
    return bill(
        [
            Line("tasks", tasks * per_task, f"{tasks} x ({vcpu:g} vCPU + {gb:g} GB)"),
            Line(
                "load balancer",
                prices.ALB.monthly(balancers) + prices.ALB_LCU.monthly(lcus),
                f"{balancers} ALB + {lcus:.2f} LCU",
            ),
            Line(
                "public IPv4",
                prices.PUBLIC_IPV4.monthly(zones + task_ips + eips),
                f"{zones} (ALB zones) + {task_ips} (tasks) + {eips} (NAT)",
            ),
            Line("NAT gateway", prices.NAT_GATEWAY.monthly(nat), f"{nat} gateway(s)"),
            Line(
                "logs",
                logs,
                f"{log_gb:.1f} GB ingested, {fargate.log_retention_days} days kept",
            ),
            Line("alarms", prices.CLOUDWATCH_ALARM.monthly(alarms), f"{alarms} alarms"),
            Line("custom metrics", prices.CLOUDWATCH_METRIC.monthly(metrics), f"{metrics} metrics"),
            Line(
                "storage",
                prices.ECR_STORAGE.monthly(STORED_GB * repositories)
                + prices.S3_STORAGE.monthly(STORED_GB),
                f"{repositories} ECR repositories and the bucket, ~{STORED_GB:g} GB each",
            ),
        ],
        notes=[
            "on-demand us-east-1 list prices (infra/offline/prices.py); traffic leaving AWS "
            "and NAT data processing are not included",
            *(["Fargate Spot tasks cost less than this on-demand figure"] if fargate.spot else []),
            *access_log_note(settings, logs),
        ],
    )

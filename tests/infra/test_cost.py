"""docs/cost.md's fargate figures, recomputed from what the stack declares and one price table.

The counts come from the stack's resource graph (the committed plan's source): tasks, their size,
the load balancer's zones, public addresses, alarms (the stack's own and the two of each
target-tracking policy), the NAT gateway; the custom metrics from what the service's CloudWatch
emitter writes. Prices come from `infra/offline/prices.py`. A changed default, a new alarm or a
new metric changes a figure here, and the doc must follow.
"""

from __future__ import annotations

import math
import re

import pytest

from infra.offline import prices
from tests.infra.harness import REPO_ROOT, StackRun
from tests.service.serving.monitoring.test_cloudwatch import (
    SERVICE_METRICS,
    emitted_metrics,
    signals,
)

from .fargate import fargate_run, inputs

COST = REPO_ROOT / "docs" / "cost.md"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:appautoscaling/policy:Policy"
# Application Auto Scaling creates and manages two alarms per target-tracking policy (scale out
# and, unless disabled, scale in) and bills them as ordinary alarms.
ALARMS_PER_TARGET_TRACKING = 2
LOG_GB_PER_MONTH = 1.0  # the doc's assumption: ~1 GB of JSON logs a month
LOG_RETENTION_SHARE = 14 / 30  # of a month's logs kept at any time (14 days)
TIMES, MINUS = "\N{MULTIPLICATION SIGN}", "\N{MINUS SIGN}"  # as the doc prints them


def _section() -> str:
    text = COST.read_text()
    start = text.index("## fargate")
    return text[start : text.index("\n## ", start + 1)]


def _row(section: str, resource: str) -> str:
    (row,) = [line for line in section.splitlines() if line.startswith(f"| {resource}")]
    return row


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _dollars(value: float) -> int:
    """Whole dollars, halves up (as a reader rounds; `round` would give $36 for $36.50)."""
    return math.floor(value + 0.5)


def _about(value: float) -> str:
    return f"**≈ ${_dollars(value)}**"


class Fargate:
    """What one configuration of the fargate stack runs and pays for, by the hour or month."""

    def __init__(self, run: StackRun) -> None:
        service = inputs(run.one("aws:ecs/service:Service"))
        (task,) = [
            inputs(t)
            for t in run.of_type("aws:ecs/taskDefinition:TaskDefinition")
            if t.name.endswith("-app-task")
        ]
        self.tasks = int(service["desiredCount"])
        self.vcpu = int(task["cpu"]) / 1024
        self.gb = int(task["memory"]) / 1024
        self.zones = len([s for s in run.of_type("aws:ec2/subnet:Subnet") if "-public-" in s.name])
        self.task_ips = self.tasks if service["networkConfiguration"]["assignPublicIp"] else 0
        self.nat = len(run.of_type("aws:ec2/natGateway:NatGateway"))
        self.eips = len(run.of_type("aws:ec2/eip:Eip"))
        self.stack_alarms = len(run.of_type(ALARM))
        policies = [inputs(p) for p in run.of_type(POLICY)]
        assert all("targetTrackingScalingPolicyConfiguration" in p for p in policies)
        self.tracking_alarms = ALARMS_PER_TARGET_TRACKING * len(policies)
        # The tasks write the same metrics (dimension: the service); no task, no metric.
        self.metrics = len(emitted_metrics(signals(6, drifting=0))) if self.tasks else 0

    def per_task(self) -> float:
        return prices.FARGATE_VCPU.monthly(self.vcpu) + prices.FARGATE_GB.monthly(self.gb)

    def lines(self) -> dict[str, float]:
        return {
            "tasks": self.tasks * self.per_task(),
            "alb": prices.ALB.monthly(),
            "ips": prices.PUBLIC_IPV4.monthly(self.zones + self.task_ips),
            "logs": (
                LOG_GB_PER_MONTH
                * (prices.LOGS_INGESTED.usd + LOG_RETENTION_SHARE * prices.LOGS_STORED.usd)
                if self.tasks
                else 0.0
            ),
            "alarms": prices.CLOUDWATCH_ALARM.monthly(self.stack_alarms + self.tracking_alarms),
            "metrics": prices.CLOUDWATCH_METRIC.monthly(self.metrics),
            "nat": prices.NAT_GATEWAY.monthly(self.nat) + prices.PUBLIC_IPV4.monthly(self.eips),
        }

    def total(self) -> float:
        return sum(self.lines().values())


@pytest.fixture(scope="module")
def default() -> Fargate:
    return Fargate(fargate_run("default"))


def test_the_default_fargate_table_counts_what_the_stack_declares(default: Fargate) -> None:
    section = _section()
    lines = default.lines()
    assert (default.tasks, default.vcpu, default.gb) == (2, 0.5, 1.0)

    tasks = _row(section, "Fargate tasks")
    assert f"{default.tasks} tasks {TIMES} ({default.vcpu:g} vCPU + {default.gb:g} GB)" in tasks
    assert f"{_usd(lines['tasks'])} ({_usd(default.per_task())} per task)" in tasks
    assert _usd(lines["alb"]) in _row(section, "Application Load Balancer")
    addresses = _row(section, "public IPv4 addresses")
    count = default.zones + default.task_ips
    assert f"{count}: {default.zones} (ALB, {default.zones} AZs) + 1 per task" in addresses
    assert addresses.endswith(f"| {_usd(lines['ips'])} |")
    assert f"≈ {_usd(lines['logs'])}" in _row(section, "CloudWatch Logs")

    alarms = _row(section, "CloudWatch alarms")
    total_alarms = default.stack_alarms + default.tracking_alarms
    assert f"{total_alarms}: {default.stack_alarms} of the stack" in alarms
    assert f"+ {default.tracking_alarms} of target tracking" in alarms
    assert alarms.endswith(f"| {_usd(lines['alarms'])} |")

    metrics = _row(section, "CloudWatch custom metrics")
    assert f"| {default.metrics} (" in metrics
    assert all(f"`{name}`" in metrics for name in SERVICE_METRICS)
    psi = prices.CLOUDWATCH_METRIC.usd
    assert f"| {_usd(lines['metrics'])} + {_usd(psi)} per signal-month in drift |" in metrics
    assert f"64 {TIMES} {_usd(psi)} = {_usd(64 * psi)}" in section

    assert _about(default.total() - lines["nat"]) in _row(section, "**total, no NAT")
    extra = f"adds {_usd(default.per_task())} + {_usd(prices.PUBLIC_IPV4.monthly())}"
    assert extra in section


def test_the_nat_and_parked_figures_follow_the_stack() -> None:
    section = _section()
    private = Fargate(fargate_run("private"))
    assert (private.nat, private.eips, private.task_ips) == (1, 1, 0)
    public = Fargate(fargate_run("default"))
    nat_row = _row(section, "NAT gateway, only if enabled")
    saved = public.lines()["ips"] - private.lines()["ips"]
    assert (
        f"+ {_usd(prices.NAT_GATEWAY.monthly())} + {_usd(prices.PUBLIC_IPV4.monthly())} + traffic"
        in nat_row
    )
    assert f"{MINUS} {_usd(saved)} |" in nat_row
    assert _about(private.total()) in _row(section, "**total with a NAT gateway")

    parked = Fargate(fargate_run("parked-spot"))
    assert (parked.tasks, parked.tracking_alarms, parked.metrics) == (0, 0, 0)
    bullet = next(line for line in section.split("\n- ") if "scaleToZero true" in line)
    bullet = re.sub(r"\s+", " ", bullet)
    lines = parked.lines()
    assert f"the stack's {parked.stack_alarms} alarms ({_usd(lines['alarms'])})" in bullet
    assert f"public IPs ({_usd(lines['ips'])})" in bullet
    assert f"**≈ ${_dollars(parked.total())}** without NAT" in bullet
    nat = private.lines()["nat"]
    assert f"if enabled ({_usd(nat)})" in bullet
    assert f"**≈ ${_dollars(parked.total() + nat)}** with NAT" in bullet


def test_the_fargate_guide_quotes_the_same_totals(default: Fargate) -> None:
    guide = re.sub(r"\s+", " ", (REPO_ROOT / "docs" / "fargate.md").read_text())
    assert f"Default total: about **${_dollars(default.total())} / month**" in guide
    parked = Fargate(fargate_run("parked-spot")).total()
    nat = Fargate(fargate_run("private")).lines()["nat"]
    assert f"(≈ ${_dollars(parked)} / month, plus ≈ ${_dollars(nat)} with a NAT gateway)" in guide

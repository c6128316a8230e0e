"""The cloud list prices docs/cost.md computes with: one table, each price with its source page.

Nothing in the stacks reads these; `tests/infra/test_cost.py` multiplies them by what the stacks
declare (tasks, addresses, alarms, metrics) and checks the figures docs/cost.md prints, so a
changed default or a new alarm cannot leave the doc behind. Prices change: `written` is the day a
price was taken down. The AWS figures are on-demand list prices for us-east-1 and were written
without re-reading the pages from the machine that wrote them (it had no access to them);
check the pages before relying on them.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730
"""The month the cost tables use (AWS and Google both bill by the hour; 8,760 h / 12)."""


@dataclass(frozen=True)
class Price:
    """One list price: USD per `unit`, from `source`, written down on `written`."""

    usd: float
    unit: str
    source: str
    written: str

    def monthly(self, quantity: float = 1.0) -> float:
        """USD for `quantity` units running all month (hourly prices times `HOURS_PER_MONTH`)."""
        hours = HOURS_PER_MONTH if self.unit.endswith("-hour") else 1
        return self.usd * quantity * hours


_FARGATE = "https://aws.amazon.com/fargate/pricing/"
_ELB = "https://aws.amazon.com/elasticloadbalancing/pricing/"
_VPC = "https://aws.amazon.com/vpc/pricing/"
_CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"
_WRITTEN = "2026-11-25"

FARGATE_VCPU = Price(0.04048, "vCPU-hour", _FARGATE, _WRITTEN)
FARGATE_GB = Price(0.004445, "GB-hour", _FARGATE, _WRITTEN)
ALB = Price(0.0225, "load-balancer-hour", _ELB, _WRITTEN)
ALB_LCU = Price(0.008, "LCU-hour", _ELB, _WRITTEN)
PUBLIC_IPV4 = Price(0.005, "address-hour", _VPC, _WRITTEN)
NAT_GATEWAY = Price(0.045, "gateway-hour", _VPC, _WRITTEN)
NAT_GB = Price(0.045, "GB processed", _VPC, _WRITTEN)
CLOUDWATCH_ALARM = Price(0.10, "standard-resolution alarm-month", _CLOUDWATCH, _WRITTEN)
CLOUDWATCH_METRIC = Price(0.30, "custom metric-month (first 10,000)", _CLOUDWATCH, _WRITTEN)
LOGS_INGESTED = Price(0.50, "GB ingested", _CLOUDWATCH, _WRITTEN)
LOGS_STORED = Price(0.03, "GB-month stored", _CLOUDWATCH, _WRITTEN)

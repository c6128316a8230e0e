"""The fargate target: ECS on Fargate behind an Application Load Balancer, in its own VPC."""

from __future__ import annotations

from infra.targets import Target
from infra.targets.fargate.config import FargateSettings, read_fargate_settings
from infra.targets.fargate.cost import fargate_bill
from infra.targets.fargate.deploy import deploy_fargate
from infra.targets.fargate.ids import AUTO_NAMED

TARGET: Target[FargateSettings] = Target(
    read=read_fargate_settings,
    auto_named=AUTO_NAMED,
    deploy=deploy_fargate,
    bill=fargate_bill,
)

__all__ = ["TARGET", "FargateSettings", "deploy_fargate", "read_fargate_settings"]

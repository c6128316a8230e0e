"""The ECS cluster (Container Insights by config) with the FARGATE and FARGATE_SPOT providers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts

FARGATE = "FARGATE"
FARGATE_SPOT = "FARGATE_SPOT"


class EcsClusterArgs(TypedDict):
    container_insights: str
    tags: Mapping[str, str]


class EcsCluster(pulumi.ComponentResource):
    """`cluster` plus `capacity_providers` (the service must wait for the latter)."""

    cluster: aws.ecs.Cluster
    capacity_providers: aws.ecs.ClusterCapacityProviders

    def __init__(
        self, name: str, args: EcsClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:EcsCluster", name, None, opts)
        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            aws.ecs.ClusterArgs(
                settings=[
                    aws.ecs.ClusterSettingArgs(
                        name="containerInsights", value=args["container_insights"]
                    )
                ],
                tags=dict(args["tags"]),
            ),
            opts=child_opts(self, opts),
        )
        # Both providers are associated so that switching `modelship:spot` is an update.
        self.capacity_providers = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            aws.ecs.ClusterCapacityProvidersArgs(
                cluster_name=self.cluster.name,
                capacity_providers=[FARGATE, FARGATE_SPOT],
                default_capacity_provider_strategies=[
                    aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                        capacity_provider=FARGATE, weight=1, base=0
                    )
                ],
            ),
            opts=child_opts(self, opts),
        )
        self.register_outputs({"name": self.cluster.name})

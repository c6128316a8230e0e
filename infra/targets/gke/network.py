"""A dedicated VPC-native network: one subnetwork with secondary ranges for pods and services."""

from __future__ import annotations

from typing import TypedDict

import pulumi
import pulumi_gcp as gcp

from infra.core.components import child_opts

PODS_RANGE = "pods"
SERVICES_RANGE = "services"
# GKE removes its firewall rules and NEGs asynchronously after the cluster and LoadBalancer are
# gone; generous delete timeouts let the network wait for them (deleting it sooner fails
# while they still use it).
NETWORK_TIMEOUTS = pulumi.CustomTimeouts(create="10m", update="10m", delete="30m")


class NetworkArgs(TypedDict):
    project: str
    region: str
    subnet_cidr: str
    pods_cidr: str
    services_cidr: str


class Network(pulumi.ComponentResource):
    """VPC + subnetwork (Private Google Access on, so nodes reach Artifact Registry privately)."""

    network: gcp.compute.Network
    subnetwork: gcp.compute.Subnetwork

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:gke:Network", name, None, opts)
        self.network = gcp.compute.Network(
            f"{name}-vpc",
            project=args["project"],
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description="modelship GKE network (managed by Pulumi)",
            opts=child_opts(self, opts, custom_timeouts=NETWORK_TIMEOUTS),
        )
        self.subnetwork = gcp.compute.Subnetwork(
            f"{name}-subnet",
            project=args["project"],
            region=args["region"],
            network=self.network.id,
            ip_cidr_range=args["subnet_cidr"],
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=PODS_RANGE, ip_cidr_range=args["pods_cidr"]
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=SERVICES_RANGE, ip_cidr_range=args["services_cidr"]
                ),
            ],
            opts=child_opts(self, opts, custom_timeouts=NETWORK_TIMEOUTS),
        )
        self.register_outputs({"network": self.network.id, "subnetwork": self.subnetwork.id})

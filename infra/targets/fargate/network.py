"""A dedicated VPC over two availability zones (never the default VPC, which many
accounts do not have).

Zones are chosen by zone id (`use1-az1`), which names the same place in every account, not by
zone name (`us-east-1a`), which each account maps to its own zone. In some regions Fargate runs
only in some zone ids (`FARGATE_ZONE_IDS`); a subnet elsewhere fails every task placement. Without
`modelship:availabilityZoneIds` the first two zone ids (sorted) that the account has and Fargate
supports are taken; with it, exactly those (checked against the account's zones at deploy time).

Public subnets (route to an internet gateway) hold the load balancer and, by default, the tasks
with a public IP: no NAT gateway to pay for, and the tasks' security group admits only the load
balancer. With `private` the tasks get two private subnets whose default route goes through one
NAT gateway (tasks in private subnets without NAT or VPC endpoints fail with
CannotPullContainerError).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts

ZONES = 2
ANYWHERE = "0.0.0.0/0"


# The regions where Fargate (Linux) runs only in some zone ids, from AWS's table "Linux
# containers on AWS Fargate" (Supported Regions for Amazon ECS on AWS Fargate). Every other
# region: all its zones.
FARGATE_ZONE_IDS: dict[str, frozenset[str]] = {
    "us-west-1": frozenset({"usw1-az1", "usw1-az3"}),
    "ap-northeast-1": frozenset({"apne1-az1", "apne1-az2", "apne1-az4"}),
}


def choose_zone_ids(region: str, available: Sequence[str], configured: Sequence[str]) -> list[str]:
    """The zone ids of the two subnet pairs: `configured` if given, else the first two available
    ones (sorted) where Fargate runs. ValueError, naming what is available, if there are none."""
    if configured:
        missing = [zone for zone in configured if zone not in available]
        if missing:
            raise ValueError(
                f"modelship:availabilityZoneIds: {', '.join(missing)} not available to this "
                f"account in {region}; available zone ids: {', '.join(sorted(available))}"
            )
        return list(configured)
    supported = FARGATE_ZONE_IDS.get(region)
    candidates = sorted(z for z in available if supported is None or z in supported)
    if len(candidates) < ZONES:
        raise ValueError(
            f"the region {region} offers {len(candidates)} availability zone(s) where Fargate "
            f"runs to this account ({', '.join(candidates) or 'none'}); the fargate stack needs "
            f"{ZONES}"
        )
    return candidates[:ZONES]


class VpcNetworkArgs(TypedDict):
    region: str
    zone_ids: Sequence[str]
    """`modelship:availabilityZoneIds`, or empty: choose them (see `choose_zone_ids`)."""
    cidr: str
    public_cidrs: Sequence[str]
    private_cidrs: Sequence[str]
    private: bool
    tags: Mapping[str, str]


def _zone(zone_ids: pulumi.Output[list[str]], index: int) -> pulumi.Output[str]:
    return zone_ids.apply(lambda chosen: chosen[index])


class VpcNetwork(pulumi.ComponentResource):
    """VPC, internet gateway, two public subnets (+ two private ones and a NAT gateway)."""

    vpc: aws.ec2.Vpc
    public_subnets: list[aws.ec2.Subnet]
    private_subnets: list[aws.ec2.Subnet]
    task_subnets: list[aws.ec2.Subnet]
    zone_ids: pulumi.Output[list[str]]
    internet_ready: list[pulumi.Resource]
    """What must exist before anything reaches the internet from the public subnets."""
    egress_ready: list[pulumi.Resource]
    """What must exist before tasks in `task_subnets` can pull their image."""

    def __init__(
        self, name: str, args: VpcNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:VpcNetwork", name, None, opts)
        base_tags = dict(args["tags"])

        def tags(role: str) -> dict[str, str]:
            return {**base_tags, "Name": f"{name}-{role}"}

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            aws.ec2.VpcArgs(
                cidr_block=args["cidr"],
                enable_dns_support=True,
                enable_dns_hostnames=True,
                tags=tags("vpc"),
            ),
            opts=child_opts(self, opts),
        )
        # Zones available to this account without opting in, looked up at deploy time (and at
        # preview: an unusable choice fails there).
        region, configured = args["region"], list(args["zone_ids"])
        zone_ids = aws.get_availability_zones_output(
            state="available",
            filters=[
                aws.GetAvailabilityZonesFilterArgs(
                    name="opt-in-status", values=["opt-in-not-required"]
                )
            ],
        ).zone_ids.apply(lambda available: choose_zone_ids(region, available, configured))
        gateway = aws.ec2.InternetGateway(
            f"{name}-igw",
            aws.ec2.InternetGatewayArgs(vpc_id=self.vpc.id, tags=tags("igw")),
            opts=child_opts(self, opts),
        )
        public_table = aws.ec2.RouteTable(
            f"{name}-public-rt",
            aws.ec2.RouteTableArgs(vpc_id=self.vpc.id, tags=tags("public")),
            opts=child_opts(self, opts),
        )
        public_route = aws.ec2.Route(
            f"{name}-public-default",
            aws.ec2.RouteArgs(
                route_table_id=public_table.id,
                destination_cidr_block=ANYWHERE,
                gateway_id=gateway.id,
            ),
            opts=child_opts(self, opts),
        )

        def subnets(
            kind: str, cidrs: Sequence[str], table: aws.ec2.RouteTable
        ) -> tuple[list[aws.ec2.Subnet], list[pulumi.Resource]]:
            """One subnet per zone (`<kind>-a`, `<kind>-b`), each associated with `table`."""
            created: list[aws.ec2.Subnet] = []
            associations: list[pulumi.Resource] = []
            for index, cidr in enumerate(cidrs[:ZONES]):
                letter = "ab"[index]
                subnet = aws.ec2.Subnet(
                    f"{name}-{kind}-{letter}",
                    aws.ec2.SubnetArgs(
                        vpc_id=self.vpc.id,
                        cidr_block=cidr,
                        availability_zone_id=_zone(zone_ids, index),
                        # ECS assigns public IPs explicitly (assignPublicIp); nothing else gets one.
                        map_public_ip_on_launch=False,
                        tags=tags(f"{kind}-{letter}"),
                    ),
                    opts=child_opts(self, opts),
                )
                associations.append(
                    aws.ec2.RouteTableAssociation(
                        f"{name}-{kind}-{letter}-rt",
                        aws.ec2.RouteTableAssociationArgs(
                            subnet_id=subnet.id, route_table_id=table.id
                        ),
                        opts=child_opts(self, opts),
                    )
                )
                created.append(subnet)
            return created, associations

        self.public_subnets, public_associations = subnets(
            "public", args["public_cidrs"], public_table
        )
        # An internet-facing load balancer or NAT gateway needs the gateway attached and routed.
        self.internet_ready = [gateway, public_route, *public_associations]

        self.private_subnets = []
        self.egress_ready = list(self.internet_ready)
        if args["private"]:
            address = aws.ec2.Eip(
                f"{name}-nat-ip",
                aws.ec2.EipArgs(domain="vpc", tags=tags("nat")),
                opts=child_opts(self, opts, depends_on=[gateway]),
            )
            nat = aws.ec2.NatGateway(
                f"{name}-nat",
                aws.ec2.NatGatewayArgs(
                    allocation_id=address.id,
                    subnet_id=self.public_subnets[0].id,
                    connectivity_type="public",
                    tags=tags("nat"),
                ),
                opts=child_opts(self, opts, depends_on=self.internet_ready),
            )
            private_table = aws.ec2.RouteTable(
                f"{name}-private-rt",
                aws.ec2.RouteTableArgs(vpc_id=self.vpc.id, tags=tags("private")),
                opts=child_opts(self, opts),
            )
            private_route = aws.ec2.Route(
                f"{name}-private-default",
                aws.ec2.RouteArgs(
                    route_table_id=private_table.id,
                    destination_cidr_block=ANYWHERE,
                    nat_gateway_id=nat.id,
                ),
                opts=child_opts(self, opts),
            )
            self.private_subnets, private_associations = subnets(
                "private", args["private_cidrs"], private_table
            )
            self.egress_ready = [nat, private_route, *private_associations]
        self.task_subnets = self.private_subnets if args["private"] else self.public_subnets
        self.zone_ids = zone_ids
        self.register_outputs(
            {
                "zone_ids": zone_ids,
                "vpc_id": self.vpc.id,
                "public_subnet_ids": [s.id for s in self.public_subnets],
                "task_subnet_ids": [s.id for s in self.task_subnets],
            }
        )

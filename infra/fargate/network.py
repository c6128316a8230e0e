"""A dedicated VPC over two availability zones (CLOUD-PITFALLS 7: never the default VPC).

Public subnets (route to an internet gateway) hold the load balancer and, by default, the tasks
with a public IP: no NAT gateway to pay for, and the tasks' security group admits only the load
balancer. With `private` the tasks get two private subnets whose default route goes through one
NAT gateway (CLOUD-PITFALLS 8: tasks in private subnets without NAT cannot pull the image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from infra.components import child_opts

ZONES = 2
ANYWHERE = "0.0.0.0/0"


class VpcNetworkArgs(TypedDict):
    cidr: str
    public_cidrs: Sequence[str]
    private_cidrs: Sequence[str]
    private: bool
    tags: Mapping[str, str]


def _pick_zone(names: Sequence[str], index: int) -> str:
    if len(names) < ZONES:
        raise ValueError(
            f"the region offers {len(names)} availability zone(s) to this account; "
            f"the fargate stack needs {ZONES}"
        )
    return sorted(names)[index]


def _zone(names: pulumi.Output[list[str]], index: int) -> pulumi.Output[str]:
    return names.apply(lambda found: _pick_zone(found, index))


class VpcNetwork(pulumi.ComponentResource):
    """VPC, internet gateway, two public subnets (+ two private ones and a NAT gateway)."""

    vpc: aws.ec2.Vpc
    public_subnets: list[aws.ec2.Subnet]
    private_subnets: list[aws.ec2.Subnet]
    task_subnets: list[aws.ec2.Subnet]
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
        # Zones available to this account without opting in, looked up at deploy time.
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[
                aws.GetAvailabilityZonesFilterArgs(
                    name="opt-in-status", values=["opt-in-not-required"]
                )
            ],
        ).names
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
                        availability_zone=_zone(zones, index),
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
        self.register_outputs(
            {
                "vpc_id": self.vpc.id,
                "public_subnet_ids": [s.id for s in self.public_subnets],
                "task_subnet_ids": [s.id for s in self.task_subnets],
            }
        )
